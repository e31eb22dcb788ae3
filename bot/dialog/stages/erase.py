"""Stage: deleting the user's data (データ削除) and what blocking the bot (unfollow) does to it."""

from __future__ import annotations

from bot.dialog import texts as T
from bot.dialog.conversation import booking_ref, parse_when
from bot.dialog.core import Handlers, Stage, Turn
from bot.dialog.replies import Ask, Text
from bot.dialog.stages.my_bookings import booking_line, booking_notice, upcoming


def _ask_erase(turn: Turn) -> None:
    held = upcoming(turn)
    listing = "\n".join(booking_line(turn, b) for b in held)
    cancels = T.ERASE_CANCELS.format(bookings=listing) if held else T.ERASE_NO_BOOKINGS
    options = (turn.option(T.ERASE_YES, "d", "yes"), turn.option(T.ERASE_NO, "d", "no"))
    turn.say(Ask(f"{T.ERASE_CONFIRM}\n\n{cancels}", options))


def _choose_erase(turn: Turn, action: str, value: str) -> None:
    if action != "d":
        return turn.not_understood()
    _erase(turn, value == "yes")


def _erase(turn: Turn, confirmed: bool) -> None:
    """Cancel the upcoming bookings, strip personal fields from every booking, erase the conversation."""
    if not confirmed:
        turn.say(Text(T.ERASE_KEPT))
        return turn.ask_menu_state()
    cancelled = []
    for booking in upcoming(turn):
        ref = booking_ref(booking)
        if turn.bookings.cancel(ref, at=turn.now.isoformat(), by="user_erase") is None:
            continue
        cancelled.append(booking)
        booking_notice(turn, "data_deleted", booking, "データ削除によるキャンセル")
    for booking in turn.bookings.for_user(turn.conv.user):
        turn.bookings.delete_personal(booking_ref(booking))
    turn.quit_silently()
    turn.outcome.erase_user = True
    text = T.ERASED
    if cancelled:
        text += "\n" + T.ERASED_CANCELLED.format(bookings="\n".join(booking_line(turn, b) for b in cancelled))
    turn.say(Text(text))
    turn.ask_menu()


def _command(turn: Turn) -> None:
    """データ削除: leave any booking in progress and ask for confirmation."""
    if turn.state != "idle":
        turn.quit_silently()
    turn.to_confirming_erase()


def blocked(turn: Turn) -> None:
    """The user blocked the bot: staff hear of each upcoming booking; personal data goes.

    Upcoming bookings stay (staff decide), so their personal fields go right after the appointment
    (`erase_after`, honoured by the retention task); every other booking loses them now.
    """
    for booking in turn.bookings.for_user(turn.conv.user):
        ref = booking_ref(booking)
        start = parse_when(booking.get("start"))
        if booking.get("status") != "booked" or start is None or start <= turn.now:
            turn.bookings.delete_personal(ref)
            continue
        turn.bookings.update(ref, {"erase_after": booking["end"]})
        office = turn.dialog.offices.get(booking["office"])
        name = office.short_name if office else booking["office"]
        booking_notice(turn, "user_blocked", booking, "予約中の利用者がブロックしました", office_name=name)


STAGE = Stage(
    "erase",
    states={"confirming_erase": Handlers(ask=_ask_erase, choose=_choose_erase, back=lambda turn: _erase(turn, False))},
    commands={"erase": _command},
    hooks={"unfollowed": blocked},
)

"""Stage: the user's bookings: the list (予約の確認), cancelling one, and notices to staff about one.

What the chat may do with a booking is the office's rule (`in_chat`): where it is not allowed, the
office's phone number (`by_phone`), or staff where the office publishes none. The date change that the
list also offers is the stage `reschedule`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.clock import JST
from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.buttons import ANY, command_option, phone_links, postback
from bot.dialog.conversation import booking_ref, booking_when, parse_when
from bot.dialog.core import Action, Handlers, Stage, Turn
from bot.dialog.replies import Ask, Option, StaffNotice, Text

CANCEL_ACTION = "x"  # any-time postback action (`*|x|<booking ref>`): cancel that booking
CHANGE_ACTION = "mv"  # any-time postback action (`*|mv|<booking ref>`): change its date (stage `reschedule`)


def upcoming(turn: Turn, office: str | None = None) -> list[dict[str, Any]]:
    """The user's booked bookings that have not started (of `office`, or of every office)."""
    result = []
    for booking in turn.bookings.for_user(turn.conv.user):
        if booking.get("status") != "booked" or (office and booking.get("office") != office):
            continue
        start = parse_when(booking.get("start"))
        if start is not None and start > turn.now:
            result.append(booking)
    return result


def booking_state(booking: dict[str, Any]) -> str:
    """申込み中・事業所の確認待ち / 確定 (…): which state a booking is in, as the user reads it."""
    return T.CONFIRMATION_STATES.get(booking.get("office_confirmation") or "not_needed", T.STATE_REQUESTED)


def booking_line(turn: Turn, booking: dict[str, Any]) -> str:
    name = turn.office_profile(booking["office"]).short_name if booking["office"] in turn.dialog.offices else booking["office"]
    label = T.BOOKING_LABEL.format(office=name, when=formats.when(booking), ref=booking["id"], state=booking_state(booking))
    return f"{T.BULLET}{label}"


def booking_notice(turn: Turn, kind: str, booking: dict[str, Any], what: str, **extra: str) -> None:
    """A staff notice about one booking: office, slot and reference only (no personal data)."""
    office = turn.dialog.offices.get(booking["office"])
    name = office.short_name if office else booking["office"]
    turn.outcome.notices.append(
        StaffNotice(
            kind=kind,
            office=booking["office"],
            summary=f"{what}: {name} {booking_when(booking)}",
            fields={"ref": booking_ref(booking), "booking_id": booking["id"], "slot": booking["slot"], **extra},
        )
    )


def list_bookings(turn: Turn, cancelling: bool, intro: bool = True, changing: bool = False) -> None:
    held = upcoming(turn)
    midway = turn.state != "idle"
    if not held:
        turn.say(Text(T.NO_BOOKINGS))
        return turn.reprompt()
    lines = "\n".join(booking_line(turn, b) for b in held)
    options = []
    for booking in held[:6]:  # two buttons each, and one more: LINE shows at most 13
        when = formats.button_day(datetime.fromisoformat(booking["start"]))
        options.append(Option(f"{T.CANCEL_LABEL} {when}", postback(ANY, CANCEL_ACTION, booking_ref(booking))))
        options.append(Option(f"{T.CHANGE_DATE_LABEL} {when}", postback(ANY, CHANGE_ACTION, booking_ref(booking))))
    options.append(command_option("resume") if midway else command_option("book"))
    turn.say(Text((T.YOUR_BOOKINGS + "\n" if intro else "") + lines))
    prompt = T.CHANGE_DATE_PROMPT if changing else T.CANCEL_PROMPT if cancelling else T.MENU
    turn.say(Ask(prompt, tuple(options)))


def own_upcoming(turn: Turn, ref: str) -> dict[str, Any] | None:
    """The user's booked, not yet started booking `ref`; else None, having said why and shown the menu."""
    booking = turn.bookings.get(ref)
    if booking is None or booking.get("user") != turn.conv.user or booking["office"] not in turn.dialog.offices:
        turn.say(Text(T.CANCEL_NOT_FOUND))
    elif booking.get("status") != "booked":
        turn.say(Text(T.CANCEL_ALREADY))
    elif datetime.fromisoformat(booking["start"]) <= turn.now:
        turn.say(Text(T.CANCEL_PAST))
    else:
        return booking
    turn.ask_menu_state()
    return None


def in_chat(turn: Turn, booking: dict[str, Any]) -> tuple[bool, bool]:
    """(the office takes this booking's cancellation or change in the chat now, it is the day itself).

    The office's `cancellation.channels` (`same_day` on the day itself): anything besides the phone
    (Noto and Izumo: email) lets the chat do it.
    """
    office = turn.dialog.offices[booking["office"]]
    same_day = datetime.fromisoformat(booking["start"]).astimezone(JST).date() == turn.now.date()
    allowed = office.cancellation.same_day if same_day else office.cancellation.channels
    return {channel.value for channel in allowed} != {"phone"}, same_day


def by_phone(turn: Turn, booking: dict[str, Any], *, change: bool, same_day: bool) -> None:
    """Not in the chat: the office's phone number (a `tel:` link) and a staff notice; where the office
    publishes no number (Toyooka, Sakata), a handoff to staff, so nobody is left without a way to act."""
    office = turn.office_profile(booking["office"])  # the user's words
    name = turn.dialog.offices[booking["office"]].short_name  # staff's
    line = booking_line(turn, booking)
    fields = {"ref": booking_ref(booking), "booking_id": booking["id"], "slot": booking["slot"]}
    what = "日時変更" if change else "キャンセル"
    links = phone_links(office)
    if not links:
        turn.say(Text((T.CHANGE_NO_PHONE if change else T.CANCEL_NO_PHONE).format(office=office.short_name) + "\n" + line))
        if turn.state != "idle":
            turn.quit_silently()
        turn.conv.office = booking["office"]  # the handoff names this office and its hours
        reason = "change_no_phone" if change else "cancel_no_phone"
        return turn.handoff(reason, f"{what}の希望（案内できる電話番号なし）: {name} {booking_when(booking)}", **fields)
    if change:
        message, kind = (T.CHANGE_SAME_DAY if same_day else T.CHANGE_PHONE_ONLY), "change_by_phone"
    else:
        message = T.CANCEL_SAME_DAY if same_day else T.CANCEL_PHONE_ONLY
        kind = "same_day_cancel" if same_day else "cancel_by_phone"
    turn.outcome.notices.append(
        StaffNotice(kind=kind, office=booking["office"], summary=f"{what}希望（電話受付）: {name} {booking_when(booking)}", fields=fields)
    )
    turn.say(Text(message.format(office=office.short_name) + "\n" + line, links=links))
    turn.ask_menu_state()


def ask_cancel(turn: Turn, ref: str) -> None:
    """キャンセル of one booking: in the chat where the office allows it now, else its phone number."""
    booking = own_upcoming(turn, ref)
    if booking is None:
        return
    allowed, same_day = in_chat(turn, booking)
    if not allowed:
        return by_phone(turn, booking, change=False, same_day=same_day)
    if turn.state != "idle":
        turn.quit_silently()
    turn.conv.answers = {"cancel_ref": ref}
    turn.to_confirming_cancel()


def _ask_confirm_cancel(turn: Turn) -> None:
    booking = turn.bookings.get(turn.conv.answers.get("cancel_ref", ""))
    line = booking_line(turn, booking) if booking else ""
    options = (turn.option(T.CANCEL_YES, "y", "yes"), turn.option(T.CANCEL_NO, "y", "no"))
    turn.say(Ask(T.CANCEL_CONFIRM.format(booking=line), options))


def _choose_confirm_cancel(turn: Turn, action: str, value: str) -> None:
    if action != "y":
        return turn.not_understood()
    _cancel(turn, value == "yes")


def _keep(turn: Turn) -> None:
    """戻る while confirming: the booking stays."""
    turn.say(Text(T.CANCEL_KEPT))
    turn.ask_menu_state()


def _cancel(turn: Turn, confirmed: bool) -> None:
    ref = turn.conv.answers.get("cancel_ref", "")
    turn.conv.answers = {}
    if not confirmed:
        turn.say(Text(T.CANCEL_KEPT))
        turn.to_idle()
        return turn.ask_menu()
    booking = turn.bookings.get(ref)
    # Cancelled by the user while this confirmation is still open: an earlier run of this very turn did
    # it (its save conflicted, or the webhook answered 503 and LINE redelivered). Cancelling again
    # changes nothing and waits for the replicas; the user and staff are told as the first run would.
    earlier = (booking is not None and booking.get("status") == "cancelled" and booking.get("cancelled_by") == "user"
               and not booking.get("moved_to"))
    if booking is None or (booking.get("status") != "booked" and not earlier):
        turn.say(Text(T.CANCEL_ALREADY))
        turn.to_idle()
        return turn.ask_menu()
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    if start.date() == turn.now.date() and not earlier:
        # The day turned while the user was deciding: the same-day rule applies.
        turn.to_idle()
        return ask_cancel(turn, ref)
    cancelled = turn.bookings.cancel(ref, at=turn.now.isoformat(), by="user")
    turn.to_idle()
    if cancelled is None:
        turn.say(Text(T.CANCEL_NOT_FOUND))
        return turn.ask_menu()
    booking_notice(turn, "cancellation", booking, "キャンセル")
    turn.say(Text(T.CANCELLED.format(booking=booking_line(turn, booking))))
    turn.ask_menu()


STAGE = Stage(
    "my_bookings",
    states={"confirming_cancel": Handlers(ask=_ask_confirm_cancel, choose=_choose_confirm_cancel, back=_keep)},
    commands={
        "bookings": lambda turn: list_bookings(turn, cancelling=False),
        "cancel": lambda turn: list_bookings(turn, cancelling=True),
    },
    actions={CANCEL_ACTION: Action(ask_cancel)},
)

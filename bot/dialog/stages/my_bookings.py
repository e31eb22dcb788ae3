"""Stage: the user's bookings: the list (予約の確認), cancelling one, and notices to staff about one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot import calendar
from bot.clock import JST
from bot.dialog import texts as T
from bot.dialog.buttons import ANY, command_option, phone_links, postback
from bot.dialog.conversation import booking_ref, booking_when, parse_when
from bot.dialog.core import Action, Handlers, Stage, Turn
from bot.dialog.replies import Ask, Option, StaffNotice, Text

CANCEL_ACTION = "x"  # any-time postback action (`*|x|<booking ref>`): cancel that booking


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
    office = turn.dialog.offices.get(booking["office"])
    name = office.short_name if office else booking["office"]
    return f"・{name} {booking_when(booking)}（予約番号 {booking['id']}・{booking_state(booking)}）"


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


def list_bookings(turn: Turn, cancelling: bool, intro: bool = True) -> None:
    held = upcoming(turn)
    midway = turn.state != "idle"
    if not held:
        turn.say(Text(T.NO_BOOKINGS))
        return turn.reprompt()
    lines = "\n".join(booking_line(turn, b) for b in held)
    options = []
    for booking in held[:10]:
        start = datetime.fromisoformat(booking["start"]).astimezone(JST)
        label = f"キャンセル {start.month}/{start.day} {start:%H:%M}"
        options.append(Option(label, postback(ANY, CANCEL_ACTION, booking_ref(booking))))
    options.append(command_option("resume") if midway else command_option("book"))
    turn.say(Text((T.YOUR_BOOKINGS + "\n" if intro else "") + lines))
    turn.say(Ask("キャンセルする場合は、下のボタンを押してください。" if cancelling else T.MENU, tuple(options)))


def ask_cancel(turn: Turn, ref: str) -> None:
    """キャンセル of one booking: in the chat where the office allows it now, else its phone number."""
    booking = turn.bookings.get(ref)
    if booking is None or booking.get("user") != turn.conv.user:
        turn.say(Text(T.CANCEL_NOT_FOUND))
        return turn.ask_menu_state()
    if booking.get("status") != "booked":
        turn.say(Text(T.CANCEL_ALREADY))
        return turn.ask_menu_state()
    office = turn.dialog.offices.get(booking["office"])
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    if start <= turn.now:
        turn.say(Text(T.CANCEL_PAST))
        return turn.ask_menu_state()
    line = booking_line(turn, booking)
    channels = {c.value for c in office.cancellation.channels} if office else {"phone"}
    same_day_channels = {c.value for c in office.cancellation.same_day} if office else {"phone"}
    same_day = start.date() == turn.now.date()
    allowed = same_day_channels if same_day else channels
    if allowed == {"phone"}:
        name = office.short_name if office else "ハローワーク"
        message = T.CANCEL_SAME_DAY if same_day else T.CANCEL_PHONE_ONLY
        links = phone_links(office)
        text = message.format(office=name) + "\n" + line
        if not links:
            text += "\n" + T.NO_PHONE.format(office=name)
        turn.outcome.notices.append(
            StaffNotice(
                kind="same_day_cancel" if same_day else "cancel_by_phone",
                office=booking["office"],
                summary=f"キャンセル希望（電話受付）: {name} {calendar.format_day(start.date())} {start:%H:%M}",
                fields={"ref": ref, "booking_id": booking["id"], "slot": booking["slot"]},
            )
        )
        turn.say(Text(text, links=links))
        return turn.ask_menu_state()
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
    if booking is None or booking.get("status") != "booked":
        turn.say(Text(T.CANCEL_ALREADY))
        turn.to_idle()
        return turn.ask_menu()
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    if start.date() == turn.now.date():
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

"""Stage: the menu (idle), the greeting and the office choice, and an office's limits before it begins."""

from __future__ import annotations

from bot.dialog import texts as T
from bot.dialog.buttons import command_option, email_text, phone_links
from bot.dialog.core import Handlers, Stage, Turn
from bot.dialog.replies import Ask, Text
from bot.dialog.stages.my_bookings import booking_line, list_bookings, upcoming


def say_greeting(turn: Turn) -> None:
    """Hello, and what the bot is for (the one office's name where it serves one)."""
    offices = turn.dialog.offices
    if len(offices) == 1:
        office = next(iter(offices))
        turn.say(Text(T.GREETING_OFFICE.format(office=turn.office_profile(office).short_name)))
    else:
        turn.say(Text(T.GREETING))


def start_booking(turn: Turn, greet: bool) -> None:
    offices = turn.dialog.offices
    if greet:
        say_greeting(turn)
        if not turn.conv.profile_asked:
            # The channel asks LINE for the user's profile language before it sends this answer.
            turn.conv.profile_asked = True
            turn.outcome.ask_profile = True
    if len(offices) == 1:
        only = next(iter(offices))
        if turn.conv.office != only:
            turn.switch_office(only)
            turn.conv.state = turn.state = "choosing_office"  # silently: the office's machine asks next
            return
        return begin_office(turn)
    turn.to_choosing_office()


def begin_office(turn: Turn) -> None:
    """An office was chosen: refuse when the user already holds its booking limit, else begin."""
    if _no_show_limit_reached(turn):
        return
    profile = turn.profile
    held = upcoming(turn, profile.id)
    if len(held) >= profile.booking.max_upcoming:
        listing = "\n".join(booking_line(turn, b) for b in held)
        office = profile.short_name
        turn.conv.reset()
        turn.to_idle()
        turn.say(Text(T.ALREADY_BOOKED.format(office=office, bookings=listing)))
        return list_bookings(turn, cancelling=True, intro=False)
    turn.conv.answers = {}
    turn.conv.history = []
    turn.begin()


def _no_show_limit_reached(turn: Turn) -> bool:
    """Past the office's no-show limit, booking is by phone (or staff): say so and stop here."""
    profile = turn.profile
    count = sum(
        1
        for booking in turn.bookings.for_user(turn.conv.user)
        if booking.get("office") == profile.id and booking.get("status") == "no_show"
    )
    if count < profile.staff.no_show_limit:
        return False
    turn.conv.reset()
    turn.conv.office = profile.id
    turn.to_idle()
    text = T.NO_SHOW_LIMIT.format(office=profile.short_name, count=count)
    links = phone_links(profile)
    if not links:
        # No number to call: staff take it from here (never a dead end).
        turn.say(Text(text + email_text(profile, apply=True)))
        turn.handoff("no_show_limit", f"無断キャンセルが{count}回あるため、自動予約を止めました。予約の受付をお願いします。")
        return True
    call = T.NO_SHOW_CALL.format(office=profile.short_name) + email_text(profile, apply=True)
    turn.say(Text(text + "\n" + call, links=links))
    turn.ask_menu()
    return True


def _ask_office(turn: Turn) -> None:
    options = [turn.option(turn.office_profile(oid).button_label, "o", oid) for oid in turn.dialog.offices]
    options.append(command_option("bookings"))
    turn.say(Ask(T.CHOOSE_OFFICE, tuple(options)))


def _choose_office(turn: Turn, action: str, value: str) -> None:
    if action != "o" or value not in turn.dialog.offices:
        return turn.not_understood()
    turn.conv.answers = {}
    if turn.conv.office != value:  # the lobby's machine, or another office's
        return turn.switch_office(value)
    begin_office(turn)


def _idle_typed(turn: Turn, text: str) -> None:
    """Typed text at the menu: one of its buttons, else a booking starts."""
    if not turn.tap_typed(text):
        start_booking(turn, greet=True)


def _restart(turn: Turn) -> None:
    turn.conv.reset()
    turn.conv.updated = turn.now.isoformat()
    start_booking(turn, greet=False)


def _book(turn: Turn) -> None:
    if turn.state != "idle":
        return turn.reprompt()
    start_booking(turn, greet=False)


def _menu(turn: Turn) -> None:
    if turn.state != "idle":
        return turn.reprompt()
    start_booking(turn, greet=True)


STAGE = Stage(
    "menu",
    states={
        "idle": Handlers(typed=_idle_typed),  # entering idle asks nothing: what led there says what happened
        "choosing_office": Handlers(ask=_ask_office, choose=_choose_office),
    },
    commands={"restart": _restart, "book": _book, "menu": _menu},
    hooks={"start": start_booking, "office_chosen": begin_office, "greet": say_greeting},
)

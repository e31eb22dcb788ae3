"""Stage: buttons of the pushes sent after a booking: re-consent to new terms, the reminder opt-in.

Both are postback actions valid at any step, even while the user waits for staff (`*|<action>|<value>`);
after one the user is back where they were.
"""

from __future__ import annotations

from typing import Any

from bot.dialog import texts as T
from bot.dialog.conversation import parse_when
from bot.dialog.core import Action, Stage, Turn
from bot.dialog.replies import Text
from bot.dialog.stages.handoff import paused_reminder
from bot.dialog.stages.my_bookings import booking_notice

RECONSENT_ACTION = "rc"  # value: "<terms version>|<booking ref>"
REMINDER_ACTION = "rm"  # value: the booking ref (HWBOT_REMINDERS=opt_in)


def _own_upcoming(turn: Turn, ref: str) -> dict[str, Any] | None:
    """The user's own booked, not yet started booking `ref` (None for a stale or forged button)."""
    booking = turn.bookings.get(ref) if ref else None
    if booking is None or booking.get("user") != turn.conv.user or booking.get("status") != "booked":
        return None
    start = parse_when(booking.get("start"))
    return booking if start is not None and start > turn.now else None


def aside_done(turn: Turn) -> None:
    """After a button from a push: back to what the user was doing."""
    if turn.conv.paused:
        return turn.say(paused_reminder(turn))
    turn.reprompt()


def reconsent(turn: Turn, value: str) -> None:
    """「新しい規約に同意する」 from the terms-change push: record the consent on the booking."""
    version, _, ref = value.partition("|")
    booking = _own_upcoming(turn, ref)
    office = turn.dialog.offices.get(booking["office"]) if booking else None
    if booking is None or office is None or version != office.terms.version.isoformat():
        turn.say(Text(T.RECONSENT_STALE))
        return aside_done(turn)
    if (booking.get("consent") or {}).get("version") == version:
        turn.say(Text(T.RECONSENT_ALREADY))
        return aside_done(turn)
    asked = booking.get("reconsent") or {}
    changes: dict[str, Any] = {
        "consent": {"version": version, "at": turn.now.isoformat(), "terms_lang": booking.get("lang") or turn.conv.lang},
        "reconsent": {**asked, "version": version, "given_at": turn.now.isoformat()},
    }
    if booking.get("office_confirmation") == "awaiting_consent":
        changes["office_confirmation"] = asked.get("confirmation", "pending")
    turn.bookings.update(ref, changes)
    booking_notice(turn, "reconsent_given", booking, "新しい利用規約に同意", version=version)
    turn.say(Text(T.RECONSENT_THANKS))
    aside_done(turn)


def opt_in_reminder(turn: Turn, ref: str) -> None:
    """「前日にお知らせを受け取る」 (HWBOT_REMINDERS=opt_in): mark the booking for a reminder."""
    booking = _own_upcoming(turn, ref)
    office = turn.dialog.offices.get(booking["office"]) if booking else None
    if booking is None or office is None:
        turn.say(Text(T.REMINDER_STALE))
        return aside_done(turn)
    turn.bookings.update(ref, {"reminder": "yes"})
    turn.say(Text(T.REMINDER_SET.format(time=f"{office.staff.reminder_time:%H:%M}")))
    aside_done(turn)


STAGE = Stage(
    "consent",
    actions={
        RECONSENT_ACTION: Action(reconsent, even_paused=True),
        REMINDER_ACTION: Action(opt_in_reminder, even_paused=True),
    },
)

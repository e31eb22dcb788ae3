"""Stage: handing the user to staff (担当者と話したい, stuck, other times), and waiting for them.

While the user waits, what they write (text; a sticker or an image as its type) goes into the
outcome's `thread` for the service to keep with the handoff thread; the user is told when staff
will read it. While staff answer in LINE Official Account Manager (`conv.quiet`), the bot says
nothing at all until staff or the user hand the chat back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot import calendar
from bot.clock import JST
from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.buttons import Parsed, command_option, email_text, phone_links
from bot.dialog.core import Stage, Turn
from bot.dialog.replies import Ask, Text
from bot.profiles import OfficeProfile

# Commands that end the wait (the user goes back to the bot) and then run.
RESUMING = ("resume_bot", "restart", "quit", "bookings", "cancel", "erase", "reschedule")


def _office(turn: Turn) -> OfficeProfile | None:
    """The conversation's office as the user reads it (None before one is chosen)."""
    return turn.office_profile(turn.conv.office) if turn.conv.office else None


def handoff(turn: Turn, reason: str, summary: str, **fields: str) -> None:
    """Pause the bot for this user, tell them when staff will answer, and notify staff."""
    office = _office(turn)
    turn.notify(
        "handoff",
        summary,
        reason=reason,
        step=turn.state,
        office_name=turn.dialog.offices[turn.conv.office].short_name if turn.conv.office else "",
        **fields,
    )
    turn.conv.paused = turn.now.isoformat()
    links = phone_links(office)
    text = T.HANDOFF.format(when=staff_answer_time(turn, office)) + ("\n" + T.HANDOFF_CALL if links else "")
    text += email_text(office)
    turn.say(Text(text, links=links))
    turn.say(Ask(T.PAUSED_HINT, (command_option("resume_bot"),)))


def staff_answer_time(turn: Turn, office: OfficeProfile | None) -> str:
    """When staff will answer: within today's opening hours, or from the next business day."""
    if office is None:
        return T.WHEN_OFFICE_HOURS
    now = turn.now
    today = now.date()
    opens = datetime.combine(today, office.hours.open, tzinfo=JST)
    closes = datetime.combine(today, office.hours.close, tzinfo=JST)
    if calendar.is_open(office, today) and now < closes:
        if now >= opens:
            return T.WHEN_TODAY.format(close=formats.clock(office.hours.close))
        return T.WHEN_DAY.format(day=T.TODAY, open=formats.clock(office.hours.open))
    day = today + timedelta(days=1)
    while not calendar.is_open(office, day):
        day += timedelta(days=1)
    return T.WHEN_DAY.format(day=formats.day(day), open=formats.clock(office.hours.open))


def paused_reminder(turn: Turn) -> Ask:
    """What a paused user is told (the question they see instead of the booking's)."""
    return Ask(T.PAUSED.format(when=staff_answer_time(turn, _office(turn))), (command_option("resume_bot"),))


def waiting_for_staff(turn: Turn, parsed: Parsed) -> None:
    """While paused, the bot only reminds the user that staff will answer (or resumes on request)."""
    if parsed.kind == "command" and parsed.value in RESUMING:
        turn.conv.paused = None
        turn.conv.quiet = False
        turn.notify("handoff_closed", "利用者が自動応答に戻りました。", reason="user_resumed")
        if parsed.value == "resume_bot":
            turn.say(Text(T.RESUMED))
            return turn.reprompt()
        return turn.command(parsed.value)
    office = _office(turn)
    if parsed.kind in ("text", "media"):
        turn.outcome.thread.append((parsed.kind, parsed.text))
        if turn.conv.quiet:
            return  # staff answer in LINE Official Account Manager: no reply at all
        turn.say(Text(T.THREAD_KEPT.format(when=staff_answer_time(turn, office)), links=phone_links(office)))
        turn.say(Ask(T.PAUSED_HINT, (command_option("resume_bot"),)))
        return
    if turn.conv.quiet:
        return
    turn.say(Text(T.PAUSED.format(when=staff_answer_time(turn, office)), links=phone_links(office)))
    turn.say(Ask(T.PAUSED_HINT, (command_option("resume_bot"),)))


def _asked(turn: Turn) -> None:
    """担当者と話したい: from the ineligible page staff know the user was found ineligible."""
    if turn.state == "ineligible":
        return handoff(turn, "ineligible", "利用条件に当てはまらない利用者が担当者との会話を希望しています。")
    handoff(turn, "user_request", "利用者が担当者との会話を希望しています。")


STAGE = Stage(
    "handoff",
    commands={"handoff": _asked},
    hooks={"hand_off": handoff, "paused": waiting_for_staff},
)

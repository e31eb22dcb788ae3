"""How dates, times and joined sentences are written for the user, in the words of `bot.dialog.texts`.

Every date and time a user reads is Japan time (Asia/Tokyo). Staff read Japanese dates, built by
`bot.calendar.format_day` and `bot.dialog.conversation.booking_when`, never by this module.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from bot.clock import JST
from bot.dialog import texts as T
from bot.profiles.models import WEEKDAYS


def sentences(*parts: str) -> str:
    """Sentences as one message."""
    return "".join(part for part in parts if part)


def day(value: date) -> str:
    """`12月1日(火)`."""
    return T.DAY_FORMAT.format(month=value.month, day=value.day, weekday=T.WEEKDAY_NAMES[WEEKDAYS[value.weekday()]])


def long_date(value: date) -> str:
    """`2026年1月1日`."""
    return T.DATE_FORMAT.format(year=value.year, month=value.month, day=value.day)


def clock(value: time | datetime) -> str:
    """`10:30` (a datetime is taken in Japan time)."""
    if isinstance(value, datetime):
        value = value.astimezone(JST).time()
    return f"{value:%H:%M}"


def time_range(start: datetime, end: datetime) -> str:
    """`10:00〜10:30`."""
    return T.TIME_RANGE.format(start=clock(start), end=clock(end))


def slot(start: datetime, end: datetime) -> str:
    """`12月1日(火) 10:00〜10:30`."""
    start, end = start.astimezone(JST), end.astimezone(JST)
    return T.DAY_TIME.format(day=day(start.date()), time=time_range(start, end))


def day_time(at: datetime) -> str:
    """`12月1日(火) 17:15`: an instant, e.g. a deadline."""
    at = at.astimezone(JST)
    return T.DAY_TIME.format(day=day(at.date()), time=clock(at))


def when(booking: dict[str, Any]) -> str:
    """A stored booking's date and time, `11月25日(水) 10:00〜10:30`."""
    return slot(datetime.fromisoformat(booking["start"]), datetime.fromisoformat(booking["end"]))


def session_length(minutes: int) -> str:
    """`1回30分`."""
    return T.SESSION_LENGTH.format(minutes=minutes)


def button_day(at: datetime) -> str:
    """`11/25 10:00`, short enough for a button beside a word."""
    at = at.astimezone(JST)
    return f"{at.month}/{at.day} {at:%H:%M}"


def closure_reason(kind: str, words: str, on: date) -> str:
    """Why a day is closed (`bot.calendar.closure`'s kind and Japanese words): a weekend, the year end, a
    holiday (its name) or the office's own closure (the profile's words)."""
    if kind == "holiday":
        return T.CLOSURE_REASONS["holiday"].format(name=words)
    return T.CLOSURE_REASONS.get(kind, words)

"""How dates, times and joined sentences are written for the user, in the language of the turn.

Every date and time a user reads is Japan time (Asia/Tokyo). English dates and times come from
Babel's CLDR data (`Mon, Dec 7`, `10:30 AM`); Japanese and plain Japanese are written by the patterns
of `bot.dialog.texts` (`12月7日(月)`, `12がつ7にち(げつようび)`, `10:30`). Staff read Japanese dates,
built by `bot.calendar.format_day` and `bot.dialog.conversation.booking_when`, never by this module.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from babel.dates import format_date, format_time

from bot import calendar, i18n
from bot.clock import JST
from bot.dialog import texts as T
from bot.profiles.models import WEEKDAYS, OfficeProfile

# CLDR patterns of the languages whose dates Babel writes (the others use texts.DAY_FORMAT and co.).
BABEL = {i18n.EN: {"locale": "en", "day": "EEE, MMM d", "date": "MMMM d, y", "time": "h:mm a"}}


def sentences(*parts: str) -> str:
    """Sentences as one message: English puts a space between them, Japanese does not."""
    gap = " " if i18n.current() == i18n.EN else ""
    return gap.join(part for part in parts if part)


def day(value: date) -> str:
    """`12月1日(火)`, `Tue, Dec 1`, `12がつ1にち(かようび)`."""
    babel = BABEL.get(i18n.current())
    if babel:
        return format_date(value, babel["day"], locale=babel["locale"])
    return T.DAY_FORMAT.format(month=value.month, day=value.day, weekday=T.WEEKDAY_NAMES[WEEKDAYS[value.weekday()]])


def long_date(value: date) -> str:
    """`2026年1月1日`, `January 1, 2026`."""
    babel = BABEL.get(i18n.current())
    if babel:
        return format_date(value, babel["date"], locale=babel["locale"])
    return T.DATE_FORMAT.format(year=value.year, month=value.month, day=value.day)


def clock(value: time | datetime) -> str:
    """`10:30`, `10:30 AM` (a datetime is taken in Japan time)."""
    if isinstance(value, datetime):
        value = value.astimezone(JST).time()
    babel = BABEL.get(i18n.current())
    if babel:
        return format_time(value, babel["time"], locale=babel["locale"])
    return f"{value:%H:%M}"


def time_range(start: datetime, end: datetime) -> str:
    """`10:00〜10:30`, `10:00 AM–10:30 AM`: a slot's button."""
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


def phone(profile: OfficeProfile) -> str | None:
    """The office's phone number as the user reads it, with its note (Izumo's 41#) in the language's
    brackets: `0853-21-8609（41#）`, `0853-21-8609 (41#)`; None when the office publishes no number."""
    if not profile.contact.phone:
        return None
    if not profile.contact.phone_note:
        return profile.contact.phone
    return T.PHONE_NOTE.format(phone=profile.contact.phone, note=profile.contact.phone_note)


def session_length(minutes: int) -> str:
    """`1回30分`, `30 min`."""
    return T.SESSION_LENGTH.format(minutes=minutes)


def button_day(at: datetime) -> str:
    """`11/25 10:00` in every language: short enough for a button beside a word (`キャンセル 11/25 10:00`)."""
    at = at.astimezone(JST)
    return f"{at.month}/{at.day} {at:%H:%M}"


def closure_reason(kind: str, words: str, on: date) -> str:
    """Why a day is closed (`bot.calendar.closure`'s kind and Japanese words): a weekend, the year end, a
    holiday (its own name in English; the Japanese one otherwise) or the office's closure (its words)."""
    if kind == "holiday":
        name = calendar.holiday_name(on, "en_US") if i18n.current() == i18n.EN else None
        return T.CLOSURE_REASONS["holiday"].format(name=name or words)
    return T.CLOSURE_REASONS.get(kind, words)

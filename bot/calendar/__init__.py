"""Business days, holidays, deadlines, the booking window and the slot grid.

Pure functions of (profile, now, booked counts); no I/O. Every datetime returned is aware and in
Asia/Tokyo; `now` may arrive in any offset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays
from dateutil.relativedelta import relativedelta

from bot.clock import JST
from bot.profiles.models import WEEKDAYS, DeadlineKind, OfficeProfile

WEEKDAY_JA = "月火水木金土日"


@lru_cache(maxsize=64)
def _japan_holidays(year: int) -> holidays.HolidayBase:
    # The holidays package includes 振替休日 (substitute) and 国民の休日 (citizens' holidays).
    return holidays.country_holidays("JP", years=year, language="ja")


# The Japanese words of each kind of closure (`closure`); the dialog says them in the user's language.
CLOSURE_WORDS = {"saturday": "土曜日", "sunday": "日曜日", "year_end": "年末年始"}


@lru_cache(maxsize=16)
def _holidays_in(year: int, language: str) -> holidays.HolidayBase:
    return holidays.country_holidays("JP", years=year, language=language)


def holiday_name(day: date, language: str = "ja") -> str | None:
    """The national holiday on `day` in `language` (the holidays package's: `ja`, `en_US`), or None."""
    return _holidays_in(day.year, language).get(day)


def closure(profile: OfficeProfile, day: date) -> tuple[str, str] | None:
    """Why the office is closed on `day`, or None when open: (kind, Japanese words), kind one of
    `saturday`, `sunday`, `holiday` (words: the holiday's name), `year_end` (12/29–1/3) and `office`
    (words: the profile's `schedule.closed[].reason`)."""
    if day.weekday() == 5:
        return "saturday", CLOSURE_WORDS["saturday"]
    if day.weekday() == 6:
        return "sunday", CLOSURE_WORDS["sunday"]
    holiday = _japan_holidays(day.year).get(day)
    if holiday:
        return "holiday", holiday
    if (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3):
        return "year_end", CLOSURE_WORDS["year_end"]
    for closed in profile.schedule.closed:
        if closed.start <= day <= (closed.end or closed.start):
            return "office", closed.reason
    return None


def closure_reason(profile: OfficeProfile, day: date) -> str | None:
    """Why the office is closed on `day` in Japanese (土曜日, a holiday's name, 年末年始, …), or None when open."""
    found = closure(profile, day)
    return found[1] if found else None


def is_open(profile: OfficeProfile, day: date) -> bool:
    """True when the office is open on `day` (its business days)."""
    return closure_reason(profile, day) is None


def business_days_before(profile: OfficeProfile, day: date, count: int) -> date:
    """The `count`-th business day before `day` (count=0: `day` itself)."""
    current = day
    remaining = count
    while remaining > 0:
        current -= timedelta(days=1)
        if is_open(profile, current):
            remaining -= 1
    return current


def deadline(profile: OfficeProfile, day: date) -> datetime:
    """The last instant a consultation on `day` can be booked: closing time on the Nth day before."""
    rule = profile.booking.deadline
    if rule.kind is DeadlineKind.business_days:
        last_day = business_days_before(profile, day, rule.days)
    else:
        last_day = day - timedelta(days=rule.days)
    return datetime.combine(last_day, profile.hours.close, tzinfo=JST)


def window_end(profile: OfficeProfile, now: datetime) -> date:
    """The last bookable day: the same day N calendar months on (clamped to month end), inclusive."""
    return _last_day(profile, now.astimezone(JST).date())


def _last_day(profile: OfficeProfile, today: date) -> date:
    return today + relativedelta(months=profile.booking.window_months)


@dataclass(frozen=True)
class Slot:
    """One consultation slot of an office."""

    office: str
    start: datetime
    end: datetime
    capacity: int
    remaining: int

    @property
    def key(self) -> str:
        """Stable id of the slot: `YYYY-MM-DDTHH:MM` in JST."""
        return slot_key(self.start)

    def to_json(self) -> dict[str, object]:
        return {
            "office": self.office,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "remaining": self.remaining,
        }

    def label(self) -> str:
        """How the slot is shown to a person, e.g. `12月1日(火) 10:00〜10:30`."""
        return f"{format_day(self.start.date())} {self.start:%H:%M}〜{self.end:%H:%M}"


def slot_key(start: datetime) -> str:
    return start.astimezone(JST).strftime("%Y-%m-%dT%H:%M")


def format_day(day: date) -> str:
    """`12月1日(火)`."""
    return f"{day.month}月{day.day}日({WEEKDAY_JA[day.weekday()]})"


def day_grid(profile: OfficeProfile, day: date) -> list[tuple[datetime, datetime]]:
    """The (start, end) pairs of the office's slots on `day`, ignoring closures."""
    starts: list[time] = profile.schedule.slots.get(WEEKDAYS[day.weekday()], [])
    length = timedelta(minutes=profile.schedule.minutes)
    result = []
    for start_time in starts:
        start = datetime.combine(day, start_time, tzinfo=JST)
        result.append((start, start + length))
    return result


def iter_days(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)


@dataclass(frozen=True)
class PlanDay:
    """One open day of an office's booking window, with what does not depend on the time of day."""

    day: date
    deadline: datetime
    grid: tuple[tuple[datetime, datetime, str], ...]  # (start, end, slot key)


# (id(profile), today) -> (profile, plan). The profile is held so its id cannot be reused while cached.
_PLANS: dict[tuple[int, date], tuple[OfficeProfile, tuple[PlanDay, ...]]] = {}
_PLANS_MAX = 256


def window_plan(profile: OfficeProfile, today: date) -> tuple[PlanDay, ...]:
    """The open days with slots from `today` to the end of the booking window, earliest first.

    The same for every turn of a day, so it is computed once per office and day (the slot picker
    asked for it at each turn: ~90 days of holidays, deadlines and slot times).
    """
    cached = _PLANS.get((id(profile), today))
    if cached is not None and cached[0] is profile:
        return cached[1]
    last = _last_day(profile, today)
    plan = tuple(
        PlanDay(day, deadline(profile, day), tuple((start, end, slot_key(start)) for start, end in grid))
        for day in iter_days(today, last)
        if is_open(profile, day) and (grid := day_grid(profile, day))
    )
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()  # profiles are few: only a long-running process crossing many days gets here
    _PLANS[(id(profile), today)] = (profile, plan)
    return plan


def _plan_days(
    profile: OfficeProfile, now: datetime, days: int | None, first: date | None = None, last: date | None = None
) -> tuple[PlanDay, ...]:
    today = now.astimezone(JST).date()
    plan = window_plan(profile, today)
    if days is not None:
        end = today + timedelta(days=days - 1)  # `days` calendar days starting today: 1 is today only
        last = end if last is None else min(last, end)
    if first is None and last is None:
        return plan
    return tuple(
        day for day in plan if (first is None or day.day >= first) and (last is None or day.day <= last)
    )


def candidate_days(profile: OfficeProfile, now: datetime, days: int | None = None) -> list[date]:
    """Open days from today (JST) to the end of the window (or `days` days on, if shorter)."""
    return [plan_day.day for plan_day in _plan_days(profile, now, days)]


def days_before_deadline(profile: OfficeProfile, now: datetime) -> list[date]:
    """The candidate days whose booking deadline has not passed at `now` (the only ones with bookable slots)."""
    now = now.astimezone(JST)
    return [plan_day.day for plan_day in _plan_days(profile, now, None) if now <= plan_day.deadline]


def grid_keys(
    profile: OfficeProfile, now: datetime, days: int | None = None, *, first: date | None = None,
    last: date | None = None,
) -> list[str]:
    """Keys of every slot on the candidate days (from `first` to `last` when given): read their
    booked counts in one go, then filter with `bookable_slots`."""
    return [key for plan_day in _plan_days(profile, now, days, first, last) for _, _, key in plan_day.grid]


def bookable_slots(
    profile: OfficeProfile,
    now: datetime,
    booked: Mapping[str, int] | None = None,
    *,
    days: int | None = None,
    first: date | None = None,
    last: date | None = None,
) -> list[Slot]:
    """Every slot bookable at `now`, earliest first (only from day `first` to day `last` when given).

    A slot is bookable when its day is open, its deadline has not passed at `now`, it lies inside the
    booking window (optionally shortened to `days` days), and it has remaining capacity given
    `booked` (slot key -> bookings held).
    """
    booked = booked or {}
    now = now.astimezone(JST)
    capacity = profile.schedule.capacity
    result = []
    for plan_day in _plan_days(profile, now, days, first, last):
        if now > plan_day.deadline:
            continue
        for start, end, key in plan_day.grid:
            if start <= now:
                continue
            remaining = capacity - booked.get(key, 0)
            if remaining > 0:
                result.append(Slot(profile.id, start, end, capacity, remaining))
    return result


def bookable_slot(profile: OfficeProfile, now: datetime, key: str, booked: int) -> Slot | None:
    """The slot `key` if it is bookable at `now` with `booked` bookings held (the rules of `bookable_slots`)."""
    pair = slot_at(profile, key)
    if pair is None or slot_key(pair[0]) != key:  # not in the grid, or not spelt as the grid spells it
        return None
    start, end = pair
    now = now.astimezone(JST)
    plan_day = next((d for d in window_plan(profile, now.date()) if d.day == start.date()), None)
    if plan_day is None or now > plan_day.deadline or start <= now:
        return None
    capacity = profile.schedule.capacity
    remaining = capacity - booked
    return Slot(profile.id, start, end, capacity, remaining) if remaining > 0 else None


def slot_at(profile: OfficeProfile, key: str) -> tuple[datetime, datetime] | None:
    """The (start, end) of the slot with `key` if the office's grid has one then (ignoring rules)."""
    try:
        start = datetime.strptime(key, "%Y-%m-%dT%H:%M").replace(tzinfo=JST)
    except ValueError:
        return None
    for pair in day_grid(profile, start.date()):
        if pair[0] == start:
            return pair
    return None

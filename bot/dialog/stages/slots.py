"""Stage: choosing a slot: the picker (five days a page), typed dates, and why a day cannot be booked."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta

from bot import calendar
from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.buttons import command_option, email_text, phone_links
from bot.dialog.core import Handlers, Stage, Step, Turn
from bot.dialog.replies import Ask, Option, SlotDay, SlotPicker, Text
from bot.profiles import OfficeProfile

DAYS_PER_PAGE = 5


def live_slot(turn: Turn, key: str) -> calendar.Slot | None:
    """The slot `key` if it is bookable now; reads that slot's count only (not the whole window)."""
    profile = turn.profile
    if calendar.slot_at(profile, key) is None:
        return None  # not in the office's grid (a forged or garbled button)
    booked = turn.bookings.booked_counts(profile.id, [key])
    return calendar.bookable_slot(profile, turn.now, key, booked.get(key, 0))


def slot_label(turn: Turn, key: str) -> str:
    pair = calendar.slot_at(turn.profile, key)
    if pair is None:
        return key
    return formats.slot(*pair)


def _live_slots(turn: Turn) -> list[calendar.Slot]:
    """Every bookable slot of the window (a typed date may fall anywhere in it)."""
    profile = turn.profile
    booked = turn.bookings.booked_counts(profile.id, calendar.grid_keys(profile, turn.now))
    return calendar.bookable_slots(profile, turn.now, booked)


def _page_slots(turn: Turn, start: date | None) -> list[calendar.Slot]:
    """The bookable slots of every day before `start` and of the next DAYS_PER_PAGE + 1 days that
    have one (or to the end of the window): what a page of the picker and its buttons need.

    Counts are read a page of days at a time, so the first page reads about 6 days' slots rather
    than the whole window's (Noto: 24 of 88).
    """
    profile = turn.profile
    open_days = calendar.days_before_deadline(profile, turn.now)
    begin = next((i for i, day in enumerate(open_days) if start is not None and day >= start), 0)
    slots: list[calendar.Slot] = []
    low, high = 0, begin + DAYS_PER_PAGE + 1
    while low < len(open_days):
        first, last = open_days[low], open_days[min(high, len(open_days)) - 1]
        keys = calendar.grid_keys(profile, turn.now, first=first, last=last)
        booked = turn.bookings.booked_counts(profile.id, keys)
        slots += calendar.bookable_slots(profile, turn.now, booked, first=first, last=last)
        shown_from = start or open_days[0]
        if len({slot.start.date() for slot in slots if slot.start.date() >= shown_from}) > DAYS_PER_PAGE:
            break
        low, high = high, high + DAYS_PER_PAGE + 1
    return slots


def _ask_slot(turn: Turn) -> None:
    profile = turn.profile
    start = date.fromisoformat(turn.conv.slot_from) if turn.conv.slot_from else None
    slots = _page_slots(turn, start)
    by_day: dict[date, list[calendar.Slot]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.date(), []).append(slot)
    days = list(by_day)  # slots come earliest first
    if start is not None:
        shown_days = [day for day in days if day >= start][:DAYS_PER_PAGE]
    else:
        shown_days = days[:DAYS_PER_PAGE]
    extra: list[Option] = []
    if shown_days and days and shown_days[-1] < days[-1]:
        next_day = days[days.index(shown_days[-1]) + 1]
        extra.append(turn.option(T.MORE_SLOTS, "m", next_day.isoformat()))
    if shown_days and days and shown_days[0] > days[0]:
        earlier = days[max(0, days.index(shown_days[0]) - DAYS_PER_PAGE)]
        extra.append(turn.option(T.EARLIER_SLOTS, "m", earlier.isoformat()))
    if profile.booking.other_times_handoff:
        extra.append(turn.option(T.OTHER_TIMES, "h"))
    extra.append(command_option("back"))
    if not slots:
        deadline = profile.booking.deadline.text
        text = T.NO_SLOTS.format(deadline=deadline, window=profile.booking.window_months) + email_text(profile, apply=True)
        turn.say(Text(text, links=phone_links(profile)))
        turn.say(Ask(T.USE_BUTTONS, tuple(extra + [command_option("handoff"), command_option("quit")])))
        return
    picker_days = []
    for day in shown_days:
        options = tuple(turn.option(formats.time_range(slot.start, slot.end), "s", slot.key) for slot in by_day[day])
        picker_days.append(SlotDay(formats.day(day), options))
    text = T.CHOOSE_SLOT.format(office=profile.short_name, length=formats.session_length(profile.schedule.minutes))
    turn.say(SlotPicker(text, tuple(picker_days), tuple(extra)))


def pick_slot(turn: Turn, key: str) -> bool:
    """A slot button: keep the slot in the answers if it is bookable now, else say so and ask again."""
    slot = live_slot(turn, key)
    if slot is None:
        turn.say(Text(T.SLOT_GONE.format(slot=slot_label(turn, key))))
        turn.reprompt()
        return False
    turn.conv.answers["slot"] = slot.key
    turn.conv.slot_from = None
    return True


def _choose_slot(turn: Turn, action: str, value: str) -> None:
    if action == "s":
        if pick_slot(turn, value):
            turn.go("advance")
        return
    if action == "m":
        try:
            date.fromisoformat(value)
        except ValueError:
            return turn.invalid(T.USE_BUTTONS)
        turn.conv.slot_from = value
        return turn.reprompt()
    if action == "h" and turn.profile.booking.other_times_handoff:
        turn.say(Text(T.OTHER_TIMES_DONE))
        return turn.handoff("other_times", "利用者が案内時間以外の相談時間を希望しています。")
    turn.invalid(T.USE_BUTTONS)


def _typed_date(turn: Turn, text: str) -> None:
    """A button's label, else a date: show the page from that day, or say why it cannot be booked."""
    if turn.tap_typed(text):
        return
    day = parse_day(text, turn.now.date())
    if day is None:
        return turn.invalid(T.DATE_NOT_UNDERSTOOD)
    slots = _live_slots(turn)
    if any(slot.start.date() == day for slot in slots):
        turn.conv.slot_from = day.isoformat()
        return turn.reprompt()
    turn.say(Text(_why_not_bookable(turn, day)))
    later = [slot for slot in slots if slot.start.date() > day]
    turn.conv.slot_from = later[0].start.date().isoformat() if later else None
    if not later and slots:
        turn.say(Text(T.NO_SLOTS_AFTER.format(day=formats.day(day))))
    turn.reprompt()


def _why_not_bookable(turn: Turn, day: date) -> str:
    profile = turn.profile
    label = formats.day(day)
    if day < turn.now.date():
        return T.DAY_PAST.format(day=label)
    closed = calendar.closure(profile, day)
    if closed is not None:
        return T.DAY_CLOSED.format(day=label, reason=formats.closure_reason(*closed, day))
    if not calendar.day_grid(profile, day):
        return T.DAY_NO_GRID.format(day=label)
    last = calendar.window_end(profile, turn.now)
    if day > last:
        return T.DAY_OUTSIDE_WINDOW.format(day=label, last=formats.day(last))
    if turn.now > calendar.deadline(profile, day):
        return T.DAY_PAST_DEADLINE.format(day=label, deadline=profile.booking.deadline.text)
    return T.DAY_FULL.format(day=label)


_DATE_PATTERNS = (
    re.compile(r"^(?P<y>\d{4})[-/年.](?P<m>\d{1,2})[-/月.](?P<d>\d{1,2})日?"),
    re.compile(r"^(?P<m>\d{1,2})[/月.-](?P<d>\d{1,2})日?"),
)


def parse_day(text: str, today: date) -> date | None:
    """A day the user typed: `12/3`, `12月3日`, `2026-12-03`, `12/3(木)`; the next such day from today."""
    folded = unicodedata.normalize("NFKC", text).strip().replace(" ", "")
    for pattern in _DATE_PATTERNS:
        match = pattern.match(folded)
        if not match:
            continue
        try:
            month, day = int(match["m"]), int(match["d"])
            if "y" in match.groupdict() and match["y"]:
                return date(int(match["y"]), month, day)
            candidate = date(today.year, month, day)
            if candidate < today - timedelta(days=31):
                candidate = date(today.year + 1, month, day)
            return candidate
        except ValueError:
            return None
    return None


def _steps(profile: OfficeProfile) -> list[Step]:
    return [Step("choosing_slot", SLOT)]


SLOT = Handlers(ask=_ask_slot, choose=_choose_slot, typed=_typed_date)
STAGE = Stage("slots", steps=_steps)

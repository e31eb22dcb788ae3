"""The booking calendar: open days, deadlines, the window and the slot grid, office by office."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot import calendar
from bot.clock import JST, parse_instant


def at(text: str) -> datetime:
    return parse_instant(text)


def days_of(slots) -> list[date]:
    return sorted({slot.start.date() for slot in slots})


def starts_on(slots, day: str) -> list[str]:
    return [f"{s.start:%H:%M}" for s in slots if s.start.date() == date.fromisoformat(day)]


# --- open days ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, reason",
    [
        ("2026-11-21", "土曜日"),
        ("2026-11-22", "日曜日"),
        ("2026-11-23", "勤労感謝の日"),
        ("2026-05-06", "振替休日"),  # 5/3 fell on a Sunday
        ("2026-09-22", "国民の休日"),  # between 敬老の日 and 秋分の日
        ("2026-12-29", "年末年始"),
        ("2027-01-01", "元日"),
        ("2027-01-03", "日曜日"),
        ("2026-12-31", "年末年始"),
    ],
)
def test_closed_days_have_a_reason(offices, day, reason):
    assert reason in calendar.closure_reason(offices["noto"], date.fromisoformat(day))


@pytest.mark.parametrize("day", ["2026-11-24", "2026-12-28", "2027-01-04", "2026-05-07"])
def test_ordinary_weekdays_are_open(offices, day):
    assert calendar.is_open(offices["noto"], date.fromisoformat(day))


def test_profile_closures_close_the_office(make_profile):
    profile = make_profile(
        "toyooka",
        schedule__closed=[{"start": "2026-12-02", "end": "2026-12-03", "reason": "庁舎点検"}],
    )
    assert calendar.closure_reason(profile, date(2026, 12, 2)) == "庁舎点検"
    assert calendar.closure_reason(profile, date(2026, 12, 3)) == "庁舎点検"
    assert calendar.is_open(profile, date(2026, 12, 4))
    slots = calendar.bookable_slots(profile, at("2026-11-30T09:00"), days=7)
    assert date(2026, 12, 2) not in days_of(slots)
    assert date(2026, 12, 4) in days_of(slots)


# --- deadlines ----------------------------------------------------------------------------------


def test_noto_two_business_days_skip_the_monday_holiday(offices):
    # Wednesday 11/25: Tuesday is the 1st business day before, Monday 11/23 is a holiday,
    # so Friday 11/20 is the 2nd: booking closes at Noto's closing time that day.
    assert calendar.deadline(offices["noto"], date(2026, 11, 25)) == at("2026-11-20T17:15")


def test_noto_wednesday_bookable_until_friday_close(offices):
    noto = offices["noto"]
    before = calendar.bookable_slots(noto, at("2026-11-20T17:14"), days=10)
    after = calendar.bookable_slots(noto, at("2026-11-20T17:16"), days=10)
    assert starts_on(before, "2026-11-25") == ["10:00", "11:00", "14:00", "15:00"]
    assert starts_on(after, "2026-11-25") == []
    # Tuesday 11/24 closed for booking a day earlier (Thursday 11/19).
    assert starts_on(before, "2026-11-24") == []
    # The first day bookable after Friday's close is Thursday 11/26 (deadline Tuesday 11/24).
    assert days_of(after)[0] == date(2026, 11, 26)


def test_now_in_utc_is_the_same_instant(offices):
    noto = offices["noto"]
    assert calendar.bookable_slots(noto, at("2026-11-20T08:14:00Z")) == calendar.bookable_slots(
        noto, at("2026-11-20T17:14:00+09:00")
    )
    after_utc = calendar.bookable_slots(noto, at("2026-11-20T08:16:00+00:00"))
    assert starts_on(after_utc, "2026-11-25") == []
    assert all(slot.start.utcoffset().total_seconds() == 9 * 3600 for slot in after_utc)


def test_deadline_one_minute_before_and_after_closing_time(offices):
    # Hamamatsu: by the previous business day, closing at 17:00.
    hamamatsu = offices["hamamatsu"]
    assert calendar.deadline(hamamatsu, date(2026, 12, 1)) == at("2026-11-30T17:00")
    before = calendar.bookable_slots(hamamatsu, at("2026-11-30T16:59"), days=3)
    exact = calendar.bookable_slots(hamamatsu, at("2026-11-30T17:00"), days=3)
    after = calendar.bookable_slots(hamamatsu, at("2026-11-30T17:01"), days=3)
    assert starts_on(before, "2026-12-01") == ["10:00", "11:00", "14:00", "15:00"]
    assert starts_on(exact, "2026-12-01") == ["10:00", "11:00", "14:00", "15:00"]
    assert starts_on(after, "2026-12-01") == []
    assert starts_on(after, "2026-12-02") == ["10:00", "11:00", "14:00", "15:00"]


def test_sakata_three_calendar_days_before_at_closing(offices):
    sakata = offices["sakata"]
    assert calendar.deadline(sakata, date(2026, 11, 30)) == at("2026-11-27T17:15")
    assert starts_on(calendar.bookable_slots(sakata, at("2026-11-27T17:15")), "2026-11-30") == [
        "14:00",
        "15:00",
        "16:00",
    ]
    assert starts_on(calendar.bookable_slots(sakata, at("2026-11-27T17:16")), "2026-11-30") == []


def test_sakata_across_the_monday_holiday(offices):
    sakata = offices["sakata"]
    slots = calendar.bookable_slots(sakata, at("2026-11-16T09:00"))
    # Monday 11/16: deadline passed (11/13). Monday 11/23: 勤労感謝の日. Window ends 12/16.
    assert days_of(slots) == [date(2026, 11, 30), date(2026, 12, 7), date(2026, 12, 14)]
    assert [f"{s.start:%H:%M}" for s in slots] == ["14:00", "15:00", "16:00"] * 3
    assert all(slot.start.weekday() == 0 for slot in slots)
    assert all((slot.end - slot.start).total_seconds() == 30 * 60 for slot in slots)


def test_year_end_closure_and_first_business_day(offices):
    toyooka = offices["toyooka"]
    slots = calendar.bookable_slots(toyooka, at("2026-12-24T10:00"), days=14)
    assert days_of(slots) == [
        date(2026, 12, 25),
        date(2026, 12, 28),
        date(2027, 1, 4),
        date(2027, 1, 5),
        date(2027, 1, 6),
    ]
    assert starts_on(slots, "2026-12-28") == ["09:30", "10:00", "10:30", "14:00", "14:30", "15:00", "15:30"]
    # 1/4 is booked "by the previous business day": that is 12/28, not 1/3.
    assert calendar.deadline(toyooka, date(2027, 1, 4)) == at("2026-12-28T17:15")
    assert starts_on(calendar.bookable_slots(toyooka, at("2026-12-28T17:16"), days=10), "2027-01-04") == []


def test_golden_week(offices):
    izumo = offices["izumo"]
    slots = calendar.bookable_slots(izumo, at("2026-04-24T09:00"), days=14)
    assert days_of(slots) == [
        date(2026, 4, 27),
        date(2026, 4, 28),
        # 4/29 昭和の日
        date(2026, 4, 30),
        date(2026, 5, 1),
        # 5/4-5/6 holidays (5/6 振替休日)
        date(2026, 5, 7),
    ]
    assert starts_on(slots, "2026-05-07") == ["09:30", "11:00", "13:30", "15:00"]
    assert calendar.deadline(izumo, date(2026, 5, 7)) == at("2026-05-01T17:15")


# --- window -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now, last",
    [
        ("2027-01-31T10:00", "2027-02-28"),
        ("2028-01-31T10:00", "2028-02-29"),
        ("2027-02-28T10:00", "2027-03-28"),
        ("2026-07-31T10:00", "2026-08-31"),
        ("2026-11-22T23:59", "2026-12-22"),
    ],
)
def test_window_is_one_calendar_month(offices, now, last):
    assert calendar.window_end(offices["hamamatsu"], at(now)) == date.fromisoformat(last)


def test_window_end_day_is_bookable_and_the_next_is_not(offices):
    hamamatsu = offices["hamamatsu"]
    slots = calendar.bookable_slots(hamamatsu, at("2026-07-31T10:00"))
    assert days_of(slots)[-1] == date(2026, 8, 31)
    assert starts_on(slots, "2026-08-31") == ["10:00", "11:00", "14:00", "15:00"]
    leap = calendar.bookable_slots(hamamatsu, at("2028-01-31T10:00"))
    assert days_of(leap)[-1] == date(2028, 2, 29)


def test_window_uses_the_japan_date(offices):
    # 2026-11-22T15:30Z is already 11/23 00:30 in Japan: the window runs to 12/23.
    assert calendar.window_end(offices["noto"], at("2026-11-22T15:30:00Z")) == date(2026, 12, 23)


# --- the grid and capacity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "office, starts, minutes",
    [
        ("noto", ["10:00", "11:00", "14:00", "15:00"], 30),
        ("hamamatsu", ["10:00", "11:00", "14:00", "15:00"], 45),
        ("izumo", ["09:30", "11:00", "13:30", "15:00"], 30),
        ("toyooka", ["09:30", "10:00", "10:30", "14:00", "14:30", "15:00", "15:30"], 30),
    ],
)
def test_weekday_grid_of_each_office(offices, office, starts, minutes):
    slots = calendar.bookable_slots(offices[office], at("2026-11-22T10:00"))
    for day in days_of(slots):
        assert day.weekday() < 5
        assert starts_on(slots, day.isoformat()) == starts
    assert all((s.end - s.start).total_seconds() == minutes * 60 for s in slots)
    assert [s.start for s in slots] == sorted(s.start for s in slots)


def test_booked_slots_are_not_offered(offices):
    noto = offices["noto"]
    booked = {"2026-11-26T10:00": 1, "2026-11-26T14:00": 3}
    slots = calendar.bookable_slots(noto, at("2026-11-22T10:00"), booked, days=5)
    assert starts_on(slots, "2026-11-26") == ["11:00", "15:00"]


def test_capacity_above_one_counts_down(make_profile):
    profile = make_profile("izumo", schedule__capacity=3)
    slots = calendar.bookable_slots(profile, at("2026-11-20T10:00"), {"2026-11-24T09:30": 2}, days=5)
    first = slots[0]
    assert (first.key, first.capacity, first.remaining) == ("2026-11-24T09:30", 3, 1)
    assert all(slot.remaining == 3 for slot in slots[1:])


def test_same_day_slots_already_started_are_not_offered(make_profile):
    profile = make_profile(
        "toyooka", booking__deadline={"kind": "business_days", "days": 0, "text": "当日まで"}
    )
    slots = calendar.bookable_slots(profile, at("2026-11-24T10:00"), days=1)
    assert starts_on(slots, "2026-11-24") == ["10:30", "14:00", "14:30", "15:00", "15:30"]


def test_days_shortens_the_window(offices):
    slots = calendar.bookable_slots(offices["toyooka"], at("2026-11-24T08:00"), days=3)
    assert days_of(slots) == [date(2026, 11, 25), date(2026, 11, 26)]


def test_slot_json_shape(offices):
    slot = calendar.bookable_slots(offices["noto"], at("2026-11-22T10:00"))[0]
    assert slot.to_json() == {
        "office": "noto",
        "start": "2026-11-26T10:00:00+09:00",
        "end": "2026-11-26T10:30:00+09:00",
        "remaining": 1,
    }
    assert slot.label() == "11月26日(木) 10:00〜10:30"
    assert slot.start.tzinfo is not None and slot.start.astimezone(JST) == slot.start


@pytest.mark.parametrize("office", ["noto", "hamamatsu", "izumo", "toyooka", "sakata"])
@pytest.mark.parametrize("now", ["2026-11-25T16:59", "2026-11-25T17:01", "2026-12-28T09:00", "2027-04-28T12:00"])
def test_one_slot_check_agrees_with_the_whole_window(offices, office, now):
    """`bookable_slot` (one key, the booking step) gives what `bookable_slots` (the picker) gives."""
    profile = offices[office]
    instant = at(now)
    keys = [calendar.slot_key(start) for day in calendar.iter_days(instant.date(), instant.date() + timedelta(days=70))
            for start, _ in calendar.day_grid(profile, day)]
    booked = {key: profile.schedule.capacity for key in keys[5::7]}  # some slots full
    offered = {slot.key: slot for slot in calendar.bookable_slots(profile, instant, booked)}
    assert offered, "the window has bookable slots"
    for key in keys:
        assert calendar.bookable_slot(profile, instant, key, booked.get(key, 0)) == offered.get(key), key


def test_one_slot_check_rejects_keys_not_spelt_as_the_grid(offices):
    noto, now = offices["noto"], at("2026-11-22T10:00")
    assert calendar.bookable_slot(noto, now, "2026-11-26T10:00", 0) is not None
    for key in ("2026-11-26T10:0", "2026-11-26T10:00:00", "2026-11-26T10:05", "2026-11-26", "x"):
        assert calendar.bookable_slot(noto, now, key, 0) is None, key


def test_the_window_plan_follows_the_day_and_the_profile(offices, make_profile):
    noto = offices["noto"]
    first = calendar.window_plan(noto, date(2026, 11, 25))
    assert calendar.window_plan(noto, date(2026, 11, 25)) is first  # cached for the day
    assert calendar.window_plan(noto, date(2026, 11, 26))[0].day == date(2026, 11, 26)
    changed = make_profile("noto", booking__window_months=2)
    assert calendar.window_plan(changed, date(2026, 11, 25))[-1].day > first[-1].day


def test_days_before_deadline_are_the_days_with_bookable_slots(offices):
    for office in offices.values():
        for now in ("2026-11-25T16:59", "2026-11-25T17:01", "2026-12-28T09:00"):
            instant = at(now)
            days = calendar.days_before_deadline(office, instant)
            assert {slot.start.date() for slot in calendar.bookable_slots(office, instant)} <= set(days)
            assert all(instant <= calendar.deadline(office, day) for day in days)
            skipped = [day for day in calendar.candidate_days(office, instant) if day not in days]
            assert all(instant > calendar.deadline(office, day) for day in skipped)

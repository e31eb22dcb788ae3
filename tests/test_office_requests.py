"""Requests the office confirms (issue 11): states and their wording, confirm, decline, propose another
time (accept, decline, lapse), overdue requests, the console and the JSON API, on a real Redis.

Per office where it applies: every office whose profile says `after_booking.confirmed_by_office`.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from bot import calendar
from bot.clock import parse_instant
from bot.dialog import texts as T
from bot.dialog.stages.my_bookings import booking_state
from bot.profiles import load_offices
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import Reminders
from bot.store import BookingStore
from bot.testing.driver import NOTO_USER, ChatDriver, ManualClock, book_at_noto
from bot.testing.line_spec import check_limits, validate_request
from bot.web import create_app
from tests.conftest import PROFILES_DIR

TOKEN = "staff-token-for-tests"
NOW = "2026-11-20T10:00:00+09:00"
USER = "U-request"
PERSONAL = (*NOTO_USER, USER)


def request_offices(offices) -> list[str]:
    return [office for office in offices if offices[office].after_booking.confirmed_by_office]


REQUEST_OFFICES = request_offices(load_offices(PROFILES_DIR))


@pytest.fixture
def clock():
    return ManualClock(parse_instant(NOW))


@pytest.fixture
def service(redis_client, offices, clock):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token", staff_token=TOKEN)
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def app(service):
    return create_app(service.settings, service=service)


def make_request(service: BotService, office: str, *, index: int = 0, user: str = USER) -> tuple[dict, str]:
    """A request at `office` as the chat makes it (the office's `index`-th bookable slot)."""
    profile = service.offices[office]
    now = service.clock.now()
    slots = calendar.bookable_slots(profile, now, {})
    slot = slots[index]
    booking = {
        "id": f"REQ{index:05d}",
        "office": office,
        "slot": slot.key,
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "user": user,
        "status": "booked",
        "office_confirmation": "pending" if profile.after_booking.confirmed_by_office else "not_needed",
        "created_at": now.isoformat(),
        "name": NOTO_USER[0],
        "phone": NOTO_USER[3],
        "consent": {"version": profile.terms.version.isoformat(), "at": now.isoformat()},
    }
    assert service.bookings.claim(booking, profile.schedule.capacity).ok
    return booking, BookingStore.ref(booking)


def entries(service: BotService, kind: str) -> list[dict]:
    return [fields for _, fields in reversed(service.outbox.entries()) if fields["kind"] == kind]


def push_texts(service: BotService) -> list[str]:
    return [json.dumps(json.loads(entry["messages"]), ensure_ascii=False) for entry in entries(service, "push")]


def assert_valid_pushes(service: BotService, spec: dict) -> None:
    """Every queued push passes LINE's OpenAPI spec and documented limits."""
    for entry in entries(service, "push"):
        messages = json.loads(entry["messages"])
        assert validate_request(spec, "PushMessageRequest", {"to": entry["to"], "messages": messages}) == []
        assert check_limits(messages) == []


def assert_no_personal_data(entry: dict) -> None:
    text = json.dumps(entry, ensure_ascii=False)
    for value in PERSONAL:
        assert value not in text, value


# -- 1. states and their wording -------------------------------------------------------------------------


def test_a_request_says_so_on_the_booked_card_the_list_and_the_reminder(service, clock):
    driver = ChatDriver(service, user=USER)
    booking = book_at_noto(driver, "11月25日(水) 10:00〜10:30")
    assert booking["office_confirmation"] == "pending"
    assert f"{T.STATE_LABEL}: {T.STATE_REQUESTED}" in driver.last_text()
    driver.say("予約の確認")
    assert f"予約番号 {booking['id']}・申込み中・事業所の確認待ち" in driver.last_text()
    clock.instant = parse_instant("2026-11-24T17:00")
    [(_, replies)] = Reminders(service)(clock.now())
    assert "申込み中・事業所の確認待ち" in json.dumps(push_texts(service), ensure_ascii=False)
    ref = BookingStore.ref(booking)
    service.bookings.update(ref, {"office_confirmation": "confirmed"})
    driver.say("予約の確認")
    assert f"予約番号 {booking['id']}・確定）" in driver.last_text()


def test_an_office_without_confirmation_books_as_confirmed(service, offices):
    office = next(o for o in offices if not offices[o].after_booking.confirmed_by_office)
    booking, _ = make_request(service, office)
    assert booking["office_confirmation"] == "not_needed"
    assert booking_state(booking) == T.STATE_CONFIRMED
    assert booking_state({**booking, "office_confirmation": "pending"}) == T.STATE_REQUESTED
    assert booking_state({k: v for k, v in booking.items() if k != "office_confirmation"}) == T.STATE_CONFIRMED

"""After booking: reminders, terms re-consent, unfollow and retention, on a real Redis with a manual clock."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from bot.clock import JST
from bot.dialog import Inbound
from bot.profiles import load_offices
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import NAMESPACE, Reconsent, Reminders, Retention, Throttled, scheduled_tasks
from bot.testing.driver import ChatDriver, ManualClock
from bot.testing.line_spec import check_limits, validate_request

USER = "U-aftercare"
START = datetime(2026, 11, 20, 10, 0, tzinfo=JST)
SLOT = "2026-11-25T10:00"
PERSONAL = ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678")
NOTO_BOOKING = [
    ("say", "こんにちは"), ("tap", "ハローワーク能登"), ("say", PERSONAL[0]), ("say", PERSONAL[1]),
    ("say", PERSONAL[2]), ("say", PERSONAL[3]), ("tap", "職業相談"), ("tap", "同席しない"), ("tap", "登録済み"),
    ("tap", "はい"), ("tap", "用意できる"), ("tap", "はい"), ("tap", "11月25日(水) 10:00〜10:30"),
    ("tap", "同意する"), ("tap", "この内容で予約する"),
]  # fmt: skip


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def make_service(redis_client, offices, clock):
    def make(reminders: str = "all", offices_=None, **settings) -> BotService:
        config = load_settings(reminders=reminders, **settings)
        return BotService(config, client=redis_client, offices=offices_ or offices, clock=clock)

    return make


def book_noto(service: BotService, user: str = USER, slot: str = "11月25日(水) 10:00〜10:30") -> tuple[ChatDriver, dict]:
    driver = ChatDriver(service, user=user)
    for action, value in NOTO_BOOKING:
        getattr(driver, action)(slot if value.startswith("11月25日") else value)
    [booking] = driver.bookings()
    return driver, booking


def outbox(service: BotService, kind: str) -> list[dict]:
    return [fields for _, fields in reversed(service.outbox.entries()) if fields["kind"] == kind]


def assert_valid_push(entry: dict, spec: dict) -> list[dict]:
    """The queued messages pass LINE's OpenAPI spec and documented limits."""
    messages = json.loads(entry["messages"])
    body = {"to": entry["to"], "messages": messages}
    assert validate_request(spec, "PushMessageRequest", body) == []
    assert check_limits(messages) == []
    return messages


def postback_of(messages: list[dict], label: str) -> str:
    for message in messages:
        for item in (message.get("quickReply") or {}).get("items", []):
            if item["action"].get("label") == label:
                return item["action"]["data"]
    raise AssertionError(f"no button {label!r}")


# --- reminders ------------------------------------------------------------------------------------


def test_reminder_is_due_exactly_at_the_reminder_time_the_day_before_and_goes_once(make_service, clock, messaging_spec):
    service = make_service()
    _, booking = book_noto(service)
    reminders = Reminders(service)
    clock.instant = datetime(2026, 11, 24, 16, 59, 59, tzinfo=JST)
    assert reminders(clock.now()) == []
    assert outbox(service, "push") == []
    clock.instant = datetime(2026, 11, 24, 17, 0, tzinfo=JST)
    assert len(reminders(clock.now())) == 1
    [push] = outbox(service, "push")
    assert push["to"] == USER
    assert push["id"] == str(uuid.uuid5(NAMESPACE, f"reminder|noto|{SLOT}|{booking['id']}"))
    messages = assert_valid_push(push, messaging_spec)
    text = json.dumps(messages, ensure_ascii=False)
    for needle in ("明日はオンライン職業相談の日です", "11月25日(水) 10:00〜10:30", "TeleOffice", "【ご準備】", "キャンセル", "tel:0768-62-1242"):
        assert needle in text
    assert PERSONAL[0] not in text and PERSONAL[1] not in text
    assert service.bookings.get(f"noto|{SLOT}|{booking['id']}")["reminder_sent_at"] == "2026-11-24T17:00:00+09:00"
    clock.advance(timedelta(hours=3))
    assert reminders(clock.now()) == []
    assert len(outbox(service, "push")) == 1


def test_no_reminder_for_a_cancelled_booking(make_service, clock):
    service = make_service()
    driver, booking = book_noto(service)
    driver.say("予約の確認")
    driver.tap("キャンセル 11/25 10:00")
    driver.tap("キャンセルする")
    clock.instant = datetime(2026, 11, 24, 17, 0, tzinfo=JST)
    assert Reminders(service)(clock.now()) == []


def test_booked_after_the_reminder_time_gets_no_reminder(make_service, clock, redis_client):
    """The booked card just shown carries the same information: no push minutes later."""
    service = make_service()
    _, booking = book_noto(service)
    ref = f"noto|{SLOT}|{booking['id']}"
    service.bookings.update(ref, {"created_at": "2026-11-24T17:05:00+09:00"})
    clock.instant = datetime(2026, 11, 24, 17, 10, tzinfo=JST)
    assert Reminders(service)(clock.now()) == []


def test_reminders_off(make_service, clock):
    service = make_service("off")
    book_noto(service)
    clock.instant = datetime(2026, 11, 24, 18, 0, tzinfo=JST)
    assert Reminders(service)(clock.now()) == []


def test_opt_in_reminders_go_only_to_those_who_asked(make_service, clock):
    service = make_service("opt_in")
    driver, booking = book_noto(service)
    assert driver.buttons()[:2] == ["前日にお知らせを受け取る", "予約する"]
    other, _ = book_noto(service, user="U-other", slot="11月25日(水) 11:00〜11:30")
    clock.instant = datetime(2026, 11, 24, 17, 0, tzinfo=JST)
    assert Reminders(service)(clock.now()) == []
    clock.instant = datetime(2026, 11, 21, 9, 0, tzinfo=JST)
    driver.tap("前日にお知らせを受け取る")
    assert "相談日の前日17:00ごろに" in driver.last_text()
    clock.instant = datetime(2026, 11, 24, 17, 0, tzinfo=JST)
    sent = Reminders(service)(clock.now())
    assert [b["user"] for b, _ in sent] == [USER]
    # The same button on a cancelled booking is answered kindly and changes nothing.
    other.say("予約の確認")
    other.tap("キャンセル 11/25 11:00")
    other.tap("キャンセルする")
    other.tap_earlier("前日にお知らせを受け取る")
    assert "お知らせは設定できません" in other.last_text()


def test_scheduled_tasks_throttle_themselves(make_service, clock):
    service = make_service()
    calls = []
    task = Throttled("t", timedelta(minutes=1), calls.append)
    for seconds in (0, 30, 59, 60, 61, 125):
        task(START + timedelta(seconds=seconds))
    assert calls == [START, START + timedelta(seconds=60), START + timedelta(seconds=125)]
    tasks = scheduled_tasks(service)
    assert [t.name for t in tasks] == ["after_effects", "reminders", "reconsent", "proposals", "overdue", "retention", "thread_retention", "audit_retention"]
    for run in tasks:
        run(clock.now())


# --- terms change ---------------------------------------------------------------------------------


def test_terms_change_end_to_end(make_service, clock, profiles_copy, messaging_spec):
    service = make_service()
    driver, booking = book_noto(service)
    ref = f"noto|{SLOT}|{booking['id']}"
    assert booking["office_confirmation"] == "pending"
    noto = profiles_copy / "noto.yaml"
    text = noto.read_text(encoding="utf-8")
    text = text.replace("  version: 2023-05-08\n", "  version: 2026-11-21\n")
    text = text.replace("history: [2022-12-28, 2023-05-08]", "history: [2022-12-28, 2023-05-08, 2026-11-21]")
    noto.write_text(text, encoding="utf-8")
    revised = make_service(offices_=load_offices(profiles_copy), public_url="https://hwbot.example.jp/")
    assert revised.offices["noto"].terms.version.isoformat() == "2026-11-21"
    clock.advance(timedelta(days=1))
    for task in scheduled_tasks(revised):
        task(clock.now())
    [push] = outbox(revised, "push")
    messages = assert_valid_push(push, messaging_spec)
    shown = json.dumps(messages, ensure_ascii=False)
    assert "https://hwbot.example.jp/offices/noto/terms" in shown and "利用規約が改定されました" in shown
    stored = revised.bookings.get(ref)
    assert stored["office_confirmation"] == "awaiting_consent"
    assert stored["reconsent"] == {"version": "2026-11-21", "asked_at": clock.now().isoformat(), "confirmation": "pending"}
    [needed] = outbox(revised, "reconsent_needed")
    assert json.loads(needed["fields"])["ref"] == ref
    assert not any(p in json.dumps(needed, ensure_ascii=False) for p in PERSONAL + (USER,))
    # Once per version: the next run asks nothing.
    assert Reconsent(revised)(clock.now()) == []
    # The user taps the button in the push (LINE sends its data back as a postback).
    data = postback_of(messages, "新しい規約に同意する")
    clock.advance(timedelta(minutes=5))
    outcome = revised.handle(Inbound(user=USER, kind="postback", text=data))
    assert "同意を記録しました" in outcome.replies[0].text
    stored = revised.bookings.get(ref)
    assert stored["consent"] == {"version": "2026-11-21", "at": clock.now().isoformat(), "terms_lang": "ja"}
    assert stored["office_confirmation"] == "pending"
    [given] = outbox(revised, "reconsent_given")
    assert json.loads(given["fields"])["version"] == "2026-11-21"
    # A forged button (someone else's booking) and a garbled one are answered kindly.
    forged = revised.handle(Inbound(user="U-stranger", kind="postback", text=data))
    garbled = revised.handle(Inbound(user=USER, kind="postback", text="*|rc|2026-11-21|nonsense"))
    for outcome in (forged, garbled):
        assert "必要なくなりました" in outcome.replies[0].text and not outcome.notices


def test_implied_terms_change_asks_without_holding_the_booking(make_service, clock, offices):
    from bot.testing.scripts import revised_terms

    service = make_service()
    driver = ChatDriver(service, user=USER)
    for action, value in [
        ("say", "こんにちは"), ("tap", "ハローワーク酒田"), ("say", "佐藤 美咲"), ("say", "06010-87654321"),
        ("tap", "同席しない"), ("tap", "登録済み"), ("tap", "開設済み"), ("tap", "用意できる"), ("tap", "希望する"),
        ("tap", "大学等の卒業予定・既卒3年以内"), ("tap", "11月30日(月) 14:00〜14:30"), ("tap", "同意する"),
        ("tap", "この内容で予約する"),
    ]:  # fmt: skip
        getattr(driver, action)(value)
    revised = make_service(offices_=revised_terms(offices, "sakata", datetime(2026, 11, 21).date()))
    [(booking, replies, notice)] = Reconsent(revised)(clock.now())
    assert booking["office"] == "sakata" and notice.fields["awaiting_consent"] == "no"
    stored = revised.bookings.get(notice.fields["ref"])
    assert stored["office_confirmation"] == booking["office_confirmation"] != "awaiting_consent"
    assert stored["reconsent"]["version"] == "2026-11-21" and "confirmation" not in stored["reconsent"]
    assert "新しい規約に同意する" in [o.label for r in replies for o in getattr(r, "options", ())]


# --- unfollow and retention -----------------------------------------------------------------------


def test_unfollow_with_a_pending_booking(make_service, clock, redis_client):
    service = make_service()
    _, upcoming = book_noto(service)
    past = {
        "id": "PASTPAST", "office": "noto", "slot": "2026-11-02T10:00", "start": "2026-11-02T10:00:00+09:00",
        "end": "2026-11-02T10:30:00+09:00", "user": USER, "status": "attended", "name": PERSONAL[0],
        "number": PERSONAL[1], "created_at": "2026-10-20T10:00:00+09:00",
    }  # fmt: skip
    assert service.bookings.claim({**past, "status": "booked"}, 1).ok
    service.bookings.update("noto|2026-11-02T10:00|PASTPAST", {"status": "attended"})
    clock.advance(timedelta(hours=1))
    outcome = service.handle(Inbound(user=USER, kind="unfollow"), event_id="ev-unfollow")
    assert [n.kind for n in outcome.notices] == ["user_blocked"]
    assert service.handle(Inbound(user=USER, kind="unfollow"), event_id="ev-unfollow") is None
    assert service.conversations.load(USER) == (None, 0)
    [blocked] = outbox(service, "user_blocked")
    ref = f"noto|{SLOT}|{upcoming['id']}"
    assert json.loads(blocked["fields"]) == {
        "ref": ref, "booking_id": upcoming["id"], "slot": SLOT, "office_name": "ハローワーク能登",
    }  # fmt: skip
    assert not any(p in json.dumps(blocked, ensure_ascii=False) for p in PERSONAL + (USER,))
    kept = service.bookings.get(ref)
    assert kept["status"] == "booked" and kept["name"] == PERSONAL[0]
    assert kept["erase_after"] == "2026-11-25T10:30:00+09:00"
    gone = service.bookings.get("noto|2026-11-02T10:00|PASTPAST")
    assert not set(gone) & {"name", "number", "email", "phone"}
    # Right after the appointment, the retention task removes the rest.
    retention = Retention(service)
    clock.instant = datetime(2026, 11, 25, 10, 29, tzinfo=JST)
    retention(clock.now())
    assert service.bookings.get(ref)["name"] == PERSONAL[0]
    clock.instant = datetime(2026, 11, 25, 10, 30, tzinfo=JST)
    assert retention(clock.now()) == 1
    raw = redis_client.get(f"hwbot:{{noto}}:2026-11-25:booking:{upcoming['id']}")
    assert not any(p in raw for p in PERSONAL)


def test_retention_strips_personal_data_and_keeps_an_anonymous_record(make_service, clock, redis_client):
    service = make_service(HWBOT_RETENTION_DAYS="90")
    _, booking = book_noto(service)
    ref = f"noto|{SLOT}|{booking['id']}"
    key = f"hwbot:{{noto}}:2026-11-25:booking:{booking['id']}"
    # The anonymous record outlives retention: 365 days after the appointment, counted on the app's
    # clock (Redis counts the TTL down by its own clock, so no real date enters the assertion).
    end = datetime(2026, 11, 25, 10, 30, tzinfo=JST)
    expected = (end + timedelta(days=365) - clock.now()).total_seconds()
    assert expected - 5 <= redis_client.ttl(key) <= expected
    service.bookings.update(ref, {"status": "attended"})
    retention = Retention(service)
    clock.instant = end + timedelta(days=90) - timedelta(minutes=1)
    assert retention(clock.now()) == 0
    clock.instant = end + timedelta(days=90)
    assert retention(clock.now()) == 1
    record = service.bookings.get(ref)
    assert record["status"] == "attended" and record["office"] == "noto" and record["slot"] == SLOT
    assert record["topic"] == "職業相談" and record["anonymised_at"] == clock.now().isoformat()
    assert not set(record) & {"name", "number", "email", "phone", "user"}
    assert not any(p in redis_client.get(key) for p in PERSONAL + (USER,))
    assert service.bookings.for_user(USER) == []
    assert not redis_client.exists(f"hwbot:{{u:{USER}}}:bookings")
    assert [b["id"] for b in service.bookings.store.on_day("noto", "2026-11-25")] == [booking["id"]]
    assert retention(clock.now()) == 0

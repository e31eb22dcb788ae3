"""What the profile audit of issue 11 changed, end to end: the conversation, the console, the pushes.

(The profiles against the offices' documents: tests/test_profiles_vs_seeds.py.)
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pytest

from bot import calendar
from bot.clock import JST
from bot.dialog import texts as T
from bot.dialog.buttons import cancel_text, email_text
from bot.dialog.pushes import reconsent_replies
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import Reconsent, Reminders
from bot.testing.driver import ChatDriver, ManualClock, to_noto_slots
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.scripts import revised_terms
from bot.testing.staff import sign_in
from bot.web import create_app

START = datetime(2026, 11, 20, 10, 0, tzinfo=JST)
HAMAMATSU = [
    ("say", "こんにちは"), ("tap", "マザーズハローワーク浜松"), ("say", "鈴木 一郎"), ("say", "22222-33334444"),
    ("say", "053-456-7890"), ("tap", "同席しない"), ("tap", "登録済み"), ("tap", "希望する"), ("tap", "開設済み"),
    ("tap", "用意できる"), ("tap", "はい"), ("tap", "11月24日(火) 14:00〜14:45"), ("tap", "同意する"),
    ("tap", "この内容で予約する"),
]  # fmt: skip
# A stored booking as the re-consent push reads it.
A_BOOKING = {
    "id": "X1", "office": "izumo", "slot": "2026-11-24T11:00",
    "start": "2026-11-24T11:00:00+09:00", "end": "2026-11-24T11:30:00+09:00",
}  # fmt: skip
IZUMO = [
    ("say", "こんにちは"), ("tap", "ハローワーク出雲"), ("say", "タナカ ジロウ"), ("say", "32101-00012345"),
    ("say", "jiro.tanaka@example.ne.jp"), ("say", "0853-22-1111"), ("tap", "同席しない"), ("tap", "登録済み"),
    ("tap", "用意できる"), ("tap", "開設済み"), ("tap", "11月24日(火) 11:00〜11:30"), ("tap", "同意する"),
    ("tap", "この内容で予約する"),
]  # fmt: skip


@pytest.fixture
def service(redis_client, offices) -> BotService:
    """A LINE-mode service on the test Redis, at 2026-11-20 10:00 on a manual clock."""
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token")
    return BotService(settings, client=redis_client, offices=offices, clock=ManualClock(START))


def with_offices(service: BotService, offices) -> BotService:
    """The same Redis and clock with other profiles (an office has revised its terms)."""
    return BotService(service.settings, client=service.client, offices=offices, clock=service.clock)


def book(service: BotService, steps: list[tuple[str, str]], user: str = "U-audit") -> tuple[ChatDriver, dict]:
    driver = ChatDriver(service, user=user)
    for action, value in steps:
        getattr(driver, action)(value)
    [booking] = driver.bookings()
    return driver, booking


def test_a_hamamatsu_booking_is_a_request_until_the_office_confirms(service):
    driver, booking = book(service, HAMAMATSU)
    card = driver.last_text()
    assert T.BOOKED_TITLE in card and T.BOOKED_PENDING in card and T.BOOKED_TITLE_CONFIRMED not in card
    assert booking["office_confirmation"] == "pending"
    # The console shows it waiting for the office.
    client = sign_in(create_app(service.settings, service=service), ("hamamatsu",)).client
    ref = f"hamamatsu|{booking['slot']}|{booking['id']}"
    page = client.get("/staff/booking", query_string={"ref": ref}).get_data(as_text=True)
    assert "事業所の確認待ち" in page and "不要（予約で確定）" not in page


def test_an_izumo_terms_change_tells_users_and_holds_no_booking(service, offices):
    _, booking = book(service, IZUMO)
    assert booking["office_confirmation"] == "pending"
    revised = with_offices(service, revised_terms(offices, "izumo", date(2026, 11, 21)))
    service.clock.advance(timedelta(days=1))
    [(_, replies, notice)] = Reconsent(revised)(service.clock.now())
    assert notice.fields["awaiting_consent"] == "no"
    stored = revised.bookings.get(notice.fields["ref"])
    assert stored["office_confirmation"] == "pending" and "confirmation" not in stored["reconsent"]
    shown = "\n".join(getattr(reply, "text", "") for reply in replies)
    assert T.RECONSENT_REPLY not in shown and "2026年11月21日改訂" in shown


def test_only_noto_makes_a_booking_wait_for_new_terms(offices):
    waits = {}
    for office_id, profile in offices.items():
        replies = reconsent_replies(profile, {**A_BOOKING, "office": office_id}, None)
        waits[office_id] = T.RECONSENT_REPLY in replies[-1].text
    assert waits == {"hamamatsu": False, "izumo": False, "noto": True, "sakata": False, "toyooka": False}


def test_the_terms_change_push_says_what_the_offices_terms_say(offices):
    """notify (Izumo art. 13): when the new terms apply; implied (Toyooka, Sakata): using them is consent."""
    revised = revised_terms(offices, "izumo", date(2026, 11, 21))
    izumo = reconsent_replies(revised["izumo"], A_BOOKING, None)[-1].text
    assert "改定後の利用規約は2026年11月21日から適用されます。ご予約はそのままです。" in izumo
    sakata = reconsent_replies(offices["sakata"], {**A_BOOKING, "office": "sakata"}, None)[-1].text
    assert T.RECONSENT_IMPLIED in sakata and "適用されます" not in sakata


def test_izumo_asks_for_the_phone_number_registered_with_hello_work(service):
    izumo = ChatDriver(service, user="U-izumo")
    for action, value in IZUMO[:5]:
        getattr(izumo, action)(value)
    assert "ハローワークに求職情報として登録した電話番号を入力してください。" in izumo.last_text()
    # A wrong number gets the same, office's own question again.
    izumo.say("12345")
    assert "電話番号が正しくないようです" in izumo.last_text() and "求職情報として登録した電話番号" in izumo.last_text()
    noto = ChatDriver(service, user="U-noto")
    for text in ("こんにちは", "ハローワーク能登", "山田 花子", "12345-12345678", "hanako@example.jp"):
        noto.say(text)
    assert T.ASK_PHONE in noto.last_text()


def test_the_email_address_appears_only_where_the_office_publishes_one(offices):
    shown = {oid: bool(email_text(profile)) for oid, profile in offices.items()}
    assert shown == {"hamamatsu": False, "izumo": False, "noto": True, "sakata": False, "toyooka": False}
    # Izumo takes cancellations by email but publishes no address: its cancel text stays as it is.
    assert cancel_text(offices["izumo"]) == offices["izumo"].cancellation.text
    assert cancel_text(offices["noto"]).endswith("キャンセルのメール：hw-noto@mhlw.go.jp")
    assert email_text(offices["noto"], apply=True) == "\nメールでもお申し込みいただけます：hw-noto@mhlw.go.jp（件名「オンライン相談申込」）"


def test_notos_reminder_gives_the_email_address_and_is_a_valid_push(service, messaging_spec):
    clock = service.clock
    steps = [
        ("say", "こんにちは"), ("tap", "ハローワーク能登"), ("say", "山田 花子"), ("say", "12345-12345678"),
        ("say", "hanako@example.jp"), ("say", "090-1234-5678"), ("tap", "職業相談"), ("tap", "同席しない"),
        ("tap", "登録済み"), ("tap", "はい"), ("tap", "用意できる"), ("tap", "はい"),
        ("tap", "11月25日(水) 10:00〜10:30"), ("tap", "同意する"), ("tap", "この内容で予約する"),
    ]  # fmt: skip
    _, booking = book(service, steps)
    clock.advance(datetime(2026, 11, 24, 17, 0, tzinfo=JST) - clock.now())
    [(_, replies)] = Reminders(service)(clock.now())
    assert "キャンセルのメール：hw-noto@mhlw.go.jp" in replies[0].text
    [entry] = [fields for _, fields in service.outbox.entries() if fields["kind"] == "push"]
    messages = json.loads(entry["messages"])
    assert validate_request(messaging_spec, "PushMessageRequest", {"to": entry["to"], "messages": messages}) == []
    assert check_limits(messages) == []
    assert "hw-noto@mhlw.go.jp" in json.dumps(messages, ensure_ascii=False)


@pytest.mark.parametrize("office", ["noto", "izumo"])
def test_with_no_slot_left_the_bot_gives_the_other_ways_to_book(office, service):
    # Every slot of the window full: the user is told, with the phone and, where the office takes
    # applications by email (Noto), the address and subject.
    profile = service.offices[office]
    now = service.clock.now()
    for slot in calendar.bookable_slots(profile, now, {}):
        for n in range(profile.schedule.capacity):
            booking = {"id": f"F{n}{slot.key[-5:].replace(':', '')}{slot.key[5:10].replace('-', '')}", "office": office,
                       "slot": slot.key, "start": slot.start.isoformat(), "end": slot.end.isoformat(),
                       "user": "U-other", "status": "booked"}
            assert service.bookings.claim(booking, profile.schedule.capacity).ok
    driver = ChatDriver(service, user="U-late")
    if office == "noto":
        to_noto_slots(driver)
    else:
        for action, value in IZUMO[:10]:  # up to the slot picker
            getattr(driver, action)(value)
    text = driver.last_text()
    assert "いまご予約いただける枠がありません" in text
    assert ("メールでもお申し込みいただけます：hw-noto@mhlw.go.jp（件名「オンライン相談申込」）" in text) == (office == "noto")

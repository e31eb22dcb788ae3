"""The user changes the date of their booking in the chat, through the service on a real Redis; and
phone-only offices without a published number hand cancellations and changes to staff."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.profiles import Offices
from bot.service import BotService, StoreBookings
from bot.settings import load_settings
from bot.staff.actions import StaffActions
from bot.staff.aftercare import Reminders
from bot.staff.notify import HANDOFF_REASONS, compose
from bot.store import ConversationStore, slot_redis_key
from bot.testing.driver import NOTO_USER, ChatDriver, ManualClock, book_at_noto
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.line_standin import LineStandIn
from bot.testing.simulator import actions_of
from bot.testing.staff import sign_in
from bot.web import create_app
from bot.testing.delivery import SendingClient

NOW = "2026-11-20T10:00:00+09:00"
FIRST = "11月25日(水) 10:00〜10:30"
NEW = "11月26日(木) 14:00〜14:30"
NEW_KEY = "2026-11-26T14:00"


def start_move(driver: ChatDriver, first: str = FIRST) -> dict:
    booked = book_at_noto(driver, first)
    driver.say("予約の確認")
    driver.tap(f"日時変更 11/{booked['slot'][8:10].lstrip('0')} {booked['slot'][11:]}")
    assert "ご希望の日時を選んでください" in driver.last_text()
    return booked


def booked_of(driver: ChatDriver) -> list[dict]:
    return [b for b in driver.bookings() if b["status"] == "booked"]


def test_a_move_keeps_the_booking_data_links_both_records_and_tells_staff_without_personal_data(service, redis_client, clock):
    driver = ChatDriver(service, user="U1")
    old = start_move(driver)
    clock.advance(timedelta(minutes=5))
    driver.tap(NEW)
    assert "変更前：11月25日(水) 10:00〜10:30\n変更後：11月26日(木) 14:00〜14:30" in driver.last_text()
    driver.tap("変更する")
    [new] = booked_of(driver)
    cancelled = service.bookings.get(f"noto|2026-11-25T10:00|{old['id']}")
    # The new record: same person, answers and consent; new slot, id, times; linked both ways.
    for key in ("name", "number", "email", "phone", "topic", "interpreter", "consent", "answers", "user"):
        assert new[key] == old[key]
    assert (new["slot"], new["start"], new["end"]) == (NEW_KEY, "2026-11-26T14:00:00+09:00", "2026-11-26T14:30:00+09:00")
    assert new["id"] != old["id"] and new["moved_from"] == f"noto|2026-11-25T10:00|{old['id']}"
    assert new["office_confirmation"] == "pending" and new["created_at"] == new["moved_at"] == clock.now().isoformat()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == "user"
    assert cancelled["moved_to"] == f"noto|{NEW_KEY}|{new['id']}"
    assert redis_client.scard(slot_redis_key("noto", "2026-11-25T10:00")) == 0
    assert redis_client.smembers(slot_redis_key("noto", NEW_KEY)) == {new["id"]}
    # Staff: the new slot and number, the old date and number; nothing personal.
    [notice] = driver.exchanges[-1].outcome.notices
    assert notice.kind == "rescheduled"
    assert notice.fields == {
        "ref": f"noto|{NEW_KEY}|{new['id']}",
        "booking_id": new["id"],
        "slot": NEW_KEY,
        "previous": f"11月25日(水) 10:00〜10:30（予約番号 {old['id']}）",
    }
    message = compose({"kind": notice.kind, "office": "noto", "fields": notice.fields, "summary": notice.summary}, service.offices["noto"])
    assert message.title == "予約の日時が変更されました"
    assert ("変更前", notice.fields["previous"]) in message.rows and ("予約番号", new["id"]) in message.rows
    shown = str(message)
    assert not any(value in shown for value in NOTO_USER) and "U1" not in shown
    # The user is told the new date and number, and that the office confirms it.
    assert f"11月26日(木) 14:00〜14:30（予約番号 {new['id']}・申込み中・事業所の確認待ち）" in driver.last_text()
    assert "ハローワークからのご連絡をもって確定します" in driver.last_text()
    assert driver.conversation_state() == "idle"


def test_what_was_done_for_the_old_time_does_not_follow_and_the_office_confirms_again(service, clock):
    driver = ChatDriver(service, user="U1")
    old = start_move(driver)
    ref = f"noto|2026-11-25T10:00|{old['id']}"
    service.bookings.update(ref, {"office_confirmation": "confirmed", "meeting_sent_at": NOW, "reminder_sent_at": NOW})
    driver.tap(NEW)
    driver.tap("変更する")
    [new] = booked_of(driver)
    assert new["office_confirmation"] == "pending"
    assert "meeting_sent_at" not in new and "reminder_sent_at" not in new
    # The day before the new date, the moved booking is reminded (the old one, cancelled, is not).
    clock.instant = parse_instant("2026-11-25T17:00:00+09:00")
    sent = Reminders(service)(clock.now())
    assert [booking["id"] for booking, _ in sent] == [new["id"]]


def test_a_booking_waiting_for_consent_keeps_waiting_and_is_asked_again(service):
    driver = ChatDriver(service, user="U1")
    old = start_move(driver)
    ref = f"noto|2026-11-25T10:00|{old['id']}"
    asked = {"version": "2026-11-19", "asked_at": NOW, "confirmation": "confirmed"}
    service.bookings.update(ref, {"office_confirmation": "awaiting_consent", "reconsent": asked})
    driver.tap(NEW)
    driver.tap("変更する")
    [new] = booked_of(driver)
    assert new["office_confirmation"] == "awaiting_consent"
    # Asked again for the new booking (the first push's button names the old one); pending once given.
    assert new["reconsent"] == {"confirmation": "pending"}


def test_a_booking_cancelled_by_staff_meanwhile_is_not_moved(service, redis_client):
    driver = ChatDriver(service, user="U1")
    old = start_move(driver)
    driver.tap(NEW)
    StaffActions(service).cancel(f"noto|2026-11-25T10:00|{old['id']}", by="s-tester")
    driver.tap("変更する")
    assert "このご予約はすでにキャンセルされています。" in driver.last_text()
    assert driver.exchanges[-1].outcome.notices == []
    assert booked_of(driver) == []
    assert redis_client.scard(slot_redis_key("noto", NEW_KEY)) == 0
    assert driver.conversation_state() == "idle"


class RacingBookings(StoreBookings):
    """Before the move, another user takes the chosen slot (the race between the check and the move)."""

    def move(self, ref, slot, capacity, **kwargs):
        other = {"id": "OTHER1", "office": "noto", "slot": slot, "user": "U-other", "status": "booked",
                 "start": kwargs["changes"]["start"], "end": kwargs["changes"]["end"]}
        assert self.claim(other, capacity).ok
        return super().move(ref, slot, capacity, **kwargs)


def test_a_slot_taken_at_the_last_moment_keeps_the_old_booking_and_offers_the_picker_again(service, redis_client, clock):
    driver = ChatDriver(service, user="U1")
    old = start_move(driver)
    driver.tap(NEW)
    service.bookings = RacingBookings(service.client, service.settings.retention_days, clock)
    driver.tap("変更する")
    text = driver.last_text()
    assert "11月26日(木) 14:00〜14:30の枠は、ほかの方のご予約で埋まってしまいました。" in text
    assert "ご希望の日時を選んでください" in text and NEW not in driver.buttons()
    assert [b["id"] for b in booked_of(driver)] == [old["id"]]
    assert redis_client.smembers(slot_redis_key("noto", "2026-11-25T10:00")) == {old["id"]}
    assert driver.conversation_state() == "choosing_new_slot"


class InterleavingStore(ConversationStore):
    """The first save conflicts (another worker saved the user meanwhile): the turn runs again."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conflicts = 0

    def save(self, user, data, expected_version, **kwargs):
        if self.conflicts == 0:
            self.conflicts += 1
            current, version = self.load(user)
            super().save(user, current, version)  # bumps the version under the turn's feet
        return super().save(user, data, expected_version, **kwargs)


def test_a_turn_run_again_after_a_save_conflict_moves_once_and_notifies_once(service, redis_client):
    driver = ChatDriver(service, user="U1")
    start_move(driver)
    driver.tap(NEW)
    service.conversations = InterleavingStore(service.client, ttl_seconds=3600)
    driver.tap("変更する")
    assert service.conversations.conflicts == 1
    assert [n.kind for n in driver.exchanges[-1].outcome.notices] == ["rescheduled"]
    entries = [fields for _, fields in service.outbox.entries()]
    assert [entry["kind"] for entry in entries].count("rescheduled") == 1
    assert len(booked_of(driver)) == 1 and len(driver.bookings()) == 2
    assert redis_client.scard(slot_redis_key("noto", NEW_KEY)) == 1


def test_the_own_slot_of_a_larger_capacity_is_not_a_change(redis_client, offices, clock, make_profile):
    profiles = {**{office: offices[office] for office in offices}, "noto": make_profile("noto", schedule__capacity=2)}
    roomy = Offices(profiles, {office: offices.terms_text(office) for office in offices})
    service = BotService(load_settings(), client=redis_client, offices=roomy, clock=clock)
    driver = ChatDriver(service, user="U1")
    book_at_noto(driver, FIRST)
    driver.say("日時を変更する")
    driver.tap("日時変更 11/25 10:00")
    driver.tap(FIRST)
    assert "いまのご予約と同じ日時です。別の日時をお選びください。" in driver.last_text()
    assert driver.conversation_state() == "choosing_new_slot"


def test_a_move_can_start_in_the_middle_of_another_booking(service):
    """予約の確認 during a booking at another office: the booking in progress is left, the move works."""
    driver = ChatDriver(service, user="U1")
    old = book_at_noto(driver, FIRST)
    driver.say("予約する")
    driver.tap("ハローワーク出雲")
    driver.say("予約の確認")
    driver.tap("日時変更 11/25 10:00")
    driver.tap(NEW)
    driver.tap("変更する")
    assert "ご予約の日時を変更しました" in driver.last_text()
    [new] = booked_of(driver)
    assert new["office"] == "noto" and new["moved_from"].endswith(old["id"])


def test_a_waiting_user_typing_the_change_command_is_back_with_the_bot(service):
    driver = ChatDriver(service, user="U1")
    book_at_noto(driver, FIRST)
    driver.say("担当者と話したい")
    driver.say("日時を変更したい")
    assert [n.kind for n in driver.exchanges[-1].outcome.notices] == ["handoff_closed"]
    assert "日時変更 11/25 10:00" in driver.buttons()


def test_a_proposal_from_the_office_is_answered_first(service):
    driver = ChatDriver(service, user="U1")
    old = book_at_noto(driver, FIRST)
    service.bookings.update(f"noto|2026-11-25T10:00|{old['id']}", {"office_confirmation": "proposed"})
    driver.say("予約の確認")
    driver.tap("日時変更 11/25 10:00")
    assert "ハローワークから別の日時のご提案が届いています" in driver.last_text()
    assert driver.conversation_state() == "idle"


def test_a_forged_or_foreign_change_button_moves_nothing(service):
    owner = ChatDriver(service, user="U1")
    old = book_at_noto(owner, FIRST)
    intruder = ChatDriver(service, user="U2")
    intruder.send("postback", f"*|mv|noto|2026-11-25T10:00|{old['id']}", action="forged")
    assert "このご予約は見つかりませんでした。" in intruder.last_text()
    intruder.send("postback", "*|mv|garbage", action="forged")
    assert "このご予約は見つかりませんでした。" in intruder.last_text()
    assert [b["status"] for b in owner.bookings()] == ["booked"]


def moved_at_noto(driver: ChatDriver) -> tuple[dict, dict]:
    old = start_move(driver)
    driver.tap(NEW)
    driver.tap("変更する")
    [new] = booked_of(driver)
    return old, new


def test_data_deletion_after_a_move_cancels_the_moved_booking_and_erases_both_records(service, redis_client):
    driver = ChatDriver(service, user="U1")
    old, new = moved_at_noto(driver)
    driver.say("データを削除")
    assert "11月26日(木) 14:00〜14:30" in driver.last_text()
    driver.tap("削除する")
    assert [n.kind for n in driver.exchanges[-1].outcome.notices] == ["data_deleted"]
    for record in (service.bookings.get(f"noto|2026-11-25T10:00|{old['id']}"), service.bookings.get(f"noto|{NEW_KEY}|{new['id']}")):
        assert record["status"] == "cancelled"
        assert not set(record) & {"name", "number", "email", "phone"}
    assert redis_client.scard(slot_redis_key("noto", NEW_KEY)) == 0


def test_blocking_after_a_move_tells_staff_about_the_moved_booking_only(service):
    driver = ChatDriver(service, user="U1")
    old, new = moved_at_noto(driver)
    driver.unfollow()
    [notice] = driver.exchanges[-1].outcome.notices
    assert (notice.kind, notice.fields["booking_id"]) == ("user_blocked", new["id"])


# --- offices that take cancellations by phone and publish no number (Toyooka, Sakata) -----------


def book_at_toyooka(driver: ChatDriver) -> dict:
    driver.say("こんにちは")
    driver.tap("ハローワーク豊岡")
    driver.say("Maria Santos")
    driver.say("28010-12345678")
    for label in ("同席しない", "登録済み", "用意できる", "希望する", "はい", "11月30日(月) 14:30〜15:00", "同意する", "この内容で予約する"):
        driver.tap(label)
    [booked] = booked_of(driver)
    return booked


@pytest.mark.parametrize("button, reason, why", [
    ("キャンセル", "cancel_no_phone", "キャンセルを希望（案内できる電話番号なし）"),
    ("日時変更", "change_no_phone", "日時の変更を希望（案内できる電話番号なし）"),
])
def test_toyooka_hands_the_user_to_staff_who_cancel_in_the_console(redis_client, offices, clock, button, reason, why):
    service = BotService(load_settings(), client=redis_client, offices=offices, clock=clock)
    driver = ChatDriver(service, user="U1")
    booked = book_at_toyooka(driver)
    ref = f"toyooka|2026-11-30T14:30|{booked['id']}"
    driver.say("予約の確認")
    driver.tap(f"{button} 11/30 14:30")
    [notice] = driver.exchanges[-1].outcome.notices
    assert notice.kind == "handoff"
    assert notice.fields["reason"] == reason
    assert (notice.fields["ref"], notice.fields["booking_id"], notice.fields["slot"]) == (ref, booked["id"], "2026-11-30T14:30")
    assert "tel:" not in str(driver.exchanges[-1].replies)
    message = compose({"kind": "handoff", "office": "toyooka", "fields": notice.fields}, service.offices["toyooka"])
    assert ("予約番号", booked["id"]) in message.rows and ("理由", HANDOFF_REASONS[reason]) in message.rows
    # The console lists the waiting user, why, and the booking; staff cancel it there, the user is told.
    member = sign_in(create_app(service.settings, service=service), ("toyooka",))
    staff = member.client
    page = staff.get("/staff/handoffs").get_data(as_text=True)
    assert why in page and "/staff/booking?ref=toyooka" in page and booked["id"] in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', staff.get("/staff/booking?" + urlencode({"ref": ref})).get_data(as_text=True)).group(1)
    staff.post("/staff/booking/cancel", data={"csrf": csrf, "ref": ref}, follow_redirects=True)
    cancelled = service.bookings.get(ref)
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == member.account.id
    pushes = [fields for _, fields in service.outbox.entries() if fields.get("kind") == "push"]
    assert any("担当者によりキャンセルされました" in fields["messages"] for fields in pushes)


# --- through the webhook, with LINE credentials and a stand-in LINE API ------------------------


def test_a_move_through_the_webhook_sends_only_what_lines_spec_accepts(messaging_spec, redis_client, offices):
    user = "U" + "d" * 32
    with LineStandIn() as line:
        settings = load_settings(line_channel_secret="s", line_channel_access_token="t", line_api_host=line.url)
        service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
        client = SendingClient(create_app(settings, service=service).test_client(), service, line.url)

        def post(kind: str, text: str = "") -> None:
            body = webhook_body(event_json(user, kind, text))
            headers = {"X-Line-Signature": sign(body, "s")}
            assert client.post("/callback", data=body.encode(), content_type="application/json", headers=headers).status_code == 200

        def press(label: str) -> None:
            """The first postback button with this label in the last reply LINE received."""
            last = [r for r in line.requests if r.path == "/v2/bot/message/reply"][-1]
            found = [a for m in last.body["messages"] for shown, a in actions_of(m) if shown == label and a.get("type") == "postback"]
            assert found, f"no button {label!r}"
            post("postback", found[0]["data"])

        post("follow")
        press("ハローワーク能登")
        for text in NOTO_USER:
            post("text", text)
        for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい", "10:00〜10:30", "同意する", "この内容で予約する"):
            press(label)
        post("text", "予約の確認")
        press("日時変更 11/25 10:00")
        press("14:00〜14:30")
        press("変更する")
    [booked] = [b for b in service.bookings.for_user(user) if b["status"] == "booked"]
    assert booked["slot"] == "2026-11-25T14:00" and booked["moved_from"].startswith("noto|2026-11-25T10:00|")
    problems = []
    for request in line.requests:
        if request.path == "/v2/bot/message/reply":
            problems += validate_request(messaging_spec, "ReplyMessageRequest", request.body)
            problems += check_limits(request.body["messages"])
    assert problems == []
    kinds = [fields.get("kind") for _, fields in service.outbox.entries()]
    assert sorted(kinds) == ["booking", "rescheduled"]

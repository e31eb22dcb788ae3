"""Staff notices as staff see them: valid Block Kit and LINE messages, only what staff need, console links."""

from __future__ import annotations

import json
import uuid

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.testing.simulator import LiveServer, SimPhone
from bot.staff.notify import KINDS, compose, line_messages, plain_text, slack_blocks
from bot.staff.worker import Worker
from bot.testing.driver import ChatDriver, ManualClock
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.slack_standin import SlackStandIn, block_errors
from bot.web import create_app
from test_simulator import NOW as SIM_NOW, USER as SIM_USER, book_at_noto, simulator_settings

NOW = "2026-11-20T10:00:00+09:00"
PERSONAL = ("山田 花子", "12345-12345678", "1234512345678", "hanako@example.jp", "090-1234-5678", "09012345678")
USER = "U" + "7" * 32


def notice(kind: str, **fields: str) -> dict:
    return {"id": uuid.uuid4().hex, "kind": kind, "office": "noto", "summary": "", "fields": fields, "at": NOW}


def rendered(message) -> str:
    return json.dumps(slack_blocks(message), ensure_ascii=False) + plain_text(message)


def booked_notice(service: BotService) -> dict:
    """The outbox entry of a whole Noto booking typed with personal values."""
    driver = ChatDriver(service, user=USER)
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    for text in PERSONAL[0], PERSONAL[1], PERSONAL[3], PERSONAL[4]:
        driver.say(text)
    for label in ("職業相談", "通訳が同席する", "登録済み", "はい", "用意できる", "はい",
                  "11月25日(水) 10:00〜10:30", "同意する", "この内容で予約する"):
        driver.tap(label)
    [(_, raw)] = service.outbox.entries()
    return {**raw, "fields": json.loads(raw["fields"])}


def test_a_real_booking_notice_shows_what_staff_need_and_no_personal_data(service, offices):
    entry = booked_notice(service)
    message = compose(entry, offices["noto"], "https://hw.example")
    text = rendered(message)
    for value in (*PERSONAL, USER):
        assert value not in text
    rows = dict(message.rows)
    assert rows["事務所"] == offices["noto"].name
    assert rows["日時"] == "11月25日(水) 10:00〜10:30"
    assert rows["相談内容"] == "職業相談" and rows["通訳・介助者"] == "通訳が同席する"
    assert rows["予約番号"] == entry["fields"]["booking_id"]
    assert message.link.startswith("https://hw.example/staff/booking?ref=noto%7C2026-11-25T10%3A00%7C")


def test_personal_fields_and_summaries_are_never_rendered(offices):
    leaky = notice("cancellation", name=PERSONAL[0], phone=PERSONAL[4], email=PERSONAL[3], user_id=USER,
                   number=PERSONAL[1], slot="2026-11-25T10:00", booking_id="AB12")
    leaky["summary"] = f"キャンセル: {PERSONAL[0]} 11月25日(水) 10:00"
    text = rendered(compose(leaky, offices["noto"]))
    assert "予約がキャンセルされました" in text and "AB12" in text
    for value in (*PERSONAL, USER):
        assert value not in text


@pytest.mark.parametrize("kind", [*KINDS, "something_new"])
def test_every_kind_is_valid_block_kit_and_a_valid_line_message(kind, offices, messaging_spec):
    message = compose(notice(kind, ref="noto|2026-11-25T10:00|AB12", slot="2026-11-25T10:00", booking_id="AB12",
                             reason="stuck", category="3 <&>" * 100), offices["sakata"], "https://hw.example")
    assert block_errors({"blocks": slack_blocks(message)}) == []
    body = {"to": "C" + "a" * 32, "messages": line_messages(message)}
    assert validate_request(messaging_spec, "PushMessageRequest", body) == []
    assert check_limits(body["messages"]) == []


def test_kinds_have_their_own_wording_and_others_show_summary_and_fields(offices):
    handoff = compose(notice("handoff", reason="other_times", step="choosing_slot"), offices["izumo"], "https://hw.example/")
    assert handoff.title == "担当者への引き継ぎ依頼"
    assert ("理由", "案内時間以外の相談時間を希望") in handoff.rows
    assert handoff.link == "https://hw.example/staff/handoffs"
    other = notice("reminder_failed", booking_id="AB12", detail="x")
    other["summary"] = "リマインダーを送れませんでした"
    generic = compose(other, offices["noto"])
    assert generic.title == "リマインダーを送れませんでした"
    assert ("予約番号", "AB12") in generic.rows and ("detail", "x") in generic.rows
    assert generic.link is None  # neither a console URL nor HWBOT_PUBLIC_URL


def test_the_offices_console_url_wins_over_the_public_url(make_profile):
    profile = make_profile("noto", staff={"console_url": "https://console.noto.example"})
    message = compose(notice("no_show", ref="noto|2026-11-25T10:00|AB 1"), profile, "https://hw.example")
    assert message.link == "https://console.noto.example/staff/booking?ref=noto%7C2026-11-25T10%3A00%7CAB%201"


def test_a_booking_in_the_simulator_reaches_slack_as_block_kit(redis_client, offices):
    clock = ManualClock(parse_instant(SIM_NOW))
    with SlackStandIn() as slack:
        settings = simulator_settings().model_copy(update={"slack_webhook_url": slack.url})
        service = BotService(settings, client=redis_client, offices=offices, clock=clock)
        with LiveServer(create_app(settings, service=service)) as server:
            book_at_noto(SimPhone(server.url, SIM_USER))
        # The live server's worker sent it (as `hwbot serve` does); another worker finds nothing left.
        assert Worker(service, settings, consumer="sim").run_once(clock.now()) == {}
        [message] = slack.messages
    assert block_errors(message) == []
    assert message["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "新しい予約", "emoji": True}}
    text = json.dumps(message, ensure_ascii=False)
    assert "11月25日(水) 10:00〜10:30" in text
    for value in (*PERSONAL, SIM_USER):
        assert value not in text

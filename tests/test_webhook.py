"""POST /callback: signatures, Verify, redelivery and duplicates, Redis down, stale buttons, bad bodies."""

from __future__ import annotations

import json
import re

import pytest
import redis

from bot.channels.line.later import Later
from bot.channels.line.webhook import MalformedEvent, event_json, read_events, sign, webhook_body
from bot.clock import parse_instant
from bot.dialog import Inbound
from bot.service import BotService
from bot.settings import load_settings
from bot.testing.delivery import SendingClient
from bot.testing.driver import ChatDriver, ManualClock, to_noto_card
from bot.web import create_app

SECRET = "test-channel-secret"
TOKEN = "test-channel-token"
USER = "U" + "a" * 32
REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"


@pytest.fixture
def settings(line):
    return load_settings(
        line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.url
    )


@pytest.fixture
def service(settings, redis_client, offices):
    return BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant("2026-11-20T10:00")))


@pytest.fixture
def client(settings, service, line):
    """The app's test client; each accepted event's answer is sent by a worker cycle, as in production."""
    return SendingClient(create_app(settings, service=service).test_client(), service, line.url, TOKEN)


def post(client, body: str, secret: str = SECRET, **headers):
    signature = {"X-Line-Signature": sign(body, secret)} if secret else {}
    return client.post("/callback", data=body.encode(), headers={**signature, **headers},
                       content_type="application/json")


def texts_of(request) -> str:
    return json.dumps(request.body["messages"], ensure_ascii=False)


def test_text_event_gets_a_reply(client, line):
    response = post(client, webhook_body(event_json(USER, "text", "こんにちは")))
    assert response.status_code == 200
    [reply] = line.sent(REPLY)
    assert reply.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(reply.body["replyToken"]) == 32
    assert "ご利用になるハローワーク" in texts_of(reply)
    assert 1 <= len(reply.body["messages"]) <= 5


def test_verify_button_empty_events(client, line):
    response = post(client, webhook_body())
    assert response.status_code == 200
    assert line.requests == []


@pytest.mark.parametrize("secret", ["", "wrong-secret"])
def test_missing_or_wrong_signature_is_refused_and_changes_nothing(client, line, redis_client, secret):
    response = post(client, webhook_body(event_json(USER, "text", "こんにちは")), secret=secret)
    assert response.status_code == 400
    assert line.requests == []
    assert redis_client.keys("hwbot:*") == []


def test_signature_of_another_body_is_refused(client, line):
    body = webhook_body(event_json(USER, "text", "こんにちは"))
    response = client.post("/callback", data=body.replace("こんにちは", "やめる").encode(),
                           headers={"X-Line-Signature": sign(body, SECRET)})
    assert response.status_code == 400
    assert line.requests == []


@pytest.mark.parametrize("body", ["{", "[]", '{"events": "x"}', '{"events": [{"type": 3}]}', "\x00\xff"])
def test_malformed_bodies_are_400_never_500(client, line, redis_client, body):
    response = post(client, body)
    assert response.status_code == 400
    assert redis_client.keys("hwbot:*") == []


def test_oversized_body_is_413(client, line):
    big = webhook_body(event_json(USER, "text", "あ" * 200_000))
    response = post(client, big)
    assert response.status_code == 413
    assert line.requests == []


def test_duplicate_and_redelivered_events_have_no_second_effect(client, line, service):
    event = event_json(USER, "text", "こんにちは", event_id="01HWBOTDUPLICATE0000000000")
    assert post(client, webhook_body(event)).status_code == 200
    state_after_first, version = service.conversations.load(USER)
    event["deliveryContext"] = {"isRedelivery": True}
    assert post(client, webhook_body(event)).status_code == 200
    assert post(client, webhook_body(event)).status_code == 200
    assert service.conversations.load(USER) == (state_after_first, version)
    assert len(line.sent(REPLY)) == 1


@pytest.mark.parametrize("event_id", [" ", "a b", "{u:x}", "x" * 300, "日本語のID", "hwbot:event:#x"])
def test_an_event_id_that_cannot_be_a_key_as_it_is_is_hashed_and_still_deduplicated(client, line, redis_client, event_id):
    event = event_json(USER, "text", "こんにちは")
    event["webhookEventId"] = event_id
    assert post(client, webhook_body(event)).status_code == 200
    [marker] = redis_client.keys("hwbot:*:event:*")
    assert re.fullmatch(r"hwbot:\{o\d+\}:event:#[0-9a-f]{64}", marker)
    event["deliveryContext"] = {"isRedelivery": True}
    assert post(client, webhook_body(event)).status_code == 200
    assert len(line.sent(REPLY)) == 1


def test_an_empty_event_id_is_no_id(client, line, redis_client):
    """Nothing to recognise a repeat by: each delivery is answered (LINE always sends a ULID)."""
    event = event_json(USER, "text", "こんにちは")
    event["webhookEventId"] = ""
    assert post(client, webhook_body(event)).status_code == 200
    assert post(client, webhook_body(event)).status_code == 200
    assert len(line.sent(REPLY)) == 2
    assert redis_client.keys("hwbot:*:event:*") == []


def test_redis_down_is_503_then_the_redelivery_books_exactly_once(client, line, settings, service, offices):
    driver = ChatDriver(service, user=USER)
    book = to_noto_card(driver)
    event = event_json(USER, "postback", book.data, event_id="01HWBOTREDISDOWN0000000000")

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, decode_responses=True)
    down_service = BotService(settings, client=dead, offices=offices, clock=service.clock)
    down = create_app(settings, service=down_service).test_client()
    assert post(down, webhook_body(event)).status_code == 503
    assert line.sent(REPLY) == []
    assert driver.bookings() == []

    event["deliveryContext"] = {"isRedelivery": True}
    assert post(client, webhook_body(event)).status_code == 200
    assert post(client, webhook_body(event)).status_code == 200
    assert [b["slot"] for b in driver.bookings()] == ["2026-11-25T10:00"]
    [reply] = line.sent(REPLY)
    assert "ご予約を受け付けました" in texts_of(reply)
    kinds = [fields.get("kind") for _, fields in service.outbox.entries()]
    assert kinds.count("booking") == 1


def _options(driver):
    from bot.testing.driver import labelled_options

    return [pair for reply in driver.exchanges[-1].replies for pair in labelled_options(reply)]


def test_stale_button_is_answered_with_the_current_question(client, line, service):
    driver = ChatDriver(service, user=USER)
    driver.say("こんにちは")
    office_button = next(option for label, option in _options(driver) if label == "ハローワーク能登")
    driver.tap("ハローワーク能登")
    assert post(client, webhook_body(event_json(USER, "postback", office_button.data))).status_code == 200
    body = texts_of(line.sent(REPLY)[-1])
    assert "前の質問" in body and "お名前" in body
    assert service.conversations.load(USER)[0]["state"] == "asking_name"


def test_sticker_gets_a_polite_instruction(client, line):
    post(client, webhook_body(event_json(USER, "text", "こんにちは")))
    post(client, webhook_body(event_json(USER, "sticker")))
    assert "スタンプ" in texts_of(line.sent(REPLY)[-1])


def test_follow_greets_and_unfollow_forgets(client, line, service):
    post(client, webhook_body(event_json(USER, "follow")))
    assert "予約をお手伝いします" in texts_of(line.sent(REPLY)[-1])
    assert service.conversations.load(USER)[0] is not None
    post(client, webhook_body(event_json(USER, "unfollow")))
    assert service.conversations.load(USER) == (None, 0)
    assert len(line.sent(REPLY)) == 1  # an unfollow has no reply token


def test_failed_reply_is_pushed_instead_not_retried(client, line, service):
    line.failing[REPLY] = 500
    post(client, webhook_body(event_json(USER, "text", "こんにちは")))
    [reply] = line.sent(REPLY)  # tried once, never again
    [push] = line.sent(PUSH)
    assert push.body["to"] == USER and push.body["messages"] == reply.body["messages"]
    assert "ご利用になるハローワーク" in texts_of(push)
    assert client.sent[-1]["pushed_instead"] == 1 and "replied" not in client.sent[-1]
    assert service.outbox.settled()


def test_group_events_are_ignored(client, line):
    event = event_json(USER, "text", "こんにちは")
    event["source"] = {"type": "group", "groupId": "C" + "0" * 32, "userId": USER}
    assert post(client, webhook_body(event)).status_code == 200
    assert line.requests == []


def test_terms_page(client):
    page = client.get("/offices/noto/terms")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "金沢地方裁判所" in html and "令和5年5月8日改定" in html and 'name="viewport"' in html
    assert client.get("/offices/kyoto/terms").status_code == 404


def test_later_runs_calls_in_order_and_never_a_cancelled_one():
    import threading

    later, ran, done = Later(), [], threading.Event()
    cancel = later.call(0.1, ran.append, "cancelled")  # cancelled long before it is due
    cancel()
    later.call(0.1, ran.append, "first")
    later.call(0.1, lambda: (ran.append("second"), done.set()))
    assert done.wait(timeout=5)
    assert ran == ["first", "second"]


def test_later_never_waits_for_a_cancelled_call():
    """A turn cancels its loading call within milliseconds: the thread must not wake up for it."""
    import threading

    waits, waited = [], threading.Semaphore(0)

    class RecordingCondition(threading.Condition):
        def wait(self, timeout=None):
            waits.append(timeout)
            waited.release()
            return super().wait(timeout)

    later = Later()
    later._wake = RecordingCondition()
    cancel_far = later.call(60, print)  # the thread now waits about a minute
    assert waited.acquire(timeout=5)
    with later._wake:  # the thread cannot look before the call is cancelled
        later.call(0.01, print)()  # due first, so the thread is notified, but cancelled
    assert waited.acquire(timeout=5)
    cancel_far()
    assert len(waits) == 2 and all(timeout is not None and timeout > 30 for timeout in waits), waits


# --- reading events ------------------------------------------------------------------------------


def sdk_view(body: str):
    """What line-bot-sdk's own parser reads of `body`: the reference for `read_events`."""
    from linebot.v3 import WebhookParser
    from linebot.v3.webhooks import MessageEvent, PostbackEvent, TextMessageContent, UserSource

    result = []
    for event in WebhookParser(SECRET).parse(body, sign(body, SECRET)):
        source = getattr(event, "source", None)
        user = source.user_id if isinstance(source, UserSource) else None
        content = None
        if isinstance(event, MessageEvent):
            content = event.message.text if isinstance(event.message, TextMessageContent) else event.message.type
        elif isinstance(event, PostbackEvent):
            content = event.postback.data
        context = getattr(event, "delivery_context", None)
        result.append((event.type, user, content, event.webhook_event_id, getattr(event, "reply_token", None),
                       bool(getattr(context, "is_redelivery", False))))
    return result


@pytest.mark.parametrize("kind", ["text", "postback", "sticker", "follow", "unfollow"])
@pytest.mark.parametrize("redelivery", [False, True])
def test_read_events_reads_what_the_sdk_parser_reads(kind, redelivery):
    body = webhook_body(event_json(USER, kind, "こんにちは" if kind == "text" else "a=c&v=1", redelivery=redelivery))
    [event] = read_events(body)
    [(kind_seen, user, content, event_id, reply_token, redelivered)] = sdk_view(body)
    inbound = event.inbound
    assert (inbound.user, event.event_id, event.reply_token, event.redelivery) == (user, event_id, reply_token, redelivered)
    expected_kind = {"message": "media" if kind == "sticker" else "text"}.get(kind_seen, kind_seen)
    assert inbound.kind == expected_kind
    if content is not None:
        assert inbound.text == content


def test_read_events_reads_an_escaped_surrogate_pair():
    body = webhook_body(event_json(USER, "text", "x")).replace('"x"', '"\\ud83d\\ude00"')
    [event] = read_events(body)
    assert event.inbound.text == "\U0001f600"


def test_read_events_ignores_groups_rooms_and_unknown_types():
    group = event_json(USER, "text", "hi")
    group["source"] = {"type": "group", "groupId": "C" + "1" * 32, "userId": USER}
    beacon = {**event_json(USER, "follow"), "type": "beacon", "beacon": {"hwid": "d41d8cd98f", "type": "enter"}}
    body = webhook_body(group, beacon, event_json(USER, "text", "はい"))
    events = read_events(body)
    assert [event.inbound for event in events] == [None, None, Inbound(user=USER, kind="text", text="はい")]
    assert len(sdk_view(body)) == 3  # the SDK reads them too


@pytest.mark.parametrize("body", [
    "", "[]", "{}", '{"events": {}}', '{"events": [1]}', '{"events": [{"source": {}}]}',
    webhook_body({**event_json(USER, "text", "x"), "message": None}),
    webhook_body({**event_json(USER, "text", "x"), "message": {"type": "text"}}),
    webhook_body({**event_json(USER, "text", "x"), "message": {"type": "text", "text": 5}}),
    webhook_body({**event_json(USER, "postback", "x"), "postback": {}}),
    webhook_body({**event_json(USER, "text", "x"), "replyToken": 12}),
    webhook_body({**event_json(USER, "text", "x"), "source": "U1"}),
    webhook_body(event_json(USER, "text", "x")).replace('"x"', '"\\ud83d"'),  # half a surrogate pair
    webhook_body(event_json(USER, "text", "x")).replace('"x"', '"ok"').replace('"mode"', '"\\udc00"'),
])
def test_read_events_refuses_what_is_not_a_webhook_body(client, body):
    with pytest.raises(MalformedEvent):
        read_events(body)
    assert post(client, body).status_code == 400

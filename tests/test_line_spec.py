"""Everything the bot sends to LINE validates against LINE's OpenAPI spec and its documented limits.

The spec is read from `../shared/line-openapi/messaging-api.yml` (or `LINE_OPENAPI_DIR`), never copied
into the repo; the spec tests skip, saying why, where it is absent. The limits the spec leaves out
(5,000-character texts, 13 quick replies, 20-character labels, 300-character postback data, 12 bubbles,
altText) are checked always. Replies are taken from every scripted dialog in `dialogs/` (all five offices
and every kind of reply), and requests from a booking made through the real webhook.
"""

from __future__ import annotations

import copy

import pytest

from bot import i18n

from bot.channels.line.render import to_messages
from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.testing.simulator import actions_of
from bot.testing.driver import ManualClock
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.line_standin import LineStandIn
from bot.testing.scripts import run_script, script_paths
from bot.web import create_app
from bot.testing.delivery import SendingClient

BASE_URL = "https://hwbot.example.jp"
REPLY_TOKEN = "b60d432864f44d079f6d8efe86cf404b"
SCRIPTS = script_paths([REPO_ROOT / "dialogs"])
# The schema of each Messaging API call the bot makes.
SCHEMAS = {
    "/v2/bot/message/reply": "ReplyMessageRequest",
    "/v2/bot/message/push": "PushMessageRequest",
    "/v2/bot/chat/loading/start": "ShowLoadingAnimationRequest",
}


@pytest.fixture(scope="module")
def spec(messaging_spec):
    return messaging_spec


class RecordingService(BotService):
    """The real service, keeping every turn's outcome so its replies can be rendered and checked."""

    turns: list

    def handle(self, event, **kwargs):
        outcome = super().handle(event, **kwargs)
        if outcome is not None:
            self.turns.append((event, outcome))
        return outcome


@pytest.fixture(scope="module")
def scripted_turns(_redis_server, offices):
    """(script, user action, LINE messages) of every bot answer in every scripted dialog."""
    client = _redis_server.fresh()
    settings = load_settings()
    turns: list = []

    def make(clock):
        client.flushdb()
        service = RecordingService(settings, client=client, offices=offices, clock=clock)
        service.turns = turns
        return service

    rendered = []
    for path in SCRIPTS:
        start = len(turns)
        result = run_script(path, make)
        assert result.passed, f"{path.name}: {result.failures}"
        for event, outcome in turns[start:]:
            if outcome.replies:
                with i18n.using(outcome.conversation.lang):  # as the webhook renders it
                    messages = to_messages(outcome.replies, base_url=BASE_URL)
                rendered.append((path.stem, f"{event.kind}: {event.text[:40]}", messages))
    return rendered


def test_scripts_cover_every_kind_of_message(scripted_turns):
    kinds = set()
    for _, _, messages in scripted_turns:
        for message in messages:
            kinds.add(message["type"])
            if message["type"] == "flex":
                kinds.add("flex:" + message["contents"]["type"])
            if message.get("quickReply"):
                kinds.add("quickReply")
    assert {"text", "flex:bubble", "flex:carousel", "quickReply"} <= kinds
    assert len(scripted_turns) > 300


def test_every_scripted_reply_keeps_lines_documented_limits(scripted_turns):
    problems = [
        f"{script} ({action}): {error}"
        for script, action, messages in scripted_turns
        for error in check_limits(messages)
    ]
    assert problems == []


def test_every_scripted_reply_validates_against_the_spec(spec, scripted_turns):
    problems = []
    for script, action, messages in scripted_turns:
        body = {"replyToken": REPLY_TOKEN, "messages": messages}
        problems += [f"{script} ({action}): {error}" for error in validate_request(spec, "ReplyMessageRequest", body)]
    assert problems == []


def _first_flex(scripted_turns) -> dict:
    for _, _, messages in scripted_turns:
        for message in messages:
            if message["type"] == "flex":
                return copy.deepcopy(message)
    raise AssertionError("no flex message in the scripts")


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda m: m.update(altText=""), "altText"),
        (lambda m: m.update(altText="あ" * 401), "altText"),
        (lambda m: m.update(quickReply={"items": [
            {"type": "action", "action": {"type": "message", "label": "はい", "text": "はい"}}] * 14}),
         "quickReply.items"),
        (lambda m: m.update(quickReply={"items": [
            {"type": "action", "action": {"type": "postback", "label": "あ" * 21, "data": "x", "displayText": "x"}}]}),
         "label"),
        (lambda m: m.update(quickReply={"items": [
            {"type": "action", "action": {"type": "postback", "label": "はい", "data": "x" * 301, "displayText": "x"}}]}),
         "data"),
        (lambda m: m["contents"].update(type="carousel", contents=[{"type": "bubble"}] * 13), "bubbles"),
    ],
    ids=["empty-alt", "long-alt", "14-quick-replies", "long-label", "long-data", "13-bubbles"],
)
def test_the_limit_checks_catch_what_line_would_refuse(scripted_turns, breakage, expected):
    message = _first_flex(scripted_turns)
    breakage(message)
    errors = check_limits([message])
    assert errors and any(expected in error for error in errors), errors


def test_a_text_over_5000_characters_or_six_messages_are_refused():
    assert any("text" in error for error in check_limits([{"type": "text", "text": "あ" * 5001}]))
    assert any("messages" in error for error in check_limits([{"type": "text", "text": "はい"}] * 6))
    assert check_limits([{"type": "text", "text": "あ" * 5000}]) == []


def test_the_spec_check_catches_a_misspelt_or_missing_property(spec, scripted_turns):
    message = _first_flex(scripted_turns)
    message["alttext"] = message.pop("altText")
    errors = validate_request(spec, "ReplyMessageRequest", {"replyToken": REPLY_TOKEN, "messages": [message]})
    assert any("alttext" in error for error in errors) and any("altText" in error for error in errors), errors
    assert validate_request(spec, "PushMessageRequest", {"messages": [{"type": "text", "text": "はい"}]})


def test_every_request_of_a_webhook_booking_validates(spec, redis_client, offices):
    """A whole booking through POST /callback, tapping the buttons LINE received: every call validates."""
    user = "U" + "c" * 32
    with LineStandIn() as line:
        settings = load_settings(line_channel_secret="s", line_channel_access_token="t", line_api_host=line.url)
        service = BotService(settings, client=redis_client, offices=offices,
                             clock=ManualClock(parse_instant("2026-11-20T10:00")))
        client = SendingClient(create_app(settings, service=service).test_client(), service, line.url)

        def send(kind: str, text: str = "") -> None:
            body = webhook_body(event_json(user, kind, text))
            answer = client.post("/callback", data=body.encode(), content_type="application/json",
                                 headers={"X-Line-Signature": sign(body, "s")})
            assert answer.status_code == 200

        def tap(label: str) -> None:
            """Post back the button with this label from the last reply LINE received."""
            [last] = [r for r in line.requests if r.path == "/v2/bot/message/reply"][-1:]
            actions = [action for message in last.body["messages"] for shown, action in actions_of(message)
                       if shown == label and action.get("type") == "postback"]
            assert actions, f"no button {label!r}"
            send("postback", actions[0]["data"])

        send("follow")
        tap("ハローワーク能登")
        for text in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678"):
            send("text", text)
        for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい", "10:00〜10:30",
                      "同意する", "この内容で予約する"):
            tap(label)
        assert service.bookings.for_user(user), "the booking should be made"
        assert not line.sent("/v2/bot/message/push"), "every reply went through"
        line.failing["/v2/bot/message/reply"] = 500  # a failed reply is pushed instead, not retried
        send("text", "予約の確認")
        line.failing.clear()

    problems = []
    seen = set()
    for request in line.requests:
        if request.method == "GET":  # the user's LINE profile, asked once before the first greeting (no body)
            assert request.path.startswith("/v2/bot/profile/")
            continue
        schema = SCHEMAS.get(request.path)
        assert schema, f"unexpected call {request.path}"
        seen.add(request.path)
        problems += [f"{request.path}: {e}" for e in validate_request(spec, schema, request.body)]
        if "messages" in request.body:
            problems += [f"{request.path}: {e}" for e in check_limits(request.body["messages"])]
    assert "/v2/bot/message/reply" in seen and "/v2/bot/message/push" in seen  # the failed reply, pushed
    assert problems == []

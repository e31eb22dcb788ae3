"""Every webhook event LINE defines, from every source, gets the reaction the README promises.

The bodies are generated from LINE's own spec (`webhook.yml`, read from `LINE_OPENAPI_DIR` or
`../shared/line-openapi`, never copied here): every event type of `Event`'s discriminator, every
message content type, every source type, each with its optional fields absent and present, in
active and in standby mode. Each is signed and posted to the real webhook, on a real Redis, with
the stand-in LINE recording what the bot sends.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest

from bot.channels.line.webhook import event_json, read_events, sign, webhook_body
from bot.clock import parse_instant
from bot.dialog import texts as T
from bot.service import BotService
from bot.settings import load_settings
from bot.store.conversations import event_key
from bot.store.outbox import SHARDS_KEY
from bot.store.shards import outbox_key
from bot.testing.delivery import SendingClient
from bot.testing.driver import ManualClock
from bot.testing.line_spec import WEBHOOK_SPEC_FILE, check_limits, examples, load_spec, validate_request
from bot.testing.line_standin import LineStandIn
from bot.web import create_app
from line_openapi import SPEC_DIR, spec_missing
from test_webhook import SECRET, sdk_view

USER = "U" + "5" * 32
GROUP = "C" + "6" * 32
ROOM = "R" + "7" * 32
REPLY, PUSH = "/v2/bot/message/reply", "/v2/bot/message/push"
VALUES = {"userId": USER, "groupId": GROUP, "roomId": ROOM, "text": "こんにちは", "data": "action=hello",
          "replyToken": "0f3779fba3b349968c5d07db31eab56f", "destination": "U" + "0123456789abcdef" * 2}
SPEC_MISSING = spec_missing(WEBHOOK_SPEC_FILE)
SPEC = None if SPEC_MISSING else load_spec(SPEC_DIR, WEBHOOK_SPEC_FILE)  # read at collection: it names the cases
needs_spec = pytest.mark.skipif(SPEC is None, reason=SPEC_MISSING or "")

# The product decisions (README "The webhook"): (event kind, source) -> reaction, in active mode.
# In standby mode every event gets "nothing" but a user's unfollow, which still erases their data.
# Any pair not listed: "nothing" (200, no call to LINE, no change in Redis).
REACTIONS = {
    ("message:text", "user"): "dialog",
    **{(f"message:{media}", "user"): "media" for media in ("image", "video", "audio", "file", "location", "sticker")},
    ("postback", "user"): "dialog",
    ("follow", "user"): "greet",
    ("unfollow", "user"): "erase",
    ("join", "group"): "join",
    ("join", "room"): "join",
}


def kind_of(event: dict) -> str:
    return f"message:{event['message']['type']}" if event["type"] == "message" else event["type"]


def source_of(event: dict) -> str:
    source = event.get("source")
    return source["type"] if source else "none"


def expected(event: dict) -> str:
    """The reaction an event must get (what the README says, written as a table, not as the code is)."""
    source = event.get("source") or {}
    if source.get("type") == "user" and "userId" not in source:
        return "nothing"  # the spec makes userId optional; without it there is no one to answer
    reaction = REACTIONS.get((kind_of(event), source_of(event)), "nothing")
    if event["mode"] == "standby" and reaction != "erase":
        return "nothing"
    return reaction


def spec_events() -> list[dict]:
    """Every event the spec shows, its optional fields absent and present, once per source and mode."""
    events = []
    sources = [None] + [source for optional in (False, True)
                        for source in examples(SPEC, "Source", optional=optional, values=VALUES)]
    for optional in (False, True):
        for event in examples(SPEC, "Event", optional=optional, values=VALUES):
            for source in sources:
                for mode in ("active", "standby"):
                    shaped = {**copy.deepcopy(event), "mode": mode}
                    shaped.pop("source", None)
                    if source is not None:
                        shaped["source"] = copy.deepcopy(source)
                    events.append(shaped)
    return events


EVENTS = spec_events() if SPEC else []
GROUPS = sorted({(kind_of(e), source_of(e), e["mode"]) for e in EVENTS})


@pytest.fixture(scope="module")
def webhook(_redis_server, offices):
    """(test client, stand-in LINE, service, Redis) shared by the module; each case starts from an empty Redis."""
    with LineStandIn() as line:
        settings = load_settings(line_channel_secret=SECRET, line_channel_access_token="t", line_api_host=line.url)
        client = _redis_server.fresh()
        service = BotService(settings, client=client, offices=offices,
                             clock=ManualClock(parse_instant("2026-11-20T10:00")))
        # Each accepted event's answer is sent by a worker cycle, as `hwbot worker` does.
        yield SendingClient(create_app(settings, service=service).test_client(), service, line.url), line, service, client


@pytest.fixture
def fresh(webhook):
    """The shared webhook with an empty Redis and nothing recorded."""
    app, line, service, client = webhook
    client.flushdb()
    line.requests.clear()
    line.failing.clear()
    return webhook


def post(app, body: str):
    return app.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, SECRET)},
                    content_type="application/json")


def keyspace(client) -> dict:
    return {key: client.dump(key) for key in client.keys("*")}


def replies(line) -> str:
    return json.dumps([r.body["messages"] for r in line.sent(REPLY)], ensure_ascii=False)


def start_conversation(app, line, client):
    """A conversation under way for USER (something a wrong reaction could change or erase)."""
    client.flushdb()
    assert post(app, webhook_body(event_json(USER, "text", "こんにちは"))).status_code == 200
    line.requests.clear()


@needs_spec
def test_the_generated_events_cover_the_spec_and_validate_against_it():
    mapping = SPEC["components"]["schemas"]["Event"]["discriminator"]["mapping"]
    contents = SPEC["components"]["schemas"]["MessageContent"]["discriminator"]["mapping"]
    kinds = {kind for kind, _, _ in GROUPS}
    assert kinds == {kind for kind in mapping if kind != "message"} | {f"message:{c}" for c in contents}
    assert {source for _, source, _ in GROUPS} == {"user", "group", "room", "none"}
    problems = []
    for event in EVENTS:
        body = {"destination": VALUES["destination"], "events": [event]}
        problems += [f"{kind_of(event)}: {error}" for error in validate_request(SPEC, "CallbackRequest", body)]
    assert problems == []
    # Optional fields were shown both ways: a text message with and without its emojis and mentions.
    texts = [event["message"] for event in EVENTS if kind_of(event) == "message:text"]
    assert any("mention" in m for m in texts) and any("mention" not in m for m in texts)


@needs_spec
@pytest.mark.parametrize("kind", sorted({kind for kind, _, _ in GROUPS}) or ["spec missing"])
def test_read_events_reads_every_spec_event_as_the_sdk_parser_does(kind):
    """Where the SDK's parser reads an event, `read_events` reads the same user, content and ids."""
    compared = 0
    for event in (e for e in EVENTS if kind_of(e) == kind):
        body = webhook_body(event)
        [seen] = read_events(body)
        [(type_, user, content, event_id, reply_token, redelivery)] = sdk_view(body)
        assert (type_, event_id, reply_token, redelivery) == (seen.kind, seen.event_id, seen.reply_token, seen.redelivery)
        if seen.inbound is not None:
            assert seen.inbound.user == user
            if content is not None:
                assert seen.inbound.text == content
            compared += 1
    assert compared or expected_nothing_for(kind)


def expected_nothing_for(kind: str) -> bool:
    return all(expected(e) in ("nothing", "join") for e in EVENTS if kind_of(e) == kind)


@needs_spec
@pytest.mark.parametrize("kind, source, mode", GROUPS or [("spec missing", "", "")])
def test_each_spec_event_gets_the_reaction_the_readme_promises(fresh, kind, source, mode, caplog):
    app, line, service, client = fresh
    cases = [e for e in EVENTS if (kind_of(e), source_of(e), e["mode"]) == (kind, source, mode)]
    assert cases
    caplog.set_level(logging.INFO)
    under_way = False
    for number, event in enumerate(cases):
        event = {**event, "webhookEventId": f"01HWBOTSPEC{number:015d}"}
        reaction = expected(event)
        if reaction in ("dialog", "media", "greet"):
            client.flushdb()  # a new user: the greeting is the answer to expect
        elif not under_way:
            start_conversation(app, line, client)
        under_way = reaction == "nothing"  # (checked below to have changed nothing)
        line.requests.clear()
        before = keyspace(client)
        response = post(app, webhook_body(event))
        assert response.status_code == 200, (reaction, event)
        check = CHECKS[reaction]
        check(line=line, service=service, client=client, before=before, event=event)
    logged = caplog.text
    assert USER not in logged and "こんにちは" not in logged and "action=hello" not in logged


def _nothing(*, line, client, before, event, **_):
    assert line.requests == [], event
    assert keyspace(client) == before, event


def _answered(line, service, event, needle: str) -> None:
    """One reply saying `needle`; without a reply token (optional in the spec) the worker pushes it."""
    if "replyToken" in event:
        [reply] = line.sent(REPLY)
        assert 1 <= len(reply.body["messages"]) <= 5
        assert needle in replies(line), needle
        assert line.sent(PUSH) == []
    else:
        assert line.sent(REPLY) == []
        [push] = line.sent(PUSH)
        assert push.body["to"] == USER and needle in json.dumps(push.body["messages"], ensure_ascii=False)


def _dialog(*, line, service, event, **_):
    _answered(line, service, event, T.CHOOSE_OFFICE)
    assert service.conversations.load(USER)[0] is not None, event


def _media(*, line, service, event, **_):
    _answered(line, service, event, T.MEDIA)


def _greet(*, line, service, event, **_):
    _answered(line, service, event, "予約をお手伝いします")
    assert service.conversations.load(USER)[0] is not None, event


def _erase(*, line, service, event, **_):
    assert line.requests == [], event
    assert service.conversations.load(USER) == (None, 0), event


def _join(*, line, service, client, before, event, **_):
    [reply] = line.sent(REPLY)
    [message] = reply.body["messages"]
    chat = event["source"]["groupId" if event["source"]["type"] == "group" else "roomId"]
    assert message["type"] == "text" and "1対1" in message["text"] and chat in message["text"]
    assert reply.body["replyToken"] == event["replyToken"]
    # The only changes in Redis: the event is marked processed (its redelivery is not answered twice),
    # and the outbox that carried the reply (the entry itself is deleted once sent).
    new = set(keyspace(client)) - set(before)
    shard = service.outbox.shard(chat)  # the group's shard keeps its marker and carried its answer
    marker = event_key(shard, event["webhookEventId"])
    assert marker in new
    assert all(key.startswith(outbox_key(shard)) for key in new - {marker} if ":outbox" in key), new
    assert all(":outbox" in key or key == SHARDS_KEY for key in new - {marker}), new
    assert client.xlen(outbox_key(shard)) == 0 and service.outbox.settled()
    assert all(keyspace(client)[key] == value for key, value in before.items() if ":outbox" not in key)


CHECKS = {"nothing": _nothing, "dialog": _dialog, "media": _media, "greet": _greet, "erase": _erase, "join": _join}


# --- beyond the spec's examples ------------------------------------------------------------------


def join_event(chat: str = GROUP, *, event_id: str = "01HWBOTJOIN000000000000000") -> dict:
    source = {"type": "group", "groupId": chat} if chat.startswith("C") else {"type": "room", "roomId": chat}
    return {"type": "join", "mode": "active", "timestamp": 1, "source": source, "webhookEventId": event_id,
            "replyToken": "8cf9239d56244f4197887e939187e19e", "deliveryContext": {"isRedelivery": False}}


def test_a_join_is_answered_once_even_when_redelivered(fresh):
    app, line, service, client = fresh
    event = join_event(ROOM)
    assert post(app, webhook_body(event)).status_code == 200
    event["deliveryContext"] = {"isRedelivery": True}
    assert post(app, webhook_body(event)).status_code == 200
    [reply] = line.sent(REPLY)
    text = reply.body["messages"][0]["text"]
    assert "このトーク" in text and ROOM in text and "staff.notify.line_group_id" in text


def test_a_failed_join_reply_is_pushed_to_the_group_instead(fresh):
    app, line, service, client = fresh
    line.failing[REPLY] = 500
    assert post(app, webhook_body(join_event())).status_code == 200
    line.failing.clear()
    [push] = line.sent(PUSH)
    assert push.body["to"] == GROUP and "このグループ" in push.body["messages"][0]["text"]
    assert app.sent[-1]["pushed_instead"] == 1


def test_a_join_with_an_id_that_a_profile_would_refuse_does_not_offer_it(fresh):
    app, line, service, client = fresh
    assert post(app, webhook_body(join_event("C-not-a-group-id"))).status_code == 200
    [reply] = line.sent(REPLY)
    text = reply.body["messages"][0]["text"]
    assert "1対1" in text and "C-not-a-group-id" not in text and "line_group_id" not in text


@pytest.mark.parametrize("change", [
    {"type": "somethingLineAddsLater"},
    {"type": "messageEdited"},  # the SDK knows it; this spec does not
    {"source": {"type": "channel", "userId": USER}},
    {"source": {"type": "user", "userId": "U{not-a-user}"}},
    {"source": {"type": "user"}},
    {"source": {"type": "group"}},
    {"mode": "standby"},
    {"mode": "paused"},
], ids=["unknown-type", "messageEdited", "unknown-source", "odd-user-id", "no-user-id", "group-without-id",
        "standby", "unknown-mode"])
def test_events_the_bot_does_not_take_are_200_and_change_nothing(fresh, change, caplog):
    app, line, service, client = fresh
    start_conversation(app, line, client)
    before = keyspace(client)
    caplog.set_level(logging.INFO, logger="hwbot.webhook")
    event = {**event_json(USER, "text", "やめる"), **change}
    assert post(app, webhook_body(event)).status_code == 200
    assert line.requests == [] and keyspace(client) == before
    assert "webhook_ignored" in caplog.text and USER not in caplog.text and "{not-a-user}" not in caplog.text


def test_staff_chatter_in_a_group_is_not_answered_and_logged_without_personal_data(fresh, caplog):
    app, line, service, client = fresh
    caplog.set_level(logging.INFO)
    for kind, text in (("text", "予約したい"), ("postback", "1|o|noto"), ("sticker", "")):
        event = event_json(USER, kind, text)
        event["source"] = {"type": "group", "groupId": GROUP, "userId": USER}
        assert post(app, webhook_body(event)).status_code == 200
    assert line.requests == [] and client.keys("*") == []
    assert caplog.text.count("webhook_ignored type=message source=group mode=active") == 2
    assert "webhook_ignored type=postback source=group mode=active" in caplog.text
    assert USER not in caplog.text and "予約したい" not in caplog.text


@needs_spec
@pytest.mark.parametrize("kind", ["text", "postback", "sticker", "follow", "unfollow"])
def test_the_events_the_simulator_and_tests_send_are_shaped_as_the_spec_says(kind):
    body = json.loads(webhook_body(event_json(USER, kind, "こんにちは")))
    assert validate_request(SPEC, "CallbackRequest", body) == []


def test_the_join_reply_follows_lines_spec_and_limits(fresh, messaging_spec):
    app, line, service, client = fresh
    assert post(app, webhook_body(join_event())).status_code == 200
    [reply] = line.sent(REPLY)
    assert validate_request(messaging_spec, "ReplyMessageRequest", reply.body) == []
    assert check_limits(reply.body["messages"]) == []

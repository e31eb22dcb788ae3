"""The webhook never waits for LINE: each event's answer is saved with its turn and sent by the worker,
with the reply token while it is fresh, else pushed; once; a user's answers in order."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest
from freezegun import freeze_time

from bot.channels.line import replies
from bot.channels.line.api import LineMessaging
from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.service import BotService
from bot.settings import load_settings
from bot.staff import worker as worker_module
from bot.staff.worker import Lanes, Worker
from bot.store.conversations import last_reply_key
from bot.store.outbox import Entry
from bot.store.shards import outbox_key
from bot.testing.standin import Stall
from bot.web import create_app
from test_worker import kill_at_stall, redis_url, start_worker, wait_for  # noqa: F401 (redis_url is a fixture)

SECRET = "answers-secret"
TOKEN = "answers-token"
USER = "U" + "e" * 32
REPLY, PUSH, LOADING = "/v2/bot/message/reply", "/v2/bot/message/push", "/v2/bot/chat/loading/start"


@pytest.fixture
def settings(line):
    return load_settings(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.url,
                         worker_lease_seconds=0)


@pytest.fixture
def service(settings, redis_client, offices, clock):
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def app(settings, service):
    return create_app(settings, service=service).test_client()


def post(app, *events):
    body = webhook_body(*events)
    return app.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, SECRET)},
                    content_type="application/json")


def make_worker(service, line, consumer: str = "w1") -> Worker:
    return Worker(service, service.settings, consumer=consumer, line=LineMessaging(line.url, TOKEN))


def queued(service) -> list[Entry]:
    shard = service.outbox.shard(USER)  # everything here is USER's: in USER's shard
    return [Entry(stream_id, fields, shard) for stream_id, fields in reversed(service.outbox.entries())]


def sent(line) -> list:
    """What the stand-in LINE was sent (its POSTs): a first greeting's profile GET left out."""
    return [request for request in line.requests if request.method == "POST"]


def text(request) -> str:
    return json.dumps(request.body["messages"], ensure_ascii=False)


def test_the_webhook_saves_the_answer_with_the_turn_and_calls_no_one(app, line, service):
    event = event_json(USER, "text", "こんにちは")
    with freeze_time("2026-11-20T01:00:00Z"):
        assert post(app, event).status_code == 200
    assert line.requests == []  # no reply, no loading animation: LINE is never waited for
    [entry] = queued(service)
    assert entry.kind == "reply" and entry.raw["to"] == USER and entry.raw["token"] == event["replyToken"]
    received = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc).timestamp()
    assert float(entry.raw["received"]) == received  # the real clock, when the webhook got it
    assert entry.raw["after"] == ""  # the user's first answer
    assert "ご利用になるハローワーク" in entry.raw["messages"]
    assert service.client.get(last_reply_key(service.outbox.shard(USER), USER)) == entry.id
    with freeze_time("2026-11-20T01:00:49Z"):  # 49 s later: the token is still fresh
        stats = make_worker(service, line).run_once(service.clock.now())
    assert stats == {"delivered": 1, "replied": 1}
    # The first greeting: the worker asks LINE for the user's profile language first (it has none here).
    assert entry.raw["profile"] == "1"
    profile, reply = line.requests
    assert (profile.method, profile.path) == ("GET", f"/v2/bot/profile/{USER}")
    assert reply.path == REPLY and reply.body["replyToken"] == event["replyToken"]
    assert reply.body["messages"] == json.loads(entry.raw["messages"])
    assert service.client.xlen(outbox_key(service.outbox.shard(USER))) == 0 and service.outbox.settled()  # deleted once sent


def test_an_answer_whose_token_has_expired_is_pushed_once(service, line):
    messages = [{"type": "text", "text": "お待たせしました。"}]
    service.outbox.add(replies.reply_entry(USER, "expired-token", messages, at=service.clock.now().isoformat(),
                                           received=time.time() - replies.REPLY_WINDOW_S - 1))
    worker = make_worker(service, line)
    assert worker.run_once(service.clock.now()) == {"delivered": 1, "pushed_instead": 1}
    [push] = line.requests
    assert push.path == PUSH and push.body["to"] == USER and push.body["messages"] == messages
    assert push.headers["X-Line-Retry-Key"]  # a retried push is delivered once by LINE
    assert worker.run_once(service.clock.now()) == {}  # nothing left, nothing sent again
    assert service.pushes.month(f"{service.clock.now():%Y-%m}")["user"] == 1  # counted as a push


def test_a_worker_that_took_the_answer_and_stopped_leaves_one_push(app, line, service):
    """Killed between the turn and the reply: its restart (or another worker, after the lease) pushes it."""
    event = event_json(USER, "text", "こんにちは")
    assert post(app, event).status_code == 200
    [taken] = service.outbox.read_new("w1") if service.outbox.ensure_group() is None else []
    assert taken.kind == "reply"  # taken by w1, which dies before sending
    other = make_worker(service, line, consumer="w2")  # the lease is 0 s here: w2 takes it over
    assert other.run_once(service.clock.now()) == {"delivered": 1, "pushed_instead": 1}
    [push] = line.requests
    assert push.path == PUSH and push.body["to"] == USER and "ご利用になるハローワーク" in text(push)
    assert make_worker(service, line, consumer="w1").run_once(service.clock.now()) == {}
    assert [request.path for request in line.requests] == [PUSH]  # one answer, the token never used


def test_a_worker_process_killed_mid_reply_is_followed_by_exactly_one_answer(app, line, service, redis_url, tmp_path):
    """A real `hwbot worker` killed while LINE holds its reply (never accepted); the restarted one pushes."""
    line.stall = stall = Stall(1)
    assert post(app, event_json(USER, "text", "こんにちは")).status_code == 200
    env = {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
           "LINE_API_HOST": line.url, "HWBOT_NOW": ""}
    log = tmp_path / "worker.log"
    kill_at_stall(env, stall, log)  # the held reply is dropped unanswered: LINE never accepted it
    second = start_worker(env, log)
    try:
        wait_for(lambda: len(sent(line)) == 2 and service.outbox.settled())
    finally:
        second.terminate()
        assert second.wait(10) == 0, log.read_text()
    reply, push = sent(line)  # (the first worker asked LINE for the profile before its reply)
    assert reply.path == REPLY and push.path == PUSH  # the token was tried once; the answer pushed once
    assert push.body["messages"] == reply.body["messages"] and push.body["to"] == USER


def test_two_events_of_one_user_in_one_body_are_answered_in_order(app, line, service):
    assert post(app, event_json(USER, "text", "こんにちは"), event_json(USER, "text", "ハローワーク能登")).status_code == 200
    first, second = queued(service)
    assert second.raw["after"] == first.id  # the second answer names the first
    assert make_worker(service, line).run_once(service.clock.now()) == {"delivered": 2, "replied": 2}
    assert [request.path for request in line.requests] == [f"/v2/bot/profile/{USER}", REPLY, REPLY]
    assert "ご利用になるハローワーク" in text(sent(line)[0]) and "お名前" in text(sent(line)[1])


def test_a_lane_runs_its_jobs_one_after_another_while_other_lanes_run():
    lanes = Lanes(4)
    started: list[str] = []
    release = threading.Event()
    other_done = threading.Event()

    def job(name: str, wait: threading.Event | None = None, done: threading.Event | None = None):
        def run() -> None:
            started.append(name)
            if wait is not None:
                assert wait.wait(10)
            if done is not None:
                done.set()
        return run

    lanes.submit("to:A", job("A1", wait=release))
    lanes.submit("to:A", job("A2"))
    lanes.submit("to:B", job("B1", done=other_done))
    assert other_done.wait(10)  # B's lane went ahead while A1 is still running
    assert "A2" not in started and lanes.busy == 2
    release.set()
    assert lanes.wait(timeout=10)
    assert started.index("A1") < started.index("A2") and lanes.busy == 0
    lanes.shutdown()


def test_across_workers_an_answer_waits_for_the_users_previous_one(app, line, service, monkeypatch):
    """Two quick taps whose answers two worker processes took: the second goes out after the first."""
    assert post(app, event_json(USER, "text", "こんにちは")).status_code == 200
    service.outbox.ensure_group()
    [first] = service.outbox.read_new("A")  # worker A took the first answer and is slow to send it
    assert post(app, event_json(USER, "text", "ハローワーク能登")).status_code == 200
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # B polls for A's answer: tell the test it is waiting
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(worker_module.time, "sleep", sleep)
    patient = service.settings.model_copy(update={"worker_lease_seconds": 60})  # B does not take A's entry
    b = Worker(service, patient, consumer="B", line=LineMessaging(line.url, TOKEN))
    results: list[dict] = []
    thread = threading.Thread(target=lambda: results.append(b.run_once(service.clock.now())))
    thread.start()
    try:
        assert waiting.wait(10)  # B holds the second answer back
        assert line.requests == []
        a = Worker(service, patient, consumer="A", line=LineMessaging(line.url, TOKEN))
        assert a.run_once(service.clock.now()) == {"delivered": 1, "pushed_instead": 1}  # A's restart
    finally:
        thread.join(10)
    assert results == [{"delivered": 1, "replied": 1}]
    push, reply = line.requests
    assert push.path == PUSH and "ご利用になるハローワーク" in text(push)
    assert reply.path == REPLY and "お名前" in text(reply)


def test_an_answer_waiting_for_a_sender_shows_the_loading_animation(service, line):
    """The user's lane is busy (LINE holds the previous call): the animation shows until the answer goes out."""
    line.stall = stall = Stall(1)
    now = service.clock.now().isoformat()
    service.outbox.add(replies.reply_entry(USER, "t1", [{"type": "text", "text": "一つ目"}], at=now))
    service.outbox.add(replies.reply_entry(USER, "t2", [{"type": "text", "text": "二つ目"}], at=now,
                                           received=time.time() - replies.LOADING_AFTER_S + 0.05))
    worker = make_worker(service, line)
    thread = threading.Thread(target=worker.run_once, args=(service.clock.now(),))
    thread.start()
    try:
        assert stall.arrived.wait(10)
        wait_for(lambda: any(request.path == LOADING for request in line.requests), timeout=10)
    finally:
        stall.release()
        thread.join(10)
    paths = [request.path for request in line.requests]
    assert paths.index(LOADING) < paths.index(REPLY, 1)  # the animation, then the second answer
    [loading] = [request for request in line.requests if request.path == LOADING]
    assert loading.body["chatId"] == USER


def test_a_busy_lane_gives_its_thread_back_between_jobs():
    """One thread, a user with two answers queued and another user with one: they take turns, so a user
    who keeps writing cannot keep the others waiting (the bench showed 2 s stalls before)."""
    lanes = Lanes(1)
    order: list[str] = []
    release = threading.Event()

    def job(name: str, wait: threading.Event | None = None):
        def run() -> None:
            if wait is not None:
                assert wait.wait(10)
            order.append(name)
        return run

    lanes.submit("to:A", job("A1", wait=release))
    lanes.submit("to:A", job("A2"))
    lanes.submit("to:B", job("B1"))
    release.set()
    assert lanes.wait(timeout=10)
    assert order == ["A1", "B1", "A2"]
    lanes.shutdown()

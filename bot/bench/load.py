"""The HTTP load: signed webhook events sent closed loop (throughput) or open loop (latency)."""

from __future__ import annotations

import http.client
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

OPEN_LOOP_SENDERS = 64  # threads that send paced events (enough for a slow second at 200/s)
REQUEST_TIMEOUT_S = 10.0


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

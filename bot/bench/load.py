"""The HTTP load: signed webhook events sent closed loop (throughput) or open loop (latency)."""

from __future__ import annotations

import http.client
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

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


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


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
        return percentile(self.latencies_ms, p)

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


# The production-shaped run: each event waits for its answer at the stand-in LINE, not only its HTTP answer.

ANSWER_TIMEOUT_S = 10.0  # an event whose answer has not reached LINE by then is lost (the user moves on)


@dataclass(frozen=True)
class BenchEvent:
    """One signed webhook event, with what its answer at LINE is recognised by."""

    body: bytes
    signature: str
    user: str
    reply_token: str


@dataclass
class AnsweredResult:
    """What a closed loop that waits for each answer at LINE measured."""

    events: int = 0  # events sent
    errors: int = 0  # non-200 answers or failed connections
    answered: int = 0  # answers (a reply with the event's token, or a push to its user) within the bound
    lost: int = 0  # no answer within ANSWER_TIMEOUT_S
    sent_twice: int = 0  # a token replied twice, or a reply and a push for one event (after `settle`)
    pushes_instead: int = 0  # events answered by a push rather than their reply (after `settle`)
    users_started: int = 0
    users_done: int = 0  # users who sent their whole script
    seconds: float = 0.0  # from the first event sent to the last answer at LINE
    last_answer: float = 0.0  # monotonic arrival of the last answer at LINE
    webhook_ms: list[float] = field(default_factory=list)  # HTTP answer time of each event
    answer_ms: list[float] = field(default_factory=list)  # event sent -> its answer reached LINE
    sent: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (user, reply token) of each event
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, event: BenchEvent, status: int, webhook_ms: float, answer_at: float | None, sent: float) -> None:
        """One event sent at `sent` (monotonic), answered at LINE at `answer_at` (None: lost)."""
        with self._lock:
            self.events += 1
            self.errors += status != 200
            self.webhook_ms.append(webhook_ms)
            self.sent.append((event.user, event.reply_token))
            if answer_at is None:
                self.lost += 1
            else:
                self.answered += 1
                self.answer_ms.append((answer_at - sent) * 1000)
                self.last_answer = max(self.last_answer, answer_at)

    def user(self, *, started: bool = False, done: bool = False) -> None:
        with self._lock:
            self.users_started += started
            self.users_done += done

    def settle(self, arrivals: Any) -> None:
        """Count doubles and pushes from everything that reached the stand-in (call once the app stopped).

        Per user: a token with n replies was replied n-1 times too often; pushes to the user answer
        its unreplied events (pushes instead of replies), and pushes beyond those doubled an answer.
        """
        tokens: dict[str, list[str]] = {}
        for user, token in self.sent:
            tokens.setdefault(user, []).append(token)
        twice = instead = 0
        for user, user_tokens in tokens.items():
            replies = [arrivals.reply_count(token) for token in user_tokens]
            twice += sum(max(0, count - 1) for count in replies)
            unreplied = sum(1 for count in replies if count == 0)
            pushes = arrivals.push_count(user)
            instead += min(pushes, unreplied)
            twice += max(0, pushes - unreplied)
        self.sent_twice, self.pushes_instead = twice, instead

    @property
    def events_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "answered": self.answered,
            "errors": self.errors,
            "lost": self.lost,
            "sent_twice": self.sent_twice,
            "pushes_instead": self.pushes_instead,
            "users_started": self.users_started,
            "users_done": self.users_done,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events_per_s, 1),
            **{f"webhook_p{p}_ms": round(percentile(self.webhook_ms, p), 1) for p in (50, 95, 99)},
            **{f"answer_p{p}_ms": round(percentile(self.answer_ms, p), 1) for p in (50, 95, 99)},
        }


def send_and_wait(
    sender: Sender, event: BenchEvent, arrivals: Any, timeout: float
) -> tuple[int, float, float, float | None]:
    """Send one event: (HTTP status, webhook ms, when sent, when its answer reached LINE or None after `timeout`).

    Times are `time.monotonic()`, the stand-in's clock for `arrivals`."""
    waiter = arrivals.expect(event.reply_token, event.user)
    sent = time.monotonic()
    try:
        status = sender.post(event.body, event.signature)
        webhook_ms = (time.monotonic() - sent) * 1000
        waiter.wait(max(0.0, sent + timeout - time.monotonic()))
    finally:
        arrivals.forget(event.reply_token, event.user)
    answer = arrivals.first_after(event.reply_token, event.user, sent)
    if answer is None or answer[1] - sent > timeout:
        return status, webhook_ms, sent, None
    return status, webhook_ms, sent, answer[1]


def answered_loop(
    url: str,
    next_user: Callable[[], list[BenchEvent] | None],
    arrivals: Any,
    *,
    in_flight: int,
    seconds: float,
    answer_timeout: float = ANSWER_TIMEOUT_S,
) -> AnsweredResult:
    """`in_flight` users at a time, each sending its next event once the previous one is answered AND
    its answer reached the stand-in LINE (`arrivals`); new users come from `next_user` (None: no more).

    No event is sent after `seconds`; those in flight then finish (bounded by `answer_timeout`).
    """
    result = AnsweredResult()
    started = time.monotonic()
    deadline = started + seconds

    def work() -> None:
        sender = Sender(url)
        try:
            while time.monotonic() < deadline:
                events = next_user()
                if events is None:
                    return
                result.user(started=True)
                ok = True
                for event in events:
                    if time.monotonic() >= deadline:
                        return  # this user stays unfinished
                    status, webhook_ms, sent, answer_at = send_and_wait(sender, event, arrivals, answer_timeout)
                    result.record(event, status, webhook_ms, answer_at, sent)
                    ok = ok and status == 200 and answer_at is not None
                result.user(done=ok)
        finally:
            sender.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_S + answer_timeout + 5)
    result.seconds = (result.last_answer if result.answered else time.monotonic()) - started
    return result

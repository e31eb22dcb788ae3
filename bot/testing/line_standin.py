"""A stand-in LINE Messaging API: a real local HTTP server that records what the bot sends.

    with LineStandIn() as line:
        settings = load_settings(line_api_host=line.url, ...)
        ...
        assert line.requests[-1].path == "/v2/bot/message/reply"

`latency_s` makes every call wait that long before its answer (held in its own handler thread, so
calls overlap as at LINE); `arrivals` keeps when each reply and push arrived, even with `record=False`
(`hwbot bench` waits on it for each event's answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.channels.line.api import profile_answer
from bot.testing.standin import LocalServer, QuietHandler, Stall, respond


# Calls LINE answers with the ids of the messages it sent (the SDK validates that answer).
SENDING_PATHS = ("/v2/bot/message/reply", "/v2/bot/message/push")
PROFILE_PATH = "/v2/bot/profile/"  # + user id: GET, the user's display name and `language`


def _sent(messages: list) -> dict[str, Any]:
    """LINE's answer to a reply or push: an id and a quote token per message sent."""
    return {"sentMessages": [{"id": str(100000000000000000 + i), "quoteToken": f"q{i}"} for i, _ in enumerate(messages)]}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    raw: bytes = b""


REPLY_PATH, PUSH_PATH = SENDING_PATHS


class Arrivals:
    """When each accepted reply (by reply token) and push (by `to`) reached the stand-in; thread-safe.

    Cheap enough for the benchmark (a list append under a lock); a token with two arrivals was
    replied twice. `expect(token, to)` returns an event set when a reply with that token or a push to
    `to` arrives after the call (the bench registers it before sending the webhook event).
    """

    def __init__(self) -> None:
        self.replies: dict[str, list[float]] = {}  # reply token -> monotonic arrival times
        self.pushes: dict[str, list[float]] = {}  # `to` -> monotonic arrival times
        self._waiting: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def note(self, path: str, body: Any, at: float) -> None:
        """One reply or push the stand-in accepted (other calls are not kept)."""
        if not isinstance(body, dict):
            return
        if path == REPLY_PATH:
            key, table = ("reply", body.get("replyToken")), self.replies
        elif path == PUSH_PATH:
            key, table = ("push", body.get("to")), self.pushes
        else:
            return
        if not isinstance(key[1], str):
            return
        with self._lock:
            table.setdefault(key[1], []).append(at)
            waiter = self._waiting.get(key)
        if waiter is not None:
            waiter.set()

    def expect(self, token: str, to: str) -> threading.Event:
        """An event set at the next reply with `token` or push to `to`; `forget` it when done."""
        waiter = threading.Event()
        with self._lock:
            self._waiting[("reply", token)] = waiter
            self._waiting[("push", to)] = waiter
        return waiter

    def forget(self, token: str, to: str) -> None:
        with self._lock:
            self._waiting.pop(("reply", token), None)
            self._waiting.pop(("push", to), None)

    def reply_count(self, token: str) -> int:
        with self._lock:
            return len(self.replies.get(token, ()))

    def push_count(self, to: str) -> int:
        with self._lock:
            return len(self.pushes.get(to, ()))

    def first_after(self, token: str, to: str, since: float) -> tuple[str, float] | None:
        """("reply" or "push", arrival) of the first answer at or after `since`, or None."""
        with self._lock:
            found = [("reply", at) for at in self.replies.get(token, ()) if at >= since]
            found += [("push", at) for at in self.pushes.get(to, ()) if at >= since]
        return min(found, key=lambda item: item[1]) if found else None

    def clear(self) -> None:
        with self._lock:
            self.replies.clear()
            self.pushes.clear()
            self._waiting.clear()


@dataclass
class LineStandIn(LocalServer):
    """Answers as LINE does (or with the status in `failing` for a path) and keeps every request."""

    requests: list[Recorded] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # path -> status to answer
    # path -> JSON answer (the SDK reads some answers, e.g. the id of a created rich menu)
    answers: dict[str, Any] = field(
        default_factory=lambda: {"/v2/bot/richmenu": {"richMenuId": "richmenu-standin"}}
    )
    # Like LINE: a push whose X-Line-Retry-Key was already accepted gets 409 and is not delivered again.
    dedupe_retry_keys: bool = False
    accepted_keys: set[str] = field(default_factory=set)
    stall: Stall = field(default_factory=Stall)  # hold a request after accepting it (crash tests)
    # The benchmark turns recording off (thousands of bodies) and keeps connections open (HTTP/1.1),
    # as LINE does; `counts` is kept either way.
    record: bool = True
    keep_alive: bool = False
    counts: Counter = field(default_factory=Counter)
    latency_s: float = 0.0  # every call is answered this long after it arrived (LINE far away or busy)
    arrivals: Arrivals = field(default_factory=Arrivals)
    # user -> the `language` of their LINE profile (a BCP 47 tag; None or absent: LINE gives none)
    languages: dict[str, str | None] = field(default_factory=dict)

    def __enter__(self) -> "LineStandIn":
        standin = self
        lock = threading.Lock()

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1" if standin.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming): a user's profile
                arrived = time.monotonic()
                with lock:
                    standin.counts[self.path] += 1
                if standin.record:
                    standin.requests.append(Recorded("GET", self.path, dict(self.headers), None))
                status = standin.failing.get(self.path, 200)
                if not self.path.startswith(PROFILE_PATH) and status < 400:
                    status = 404
                if standin.latency_s > 0:
                    time.sleep(max(0.0, arrived + standin.latency_s - time.monotonic()))
                user = self.path[len(PROFILE_PATH):]
                answer = profile_answer(user, standin.languages.get(user)) if status < 400 else {"message": "Not found"}
                respond(self, status, json.dumps(answer).encode(), "application/json")

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                arrived = time.monotonic()
                with lock:
                    standin.counts[self.path] += 1
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                if standin.record:
                    standin.requests.append(Recorded("POST", self.path, dict(self.headers), body, raw))
                status = standin.failing.get(self.path, 200)
                key = self.headers.get("X-Line-Retry-Key")
                if standin.dedupe_retry_keys and key and status < 400:
                    status = 409 if key in standin.accepted_keys else status
                    standin.accepted_keys.add(key)
                if status < 400:
                    standin.arrivals.note(self.path, body, arrived)
                if status < 400 and standin.stall.hit():
                    standin.stall.hold(self)  # accepted, but the caller never hears so
                    return
                if standin.latency_s > 0:
                    time.sleep(max(0.0, arrived + standin.latency_s - time.monotonic()))  # LINE's answer time
                if status >= 400:
                    answer = {"message": "stand-in failure"}
                elif self.path in standin.answers:
                    answer = standin.answers[self.path]
                elif self.path in SENDING_PATHS and isinstance(body, dict):
                    answer = _sent(body.get("messages") or [])
                else:
                    answer = {}
                respond(self, status, json.dumps(answer).encode(), "application/json")

        self.start_serving(Handler)
        return self

    @property
    def url(self) -> str:
        return self.base_url

    def sent(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

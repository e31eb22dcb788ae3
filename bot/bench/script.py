"""The booking every bench user replays: the plan, its signed webhook events, the bench's fixed inputs."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

from bot.bench.load import BenchEvent, Sender
from bot.errors import BenchError

BENCH_SECRET = "hwbot-bench-secret"
BENCH_TOKEN = "hwbot-bench-token"
BENCH_NOW = "2026-11-20T10:00:00+09:00"  # a Friday: Noto's first slot page is 11/25-12/1
OFFICE = "noto"
BENCH_CAPACITY = 100  # the profile model's maximum capacity per slot
ANSWER_WAIT_S = 10.0
REPLY_PATH = "/v2/bot/message/reply"  # how long the script's user waits for the worker's reply at the stand-in LINE

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


def bench_event(user: str, kind: str, text: str) -> BenchEvent:
    """`event_body` with the user and reply token its answer at LINE is recognised by."""
    body, signature = event_body(user, kind, text)
    return BenchEvent(body, signature, user, json.loads(body)["events"][0]["replyToken"])


def bench_user(index: int, run: str) -> str:
    """`U` + 32 hex, distinct per run and user."""
    return "U" + hashlib.sha256(f"{run}:{index}".encode()).hexdigest()[:32]


def _answered(line: Any, seen: int, timeout: float = ANSWER_WAIT_S) -> bool:
    """Wait (bounded) until the worker's reply is recorded by the stand-in LINE: one more than `seen`
    (the recorded requests, not `counts`, which goes up before the request's body is kept)."""
    deadline = time.monotonic() + timeout
    while len(line.sent(REPLY_PATH)) < seen + 1:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return len(line.sent(REPLY_PATH)) == seen + 1


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
            seen = len(line.sent(REPLY_PATH))
            status = sender.post(*event_body(user, *step))
            if status != 200 or not _answered(line, seen):
                raise BenchError(f"script: the app answered {status} to step {len(steps) + 1} ({kind} {value!r})")
            messages = line.sent(REPLY_PATH)[-1].body["messages"]
            steps.append(step)
    finally:
        sender.close()
    if BOOKED_TEXT not in json.dumps(messages, ensure_ascii=False):
        raise BenchError("script: the last reply did not confirm the booking")
    return Script(steps, slot_step, slot_choices)

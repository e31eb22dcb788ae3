"""A stand-in Slack incoming webhook: a real local HTTP server that validates Block Kit payloads.

    with SlackStandIn() as slack:
        settings = load_settings(slack_webhook_url=slack.url, ...)
        ...
        assert slack.messages[0]["blocks"][0]["type"] == "header"

Each payload's blocks are parsed with slack_sdk's models (`Block.parse`) and serialised again, which
runs their validation (lengths, required fields); a valid payload is recorded and answered 200 `ok`,
an invalid one 400 `invalid_blocks`, as Slack does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.testing.standin import LocalServer, QuietHandler, Stall, respond


def block_errors(payload: Any) -> list[str]:
    """Why a webhook payload is not a valid message ([] when it is)."""
    if not isinstance(payload, dict):
        return ["payload is not a JSON object"]
    blocks = payload.get("blocks")
    if blocks is None:
        return [] if isinstance(payload.get("text"), str) and payload["text"] else ["no text and no blocks"]
    if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
        return ["blocks must be a list of 1 to 50 blocks"]
    errors = []
    for index, raw in enumerate(blocks):
        try:
            block = Block.parse(raw)
            if block is None or type(block) is Block:
                errors.append(f"blocks[{index}]: not a known block type")
            else:
                block.to_dict()  # runs the model's validation
        except (SlackObjectFormationError, KeyError, TypeError, ValueError) as exc:
            errors.append(f"blocks[{index}]: {exc}")
    return errors


@dataclass
class SlackStandIn(LocalServer):
    """Records valid payloads in `messages`; every request (valid or not) in `requests`."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    stall: Stall = field(default_factory=Stall)
    _failures: list[int] = field(default_factory=list)

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (nothing recorded as delivered)."""
        self._failures.extend([status] * count)

    def stall_request(self, number: int) -> Stall:
        """Hold the `number`-th request (1-based, counting from now on) until released, then drop it."""
        self.stall = Stall(len(self.requests) + number)
        return self.stall

    def __enter__(self) -> "SlackStandIn":
        standin = self
        lock = threading.Lock()

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                with lock:
                    standin.requests.append(payload)
                    failure = standin._failures.pop(0) if standin._failures else None
                if standin.stall.hit():
                    standin.stall.hold(self)
                    return
                if failure is not None:
                    return self.answer(failure, "stand-in failure")
                if block_errors(payload):
                    return self.answer(400, "invalid_blocks")
                with lock:
                    standin.messages.append(payload)
                self.answer(200, "ok")

            def answer(self, status: int, text: str) -> None:
                respond(self, status, text.encode(), "text/plain")

        self.start_serving(Handler)
        return self

    @property
    def url(self) -> str:
        return self.base_url + "/services/T000/B000/standin"

"""Playing a LINE user through the webhook: signed events posted to `/callback`, as LINE sends them.

`WebhookDriver` is the chat driver (buttons tapped by their label) whose every action is a webhook
event: the signature is checked, the event read, the turn run and saved with its answer in the
outbox, exactly as in production; the driver reads what the bot answered from the turn's outcome,
which `RecordingService` keeps (the webhook itself answers only a status). `post_event` posts one
event and, while the answer is 503, delivers it again as LINE does (`isRedelivery`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.channels.session import Exchange
from bot.dialog import Inbound, Outcome
from bot.service import BotService
from bot.testing.driver import ChatDriver, DriverError

REDELIVERY_PAUSE_S = 0.05  # LINE waits longer between redeliveries; a test need not


class RecordingService(BotService):
    """The bot, keeping each user's last turn outcome (what a driver shows as the bot's answer)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, Outcome] = {}

    def handle(self, event: Inbound, **kwargs: Any) -> Outcome | None:
        outcome = super().handle(event, **kwargs)
        # A turn on LINE's profile language that says nothing leaves the greeting as the answer.
        if outcome is not None and (event.kind != "profile" or outcome.replies):
            self.outcomes[event.user] = outcome
        return outcome


def post_event(client: Any, event: dict[str, Any], secret: str, *, redeliver_until: float | None = None) -> list[int]:
    """POST one event to `/callback`; with `redeliver_until` (a `time.monotonic()` deadline), post it
    again, marked as a redelivery, while the answer is 503. The statuses, in order."""
    statuses: list[int] = []
    while True:
        body = webhook_body(event)
        response = client.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, secret)},
                               content_type="application/json")
        statuses.append(response.status_code)
        if response.status_code != 503 or redeliver_until is None or time.monotonic() > redeliver_until:
            return statuses
        event = {**event, "deliveryContext": {"isRedelivery": True}}
        time.sleep(REDELIVERY_PAUSE_S)


def reply_token(event: dict[str, Any]) -> str:
    return str(event.get("replyToken", ""))


@dataclass
class WebhookDriver(ChatDriver):
    """A chat driver whose actions go through the webhook of `client` (a Flask test client of an app
    built on a `RecordingService`), signed with `secret`."""

    client: Any = None
    secret: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def send(self, kind: str, text: str = "", action: str | None = None) -> Exchange:
        event = event_json(self.user, "sticker" if kind == "media" else kind, text)
        [status] = post_event(self.client, event, self.secret)
        if status != 200:
            raise DriverError(f"the webhook answered {status} to {action or kind}")
        self.events.append(event)
        outcome = self.service.outcomes.pop(self.user, None)
        if outcome is None:
            raise DriverError(f"no turn ran for {action or kind} (a repeated event?)")
        exchange = Exchange(action or f"{kind}: {text}", outcome)
        self.exchanges.append(exchange)
        return exchange


def answers_at_line(line: Any, events: list[dict[str, Any]], user: str) -> list[str]:
    """What reached the stand-in LINE for `user`: the replies to these events' tokens and the pushes
    to the user, each as its messages' JSON text."""
    tokens = {reply_token(event) for event in events}
    found = []
    for request in line.requests:
        body = request.body if isinstance(request.body, dict) else {}
        if (request.path.endswith("/reply") and body.get("replyToken") in tokens) or (
                request.path.endswith("/push") and body.get("to") == user):
            found.append(json.dumps(body.get("messages", []), ensure_ascii=False))
    return found

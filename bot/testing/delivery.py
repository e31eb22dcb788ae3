"""Send what the webhook queued, for tests that post events with Flask's test client.

The webhook saves each answer as an outbox entry and the worker sends it (docs/architecture.md, "One
webhook event, end to end"); a test without a running worker calls `send_queued` after posting.
"""

from __future__ import annotations

from bot.channels.line.api import LineMessaging
from bot.service import BotService
from bot.staff.worker import Worker


def send_queued(service: BotService, line_url: str, token: str = "t") -> dict[str, int]:
    """Run one worker cycle against `line_url` (a stand-in LINE) and wait until it has sent; its counts."""
    worker = Worker(service, service.settings, consumer="test-sender", line=LineMessaging(line_url, token))
    try:
        return worker.run_once(service.clock.now())
    finally:
        worker.lanes.shutdown()


class SendingClient:
    """Flask's test client whose accepted `POST /callback` also runs the worker once when something was
    queued, so that the answer reaches the stand-in LINE before the test reads it (what `hwbot worker`
    does in production)."""

    def __init__(self, client, service: BotService, line_url: str, token: str = "t"):
        self.client = client
        self.service = service
        self.line_url = line_url
        self.token = token
        self.sent: list[dict[str, int]] = []  # the worker's counts after each event

    def post(self, path: str, *args, **kwargs):
        response = self.client.post(path, *args, **kwargs)
        if path == "/callback" and response.status_code == 200 and not self.service.outbox.settled():
            self.sent.append(send_queued(self.service, self.line_url, self.token))
        return response

    def __getattr__(self, name: str):
        return getattr(self.client, name)

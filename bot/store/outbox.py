"""The outbox stream `hwbot:outbox`: staff notices and pushes waiting for the worker to deliver them."""

from __future__ import annotations

from collections.abc import Mapping

import redis

from bot.store.conversations import OUTBOX_KEY, OUTBOX_MAXLEN, _redis_errors, encode_notice

# Entries the worker gave up on after `HWBOT_WORKER_MAX_ATTEMPTS` failures (the staff console lists them).
DEAD_KEY = "hwbot:outbox:dead"


class Outbox:
    """Appends entries; `hwbot worker` (the staff issue) reads them with a consumer group."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def add(self, entry: Mapping[str, object]) -> str:
        """Append one entry (a dict of str -> str | int | JSON-able); returns its stream id."""
        flat = encode_notice(entry)
        fields = dict(zip(flat[::2], flat[1::2]))
        with _redis_errors("cannot append to the outbox"):
            return self.client.xadd(OUTBOX_KEY, fields, maxlen=OUTBOX_MAXLEN, approximate=True)

    def entries(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The newest entries, newest first (the simulator's staff pane, tests)."""
        with _redis_errors("cannot read the outbox"):
            return self.client.xrevrange(OUTBOX_KEY, count=count)

    def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Entries moved to the dead-letter stream, newest first (the staff console shows them)."""
        with _redis_errors("cannot read the dead-letter stream"):
            return self.client.xrevrange(DEAD_KEY, count=count)

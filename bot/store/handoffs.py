"""Users handed to staff (the bot is paused for them): `hwbot:handoffs`, user -> JSON of why and when."""

from __future__ import annotations

import json

import redis

from bot.store.conversations import _redis_errors

HANDOFFS_KEY = "hwbot:handoffs"


class HandoffStore:
    """The staff console's list of users waiting for staff."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def open(self, user: str, info: dict[str, str]) -> None:
        with _redis_errors("cannot record handoff"):
            self.client.hset(HANDOFFS_KEY, user, json.dumps(info, ensure_ascii=False))

    def close(self, user: str) -> None:
        with _redis_errors("cannot close handoff"):
            self.client.hdel(HANDOFFS_KEY, user)

    def waiting(self) -> dict[str, dict[str, str]]:
        """user -> {office, reason, step, at}, oldest first."""
        with _redis_errors("cannot read handoffs"):
            raw = self.client.hgetall(HANDOFFS_KEY)
        items = {user: json.loads(value) for user, value in raw.items()}
        return dict(sorted(items.items(), key=lambda item: item[1].get("at", "")))

"""Slot claims: each slot is a Redis set of booking ids, so a claim is idempotent and countable.

Every booking key of one office shares the office's hash tag, e.g. `hwbot:{noto}:2026-12-01:slot:1000`,
so every atomic step on an office's bookings (a move across days included) runs in one Redis Cluster
hash slot; offices are many, so they spread over the cluster's nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import redis

from bot.store.errors import redis_errors


def office_tag(office: str) -> str:
    """`{noto}`: the hash tag shared by every booking key of one office."""
    return f"{{{office}}}"


def day_prefix(office: str, day: date | str) -> str:
    """`hwbot:{noto}:2026-12-01:`: what the keys of one office day start with."""
    return f"hwbot:{office_tag(office)}:{day if isinstance(day, str) else day.isoformat()}:"


def slot_redis_key(office: str, key: str) -> str:
    """Redis key of the slot with calendar key `YYYY-MM-DDTHH:MM`: `hwbot:{noto}:2026-12-01:slot:1000`."""
    day, hhmm = key.split("T")
    return f"{day_prefix(office, day)}slot:{hhmm.replace(':', '')}"


class SlotStore:
    """Reads how many bookings each slot holds."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def booked_counts(self, office: str, slot_keys: Iterable[str]) -> dict[str, int]:
        """Bookings held per slot key (absent slots count 0), in one round trip."""
        keys = list(slot_keys)
        if not keys:
            return {}
        with redis_errors("cannot read slot counts"):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.scard(slot_redis_key(office, key))
            counts = pipe.execute()
        return {key: int(count) for key, count in zip(keys, counts) if count}

"""How many LINE pushes the bot sent per month (pushes count against the channel's monthly quota).

    hwbot:pushes:<YYYY-MM>   hash  `user` (pushes to a user) and `group` (notices to a staff LINE group)

The worker increments it on each push LINE accepted; the month is Japan time, as LINE bills.
"""

from __future__ import annotations

import redis

from bot.store.errors import redis_errors

# Kept a little over a year, so the console can show this month and the ones before.
KEEP_SECONDS = 400 * 24 * 3600


def pushes_key(month: str) -> str:
    """`hwbot:pushes:2026-12`."""
    return f"hwbot:pushes:{month}"


class PushCounter:
    def __init__(self, client: redis.Redis):
        self.client = client

    def count(self, month: str, to: str) -> None:
        """One push accepted by LINE in `month` (YYYY-MM), to a `user` or a `group`."""
        with redis_errors("cannot count a push"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hincrby(pushes_key(month), to, 1)
            pipe.expire(pushes_key(month), KEEP_SECONDS)
            pipe.execute()

    def month(self, month: str) -> dict[str, int]:
        """{"user": n, "group": n} for `month`; zeros when nothing was sent."""
        with redis_errors("cannot read the push count"):
            raw = self.client.hgetall(pushes_key(month))
        return {"user": int(raw.get("user", 0)), "group": int(raw.get("group", 0))}

"""A Redis for tests: the server in REDIS_URL when set, otherwise one embedded server per session.

Each test gets the database flushed: point REDIS_URL at a scratch database (e.g. redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis

from bot.settings import Settings
from bot.store import connect, embedded_redis


class TestRedis:
    """Owns the Redis the suite talks to; `fresh()` returns a client on an emptied database."""

    __test__ = False  # not a pytest test class

    def __init__(self, settings: Settings):
        self.url = settings.redis_url
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.url:
            self.client = connect(settings)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="hwbot-redis-")
            self.client = embedded_redis(Path(self._tmp.name))

    def fresh(self) -> redis.Redis:
        self.client.flushdb()
        return self.client

    def close(self) -> None:
        if self._tmp is not None:
            shutdown = getattr(self.client, "_cleanup", None)
            if shutdown:
                shutdown()
            self._tmp.cleanup()

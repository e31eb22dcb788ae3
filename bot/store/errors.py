"""What a redis-py error means for the bot: `StoreUnavailable` (try again later: 503) or `StoreError`.

Every store module turns driver errors into these through `redis_errors(what)`, so that no redis-py
exception reaches a web view or the worker's loop (a 500, a dead thread). The message names only the
operation and the error's class, never a key or a value (keys hold user ids).

A Redis Cluster adds errors of its own, and some of them are not even `redis.RedisError`:
`RedisClusterException` (no reachable node to read the topology from, slots not covered, a
transaction or pipeline refused by the client) and its `SlotNotCoveredError`. All of them, with the
connection errors and timeouts of either kind of server, mean that the step did not happen (or, for a
timeout, may have happened: every step is idempotent, see docs/architecture.md) and that trying again
later is the remedy, so they are `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)

from bot.errors import StoreError, StoreUnavailable

# Errors after which the same step can succeed later: the server, a node or a slot's master is away
# (failover, restart, network), or the cluster client could not route the command.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # refused, reset, DNS, auth, loading its data, the pool exhausted (MaxConnectionsError)
    redis.TimeoutError,
    ClusterError,  # ClusterDownError, MasterDownError (no master for a slot), "TTL exhausted" (redirections)
    ClusterDownError,
    TryAgainError,  # a multi-key command during a slot migration
    AskError,  # MovedError: a redirection the client did not resolve
    ReadOnlyError,  # a write reached a replica: the old master demoted by a failover
    ClusterCrossSlotError,  # keys of two slots in one step: a bug, but never a 500 (tests prove there is none)
    RedisClusterException,  # SlotNotCoveredError, no node reachable, CrossSlotTransactionError, ...
)

# What `redis_errors` catches: every error the driver raises.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException)


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "Redis cannot serve this now" (retry later) rather than a broken request."""
    return isinstance(exc, UNAVAILABLE)


def store_error(exc: BaseException, what: str) -> StoreError:
    """The bot's error for a driver error: `StoreUnavailable` or `StoreError`, naming `what` and the class."""
    kind = StoreUnavailable if unavailable(exc) else StoreError
    return kind(f"{what}: {exc.__class__.__name__}")


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn a driver error into `StoreUnavailable` / `StoreError` naming only the operation and its class."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise store_error(exc, what) from exc

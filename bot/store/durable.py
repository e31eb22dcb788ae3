"""Writes that wait for replicas before anyone is told they are done (`HWBOT_REDIS_MIN_REPLICAS`).

Redis replicates asynchronously: a write acknowledged by a primary that fails before its replicas got
it is lost when a replica takes over. `Durable.script` runs a Lua script and then `WAIT n timeout` on
**the same connection** (WAIT covers only the writes of the connection it is sent on), in one
non-transactional pipeline, and checks the count WAIT returns: fewer than `n` replicas in time raises
`NotReplicated` (a `StoreUnavailable`: the webhook answers 503, LINE redelivers, staff are asked to
repeat the action). On a Redis Cluster the pipeline goes to the connection pool of the primary that
holds the key's slot (`RedisCluster.get_redis_connection`), never to the cluster client's default node
(where a bare `wait()` would go).

**The fence.** A repeated idempotent step often writes nothing (a claim already made, a cancelled
booking cancelled again), and WAIT after no write on a connection returns at once, whatever the
replicas hold. So the pipeline also writes `hwbot:{<tag>}:fence` (the step's own hash tag, so the same
node) after the script: the replication stream is ordered, so a replica that acknowledged the fence has
every earlier write of that primary, including the one the repeated step found done.

With `min_replicas` 0 (the default) nothing of this happens: the script runs as it always did.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from bot.errors import NotReplicated, StoreUnavailable
from bot.store.errors import UNAVAILABLE  # the step may not have run on the node: the caller tries again (503)

log = logging.getLogger("hwbot.store")

FENCE_TTL_SECONDS = 60
_TAG = re.compile(r"\{([^{}]+)\}")


def fence_key(key: str) -> str:
    """`hwbot:{<tag>}:fence`: the fence of the hash tag of `key` (which must have one)."""
    match = _TAG.search(key)
    if match is None:
        raise ValueError("a durable step's keys carry a hash tag")
    return f"hwbot:{{{match.group(1)}}}:fence"


def _is_cluster(client: Any) -> bool:
    return hasattr(client, "get_node_from_key") and hasattr(client, "get_redis_connection")


class Durable:
    """Runs the writes of booking steps, waiting for `min_replicas` replicas when asked to."""

    def __init__(self, client: Any, min_replicas: int = 0, timeout_ms: int = 500):
        if type(min_replicas) is not int or min_replicas < 0:
            raise ValueError("min_replicas must be a non-negative integer")
        if type(timeout_ms) is not int or timeout_ms < 1:
            raise ValueError("timeout_ms must be a positive number of milliseconds")
        self.client = client
        self.min_replicas = min_replicas
        self.timeout_ms = timeout_ms

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """`script(keys, args)`; with `min_replicas`, then the fence and WAIT on the same connection."""
        if not self.min_replicas:
            return script(keys=list(keys), args=list(args))
        return self._waited(keys[0], ("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def command(self, key: str, *command: Any) -> Any:
        """One command on `key` (e.g. `("SADD", key, member)`), waited for like `script`."""
        if not self.min_replicas:
            return self.client.execute_command(*command)
        return self._waited(key, command, None)

    def _node(self, key: str) -> Any:
        """A client whose connections all reach the primary holding `key` (the client itself on one server)."""
        if _is_cluster(self.client):
            return self.client.get_redis_connection(self.client.get_node_from_key(key))
        return self.client

    def _waited(self, key: str, command: Sequence[Any], script: Script | None) -> Any:
        fence = fence_key(key)
        for attempt in range(3):
            try:
                node = self._node(key)
                pipe = node.pipeline(transaction=False)
                pipe.execute_command(*command)
                pipe.set(fence, "1", ex=FENCE_TTL_SECONDS)
                pipe.wait(self.min_replicas, self.timeout_ms)
                result, _, acked = pipe.execute(raise_on_error=False)
            except UNAVAILABLE as exc:
                self._refresh()
                raise StoreUnavailable(f"cannot reach the primary of a booking step: {exc.__class__.__name__}") from exc
            if attempt < 2 and isinstance(result, redis.exceptions.NoScriptError) and script is not None:
                node.script_load(script.script)  # that node had not seen the script yet (a restart, a new primary)
                continue
            if attempt < 2 and isinstance(result, redis.exceptions.MovedError):
                self._refresh()  # the slot moved (a failover, resharding) and nothing ran: ask its new primary
                continue
            for answer in (result, acked):
                if isinstance(answer, UNAVAILABLE):
                    self._refresh()
                    raise StoreUnavailable(f"a booking step's node cannot take it: {answer.__class__.__name__}") from answer
                if isinstance(answer, Exception):
                    raise answer
            if int(acked) < self.min_replicas:
                log.error("store_not_replicated acked=%d wanted=%d timeout_ms=%d", int(acked), self.min_replicas,
                          self.timeout_ms)
                raise NotReplicated(f"{int(acked)} of {self.min_replicas} replicas acknowledged within "
                                    f"{self.timeout_ms} ms (HWBOT_REDIS_MIN_REPLICAS)")
            return result
        raise StoreUnavailable("a booking step kept being redirected")

    def _refresh(self) -> None:
        """After a node failed us, make a cluster client read the slot map again (a failover moves slots)."""
        if not _is_cluster(self.client):
            return
        try:
            self.client.nodes_manager.initialize()
        except redis.RedisError as exc:  # the cluster is still electing: the next call tries again
            log.warning("store_cluster_refresh_failed error=%s", exc.__class__.__name__)

"""Commands about the whole database rather than a key, for a single server and a Redis Cluster alike.

On a cluster a command without a key goes to one node (redis-py's "default node"): `DBSIZE`, `INFO`
or `PING` would describe a third of the data, `FLUSHDB` is sent to every master only because redis-py
knows it. Everything the bot asks of the whole database goes through here instead, and asks every
master (`scan_iter` of the cluster client walks every master too). Nothing here is atomic across
nodes, and nothing needs to be: these are the health check, the test kit's flush and the bench's
counters and clean-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from bot.errors import StoreUnavailable
from bot.store.connection import is_cluster
from bot.store.errors import DRIVER_ERRORS, redis_errors

T = TypeVar("T")


def primaries(client: Any) -> list[Any]:
    """A plain client per master: the server itself, or each master of a cluster (one node each).

    The cluster client's idea of who the masters are is refreshed only when one of its own commands
    fails; `each_master` reads the topology again when a master it was told of does not answer."""
    if not is_cluster(client):
        return [client]
    with redis_errors("cannot list the cluster's masters"):
        return [client.get_redis_connection(node) for node in client.get_primaries()]


def each_master(client: Any, what: str, ask: Callable[[Any], T]) -> list[T]:
    """`ask(node)` of every master; on a cluster, once more with a fresh topology if a node failed
    (a master replaced by its replica since the client last looked). StoreUnavailable otherwise."""
    with redis_errors(what):
        try:
            return [ask(node) for node in primaries(client)]
        except DRIVER_ERRORS:
            if not is_cluster(client):
                raise
            client.nodes_manager.initialize()
            return [ask(node) for node in primaries(client)]


def key_count(client: Any) -> int:
    """Keys in the database (DBSIZE of every master)."""
    return sum(int(count) for count in each_master(client, "cannot count keys", lambda node: node.dbsize()))


def flush(client: Any) -> None:
    """Empty the database (FLUSHDB on every master; their replicas follow): the test kit and
    `hwbot dialogs run` between scripts, never the product."""
    each_master(client, "cannot flush the database", lambda node: node.flushdb())


def info_total(client: Any, section: str) -> list[dict[str, Any]]:
    """INFO `section` of every master (one dict each): callers add up what they need."""
    return each_master(client, f"cannot read INFO {section}", lambda node: node.info(section))


def used_memory(client: Any) -> int:
    """Bytes the data uses, over every master (INFO memory's `used_memory`)."""
    return sum(int(info["used_memory"]) for info in info_total(client, "memory"))


def commands_run(client: Any) -> int:
    """Commands run so far over every master (INFO commandstats; a script's inner commands included)."""
    return sum(stats["calls"] for info in info_total(client, "commandstats") for stats in info.values())


def scan(client: Any, match: str, count: int = 1000) -> Iterator[str]:
    """Every key matching `match` (SCAN on every master of a cluster); for clean-up, never a request."""
    with redis_errors("cannot scan keys"):
        yield from client.scan_iter(match=match, count=count)


def health(client: Any) -> dict[str, Any]:
    """What a load balancer asks: every master answers and, on a cluster, the cluster says `ok`.

    Raises StoreUnavailable otherwise (the health check answers 503): a cluster that lost a master
    and has not promoted its replica yet refuses the keys of its slots.
    """
    if not is_cluster(client):
        with redis_errors("health check"):
            client.ping()
        return {"redis": "single"}
    states = each_master(client, "health check", lambda node: cluster_info(node).get("cluster_state", "?"))
    if set(states) != {"ok"}:
        raise StoreUnavailable(f"health check: cluster_state {'/'.join(sorted(set(states)))}")
    return {"redis": "cluster", "masters": len(states)}


def replication(client: Any) -> list[dict[str, Any]]:
    """Per master (`hwbot store status`): its address, on a cluster its `cluster_state`, and each replica
    as the master sees it: state (`online`), lag (seconds since it last acknowledged) and how many bytes
    of the replication stream it has yet to apply."""

    def ask(node: Any) -> dict[str, Any]:
        info = node.info("replication")
        kwargs = node.connection_pool.connection_kwargs
        address = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        offset = int(info.get("master_repl_offset", 0))
        replicas = []
        for name, value in sorted(info.items()):
            if re.fullmatch(r"slave\d+", name) and isinstance(value, dict):
                replicas.append({"address": f"{value.get('ip')}:{value.get('port')}", "state": str(value.get("state")),
                                 "lag_s": int(value.get("lag", 0)), "behind_bytes": max(0, offset - int(value.get("offset", 0)))})
        row: dict[str, Any] = {"address": address, "replicas": replicas}
        if is_cluster(client):
            row["cluster_state"] = cluster_info(node).get("cluster_state", "?")
        return row

    return each_master(client, "cannot read replication", ask)


def cluster_info(node: Any) -> dict[str, str]:
    """CLUSTER INFO of one node (a plain client of it) as a dict: `cluster_state`, `cluster_slots_ok`, ..."""
    answer = node.execute_command("CLUSTER INFO")
    if isinstance(answer, dict):
        return {str(key): str(value) for key, value in answer.items()}
    pairs = (line.partition(":") for line in str(answer).splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}

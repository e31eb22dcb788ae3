"""The single-slot check without a cluster: every atomic step must touch keys of one Redis Cluster slot.

    with single_slot(client) as steps:
        ...  # any store code on `client`
    # an EVAL/EVALSHA, or a MULTI/EXEC pipeline, whose keys span two slots raised CrossSlot;
    # `steps` lists (command, slots) of each atomic step seen

Only the keys a step declares are checked (a Lua script's KEYS; the keys of each command inside a
MULTI); a script that builds a key name from ARGV is checked by running it on a real cluster (the
cluster tests). Plain pipelines (`transaction=False`) are not atomic steps and may span slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis._parsers.commands import CommandsParser
from redis.crc import key_slot


class CrossSlot(AssertionError):
    """An atomic step touched keys of more than one hash slot (a Redis Cluster answers CROSSSLOT)."""


def _slots(keys: list[Any]) -> set[int]:
    return {key_slot(key if isinstance(key, bytes) else str(key).encode()) for key in keys}


def _script_keys(args: tuple[Any, ...]) -> list[Any]:
    """KEYS of EVAL/EVALSHA <script|sha> <numkeys> key... arg..."""
    return list(args[3:3 + int(args[2])])


@contextmanager
def single_slot(client: redis.Redis) -> Iterator[list[tuple[str, set[int]]]]:
    """Within the block, an atomic step on `client` whose keys span slots raises `CrossSlot`."""
    parser = CommandsParser(client)
    steps: list[tuple[str, set[int]]] = []

    def check(name: str, keys: list[Any]) -> None:
        slots = _slots(keys)
        steps.append((name, slots))
        if len(slots) > 1:
            raise CrossSlot(f"{name} touches keys of {len(slots)} slots: {sorted(map(str, keys))}")

    real_execute = client.execute_command
    real_pipeline = client.pipeline

    def execute_command(*args: Any, **options: Any) -> Any:
        if str(args[0]).upper() in ("EVAL", "EVALSHA"):
            check(str(args[0]).upper(), _script_keys(args))
        return real_execute(*args, **options)

    def pipeline(transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = real_pipeline(transaction=transaction, shard_hint=shard_hint)
        real_run = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            stack = [args for args, _ in pipe.command_stack]
            for args in stack:
                if str(args[0]).upper() in ("EVAL", "EVALSHA"):
                    check(str(args[0]).upper(), _script_keys(args))
            if pipe.transaction or pipe.explicit_transaction:
                keys = [key for args in stack for key in (parser.get_keys(client, *args) or [])]
                check("MULTI " + " ".join(str(args[0]).upper() for args in stack), keys)
            return real_run(raise_on_error=raise_on_error)

        pipe.execute = execute
        return pipe

    client.execute_command = execute_command
    client.pipeline = pipeline
    try:
        yield steps
    finally:
        del client.execute_command
        del client.pipeline

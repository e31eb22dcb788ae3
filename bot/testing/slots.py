"""Refuse, on one Redis server, what a Redis Cluster refuses: a script or transaction over several slots.

`one_slot(client)` is a client on the same connection pool whose every EVAL/EVALSHA (alone or in a
pipeline) and every MULTI/EXEC pipeline raises `CrossSlot` when its keys hash to more than one slot
(`redis.crc.key_slot`, as the cluster computes it). The real proof is a run on a real cluster; this
one is cheap enough for every test that wants it.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline
from redis._parsers import CommandsParser  # what the cluster client uses to find keys
from redis.crc import key_slot

_SCRIPTS = ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO")


class CrossSlot(AssertionError):
    """A step's keys span hash slots (a cluster answers CROSSSLOT)."""


def _keys(parser: CommandsParser, client: redis.Redis, args: tuple[Any, ...]) -> list[str]:
    name = str(args[0]).upper()
    if name in _SCRIPTS:
        return [str(key) for key in args[3:3 + int(args[2])]]
    if name in ("MULTI", "EXEC", "WATCH", "UNWATCH", "DISCARD"):
        return [str(key) for key in args[1:]] if name == "WATCH" else []
    return [str(key) for key in parser.get_keys(client, *args) or []]


def _check(what: str, keys: list[str]) -> None:
    slots = {key_slot(key.encode()) for key in keys}
    if len(slots) > 1:
        raise CrossSlot(f"{what} spans {len(slots)} hash slots: {sorted(keys)}")


class _Checked(redis.Redis):
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._parser = CommandsParser(self)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() in _SCRIPTS:
            _check(str(args[0]), _keys(self._parser, self, args))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return _CheckedPipeline(self, self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _CheckedPipeline(Pipeline):
    def __init__(self, owner: _Checked, *args: Any):
        super().__init__(*args)
        self._owner = owner

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        found: list[str] = []
        for args, _ in self.command_stack:
            keys = _keys(self._owner._parser, self._owner, args)
            if str(args[0]).upper() in _SCRIPTS:
                _check(str(args[0]), keys)
            found += keys
        if self.transaction and self.command_stack:
            _check("MULTI/EXEC", found)
        return super().execute(raise_on_error)


def one_slot(client: redis.Redis) -> redis.Redis:
    """A client on `client`'s connections that raises `CrossSlot` where a cluster would refuse."""
    return _Checked(connection_pool=client.connection_pool)

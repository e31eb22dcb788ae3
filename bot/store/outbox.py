"""The outbox stream `hwbot:outbox`: staff notices and pushes waiting for the worker to deliver them.

The worker reads it through the consumer group `workers`. Per entry (by stream id) Redis keeps:

    hwbot:outbox:attempts      hash  stream id -> failed attempts so far
    hwbot:outbox:retry         zset  stream id -> next attempt (unix seconds of the worker's clock)
    hwbot:outbox:done:<id>     string, set right after a delivery (TTL a few days); <id> is the entry's
                               own `id` field (a notice id or a push's retry key)
    hwbot:outbox:done:<id>:<channel>  the same for one channel of an entry sent to several
    hwbot:outbox:dead          stream of entries given up on, with `attempts`, `error`, `failed_at`

An entry waiting for a retry stays pending (unacknowledged) and is taken by whichever worker first
removes it from the retry schedule (ZREM is the lock). An entry pending longer than the lease and not
scheduled was being delivered by a worker that died: XAUTOCLAIM hands it to a live one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from bot.store.conversations import OUTBOX_KEY, OUTBOX_MAXLEN, _redis_errors, encode_notice

# Entries the worker gave up on after `HWBOT_WORKER_MAX_ATTEMPTS` failures (the staff console lists them).
DEAD_KEY = "hwbot:outbox:dead"
DEAD_MAXLEN = 10_000
GROUP = "workers"
ATTEMPTS_KEY = "hwbot:outbox:attempts"
RETRY_KEY = "hwbot:outbox:retry"
DONE_TTL_SECONDS = 4 * 24 * 3600
# Backoff after the n-th failure: BACKOFF_BASE_S * 2**(n-1), at most BACKOFF_CAP_S.
BACKOFF_BASE_S = 2
BACKOFF_CAP_S = 600
# Fields of an entry that `encode_notice` stored as JSON.
_JSON_FIELDS = ("fields", "messages")

# KEYS: outbox, attempts hash, retry zset, dead stream.
# ARGV: stream id, group, max attempts, now (unix s), error, failed_at (ISO), dead maxlen,
#       permanent (0/1), backoff base, backoff cap, then the entry's own field/value pairs.
# Returns {attempts, 1} when the entry went to the dead letters, {attempts, 0, next attempt} otherwise.
_FAIL_LUA = """
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if n >= tonumber(ARGV[3]) or ARGV[8] == '1' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'attempts', n, unpack(ARGV, 11))
  redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {n, 1}
end
local delay = math.min(tonumber(ARGV[9]) * 2 ^ (n - 1), tonumber(ARGV[10]))
local at = tonumber(ARGV[4]) + delay
redis.call('ZADD', KEYS[3], at, ARGV[1])
return {n, 0, tostring(at)}
"""


def done_key(entry_id: str, channel: str | None = None) -> str:
    """`hwbot:outbox:done:<id>[:<channel>]`: that entry (or one channel of it) was delivered."""
    return f"hwbot:outbox:done:{entry_id}" + (f":{channel}" if channel else "")


def backoff_seconds(failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones (the Lua script's formula)."""
    return min(BACKOFF_BASE_S * 2 ** (failures - 1), BACKOFF_CAP_S)


@dataclass(frozen=True)
class Entry:
    """One outbox entry as read from the stream."""

    stream_id: str
    raw: dict[str, str]

    @property
    def id(self) -> str:
        """The entry's own id (notice id or push retry key); the stream id for an entry without one."""
        return self.raw.get("id") or self.stream_id

    @property
    def kind(self) -> str:
        return self.raw.get("kind", "")

    def get(self, name: str) -> Any:
        """A field, JSON-decoded where `encode_notice` encoded it; ValueError when it is garbled."""
        value = self.raw.get(name)
        if value is not None and name in _JSON_FIELDS:
            return json.loads(value)
        return value


@dataclass(frozen=True)
class Failure:
    """What `Outbox.fail` did: the attempts so far, and whether the entry is now a dead letter."""

    attempts: int
    dead: bool
    next_at: float | None = None


def _id(stream_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = stream_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _entries(rows: list | None) -> list[Entry]:
    """Entries of XREADGROUP/XCLAIM rows; a trimmed entry (no fields) keeps an empty dict."""
    return [Entry(stream_id, dict(fields or {})) for stream_id, fields in rows or []]


class Outbox:
    """Appends entries, and gives `hwbot worker` what is due to deliver."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._fail = client.register_script(_FAIL_LUA)

    def add(self, entry: Mapping[str, object]) -> str:
        """Append one entry (a dict of str -> str | int | JSON-able); returns its stream id."""
        flat = encode_notice(entry)
        fields = dict(zip(flat[::2], flat[1::2]))
        with _redis_errors("cannot append to the outbox"):
            return self.client.xadd(OUTBOX_KEY, fields, maxlen=OUTBOX_MAXLEN, approximate=True)

    def entries(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The newest entries, newest first (the simulator's staff pane, tests)."""
        with _redis_errors("cannot read the outbox"):
            return self.client.xrevrange(OUTBOX_KEY, count=count)

    def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Entries moved to the dead-letter stream, newest first (the staff console shows them)."""
        with _redis_errors("cannot read the dead-letter stream"):
            return self.client.xrevrange(DEAD_KEY, count=count)

    def settled(self) -> bool:
        """True when every entry was delivered (or given up on): none left unread by the workers'
        group, none read and unacknowledged (the test kit waits for this; works on Redis 6.2)."""
        with _redis_errors("cannot read the outbox state"):
            if not self.client.exists(OUTBOX_KEY):
                return True
            stream = self.client.xinfo_stream(OUTBOX_KEY)
            group = next((g for g in self.client.xinfo_groups(OUTBOX_KEY) if g["name"] == GROUP), None)
        if group is None:
            return stream["length"] == 0
        return group["pending"] == 0 and _id(group["last-delivered-id"]) >= _id(stream["last-generated-id"])

    # -- the worker's side ----------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists; from the start of the stream,
        so entries appended before the first worker ever ran are delivered too."""
        with _redis_errors("cannot create the outbox consumer group"):
            try:
                self.client.xgroup_create(OUTBOX_KEY, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def own_pending(self, consumer: str, count: int = 1000) -> list[Entry]:
        """This consumer's unacknowledged entries not waiting for a retry (what it was delivering when it stopped)."""
        with _redis_errors("cannot read pending outbox entries"):
            rows = self.client.xreadgroup(GROUP, consumer, {OUTBOX_KEY: "0"}, count=count)
            entries = _entries(rows[0][1] if rows else [])
            return self._unscheduled(entries)

    def claim_stale(self, consumer: str, lease_ms: int, cursor: str = "0-0", count: int = 100) -> tuple[str, list[Entry]]:
        """(next cursor, entries) taken over from consumers idle longer than the lease, retries excepted."""
        with _redis_errors("cannot claim stale outbox entries"):
            answer = self.client.xautoclaim(OUTBOX_KEY, GROUP, consumer, lease_ms, cursor, count=count)
            return answer[0], self._unscheduled(_entries(answer[1]))

    def claim_due(self, consumer: str, now: float, count: int = 100) -> list[Entry]:
        """Entries whose retry time has come; removing one from the schedule is what makes it ours."""
        with _redis_errors("cannot claim due outbox retries"):
            due = self.client.zrangebyscore(RETRY_KEY, "-inf", now, start=0, num=count)
            if not due:
                return []
            pipe = self.client.pipeline(transaction=False)
            for stream_id in due:
                pipe.zrem(RETRY_KEY, stream_id)
            won = [stream_id for stream_id, removed in zip(due, pipe.execute()) if removed]
            return _entries(self.client.xclaim(OUTBOX_KEY, GROUP, consumer, 0, won)) if won else []

    def read_new(self, consumer: str, count: int = 100, block_ms: int | None = None) -> list[Entry]:
        """Entries never given to any consumer; waits up to `block_ms` for one when given."""
        with _redis_errors("cannot read the outbox"):
            rows = self.client.xreadgroup(GROUP, consumer, {OUTBOX_KEY: ">"}, count=count, block=block_ms)
            return _entries(rows[0][1] if rows else [])

    def _unscheduled(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            pipe.zscore(RETRY_KEY, entry.stream_id)
        return [entry for entry, score in zip(entries, pipe.execute()) if score is None]

    def delivered(self, keys: list[str]) -> set[str]:
        """Which of these done-marker keys (see `done_key`) are set."""
        if not keys:
            return set()
        with _redis_errors("cannot read delivery markers"):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            return {key for key, found in zip(keys, pipe.execute()) if found}

    def mark_channel(self, entry: Entry, channel: str) -> None:
        """One channel of a multi-channel entry went out: a retry skips it."""
        with _redis_errors("cannot mark a delivery"):
            self.client.set(done_key(entry.id, channel), "1", ex=DONE_TTL_SECONDS)

    def ack(self, entry: Entry, *, first: bool = False, drop: bool = False,
            done_seconds: int = DONE_TTL_SECONDS) -> None:
        """Delivered: set the marker and acknowledge, in one MULTI (a retry or a duplicate id skips it).

        `first`: the entry's first attempt (no retry state to clear); `drop`: delete it from the
        stream too (a user's messages: nothing reads them once sent, and they are the bulky entries).
        """
        with _redis_errors("cannot acknowledge an outbox entry"):
            pipe = self.client.pipeline(transaction=True)
            pipe.set(done_key(entry.id), "1", ex=done_seconds)
            pipe.xack(OUTBOX_KEY, GROUP, entry.stream_id)
            if not first:
                pipe.zrem(RETRY_KEY, entry.stream_id)
                pipe.hdel(ATTEMPTS_KEY, entry.stream_id)
            if drop:
                pipe.xdel(OUTBOX_KEY, entry.stream_id)
            pipe.execute()

    def fail(self, entry: Entry, error: str, *, now: float, failed_at: str, max_attempts: int,
             permanent: bool = False) -> Failure:
        """Count a failed attempt: schedule the next one with backoff, or move the entry to the dead letters.

        `error` must be a class name or a status, never data from the entry.
        """
        flat = encode_notice({**entry.raw, "stream_id": entry.stream_id, "error": error, "failed_at": failed_at})
        args = [entry.stream_id, GROUP, max_attempts, now, error, failed_at, DEAD_MAXLEN, int(permanent),
                BACKOFF_BASE_S, BACKOFF_CAP_S, *flat]
        with _redis_errors("cannot record a failed delivery"):
            answer = self._fail(keys=[OUTBOX_KEY, ATTEMPTS_KEY, RETRY_KEY, DEAD_KEY], args=args)
        attempts, dead = int(answer[0]), bool(answer[1])
        return Failure(attempts, True) if dead else Failure(attempts, False, float(answer[2]))

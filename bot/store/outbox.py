"""The outbox: answers to webhook events, staff notices and pushes waiting for the worker to deliver them.

It is `HWBOT_OUTBOX_SHARDS` streams (`bot.store.shards`), each read by the consumer group `workers`.
Shard k's keys share the hash tag `{o<k>}` with the conversations of its users, so a turn's save (and
any step that adds entries for one user) is one Redis Cluster slot. Per shard, per entry (by stream id):

    hwbot:{o<k>}:outbox                  stream  the entries (a user's entries are all in the user's shard)
    hwbot:{o<k>}:outbox:attempts         hash    stream id -> failed attempts so far
    hwbot:{o<k>}:outbox:retry            zset    stream id -> next attempt (unix seconds of the worker's clock)
    hwbot:{o<k>}:outbox:done:<id>        string  set right after a delivery (TTL a few days); <id> is the
                                                 entry's own `id` field (a notice id or a push's retry key)
    hwbot:{o<k>}:outbox:done:<id>:<channel>      the same for one channel of an entry sent to several
    hwbot:{o<k>}:outbox:dead             stream  entries given up on, with `attempts`, `error`, `failed_at`
    hwbot:{o<k>}:outbox:dedup:<key>      string  `add_many(dedup=key)` added its entries (a few days)
    hwbot:outbox:shards                  string  the highest shard count any process used (the worker
                                                 reads shards 0 .. max(its own count, this) - 1)

An entry waiting for a retry stays pending (unacknowledged) and is taken by whichever worker first
removes it from the retry schedule (ZREM is the lock). An entry pending longer than the lease and not
scheduled was being delivered by a worker that died: XAUTOCLAIM hands it to a live one.

Every call works on both a single Redis and a Redis Cluster: atomic steps touch one shard's keys; reads
that span shards are pipelines (split by node on a cluster) and never transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from bot.store.conversations import encode_notice
from bot.store.errors import redis_errors
from bot.store.shards import DEFAULT_SHARDS, MAX_SHARDS, OUTBOX_MAXLEN, entry_owner, outbox_key, shard_of

DEAD_MAXLEN = 10_000  # per shard
GROUP = "workers"
DONE_TTL_SECONDS = 4 * 24 * 3600
DEDUP_TTL_SECONDS = 4 * 24 * 3600  # `add_many`'s markers: longer than anything is retried or redelivered
SHARDS_KEY = "hwbot:outbox:shards"
# Backoff after the n-th failure: BACKOFF_BASE_S * 2**(n-1), at most BACKOFF_CAP_S.
BACKOFF_BASE_S = 2
BACKOFF_CAP_S = 600
# On a Redis Cluster the shards are in different slots, so one blocking XREADGROUP cannot wait on all of
# them: an idle worker looks at every shard this often instead (one pipeline per node).
CLUSTER_POLL_S = 0.02
# Readers across the shards (the console's dead letters, `settled`) look at the noted count this often.
REFRESH_SHARDS_S = 10.0
# Fields of an entry that `encode_notice` stored as JSON.
_JSON_FIELDS = ("fields", "messages")

# KEYS: outbox, attempts hash, retry zset, dead stream (one shard).
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

# KEYS: the shard's stream, optional KEYS[2] the dedup marker (same shard).
# ARGV: maxlen, marker ttl seconds, number of entries, then per entry: 2 * field count, field, value, ...
# Returns the new stream ids; {} when the marker was already set (nothing added).
_ADD_MANY_LUA = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {}
end
local ids = {}
local i = 4
for position = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[i])
  ids[position] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
if KEYS[2] then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
end
return ids
"""

# KEYS: the shard-count key. ARGV: this process's count. Keeps the highest; returns it.
_NOTE_SHARDS_LUA = """
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > known then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return known
"""


def attempts_key(shard: int) -> str:
    """`hwbot:{o<k>}:outbox:attempts`."""
    return outbox_key(shard) + ":attempts"


def retry_key(shard: int) -> str:
    """`hwbot:{o<k>}:outbox:retry`."""
    return outbox_key(shard) + ":retry"


def dead_key(shard: int) -> str:
    """`hwbot:{o<k>}:outbox:dead`."""
    return outbox_key(shard) + ":dead"


def done_key(shard: int, entry_id: str, channel: str | None = None) -> str:
    """`hwbot:{o<k>}:outbox:done:<id>[:<channel>]`: that entry (or one channel of it) was delivered."""
    return f"{outbox_key(shard)}:done:{entry_id}" + (f":{channel}" if channel else "")


def dedup_key(shard: int, dedup: str) -> str:
    """`hwbot:{o<k>}:outbox:dedup:<key>`: `add_many(..., dedup=key)` added its entries."""
    if not dedup or any(ch in dedup for ch in "{}"):
        raise ValueError("a dedup key must be a non-empty string without braces")
    return f"{outbox_key(shard)}:dedup:{dedup}"


def backoff_seconds(failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones (the Lua script's formula)."""
    return min(BACKOFF_BASE_S * 2 ** (failures - 1), BACKOFF_CAP_S)


@dataclass(frozen=True)
class Entry:
    """One outbox entry as read from shard `shard`'s stream."""

    stream_id: str
    raw: dict[str, str]
    shard: int

    @property
    def id(self) -> str:
        """The entry's own id (notice id or push retry key); the stream id for an entry without one."""
        return self.raw.get("id") or self.stream_id

    @property
    def kind(self) -> str:
        return self.raw.get("kind", "")

    @property
    def label(self) -> str:
        """`o<shard>/<stream id>`: which entry this is across the shards (stream ids repeat between
        shards); no data of the entry, so fit for logs."""
        return f"o{self.shard}/{self.stream_id}"

    def done_key(self, channel: str | None = None) -> str:
        """This entry's delivered marker (in its shard)."""
        return done_key(self.shard, self.id, channel)

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


def _entries(shard: int, rows: list | None) -> list[Entry]:
    """Entries of XREADGROUP/XCLAIM rows; a trimmed entry (no fields) keeps an empty dict."""
    return [Entry(stream_id, dict(fields or {}), shard) for stream_id, fields in rows or []]


def _stream_rows(answer: Any) -> dict[str, list]:
    """stream name -> rows of an XREADGROUP answer (RESP2: a list of [name, rows]; RESP3: {name: [rows]})."""
    if not answer:
        return {}
    if isinstance(answer, dict):
        return {name: value[0] if value else [] for name, value in answer.items()}
    return {name: rows for name, rows in answer}


class Outbox:
    """Appends entries to the shards, and gives `hwbot worker` what is due to deliver from every shard."""

    def __init__(self, client: redis.Redis, *, shards: int = DEFAULT_SHARDS):
        shard_of("", shards)  # validates the count
        self.client = client
        self.shards = shards
        self.cluster = isinstance(client, RedisCluster)
        self._fail = client.register_script(_FAIL_LUA)
        self._add_many = client.register_script(_ADD_MANY_LUA)
        self._note = client.register_script(_NOTE_SHARDS_LUA)
        self._noted = False
        self._known = shards  # shards to read: max(own count, the highest any process noted)
        self._refreshed_at = float("-inf")

    # -- writing --------------------------------------------------------------------------------

    def shard(self, owner: str) -> int:
        """The shard of a user (or group, or office)."""
        return shard_of(owner, self.shards)

    def add(self, entry: Mapping[str, object]) -> str:
        """Append one entry (a dict of str -> str | int | JSON-able) to the shard of its recipient (`to`),
        or of its office for a notice that names no user; returns its stream id."""
        flat = encode_notice(entry)
        fields = dict(zip(flat[::2], flat[1::2]))
        shard = self.shard(entry_owner(entry))
        with redis_errors("cannot append to the outbox"):
            return self.client.xadd(outbox_key(shard), fields, maxlen=OUTBOX_MAXLEN, approximate=True)

    def add_many(self, entries: list[Mapping[str, object]], *, user: str, dedup: str | None = None) -> list[str]:
        """Append `entries` to `user`'s shard in one step (one Lua script, one slot); their stream ids.

        With `dedup`, once only: if the marker of that key is set nothing is added and [] is returned,
        else the entries are added and the marker set (for `DEDUP_TTL_SECONDS`) in the same step. A user's
        pushes and the notices their actions cause go to the user's shard, so they keep their order.
        """
        shard = self.shard(user)
        keys = [outbox_key(shard)]
        if dedup is not None:
            keys.append(dedup_key(shard, dedup))
        args: list[object] = [OUTBOX_MAXLEN, DEDUP_TTL_SECONDS, len(entries)]
        for entry in entries:
            flat = encode_notice(entry)
            args += [len(flat), *flat]
        with redis_errors("cannot append to the outbox"):
            return [str(stream_id) for stream_id in self._add_many(keys=keys, args=args)]

    def note_shards(self) -> None:
        """Record this process's shard count (the highest one wins), so that every worker also reads the
        shards of a process configured with more; once per process, a Redis error only postpones it."""
        if self._noted:
            return
        with redis_errors("cannot record the outbox shard count"):
            self._known = max(self.shards, int(self._note(keys=[SHARDS_KEY], args=[self.shards])))
        self._noted = True
        self._refreshed_at = time.monotonic()

    # -- reading across shards ------------------------------------------------------------------

    def read_shards(self) -> range:
        """The shards to read: 0 .. max(this process's count, the highest count any process noted) - 1,
        so that entries left in shards beyond a lowered count are still delivered."""
        return range(min(self._known, MAX_SHARDS))

    def refresh_shards(self) -> range:
        """Read the noted shard count again (the worker, now and then) and return `read_shards()`."""
        with redis_errors("cannot read the outbox shard count"):
            noted = self.client.get(SHARDS_KEY)
        self._known = max(self.shards, int(noted or 0))
        self._refreshed_at = time.monotonic()
        return self.read_shards()

    def _fresh_shards(self) -> None:
        """For the readers across shards: the noted count, read again at most every REFRESH_SHARDS_S."""
        if time.monotonic() - self._refreshed_at >= REFRESH_SHARDS_S:
            self.refresh_shards()

    def _each(self, command: str, key_of, *args: Any, shards: Iterable[int] | None = None, **kwargs: Any) -> list:
        """One command per shard in one pipeline (split by node on a cluster); the answers in shard order."""
        pipe = self.client.pipeline(transaction=False)
        for shard in self.read_shards() if shards is None else shards:
            getattr(pipe, command)(key_of(shard), *args, **kwargs)
        return pipe.execute()

    def _newest(self, key_of, count: int) -> list[tuple[str, dict[str, str]]]:
        rows = [row for rows in self._each("xrevrange", key_of, count=count) for row in rows]
        return sorted(rows, key=lambda row: _id(row[0]), reverse=True)[:count]

    def entries(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The newest entries of all shards, newest first (the simulator's staff pane, tests)."""
        self._fresh_shards()
        with redis_errors("cannot read the outbox"):
            return self._newest(outbox_key, count)

    def backlog(self) -> list[dict[str, int | None]]:
        """Per shard, for monitoring (`hwbot store status`): entries in the stream, entries not yet read
        by the workers (`unread`: None on Redis before 7.0, which does not count them), read and not
        acknowledged (`pending`), waiting for a retry, and dead letters."""
        self._fresh_shards()
        shards = list(self.read_shards())
        with redis_errors("cannot read the outbox backlog"):
            lengths = self._each("xlen", outbox_key, shards=shards)
            retries = self._each("zcard", retry_key, shards=shards)
            dead = self._each("xlen", dead_key, shards=shards)
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.xinfo_groups(outbox_key(shard))
            groups = pipe.execute(raise_on_error=False)  # a shard never written has no stream: an error
        rows = []
        for shard, length, groups_of, waiting, given_up in zip(shards, lengths, groups, retries, dead):
            group = next((g for g in groups_of if g.get("name") == GROUP), None) if isinstance(groups_of, list) else None
            unread = group.get("lag") if group else length
            rows.append({"shard": shard, "length": int(length), "unread": None if unread is None else int(unread),
                         "pending": int(group["pending"]) if group else 0, "retries": int(waiting),
                         "dead": int(given_up)})
        return rows

    def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Entries moved to the dead-letter streams of all shards, newest first (the staff console)."""
        self._fresh_shards()
        with redis_errors("cannot read the dead-letter stream"):
            return self._newest(dead_key, count)

    def settled(self) -> bool:
        """True when every entry of every shard was delivered (or given up on): none left unread by the
        workers' group, none read and unacknowledged (the test kit waits for this; works on Redis 6.2)."""
        self._fresh_shards()
        with redis_errors("cannot read the outbox state"):
            shards = [shard for shard, found in zip(self.read_shards(), self._each("exists", outbox_key)) if found]
            if not shards:
                return True
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.xinfo_stream(outbox_key(shard))
                pipe.xinfo_groups(outbox_key(shard))
            answers = pipe.execute()
        for stream, groups in zip(answers[::2], answers[1::2]):
            group = next((g for g in groups if g["name"] == GROUP), None)
            if group is None:
                if stream["length"]:
                    return False
            elif group["pending"] or _id(group["last-delivered-id"]) < _id(stream["last-generated-id"]):
                return False
        return True

    # -- the worker's side ----------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Note the shard count, then create the consumer group (and the stream) of every shard unless it
        exists; from the start of the stream, so entries appended before any worker ran are delivered too."""
        self.note_shards()
        with redis_errors("cannot create the outbox consumer group"):
            for shard in self.read_shards():
                try:
                    self.client.xgroup_create(outbox_key(shard), GROUP, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    def own_pending(self, consumer: str, count: int = 1000) -> list[Entry]:
        """This consumer's unacknowledged entries not waiting for a retry (what it was delivering when it stopped)."""
        with redis_errors("cannot read pending outbox entries"):
            return self._unscheduled(self._read(consumer, "0", count))

    def claim_stale(self, consumer: str, lease_ms: int, cursors: dict[int, str] | None = None,
                    count: int = 100) -> tuple[dict[int, str], list[Entry]]:
        """(next cursors, entries) taken over from consumers idle longer than the lease, retries excepted.

        XAUTOCLAIM in every shard, each from its own cursor (`cursors`: shard -> stream id, as returned
        by the previous call; None or a missing shard starts at the beginning)."""
        cursors = dict(cursors or {})
        shards = list(self.read_shards())
        with redis_errors("cannot claim stale outbox entries"):
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.xautoclaim(outbox_key(shard), GROUP, consumer, lease_ms, cursors.get(shard, "0-0"), count=count)
            taken: list[Entry] = []
            for shard, answer in zip(shards, pipe.execute()):
                cursors[shard] = answer[0]
                taken += _entries(shard, answer[1])
            return cursors, self._unscheduled(taken)

    def claim_due(self, consumer: str, now: float, count: int = 100) -> list[Entry]:
        """Entries whose retry time has come; removing one from the schedule is what makes it ours."""
        with redis_errors("cannot claim due outbox retries"):
            due = {shard: ids for shard, ids in zip(
                self.read_shards(), self._each("zrangebyscore", retry_key, "-inf", now, start=0, num=count)) if ids}
            if not due:
                return []
            pipe = self.client.pipeline(transaction=False)
            for shard, ids in due.items():
                for stream_id in ids:
                    pipe.zrem(retry_key(shard), stream_id)
            removed = iter(pipe.execute())
            won = {shard: [stream_id for stream_id in ids if next(removed)] for shard, ids in due.items()}
            pipe = self.client.pipeline(transaction=False)
            shards = [shard for shard, ids in won.items() if ids]
            for shard in shards:
                pipe.xclaim(outbox_key(shard), GROUP, consumer, 0, won[shard])
            return [entry for shard, rows in zip(shards, pipe.execute() if shards else []) for entry in _entries(shard, rows)]

    def read_new(self, consumer: str, count: int = 100, block_ms: int | None = None) -> list[Entry]:
        """Entries never given to any consumer, at most `count` per shard; waits up to `block_ms` for one.

        On one Redis server one XREADGROUP reads (and blocks on) every shard; on a Redis Cluster, where
        the shards are in different slots, one pipeline per node reads them, and an idle wait looks
        again every `CLUSTER_POLL_S`.
        """
        with redis_errors("cannot read the outbox"):
            if not self.cluster:
                return self._read(consumer, ">", count, block_ms)
            deadline = time.monotonic() + (block_ms or 0) / 1000
            while True:
                found = self._read(consumer, ">", count)
                if found or time.monotonic() >= deadline:
                    return found
                time.sleep(min(CLUSTER_POLL_S, max(deadline - time.monotonic(), 0)))

    def _read(self, consumer: str, start: str, count: int, block_ms: int | None = None) -> list[Entry]:
        """XREADGROUP from `start` in every shard: one call on a single server, a pipeline on a cluster."""
        shards = list(self.read_shards())
        if not self.cluster:
            answer = self.client.xreadgroup(GROUP, consumer, {outbox_key(shard): start for shard in shards},
                                            count=count, block=block_ms)
            rows = _stream_rows(answer)
            return [entry for shard in shards for entry in _entries(shard, rows.get(outbox_key(shard)))]
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.xreadgroup(GROUP, consumer, {outbox_key(shard): start}, count=count)
        return [entry for shard, answer in zip(shards, pipe.execute())
                for entry in _entries(shard, _stream_rows(answer).get(outbox_key(shard)))]

    def _unscheduled(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            pipe.zscore(retry_key(entry.shard), entry.stream_id)
        return [entry for entry, score in zip(entries, pipe.execute()) if score is None]

    def delivered(self, keys: list[str]) -> set[str]:
        """Which of these done-marker keys (see `done_key`) are set."""
        if not keys:
            return set()
        with redis_errors("cannot read delivery markers"):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            return {key for key, found in zip(keys, pipe.execute()) if found}

    def mark_channel(self, entry: Entry, channel: str) -> None:
        """One channel of a multi-channel entry went out: a retry skips it."""
        with redis_errors("cannot mark a delivery"):
            self.client.set(entry.done_key(channel), "1", ex=DONE_TTL_SECONDS)

    def ack(self, entry: Entry, *, first: bool = False, drop: bool = False,
            done_seconds: int = DONE_TTL_SECONDS) -> None:
        """Delivered: set the marker and acknowledge, in one MULTI in the entry's shard (a retry or a
        duplicate id skips it).

        `first`: the entry's first attempt (no retry state to clear); `drop`: delete it from the
        stream too (a user's messages: nothing reads them once sent, and they are the bulky entries).
        """
        stream = outbox_key(entry.shard)
        with redis_errors("cannot acknowledge an outbox entry"):
            # One round trip; without MULTI on a first attempt: the marker goes first, so an XACK lost
            # with the connection leaves a pending entry that the next delivery skips as delivered.
            pipe = self.client.pipeline(transaction=not first)
            pipe.set(entry.done_key(), "1", ex=done_seconds)
            pipe.xack(stream, GROUP, entry.stream_id)
            if not first:
                pipe.zrem(retry_key(entry.shard), entry.stream_id)
                pipe.hdel(attempts_key(entry.shard), entry.stream_id)
            if drop:
                pipe.xdel(stream, entry.stream_id)
            pipe.execute()

    def fail(self, entry: Entry, error: str, *, now: float, failed_at: str, max_attempts: int,
             permanent: bool = False) -> Failure:
        """Count a failed attempt: schedule the next one with backoff, or move the entry to the dead letters.

        `error` must be a class name or a status, never data from the entry.
        """
        flat = encode_notice({**entry.raw, "stream_id": entry.stream_id, "error": error, "failed_at": failed_at})
        args = [entry.stream_id, GROUP, max_attempts, now, error, failed_at, DEAD_MAXLEN, int(permanent),
                BACKOFF_BASE_S, BACKOFF_CAP_S, *flat]
        shard = entry.shard
        with redis_errors("cannot record a failed delivery"):
            answer = self._fail(keys=[outbox_key(shard), attempts_key(shard), retry_key(shard), dead_key(shard)],
                                args=args)
        attempts, dead = int(answer[0]), bool(answer[1])
        return Failure(attempts, True) if dead else Failure(attempts, False, float(answer[2]))


__all__ = ["Entry", "Failure", "Outbox"]

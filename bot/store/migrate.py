"""`hwbot store migrate`: moves the keys of an older layout to the current one; running it again does nothing.

Issue 13 (Redis Cluster) renamed keys so that every atomic step is one hash slot. Data written by an
older version on a single Redis server (embedded or `REDIS_URL`) keeps its old names until this runs;
start-up refuses to run on it (`require_current_layout`, naming this command). Stop every hwbot
process (web, worker), deploy, run `hwbot store migrate`, start again.

One table, `FAMILIES`, lists every family of old keys: the pattern its keys match (found with SCAN),
the fixed key names whose presence start-up looks for (`probes`: one EXISTS, no scan), and how one key
moves. Families run in table order. A move is a RENAME where nothing has the new name yet; where
something has, the family says whether the old key is stale (dropped: a conversation the user already
continued under the new name) or must be looked at (left in place and reported; the command then exits
non-zero). Each move is one step, so a migration stopped half-way is finished by running it again.

The same command moves conversations to their new shard after `HWBOT_OUTBOX_SHARDS` changed (the
`reshard` family: keys of the current layout in the wrong shard); see docs/architecture.md, "Changing
the shard count".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis
from redis.cluster import RedisCluster

from bot.errors import LayoutError, StoreError
from bot.store.conversations import conversation_key, last_reply_key
from bot.store.errors import redis_errors
from bot.store.handoffs import CLOSED_KEY, HANDOFFS_KEY, messages_key, thread_key, user_threads_key
from bot.store.outbox import DEAD_MAXLEN, GROUP, dead_key
from bot.store.shards import OUTBOX_MAXLEN, entry_owner, outbox_key, shard_of
from bot.store.slots import day_prefix

COMMAND = "hwbot store migrate"

# The old outbox (one stream): its keys.
OLD_OUTBOX = "hwbot:outbox"
OLD_ATTEMPTS = "hwbot:outbox:attempts"
OLD_RETRY = "hwbot:outbox:retry"
OLD_DEAD = "hwbot:outbox:dead"

# KEYS: old stream, new stream (or the old one again: drop only). ARGV: old id, maxlen, then the fields.
# Moves one entry in one step (a single server: the keys may be anywhere), so a rerun never adds it twice.
_MOVE_ENTRY_LUA = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if #ARGV > 2 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return 1
"""

# KEYS: old thread, old messages, new thread, new messages, user's thread set, closed index, waiting list.
# ARGV: old id, new id, user, the waiting list's JSON as read ('' when none), its JSON with the new id.
# Renames one thread and every reference to it in one step.
_MOVE_THREAD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
if redis.call('SREM', KEYS[5], ARGV[1]) == 1 then redis.call('SADD', KEYS[5], ARGV[2]) end
local closed = redis.call('ZSCORE', KEYS[6], ARGV[1])
if closed then
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('ZADD', KEYS[6], closed, ARGV[2])
end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[7], ARGV[3]) == ARGV[4] then
  redis.call('HSET', KEYS[7], ARGV[3], ARGV[5])
end
return 1
"""


@dataclass
class Report:
    """What a migration did (or, dry, would do): family name -> keys moved, dropped and left."""

    moved: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)

    def count(self, family: str, outcome: str, key: str = "") -> None:
        if outcome == "left":
            self.left.setdefault(family, []).append(key)
        else:
            table = self.moved if outcome == "moved" else self.dropped
            table[family] = table.get(family, 0) + 1

    @property
    def done(self) -> bool:
        return not self.left


class Migration:
    """The moves, on one client; `dry`: count what would move and change nothing."""

    def __init__(self, client: redis.Redis, *, shards: int, dry: bool = False):
        self.client = client
        self.shards = shards
        self.dry = dry
        self.cluster = isinstance(client, RedisCluster)
        self.report = Report()
        self.thread_ids: dict[str, str] = {}  # old thread id -> new, for the outbox entries that name one
        self._entry = client.register_script(_MOVE_ENTRY_LUA)
        self._thread = client.register_script(_MOVE_THREAD_LUA)

    def scan(self, pattern: str) -> Iterator[str]:
        """The keys matching `pattern` (every node of a cluster), sorted: a stable order to report."""
        yield from sorted(set(self.client.scan_iter(match=pattern, count=1000)))

    def rename(self, family: str, old: str, new: str, *, stale_if_taken: bool) -> None:
        """Move `old` to `new` (its value and lifetime). If `new` exists: drop `old` when it is stale,
        else leave it and report it."""
        if self.client.exists(new):
            if stale_if_taken:
                if not self.dry:
                    self.client.delete(old)
                self.report.count(family, "dropped")
            else:
                self.report.count(family, "left", old)
            return
        if not self.dry:
            if self.cluster:  # two slots: copy, then delete (a rerun after a crash between finds `new` taken)
                ttl = self.client.pttl(old)
                self.client.restore(new, max(ttl, 0), self.client.dump(old))
                self.client.delete(old)
            else:
                self.client.rename(old, new)
        self.report.count(family, "moved")

    def drop(self, family: str, key: str) -> None:
        if not self.dry:
            self.client.delete(key)
        self.report.count(family, "dropped")


@dataclass(frozen=True)
class Family:
    """Old keys of one kind: `pattern` finds them, `move(migration, key)` moves one, `probes` are fixed
    names start-up checks (keys every deployment of the old layout has, when it has this family)."""

    name: str
    pattern: str
    move: Callable[[Migration, str], None]
    probes: tuple[str, ...] = ()
    legacy: bool = True  # False: keys of the current layout (resharding), not looked for at start-up


def _between(key: str, prefix: str, suffix: str) -> str:
    return key[len(prefix):len(key) - len(suffix)] if suffix else key[len(prefix):]


# -- the outbox (cluster-outbox) ----------------------------------------------------------------------

def _conversation(m: Migration, key: str) -> None:
    user = _between(key, "hwbot:{u:", "}:conv")
    m.rename("conversations", key, conversation_key(shard_of(user, m.shards), user), stale_if_taken=True)


def _last_reply(m: Migration, key: str) -> None:
    user = _between(key, "hwbot:{u:", "}:last_reply")
    m.rename("last answers", key, last_reply_key(shard_of(user, m.shards), user), stale_if_taken=True)


def _event(m: Migration, key: str) -> None:
    # The old marker names no user, so its shard is unknown: dropped. A webhook event is redelivered
    # only when its 200 was lost, within minutes; the migration runs with the bot stopped.
    m.drop("event markers", key)


def _thread(m: Migration, key: str) -> None:
    if key.endswith(":messages"):
        return  # moved with its thread
    old = _between(key, "hwbot:thread:", "")
    user = m.client.hget(key, "user") or ""
    new = f"{shard_of(user, m.shards)}-{old}"
    m.thread_ids[old] = new
    if m.dry:
        m.report.count("handoff threads", "moved")
        return
    waiting = (m.client.hget(HANDOFFS_KEY, user) or "") if user else ""
    renamed = waiting
    if waiting:
        info = json.loads(waiting)
        if info.get("thread") == old:
            renamed = json.dumps({**info, "thread": new}, ensure_ascii=False)
    keys = [key, f"{key}:messages", thread_key(new), messages_key(new),
            user_threads_key(user) if user else f"{key}:no-user", CLOSED_KEY, HANDOFFS_KEY]
    done = int(m._thread(keys=keys, args=[old, new, user, waiting, renamed]))
    m.report.count("handoff threads", "moved" if done == 1 else "left", key)


def _outbox(m: Migration, key: str) -> None:
    """Every entry not delivered yet goes to its shard, in stream order (a user's order is kept); retry
    state is not carried over (such an entry is tried again at once, with a fresh count)."""
    if m.client.type(key) != "stream":
        return
    last, pending = "0-0", set()
    for group in m.client.xinfo_groups(key):
        if group["name"] == GROUP:
            last = group["last-delivered-id"]
            for row in _pending(m.client, key):
                pending.add(row)
    for stream_id, fields in m.client.xrange(key):
        delivered = _older(stream_id, last) and stream_id not in pending
        if not delivered and fields.get("id") and m.client.exists(f"hwbot:outbox:done:{fields['id']}"):
            delivered = True  # sent, and the worker stopped before acknowledging it
        if delivered:
            if not m.dry:
                m._entry(keys=[key, key], args=[stream_id, OUTBOX_MAXLEN])
            m.report.count("outbox entries", "dropped")
            continue
        fields = _renamed_thread(m, fields)
        shard = shard_of(entry_owner(fields), m.shards)
        if not m.dry:
            flat = [part for pair in fields.items() for part in pair]
            m._entry(keys=[key, outbox_key(shard)], args=[stream_id, OUTBOX_MAXLEN, *flat])
        m.report.count("outbox entries", "moved")
    for old in (key, OLD_ATTEMPTS, OLD_RETRY):
        if not m.dry:
            m.client.delete(old)


def _pending(client: redis.Redis, key: str) -> Iterator[str]:
    start = "-"
    while True:
        rows = client.xpending_range(key, GROUP, min=start, max="+", count=1000)
        for row in rows:
            yield row["message_id"]
        if len(rows) < 1000:
            return
        milliseconds, _, sequence = rows[-1]["message_id"].partition("-")
        start = f"{milliseconds}-{int(sequence) + 1}"


def _older(stream_id: str, last: str) -> bool:
    def parts(value: str) -> tuple[int, int]:
        milliseconds, _, sequence = value.partition("-")
        return int(milliseconds), int(sequence or 0)

    return parts(stream_id) <= parts(last)


def _renamed_thread(m: Migration, fields: dict[str, str]) -> dict[str, str]:
    """A handoff notice names its thread (the console link): the thread's new id."""
    raw = fields.get("fields")
    if not raw or not m.thread_ids:
        return fields
    try:
        values = json.loads(raw)
    except ValueError:
        return fields
    if isinstance(values, dict) and values.get("thread") in m.thread_ids:
        values = {**values, "thread": m.thread_ids[values["thread"]]}
        return {**fields, "fields": json.dumps(values, ensure_ascii=False, separators=(",", ":"))}
    return fields


def _dead(m: Migration, key: str) -> None:
    """Dead letters (for the console) go to the shard of their recipient, newest last as before."""
    if m.client.type(key) != "stream":
        return
    for stream_id, fields in m.client.xrange(key):
        if not m.dry:
            flat = [part for pair in fields.items() for part in pair]
            m._entry(keys=[key, dead_key(shard_of(entry_owner(fields), m.shards))],
                     args=[stream_id, DEAD_MAXLEN, *flat])
        m.report.count("dead letters", "moved")
    if not m.dry:
        m.client.delete(key)


def _done(m: Migration, key: str) -> None:
    # A delivered marker names an entry id, not its shard: dropped. Entries still in the old stream were
    # checked against them above; a push repeated later still carries its LINE retry key.
    m.drop("delivery markers", key)


def _staff(m: Migration, key: str) -> None:
    m.rename("staff accounts", key, "hwbot:{staff}:" + _between(key, "hwbot:staff:", ""), stale_if_taken=False)


def _reshard(m: Migration, key: str) -> None:
    """A conversation in another shard than its user's under the current count: moved to it."""
    tag, _, user = _between(key, "hwbot:{o", "").partition("}:conv:")
    if not tag.isdigit() or not user:
        return
    new = conversation_key(shard_of(user, m.shards), user)
    if new != key:
        m.rename("conversations (shard count changed)", key, new, stale_if_taken=True)


# -- bookings (cluster-bookings) ----------------------------------------------------------------------

# A booking key of the old layout: tagged by office day, `hwbot:{noto:2026-12-01}:slot:1000`,
# `...:booking:<id>`, `...:bookings`. The same name tagged by office: `hwbot:{noto}:2026-12-01:slot:1000`.
_OLD_BOOKING = re.compile(r"hwbot:\{([^{}:|]+):(\d{4}-\d{2}-\d{2})\}:(slot:\d{4}|booking:[^{}|]+|bookings)")


def _booking(m: Migration, key: str) -> None:
    """A slot set, a booking or a day index moves under its office's tag (value and lifetime kept); the
    refs in the user indexes (`<office>|<slot>|<id>`) and in the bookings stay as they are."""
    match = _OLD_BOOKING.fullmatch(key)
    if match is None:
        return  # matched the pattern only by chance
    office, day, rest = match.groups()
    m.rename("bookings", key, day_prefix(office, day) + rest, stale_if_taken=False)


FAMILIES: list[Family] = [
    # cluster-outbox: conversations, the outbox, handoff threads, staff accounts (docs/architecture.md)
    Family("conversations", "hwbot:{u:*}:conv", _conversation),
    Family("last answers", "hwbot:{u:*}:last_reply", _last_reply),
    Family("event markers", "hwbot:event:*", _event),
    Family("handoff threads", "hwbot:thread:*", _thread),
    Family("outbox", OLD_OUTBOX, _outbox, probes=(OLD_OUTBOX,)),
    Family("dead letters", OLD_DEAD, _dead, probes=(OLD_DEAD,)),
    Family("delivery markers", "hwbot:outbox:done:*", _done),
    Family("staff accounts", "hwbot:staff:*", _staff, probes=("hwbot:staff:names",)),
    Family("reshard", "hwbot:{o*}:conv:*", _reshard, legacy=False),
    # cluster-bookings: slot sets, bookings and day indexes, from the office day's tag to the office's.
    # No probe of their own: a fixed name does not exist, and every deployment that booked has the old
    # outbox (each booking sent a staff notice, and notices stay in the stream).
    Family("bookings", "hwbot:{*:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]}:*", _booking),
]


def migrate(client: redis.Redis, *, shards: int, dry: bool = False) -> Report:
    """Run every family in table order; what moved, was dropped, or was left (a name already taken)."""
    migration = Migration(client, shards=shards, dry=dry)
    with redis_errors("cannot migrate"):
        for family in FAMILIES:
            if family.legacy and migration.cluster:
                continue  # the old layout only ever ran on one server (its steps spanned slots)
            for key in migration.scan(family.pattern):
                family.move(migration, key)
    return migration.report


def old_layout(client: redis.Redis) -> list[str]:
    """The probe keys of the old layout that exist (one round trip)."""
    probes = [probe for family in FAMILIES if family.legacy for probe in family.probes]
    with redis_errors("cannot check the key layout"):
        pipe = client.pipeline(transaction=False)
        for probe in probes:
            pipe.exists(probe)
        return [probe for probe, found in zip(probes, pipe.execute()) if found]


def require_current_layout(client: redis.Redis) -> None:
    """Start-up: LayoutError naming `hwbot store migrate` when old-layout keys exist. Redis unreachable
    is not this check's business (the first request answers 503)."""
    try:
        found = old_layout(client)
    except StoreError:
        return
    if found:
        raise LayoutError(
            f"Redis holds data in the key layout of an older hwbot version ({', '.join(found)}, ...): "
            f"stop every hwbot process and run `{COMMAND}` (README, \"Upgrading stored data\")")

"""Conversation state per user: plain JSON with a version, saved by compare-and-set.

A conversation is the hash `hwbot:{o<k>}:conv:<user>` with fields `v` (version, an integer) and `data`
(JSON), where `{o<k>}` is the user's outbox shard (`bot.store.shards`). Webhook workers may handle two
events of one user at once (gunicorn promises no order), so `save` only succeeds against the version
that was loaded; the loser gets `ConflictError`, reloads and runs its event again. Staff notices
produced by the same step are appended to the user's outbox shard in the same atomic step, so a notice
is sent if and only if the state that caused it was saved.

One Lua script does the check, the write, the expiry and the XADDs: one round trip, no retry loop.
Its keys (the conversation, the user's last answer, the event marker and the shard's stream) all
carry the user's shard tag, so the step is one Redis Cluster slot.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence

import redis

from bot.errors import ConflictError, StoreError
from bot.store.errors import redis_errors
from bot.store.shards import DEFAULT_SHARDS, OUTBOX_MAXLEN, outbox_key, shard_of, shard_tag

# KEYS (one shard tag): KEYS[1] conversation hash, KEYS[2] the shard's outbox stream, KEYS[3] the user's last-reply key, optional KEYS[4]
# processed-event marker.
# ARGV[1] expected version, ARGV[2] data JSON ('' deletes the conversation), ARGV[3] ttl seconds, ARGV[4] outbox maxlen,
# ARGV[5] number of entries, ARGV[6] the reply entry's position among them (1-based; 0: the turn has no reply)
# and ARGV[7] its id, ARGV[8] the last-reply key's ttl seconds; then per entry: 2 * field count, field, value,
# field, value...; then, with KEYS[4], the marker's ttl seconds.
# The reply entry gets an `after` field: the id of the user's previous reply entry if it is recent (the
# worker sends a user's replies in that order, `bot.staff.worker`), and becomes the user's last reply.
# Returns {1, new version (0 when deleted)} when saved, {0, stored version} when the version did not match.
_SAVE_LUA = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if stored ~= tonumber(ARGV[1]) then
  return {0, stored}
end
local version = stored + 1
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  version = 0
else
  redis.call('HSET', KEYS[1], 'v', version, 'data', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local i = 9
for position = 1, tonumber(ARGV[5]) do
  local n = tonumber(ARGV[i])
  if position == tonumber(ARGV[6]) then
    local previous = redis.call('GET', KEYS[3]) or ''
    redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[8])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'after', previous, unpack(ARGV, i + 1, i + n))
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, i + 1, i + n))
  end
  i = i + 1 + n
end
if KEYS[4] then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[i])
end
return {1, version}
"""

# How long a user's last reply is remembered for ordering: past it, its reply token has expired anyway.
LAST_REPLY_TTL_SECONDS = 120

# A webhook event id is remembered this long (LINE redelivers for a limited time).
EVENT_TTL_SECONDS = 2 * 24 * 3600


def _user_part(user: str) -> str:
    if not user or any(ch in user for ch in "{}"):
        raise ValueError("user id must be a non-empty string without braces")
    return user


def last_reply_key(shard: int, user: str) -> str:
    """`hwbot:{o<k>}:last_reply:<user>`: the id of the user's latest reply entry (ordering across workers)."""
    return f"hwbot:{shard_tag(shard)}:last_reply:{_user_part(user)}"


def conversation_key(shard: int, user: str) -> str:
    """`hwbot:{o<k>}:conv:<user>` in the user's shard `k`; `user` is already an opaque (LINE) id."""
    return f"hwbot:{shard_tag(shard)}:conv:{_user_part(user)}"


# A webhook event id used in its key as it is (LINE's are ULIDs: 26 letters and digits).
_PLAIN_EVENT_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")


def event_key(shard: int, event_id: str) -> str:
    """`hwbot:{o<k>}:event:<id>`: set once the effects of a webhook event are saved; in the shard of the
    event's user (or, for a group's `join`, of the group), so that it is saved in the turn's step.

    Any other id (empty, spaces, braces, very long, any character) is hashed, `...:event:#<sha256>`,
    so that a signed body never fails on it and its redelivery is still recognised.
    """
    if _PLAIN_EVENT_ID.fullmatch(event_id):
        return f"hwbot:{shard_tag(shard)}:event:{event_id}"
    return f"hwbot:{shard_tag(shard)}:event:#" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


def encode_notice(notice: Mapping[str, object]) -> list[str]:
    """Flatten a notice into stream field/value pairs: str stays, int becomes digits, the rest JSON."""
    if not notice:
        raise ValueError("a notice needs at least one field")
    flat: list[str] = []
    for field, value in notice.items():
        if not isinstance(field, str):
            raise TypeError("notice field names must be strings")
        if isinstance(value, str):
            text = value
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        flat += [field, text]
    return flat


# Driver errors become StoreUnavailable (retry later: 503) or StoreError, naming only the operation.


class ConversationStore:
    """Loads and saves one user's conversation; idle conversations expire after `ttl_seconds`."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int, shards: int = DEFAULT_SHARDS):
        if type(ttl_seconds) is not int or ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive integer")
        shard_of("", shards)  # validates the count
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.shards = shards
        self._save = client.register_script(_SAVE_LUA)

    def shard(self, user: str) -> int:
        """The user's outbox shard: the hash tag of every key of theirs here."""
        return shard_of(user, self.shards)

    def key(self, user: str) -> str:
        """The user's conversation key."""
        return conversation_key(self.shard(user), user)

    def load(self, user: str) -> tuple[dict | None, int]:
        """(data, version) of the user's conversation; (None, 0) when there is none (or it expired)."""
        key = self.key(user)
        with redis_errors("cannot load conversation"):
            version, raw = self.client.hmget(key, ["v", "data"])
        return self._decode(version, raw)

    @staticmethod
    def _decode(version: str | None, raw: str | None) -> tuple[dict | None, int]:
        if version is None and raw is None:
            return None, 0
        try:
            data = json.loads(raw)
            number = int(version)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"conversation unreadable: {exc.__class__.__name__}") from None
        if not isinstance(data, dict):
            raise StoreError("conversation unreadable: not a JSON object")
        return data, number

    def load_for_event(self, user: str, event_id: str) -> tuple[dict | None, int, bool]:
        """(data, version, already processed) in one round trip, for a webhook event (both keys are in
        the user's shard: one node of a cluster)."""
        shard = self.shard(user)
        with redis_errors("cannot load conversation"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(conversation_key(shard, user), ["v", "data"])
            pipe.exists(event_key(shard, event_id))
            (version, raw), seen = pipe.execute()
        data, number = self._decode(version, raw)
        return data, number, bool(seen)

    def mark_event(self, event_id: str, owner: str) -> bool:
        """Mark an event processed that has no conversation save (a group's join; `owner` the group id, whose
        shard keeps the marker); False if it already was."""
        with redis_errors("cannot mark event"):
            key = event_key(shard_of(owner, self.shards), event_id)
            return bool(self.client.set(key, "1", ex=EVENT_TTL_SECONDS, nx=True))

    def save(
        self,
        user: str,
        data: dict,
        expected_version: int,
        *,
        notices: Sequence[Mapping[str, object]] = (),
        event_id: str | None = None,
        reply: Mapping[str, object] | None = None,
    ) -> int:
        """Store `data` if the stored version is still `expected_version`; returns the new version.

        Raises ConflictError when another worker saved (or the conversation expired) meanwhile;
        then neither the data nor any notice nor the reply is written. Each notice becomes one outbox
        entry; so does `reply` (a webhook turn's answer, with its `id` first: `bot.channels.line.webhook`),
        which also becomes the user's last reply and carries the previous one as `after`.
        """
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return self._store(user, payload, expected_version, notices, event_id, reply)

    def erase(
        self,
        user: str,
        expected_version: int,
        *,
        notices: Sequence[Mapping[str, object]] = (),
        event_id: str | None = None,
        reply: Mapping[str, object] | None = None,
    ) -> None:
        """Delete the conversation if it is still at `expected_version`, with its notices and event mark.

        One atomic step like `save`: the notices of an unfollow or a data deletion are sent if and only
        if the conversation was erased. Raises ConflictError when another worker saved meanwhile.
        """
        self._store(user, "", expected_version, notices, event_id, reply)

    def _store(
        self,
        user: str,
        payload: str,
        expected_version: int,
        notices: Sequence[Mapping[str, object]],
        event_id: str | None,
        reply: Mapping[str, object] | None = None,
    ) -> int:
        if type(expected_version) is not int or expected_version < 0:
            raise ValueError("expected_version must be a non-negative integer")
        shard = self.shard(user)
        entries = [reply, *notices] if reply else list(notices)
        args: list[object] = [expected_version, payload, self.ttl_seconds, OUTBOX_MAXLEN, len(entries),
                              1 if reply else 0, str(reply["id"]) if reply else "", LAST_REPLY_TTL_SECONDS]
        for entry in entries:
            flat = encode_notice(entry)
            args += [len(flat), *flat]
        keys = [conversation_key(shard, user), outbox_key(shard), last_reply_key(shard, user)]
        if event_id is not None:
            keys.append(event_key(shard, event_id))
            args.append(EVENT_TTL_SECONDS)
        with redis_errors("cannot save conversation"):
            saved, version = self._save(keys=keys, args=args)
        if not saved:
            raise ConflictError(
                f"conversation changed meanwhile (expected version {expected_version}, found {version})"
            )
        return int(version)

    def delete(self, user: str) -> None:
        """Forget the user's conversation (a later save must start again from version 0)."""
        with redis_errors("cannot delete conversation"):
            self.client.delete(self.key(user))

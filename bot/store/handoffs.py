"""Users handed to staff (the bot is paused for them) and their handoff threads.

    hwbot:handoffs                        hash  user -> JSON of why and when (office, reason, step, at, thread)
    hwbot:{o<k>}:thread:<id>              hash  the thread: user, office, reason, step, since, mode, closed_at,
                                                closed_by, notified_at, staff_at; r:<nonce> per staff reply and
                                                m:<key> per user message (each is kept once)
    hwbot:{o<k>}:thread:<id>:messages     list  JSON {"from": "user"|"staff", "text", "at"[, "kind"]}, in order
    hwbot:{u:<user>}:threads              set   the user's thread ids (erased with the user's data)
    hwbot:threads:closed                  zset  thread id -> when it closed (unix seconds, the app's clock)

A thread id is opaque, `<k>-<16 random hex digits>`, never the LINE user id: `k` is the outbox shard of
the thread's user when it opened (`bot.store.shards`), whose hash tag `{o<k>}` its keys carry. So what
the user writes (thread and messages) is one slot, and a staff reply (thread, messages and the push in
the user's outbox shard) is one Lua script in one slot, whatever the shard count is later. The waiting
list, the user's thread set and the closed index are keys of their own slots, changed in separate,
idempotent steps in an order that makes a crash between them harmless or repaired by a repeat (each
method says which).

What the user wrote is personal data: it is erased with the user (`erase_user`) and
`HWBOT_THREAD_RETENTION_DAYS` after the thread closed (`expired` + `delete`, the worker's retention
task); the keys also expire a month after that, in case the task never runs.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import redis

from bot.store.conversations import encode_notice
from bot.store.errors import redis_errors
from bot.store.shards import DEFAULT_SHARDS, MAX_SHARDS, OUTBOX_MAXLEN, outbox_key, shard_of, shard_tag

HANDOFFS_KEY = "hwbot:handoffs"
CLOSED_KEY = "hwbot:threads:closed"
# A closed thread's keys expire this long after the retention task should have deleted them.
EXPIRY_MARGIN_SECONDS = 30 * 24 * 3600

# KEYS (one slot): thread hash, messages list. ARGV: the message's key (its webhook event), message JSON.
# Appends once per key; returns the thread's fields (empty when there is no such thread).
_USER_MESSAGE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
if redis.call('HSETNX', KEYS[1], 'm:' .. ARGV[1], '1') == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS (one slot): thread hash, messages list, the outbox stream of the thread's shard. ARGV: nonce, message JSON, staff_at, outbox maxlen, then the
# push entry's field/value pairs. Returns 1 (sent), 0 (this nonce was sent already), -1 (no such open thread).
_REPLY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'closed_at') == 1 then
  return -1
end
if redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], '1') == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'staff_at', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
return 1
"""


def _fields(raw: dict[str, str]) -> dict[str, str]:
    """A thread hash without its once-only markers (`r:<nonce>`, `m:<key>`)."""
    return {name: value for name, value in raw.items() if not name.startswith(("r:", "m:"))}


_THREAD_ID = re.compile(r"(0|[1-9][0-9]{0,3})-[0-9a-f]{16}")


def valid_thread_id(text: str) -> bool:
    """`<k>-<16 hex digits>` with `k` a shard number: the shape `new_thread_id` gives."""
    return bool(_THREAD_ID.fullmatch(text)) and int(text.partition("-")[0]) < MAX_SHARDS


def thread_shard(thread_id: str) -> int:
    """The shard a thread's keys live in (named by its id); ValueError for an id of another shape."""
    if not valid_thread_id(thread_id):
        raise ValueError("not a thread id")
    return int(thread_id.partition("-")[0])


def thread_key(thread_id: str) -> str:
    """`hwbot:{o<k>}:thread:<id>`."""
    return f"hwbot:{shard_tag(thread_shard(thread_id))}:thread:{thread_id}"


def messages_key(thread_id: str) -> str:
    """`hwbot:{o<k>}:thread:<id>:messages`."""
    return thread_key(thread_id) + ":messages"


def user_threads_key(user: str) -> str:
    """`hwbot:{u:<user>}:threads`: in the user's own slot, whatever the shard count (erasure finds every
    thread the user ever had)."""
    return f"hwbot:{{u:{user}}}:threads"


def new_thread_id(shard: int) -> str:
    """An opaque thread id in `shard`: nothing about the user can be read from it but the shard number."""
    shard_tag(shard)  # validates it
    return f"{shard}-{secrets.token_hex(8)}"


class HandoffStore:
    """The staff console's list of users waiting for staff, and what was said in each thread."""

    def __init__(self, client: redis.Redis, *, shards: int = DEFAULT_SHARDS):
        self.client = client
        self.shards = shards
        self._reply = client.register_script(_REPLY_LUA)
        self._user_message = client.register_script(_USER_MESSAGE_LUA)

    def new_id(self, user: str) -> str:
        """A new thread id for `user`, in the user's outbox shard."""
        return new_thread_id(shard_of(user, self.shards))

    # -- the waiting list -----------------------------------------------------------------------

    def open(self, user: str, info: dict[str, str]) -> str:
        """Record that `user` waits for staff; opens the thread `info["thread"]` (a new id if absent).

        A user already waiting keeps their open thread. Returns the thread id. Three steps, each one
        key: the id into the user's thread set (first, so that an erasure finds every thread), the
        thread, then the waiting list (last, so that the console never lists a thread that is not
        there). A crash between them leaves an id without a thread (erased with the user: harmless) or
        a thread nobody waits on (the user's next message opens another, as if the first step had
        never run; the empty one is erased with the user).
        """
        current = self.info(user)
        if current and current.get("thread"):
            meta = self.meta(current["thread"])
            if meta and not meta.get("closed_at"):
                return current["thread"]
        thread = info.get("thread") or ""
        if not valid_thread_id(thread):
            thread = self.new_id(user)
        info = {**info, "thread": thread}
        meta = {"user": user, "office": info.get("office", ""), "reason": info.get("reason", ""),
                "step": info.get("step", ""), "since": info.get("at", ""), "mode": "console"}
        with redis_errors("cannot record handoff"):
            self.client.sadd(user_threads_key(user), thread)
            self.client.hset(thread_key(thread), mapping=meta)
            self.client.hset(HANDOFFS_KEY, user, json.dumps(info, ensure_ascii=False))
        return thread

    def close(self, user: str, *, at: str = "", by: str = "", closed_ts: float | None = None,
              keep_seconds: int | None = None) -> str | None:
        """The user is no longer waiting; their thread (if any) closes. Returns the thread id.

        Three steps: the thread marked closed (and set to expire) in one MULTI in its slot, then the
        closed index (the retention task's), then the waiting list. A crash between them leaves the
        user listed as waiting: closing again (staff, or the user's next 再開) repeats every step. The
        other order could leave an open thread that nobody lists, kept until the user is erased.
        """
        current = self.info(user)
        thread = (current or {}).get("thread")
        with redis_errors("cannot close handoff"):
            if thread and valid_thread_id(thread) and closed_ts is not None:
                pipe = self.client.pipeline(transaction=True)
                pipe.hset(thread_key(thread), mapping={"closed_at": at, "closed_by": by})
                if keep_seconds is not None:
                    for key in (thread_key(thread), messages_key(thread)):
                        pipe.expire(key, keep_seconds + EXPIRY_MARGIN_SECONDS)
                pipe.execute()
                self.client.zadd(CLOSED_KEY, {thread: closed_ts})
            self.client.hdel(HANDOFFS_KEY, user)
        return thread

    def info(self, user: str) -> dict[str, str] | None:
        with redis_errors("cannot read handoffs"):
            raw = self.client.hget(HANDOFFS_KEY, user)
        return json.loads(raw) if raw else None

    def waiting(self) -> dict[str, dict[str, str]]:
        """user -> {office, reason, step, at, thread}, oldest first."""
        with redis_errors("cannot read handoffs"):
            raw = self.client.hgetall(HANDOFFS_KEY)
        items = {user: json.loads(value) for user, value in raw.items()}
        return dict(sorted(items.items(), key=lambda item: item[1].get("at", "")))

    # -- threads --------------------------------------------------------------------------------

    def meta(self, thread: str) -> dict[str, str]:
        """The thread's fields without the once-only markers; {} when there is no such thread."""
        if not valid_thread_id(thread):
            return {}
        with redis_errors("cannot read a thread"):
            raw = self.client.hgetall(thread_key(thread))
        return _fields(raw)

    def messages(self, thread: str) -> list[dict[str, Any]]:
        if not valid_thread_id(thread):
            return []
        with redis_errors("cannot read a thread"):
            raw = self.client.lrange(messages_key(thread), 0, -1)
        return [json.loads(item) for item in raw]

    def add_user_message(self, thread: str, message: dict[str, Any], key: str) -> dict[str, str]:
        """Append what the user wrote, once per `key` (a redelivered event or a retried turn adds nothing);
        returns the thread's fields ({} if the thread is gone). One Lua script in the thread's slot."""
        if not valid_thread_id(thread):
            return {}
        text = json.dumps(message, ensure_ascii=False)
        with redis_errors("cannot add to a thread"):
            flat = self._user_message(keys=[thread_key(thread), messages_key(thread)], args=[key, text])
        return _fields(dict(zip(flat[::2], flat[1::2])))

    def set_fields(self, thread: str, fields: dict[str, str]) -> None:
        if not valid_thread_id(thread):
            return
        with redis_errors("cannot update a thread"):
            self.client.hset(thread_key(thread), mapping=fields)

    def staff_reply(self, thread: str, message: dict[str, Any], push: dict[str, object], nonce: str) -> int:
        """Append the staff's message and queue its push in one step, once per nonce: one Lua script in
        the thread's slot, whose shard is the user's (the push goes after the user's other messages).

        1: sent; 0: this nonce was sent already (a double click, a repeated API call); -1: no open thread.
        """
        if not valid_thread_id(thread):
            return -1
        text = json.dumps(message, ensure_ascii=False)
        args = [nonce, text, str(message.get("at", "")), OUTBOX_MAXLEN, *encode_notice(push)]
        keys = [thread_key(thread), messages_key(thread), outbox_key(thread_shard(thread))]
        with redis_errors("cannot send a staff reply"):
            return int(self._reply(keys=keys, args=args))

    # -- erasure and retention ------------------------------------------------------------------

    def erase_user(self, user: str) -> int:
        """Delete every thread of the user (open or closed) and their place in the waiting list.

        In steps, each one slot: off the waiting list; each thread's keys (one DEL per thread); the
        threads out of the closed index; the user's thread set last, so that a step that failed is
        done by calling this again (every step is idempotent).
        """
        with redis_errors("cannot erase threads"):
            threads = self.client.smembers(user_threads_key(user))
            self.client.hdel(HANDOFFS_KEY, user)
            self._delete_keys(sorted(thread for thread in threads if valid_thread_id(thread)))
            if threads:
                self.client.zrem(CLOSED_KEY, *threads)
            self.client.delete(user_threads_key(user))
        return len(threads)

    def _delete_keys(self, threads: list[str]) -> None:
        """Delete the threads' fields and messages: one key a command (a cluster pipeline splits by key)."""
        if threads:
            pipe = self.client.pipeline(transaction=False)
            for thread in threads:
                pipe.delete(thread_key(thread))
                pipe.delete(messages_key(thread))
            pipe.execute()

    def threads_of(self, user: str) -> set[str]:
        """The user's thread ids, open or closed (until erased or past retention)."""
        with redis_errors("cannot read threads"):
            return self.client.smembers(user_threads_key(user))

    def closed_before(self, ts: float, count: int = 500) -> list[str]:
        """Threads closed at or before `ts` (unix seconds)."""
        with redis_errors("cannot read closed threads"):
            return self.client.zrangebyscore(CLOSED_KEY, "-inf", ts, start=0, num=count)

    def delete(self, threads: list[str]) -> None:
        """Delete closed threads (retention): their text, their fields, their index entries.

        In steps: the threads' keys, then their ids out of their users' sets, then out of the closed
        index last, so that a run that failed half-way finds them again next time and finishes.
        """
        if not threads:
            return
        valid = [thread for thread in threads if valid_thread_id(thread)]
        with redis_errors("cannot delete threads"):
            pipe = self.client.pipeline(transaction=False)
            for thread in valid:
                pipe.hget(thread_key(thread), "user")
            users = pipe.execute() if valid else []
            self._delete_keys(valid)
            owned = [(thread, user) for thread, user in zip(valid, users) if user]
            if owned:
                pipe = self.client.pipeline(transaction=False)
                for thread, user in owned:
                    pipe.srem(user_threads_key(user), thread)
                pipe.execute()
            self.client.zrem(CLOSED_KEY, *threads)

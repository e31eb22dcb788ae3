"""Users handed to staff (the bot is paused for them) and their handoff threads.

    hwbot:handoffs                  hash  user -> JSON of why and when (office, reason, step, at, thread)
    hwbot:thread:<id>               hash  the thread: user, office, reason, step, since, mode, closed_at,
                                          closed_by, notified_at, staff_at; r:<nonce> per staff reply and
                                          m:<key> per user message (each is kept once)
    hwbot:thread:<id>:messages      list  JSON {"from": "user"|"staff", "text", "at"[, "kind"]}, in order
    hwbot:{u:<user>}:threads        set   the user's thread ids (erased with the user's data)
    hwbot:threads:closed            zset  thread id -> when it closed (unix seconds, the app's clock)

A thread id is opaque (random), never the LINE user id. What the user wrote is personal data: it is
erased with the user (`erase_user`) and `HWBOT_THREAD_RETENTION_DAYS` after the thread closed
(`expired` + `delete`, the worker's retention task); the keys also expire a month after that, in case
the task never runs.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import redis

from bot.store.conversations import _redis_errors, encode_notice
from bot.store.shards import DEFAULT_SHARDS, OUTBOX_MAXLEN, entry_owner, outbox_key, shard_of

HANDOFFS_KEY = "hwbot:handoffs"
CLOSED_KEY = "hwbot:threads:closed"
# A closed thread's keys expire this long after the retention task should have deleted them.
EXPIRY_MARGIN_SECONDS = 30 * 24 * 3600

# KEYS: thread hash, messages list. ARGV: the message's key (its webhook event), message JSON.
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

# KEYS: thread hash, messages list, outbox. ARGV: nonce, message JSON, staff_at, outbox maxlen, then the
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


def thread_key(thread_id: str) -> str:
    return f"hwbot:thread:{thread_id}"


def messages_key(thread_id: str) -> str:
    return f"hwbot:thread:{thread_id}:messages"


def user_threads_key(user: str) -> str:
    return f"hwbot:{{u:{user}}}:threads"


def new_thread_id() -> str:
    """An opaque thread id (16 hex digits): nothing about the user can be read from it."""
    return secrets.token_hex(8)


def valid_thread_id(text: str) -> bool:
    return len(text) == 16 and all(ch in "0123456789abcdef" for ch in text)


class HandoffStore:
    """The staff console's list of users waiting for staff, and what was said in each thread."""

    def __init__(self, client: redis.Redis, *, shards: int = DEFAULT_SHARDS):
        self.client = client
        self.shards = shards
        self._reply = client.register_script(_REPLY_LUA)
        self._user_message = client.register_script(_USER_MESSAGE_LUA)

    # -- the waiting list -----------------------------------------------------------------------

    def open(self, user: str, info: dict[str, str]) -> str:
        """Record that `user` waits for staff; opens the thread `info["thread"]` (a new id if absent).

        A user already waiting keeps their open thread. Returns the thread id.
        """
        current = self.info(user)
        if current and current.get("thread") and self.meta(current["thread"]):
            return current["thread"]
        thread = info.get("thread") or new_thread_id()
        info = {**info, "thread": thread}
        meta = {"user": user, "office": info.get("office", ""), "reason": info.get("reason", ""),
                "step": info.get("step", ""), "since": info.get("at", ""), "mode": "console"}
        with _redis_errors("cannot record handoff"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(HANDOFFS_KEY, user, json.dumps(info, ensure_ascii=False))
            pipe.hset(thread_key(thread), mapping=meta)
            pipe.sadd(user_threads_key(user), thread)
            pipe.execute()
        return thread

    def close(self, user: str, *, at: str = "", by: str = "", closed_ts: float | None = None,
              keep_seconds: int | None = None) -> str | None:
        """The user is no longer waiting; their thread (if any) closes. Returns the thread id."""
        current = self.info(user)
        thread = (current or {}).get("thread")
        with _redis_errors("cannot close handoff"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(HANDOFFS_KEY, user)
            if thread and closed_ts is not None:
                pipe.hset(thread_key(thread), mapping={"closed_at": at, "closed_by": by})
                pipe.zadd(CLOSED_KEY, {thread: closed_ts})
                if keep_seconds is not None:
                    for key in (thread_key(thread), messages_key(thread)):
                        pipe.expire(key, keep_seconds + EXPIRY_MARGIN_SECONDS)
            pipe.execute()
        return thread

    def info(self, user: str) -> dict[str, str] | None:
        with _redis_errors("cannot read handoffs"):
            raw = self.client.hget(HANDOFFS_KEY, user)
        return json.loads(raw) if raw else None

    def waiting(self) -> dict[str, dict[str, str]]:
        """user -> {office, reason, step, at, thread}, oldest first."""
        with _redis_errors("cannot read handoffs"):
            raw = self.client.hgetall(HANDOFFS_KEY)
        items = {user: json.loads(value) for user, value in raw.items()}
        return dict(sorted(items.items(), key=lambda item: item[1].get("at", "")))

    # -- threads --------------------------------------------------------------------------------

    def meta(self, thread: str) -> dict[str, str]:
        """The thread's fields without the once-only markers; {} when there is no such thread."""
        with _redis_errors("cannot read a thread"):
            raw = self.client.hgetall(thread_key(thread))
        return _fields(raw)

    def messages(self, thread: str) -> list[dict[str, Any]]:
        with _redis_errors("cannot read a thread"):
            raw = self.client.lrange(messages_key(thread), 0, -1)
        return [json.loads(item) for item in raw]

    def add_user_message(self, thread: str, message: dict[str, Any], key: str) -> dict[str, str]:
        """Append what the user wrote, once per `key` (a redelivered event or a retried turn adds nothing);
        returns the thread's fields ({} if the thread is gone)."""
        text = json.dumps(message, ensure_ascii=False)
        with _redis_errors("cannot add to a thread"):
            flat = self._user_message(keys=[thread_key(thread), messages_key(thread)], args=[key, text])
        return _fields(dict(zip(flat[::2], flat[1::2])))

    def set_fields(self, thread: str, fields: dict[str, str]) -> None:
        with _redis_errors("cannot update a thread"):
            self.client.hset(thread_key(thread), mapping=fields)

    def staff_reply(self, thread: str, message: dict[str, Any], push: dict[str, object], nonce: str) -> int:
        """Append the staff's message and queue its push in one step, once per nonce.

        1: sent; 0: this nonce was sent already (a double click, a repeated API call); -1: no open thread.
        """
        text = json.dumps(message, ensure_ascii=False)
        args = [nonce, text, str(message.get("at", "")), OUTBOX_MAXLEN, *encode_notice(push)]
        with _redis_errors("cannot send a staff reply"):
            outbox = outbox_key(shard_of(entry_owner(push), self.shards))
            return int(self._reply(keys=[thread_key(thread), messages_key(thread), outbox], args=args))

    # -- erasure and retention ------------------------------------------------------------------

    def erase_user(self, user: str) -> int:
        """Delete every thread of the user (open or closed) and their place in the waiting list."""
        with _redis_errors("cannot erase threads"):
            threads = self.client.smembers(user_threads_key(user))
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(HANDOFFS_KEY, user)
            for thread in threads:
                pipe.delete(thread_key(thread), messages_key(thread))
                pipe.zrem(CLOSED_KEY, thread)
            pipe.delete(user_threads_key(user))
            pipe.execute()
        return len(threads)

    def threads_of(self, user: str) -> set[str]:
        """The user's thread ids, open or closed (until erased or past retention)."""
        with _redis_errors("cannot read threads"):
            return self.client.smembers(user_threads_key(user))

    def closed_before(self, ts: float, count: int = 500) -> list[str]:
        """Threads closed at or before `ts` (unix seconds)."""
        with _redis_errors("cannot read closed threads"):
            return self.client.zrangebyscore(CLOSED_KEY, "-inf", ts, start=0, num=count)

    def delete(self, threads: list[str]) -> None:
        """Delete closed threads (retention): their text, their fields, their index entries."""
        if not threads:
            return
        with _redis_errors("cannot delete threads"):
            users = [self.client.hget(thread_key(thread), "user") for thread in threads]
            pipe = self.client.pipeline(transaction=True)
            for thread, user in zip(threads, users):
                pipe.delete(thread_key(thread), messages_key(thread))
                pipe.zrem(CLOSED_KEY, thread)
                if user:
                    pipe.srem(user_threads_key(user), thread)
            pipe.execute()

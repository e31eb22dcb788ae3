"""The simulator's side of LINE: what each test user's phone has received, in Redis.

Kept in Redis (not in the web process) so the simulator works with several gunicorn workers. Every
operation touches one key, so it also runs on Redis Cluster:

    hwbot:sim:inbox:<user>      list of JSON items (what the user said, what the bot sent); an item's
                                sequence number is its 1-based position, so `RPUSH`'s answer is it
    hwbot:sim:reply:<token>     the user a reply token was issued to; taken (read and deleted) once
    hwbot:sim:retry:<key>       an accepted X-Line-Retry-Key of a push
    hwbot:sim:loading:<user>    set while LINE's loading animation would show (expires like it)
    hwbot:sim:language:<user>   the `language` of the test user's LINE profile (unset: LINE gives none)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from bot.store.errors import redis_errors

PREFIX = "hwbot:sim"
INBOX_TTL_SECONDS = 7 * 24 * 3600  # a simulated chat is kept a week after its last message
REPLY_TOKEN_TTL_SECONDS = 60  # LINE: use a reply token within about a minute, once
RETRY_KEY_TTL_SECONDS = 24 * 3600  # LINE remembers a retry key for 24 hours
MAX_ITEMS_READ = 500


def _part(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200 or any(ch in value for ch in "{} \n"):
        raise ValueError(f"{name} must be a short non-empty string without braces or spaces")
    return value


def inbox_key(user: str) -> str:
    return f"{PREFIX}:inbox:{_part('user', user)}"


def reply_token_key(token: str) -> str:
    return f"{PREFIX}:reply:{_part('reply token', token)}"


def retry_key_key(retry_key: str) -> str:
    return f"{PREFIX}:retry:{_part('retry key', retry_key)}"


def loading_key(user: str) -> str:
    return f"{PREFIX}:loading:{_part('user', user)}"


def language_key(user: str) -> str:
    return f"{PREFIX}:language:{_part('user', user)}"


# Driver errors become StoreUnavailable (retry later: 503) or StoreError, naming only the operation.


class SimInbox:
    """Each simulated user's received items, reply tokens, push retry keys and loading indicator."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int = INBOX_TTL_SECONDS):
        self.client = client
        self.ttl_seconds = ttl_seconds

    def add(self, user: str, *items: Mapping[str, Any]) -> int:
        """Append items to the user's inbox; returns the sequence number of the last one."""
        if not items:
            raise ValueError("nothing to add")
        key = inbox_key(user)
        encoded = [json.dumps(dict(item), ensure_ascii=False, separators=(",", ":")) for item in items]
        with redis_errors("cannot append to the simulator inbox"):
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(key, *encoded)
            pipe.expire(key, self.ttl_seconds)
            length, _ = pipe.execute()
        return int(length)

    def since(self, user: str, after: int = 0) -> tuple[list[dict[str, Any]], int]:
        """(items after sequence `after`, each with its `seq`; the last sequence number)."""
        after = max(0, int(after))
        key = inbox_key(user)
        with redis_errors("cannot read the simulator inbox"):
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(key)
            pipe.lrange(key, after, after + MAX_ITEMS_READ - 1)
            total, raw = pipe.execute()
        items = []
        for offset, text in enumerate(raw, start=after + 1):
            try:
                item = json.loads(text)
            except ValueError:
                item = {"from": "system", "type": "text", "text": "(読めない項目)"}
            items.append({**item, "seq": offset})
        return items, int(total)

    def clear(self, user: str) -> None:
        """Forget the user's simulated chat history."""
        with redis_errors("cannot clear the simulator inbox"):
            self.client.delete(inbox_key(user), loading_key(user))

    def issue_reply_token(self, token: str, user: str) -> None:
        """Remember that `token` was sent in a webhook event of `user` (as LINE does)."""
        with redis_errors("cannot store a reply token"):
            self.client.set(reply_token_key(token), _part("user", user), ex=REPLY_TOKEN_TTL_SECONDS)

    def use_reply_token(self, token: str) -> str | None:
        """The user of a valid reply token, which is used up; None when unknown, expired or used."""
        try:
            key = reply_token_key(token)
        except ValueError:
            return None
        with redis_errors("cannot use a reply token"):
            pipe = self.client.pipeline(transaction=True)
            pipe.get(key)
            pipe.delete(key)
            user, _ = pipe.execute()
        return user

    def accept_retry_key(self, retry_key: str) -> bool:
        """True the first time a push retry key is seen; False for a retry of an accepted push."""
        with redis_errors("cannot store a retry key"):
            return bool(self.client.set(retry_key_key(retry_key), "1", nx=True, ex=RETRY_KEY_TTL_SECONDS))

    def start_loading(self, user: str, seconds: int) -> None:
        """Show the typing indicator for `seconds` (or until a message arrives)."""
        with redis_errors("cannot store the loading indicator"):
            self.client.set(loading_key(user), "1", ex=max(1, int(seconds)))

    def stop_loading(self, user: str) -> None:
        with redis_errors("cannot clear the loading indicator"):
            self.client.delete(loading_key(user))

    def loading(self, user: str) -> bool:
        with redis_errors("cannot read the loading indicator"):
            return bool(self.client.exists(loading_key(user)))

    def set_language(self, user: str, language: str | None) -> None:
        """The `language` the stand-in's profile of `user` gives (None: none, as for a user who has not
        agreed to LINE's privacy policy)."""
        with redis_errors("cannot store the profile language"):
            if language:
                self.client.set(language_key(user), language, ex=self.ttl_seconds)
            else:
                self.client.delete(language_key(user))

    def language(self, user: str) -> str | None:
        with redis_errors("cannot read the profile language"):
            return self.client.get(language_key(user)) or None

"""Outbox shards: which hash tag a user's keys live in, so that a turn's save is one Redis Cluster slot.

The outbox is `HWBOT_OUTBOX_SHARDS` streams (default 16). Shard `k`'s keys carry the hash tag `{o<k>}`,
and so do the keys of the users whose shard it is: their conversation, last answer and webhook-event
markers (`bot.store.conversations`), their handoff threads (`bot.store.handoffs`). A turn's save, a
staff reply with its push, a booking step with its notices (`Outbox.add_many`) then touch one slot.

The shard of a user (or of a LINE group, or of an office for a notice that names no user) is a stable
hash of its id modulo the shard count: CRC-32, the same in every process and every Python. A user's
entries are all in one shard, in the order they were added, which is what keeps a user's messages in
order. Changing the count moves users to other shards; what that means is in docs/architecture.md
("The outbox", "Changing the shard count").
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

DEFAULT_SHARDS = 16
MAX_SHARDS = 1024
OUTBOX_MAXLEN = 100_000  # per shard, approximate (XADD MAXLEN ~): trimming whole stream nodes is cheap


def shard_of(owner: str, shards: int) -> int:
    """The shard (0 .. shards-1) of a user id, a group id or an office id."""
    if not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the shard count must be an integer from 1 to {MAX_SHARDS}")
    return zlib.crc32(owner.encode("utf-8", "surrogatepass")) % shards


def shard_tag(shard: int) -> str:
    """`{o<k>}`: the hash tag of shard `k` (every key of the shard and of its users carries it)."""
    if not isinstance(shard, int) or not 0 <= shard < MAX_SHARDS:
        raise ValueError(f"a shard is an integer from 0 to {MAX_SHARDS - 1}")
    return f"{{o{shard}}}"


def outbox_key(shard: int) -> str:
    """`hwbot:{o<k>}:outbox`: shard k's stream of entries waiting for the worker."""
    return f"hwbot:{shard_tag(shard)}:outbox"


def entry_owner(entry: Mapping[str, object]) -> str:
    """Whose shard an entry goes to when no user is named: its recipient (`to`: a user or a group),
    else its office (a staff notice), else the empty id (shard of '')."""
    to = entry.get("to")
    if isinstance(to, str) and to:
        return to
    office = entry.get("office")
    return office if isinstance(office, str) else ""

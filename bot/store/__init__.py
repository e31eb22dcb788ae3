"""Redis: the only layer that imports redis. Keys are prefixed `hwbot:` and hash-tagged (docs/architecture.md)."""

from redis import Redis as RedisClient

from bot.store.audit import AuditLog
from bot.store.bookings import BookingStore, ClaimResult, MoveResult, Plan, SlotFull
from bot.store.connection import RoundTripCounter, connect, embedded_redis, stop_embedded
from bot.store.conversations import ConversationStore
from bot.store.handoffs import HandoffStore
from bot.store.outbox import Outbox
from bot.store.pushes import PushCounter
from bot.store.slots import SlotStore, office_tag, slot_redis_key

__all__ = [
    "AuditLog",
    "BookingStore",
    "ClaimResult",
    "ConversationStore",
    "HandoffStore",
    "MoveResult",
    "Outbox",
    "Plan",
    "PushCounter",
    "RedisClient",
    "RoundTripCounter",
    "SlotFull",
    "SlotStore",
    "connect",
    "embedded_redis",
    "office_tag",
    "slot_redis_key",
    "stop_embedded",
]

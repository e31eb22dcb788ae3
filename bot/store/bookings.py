"""Bookings and slot claims: capacity is never exceeded, a retried claim is harmless.

Every booking key of an office shares the office's hash tag `{<office>}` (see `bot.store.slots`), so
each atomic step on an office's bookings, a move across days included, is one Lua script in one Redis
Cluster hash slot:

    hwbot:{noto}:2026-12-01:slot:1000        set of booking ids holding the slot (its size is the count)
    hwbot:{noto}:2026-12-01:booking:<id>     the booking, JSON (expires at the statistics end when given)
    hwbot:{noto}:2026-12-01:bookings         set of the day's booking ids (the staff's day view)
    hwbot:{noto}:intent:<id>                 what a step still has to do in other slots (JSON), until done
    hwbot:{noto}:intents                     zset intent id -> when it was written (app clock, unix s)
    hwbot:{u:<user>}:bookings                set of the user's refs "<office>|<slot>|<id>"

**After-effects.** What a step changes outside its office's slot (the user index; the outbox entries:
pushes to the user, staff notices) cannot be in the same script on a cluster. The office script writes
the bookings *and* an intent listing those after-effects, under an id derived from them (a repeated
step writes the same id). Then, in this order, each step idempotent:

    1. the office script: bookings, slots, day index, the intent and its entry in `intents`
    2. the user index: SADD/SREM of each ref (a set: repeating it changes nothing)
    3. the outbox: `Outbox.add_many(entries, user=..., dedup=<intent id>)` (a second call adds nothing)
    4. DEL the intent, ZREM it from `intents`

A crash (or an unreachable node) between two steps leaves the intent; the worker's `AfterEffects` task
(`bot.staff.aftercare`) finds intents older than a few seconds (`BookingStore.recover`) and does steps
2-4 again, after first re-stamping the intent (a write that waits for the replicas, so nothing is told
before the step that caused it is safe). An `intents` entry whose intent is gone is dropped. The claim
goes the same way (its only after-effect is the user index). `anonymise` keeps its own order (the user
index first, then the booking), which a crash leaves repairable by the next retention run.

At the end of retention `anonymise` strips the personal fields and the user id from a booking and
drops its ref from the user index: what stays (office, slot, status, answers, times) is the
anonymous record kept for statistics until the key expires.

`move` puts a booking in another slot (the user changing the date): one Lua script claims the new
slot and frees the old one, so the booking is never in neither slot and never in both. The moved
booking gets a new id (its ref names the slot): the old record stays, cancelled, with `moved_to` (the
new ref), and the new one carries `moved_from`; the user index gets the new ref as an after-effect.

**Replicas.** Every write step goes through `Durable` (`bot.store.durable`): with
`HWBOT_REDIS_MIN_REPLICAS` set, the script is followed on the same connection by WAIT, and too few
acknowledgements raise `NotReplicated` before anyone is told; the after-effects run only after it.

The JSON is only ever parsed and written by Python: scripts that change a booking compare the stored
text with the text Python read (compare-and-set by value) instead of decoding it with Lua's cjson,
which would turn `[]` into `{}` and round large numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from bot.errors import ConflictError, StoreError
from bot.store.durable import Durable
from bot.store.errors import redis_errors
from bot.store.slots import day_prefix, office_tag, slot_redis_key

log = logging.getLogger("hwbot.store")

PERSONAL_FIELDS = ("name", "number", "email", "phone")
# What `anonymise` also drops: the LINE user id (the booking can no longer be tied to a person).
ANONYMISED_FIELDS = (*PERSONAL_FIELDS, "user")
IDENTITY_FIELDS = ("id", "office", "slot", "user")
_SLOT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CAS_ATTEMPTS = 5
# An intent older than this is the recovery task's: its step stopped (a crash, a node down) before step 4.
RECOVER_AFTER_S = 5.0
# Steps of a change with after-effects, in their order (`BookingStore.step_hook` is called after each).
STEPS = ("office", "index", "outbox", "done")

# KEYS[1] slot set, KEYS[2] booking JSON, KEYS[3] day index, KEYS[4] intent, KEYS[5] intents (one hash tag).
# ARGV[1] booking id, ARGV[2] capacity, ARGV[3] booking JSON, ARGV[4] seconds to live or '',
# ARGV[5] intent id, ARGV[6] intent JSON, ARGV[7] now (unix s).
# Returns 1 claimed, 2 already held by this id, 0 full, 3 this id was claimed and cancelled before.
_CLAIM_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 2
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 3
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[5])
return 1
"""

# KEYS[1] booking JSON, KEYS[2] slot set (one hash tag).
# ARGV[1] the JSON Python read, ARGV[2] the JSON to write, ARGV[3] id to remove from the slot or ''.
# Returns {1} when written, {0, current JSON} when it changed meanwhile, {0} when it is gone.
_REWRITE_LUA = """
local current = redis.call('GET', KEYS[1])
if not current then
  return {0}
end
if current ~= ARGV[1] then
  return {0, current}
end
if ARGV[3] ~= '' then
  redis.call('SREM', KEYS[2], ARGV[3])
end
if ARGV[2] ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return {1}
"""

# Fields of the old record that do not belong to the moved booking: its cancellation, and what was
# done for the old time (the reminder sent, the meeting details sent, attendance).
MOVE_DROPPED = ("cancelled_at", "cancelled_by", "moved_to", "reminder_sent_at", "meeting_sent_at", "marked_at", "marked_by")

# One office step (staff confirm/decline/propose, the user's answer to a proposal, a lapse, a move), in
# one script on one office's keys. ARGV[1] number of checks, then checks, then writes; each names its
# key by index into KEYS.
#   check "cas" ki expected   the key holds `expected` ('' = must not exist)
#   check "cap" ki member cap member already in the set, or the set holds fewer than `cap`
#   write "set" ki value ttl  SET (KEEPTTL when ttl is '', else EX ttl)
#   write "sadd"/"srem" ki member
#   write "zadd" ki score member
# Returns {1} when written, {0, 'cas', ki} when a booking changed meanwhile, {0, 'full'}.
_STEP_LUA = """
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local code, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if code == 'cas' then
    local current = redis.call('GET', key)
    if (current or '') ~= ARGV[i + 2] then
      return {0, 'cas', ARGV[i + 1]}
    end
    i = i + 3
  else
    if redis.call('SISMEMBER', key, ARGV[i + 2]) == 0 and redis.call('SCARD', key) >= tonumber(ARGV[i + 3]) then
      return {0, 'full'}
    end
    i = i + 4
  end
end
while i <= #ARGV do
  local code, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if code == 'set' then
    if ARGV[i + 3] == '' then
      redis.call('SET', key, ARGV[i + 2], 'KEEPTTL')
    else
      redis.call('SET', key, ARGV[i + 2], 'EX', ARGV[i + 3])
    end
    i = i + 4
  elseif code == 'sadd' then
    redis.call('SADD', key, ARGV[i + 2])
    i = i + 3
  elseif code == 'srem' then
    redis.call('SREM', key, ARGV[i + 2])
    i = i + 3
  else
    redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  end
end
return {1}
"""

# KEYS[1] intent, KEYS[2] intents. ARGV[1] intent id, ARGV[2] now (unix s).
# The recovery takes an intent: its JSON, re-stamped so that the next look is a while away; an index
# entry whose intent is gone is dropped (nil).
_TAKE_LUA = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
return raw
"""

# KEYS[1] intent, KEYS[2] intents. ARGV[1] intent id. Every after-effect is done: forget the intent.
_DONE_LUA = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


@dataclass
class Plan:
    """What one office step writes, decided from the bookings as they are (`BookingStore.act`).

    `bookings`: ref -> the booking as it must be; a ref that did not exist is created (with
    `expire_in`, in its day index). `free`: refs whose id leaves its slot; `hold`: refs whose id takes
    its slot (refused when full). `index`: (user, ref, add?) changes of user indexes. `entries`:
    outbox entries (staff notices, pushes). `index` and `entries` are after-effects (see the module
    doc): applied right after the office step, or by the recovery task. `result` is handed back.
    """

    bookings: dict[str, dict] = field(default_factory=dict)
    free: tuple[str, ...] = ()
    hold: tuple[str, ...] = ()
    capacity: int = 1
    expire_in: int | None = None
    index: tuple[tuple[str, str, bool], ...] = ()
    entries: list[dict] = field(default_factory=list)
    result: object = None


@dataclass(frozen=True)
class Intent:
    """What an office step still has to do in other hash slots, in order: the user indexes, then the
    outbox entries (into the shard of `user`, deduplicated by `id`)."""

    id: str
    office: str
    index: tuple[tuple[str, str, bool], ...] = ()
    user: str = ""
    entries: tuple[dict, ...] = ()

    @classmethod
    def of(cls, office: str, index: Iterable[tuple[str, str, bool]], entries: Iterable[dict], *, user: str = "",
           salt: str = "") -> "Intent":
        """The intent of these after-effects; its id is derived from them (and `salt`: what the step
        wrote), so a repeated step gets the same id and the outbox adds its entries once."""
        index = tuple((str(u), str(r), bool(add)) for u, r, add in index)
        entries = tuple(dict(entry) for entry in entries)
        body = json.dumps([office, index, entries, user, salt], ensure_ascii=False, sort_keys=True, default=str)
        return cls(hashlib.sha256(body.encode()).hexdigest()[:32], office, index, user, entries)

    def __bool__(self) -> bool:
        return bool(self.index or self.entries)

    def to_json(self) -> str:
        return json.dumps({"office": self.office, "index": self.index, "user": self.user, "entries": self.entries},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, intent_id: str, raw: str) -> "Intent":
        data = json.loads(raw)
        return cls(intent_id, data["office"], tuple((u, r, bool(add)) for u, r, add in data.get("index", ())),
                   data.get("user", ""), tuple(data.get("entries", ())))


class SlotFull(StoreError):
    """`BookingStore.act`: a slot the plan holds is full."""


@dataclass(frozen=True)
class ClaimResult:
    """What `BookingStore.claim` did."""

    ok: bool  # True: the slot holds this booking (newly or already)
    already: bool = False  # True when the same booking id was already claimed (idempotent retry)
    reason: str = ""  # "full" | "cancelled" (this id was booked and cancelled; never revived) | ""


@dataclass(frozen=True)
class MoveResult:
    """What `BookingStore.move` did."""

    ok: bool  # True: the booking is now in the new slot (newly or already)
    already: bool = False  # True when this very move had been done (idempotent retry)
    reason: str = ""  # "full" | "gone" (no longer booked, or moved elsewhere) | "exists" (the new id is taken) | ""
    booking: dict | None = None  # the moved booking (new id and slot) when ok


def _check_part(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or any(ch in value for ch in "|{}"):
        raise ValueError(f"booking {name} must be a non-empty string without '|', '{{' or '}}'")
    return value


def _check_slot(slot: object) -> str:
    if not isinstance(slot, str) or not _SLOT.fullmatch(slot):
        raise ValueError("booking slot must look like YYYY-MM-DDTHH:MM")
    return slot


def booking_key(office: str, slot: str, booking_id: str) -> str:
    """`hwbot:{<office>}:<day>:booking:<id>`."""
    return f"{day_prefix(office, slot[:10])}booking:{booking_id}"


def day_index_key(office: str, day: str) -> str:
    """`hwbot:{<office>}:<day>:bookings`: ids of the day's bookings."""
    return f"{day_prefix(office, day)}bookings"


def intent_key(office: str, intent_id: str) -> str:
    """`hwbot:{<office>}:intent:<id>`: the after-effects an office step still has to apply."""
    return f"hwbot:{office_tag(office)}:intent:{intent_id}"


def intents_key(office: str) -> str:
    """`hwbot:{<office>}:intents`: the office's intents by when they were written (the recovery's index)."""
    return f"hwbot:{office_tag(office)}:intents"


def user_index_key(user: str) -> str:
    """`hwbot:{u:<user>}:bookings`: refs of the user's bookings."""
    return f"hwbot:{{u:{_check_part('user', user)}}}:bookings"


def booking_ref(booking: dict) -> str:
    """`<office>|<slot>|<id>`: enough to find the booking's keys without another lookup."""
    office = _check_part("office", booking.get("office"))
    slot = _check_slot(booking.get("slot"))
    booking_id = _check_part("id", booking.get("id"))
    return f"{office}|{slot}|{booking_id}"


def parse_ref(ref: str) -> tuple[str, str, str]:
    """(office, slot, id) of a ref made by `booking_ref`."""
    parts = ref.split("|") if isinstance(ref, str) else []
    if len(parts) != 3:
        raise ValueError("a booking ref looks like <office>|<slot>|<id>")
    office, slot, booking_id = parts
    return _check_part("office", office), _check_slot(slot), _check_part("id", booking_id)


def _encode(booking: dict) -> str:
    return json.dumps(booking, ensure_ascii=False, separators=(",", ":"))


def _decode(raw: str) -> dict:
    try:
        booking = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"booking unreadable: {exc.__class__.__name__}") from None
    if not isinstance(booking, dict):
        raise StoreError("booking unreadable: not a JSON object")
    return booking


def _by_slot(booking: dict) -> tuple[str, str, str]:
    return (str(booking.get("slot", "")), str(booking.get("office", "")), str(booking.get("id", "")))


# Driver errors become StoreUnavailable (retry later: 503) or StoreError, naming only the operation.


class BookingStore:
    """Claims slots, reads bookings by user and by day, cancels and updates them.

    `durable` waits for replicas after each write step (default: none); `outbox` takes the entries of
    after-effects (default: an `Outbox` on the same client); `now` is the app's clock in unix seconds
    (intents are stamped with it, and the recovery compares with it). `step_hook(name)`, when set, is
    called after each step of a change with after-effects (`STEPS`): the tests raise from it to play a
    crash between two steps.
    """

    def __init__(self, client: redis.Redis, *, durable: Durable | None = None, outbox: Any = None,
                 now: Callable[[], float] = time.time):
        self.client = client
        self.durable = durable or Durable(client)
        if outbox is None:
            from bot.store.outbox import Outbox  # the outbox module imports nothing of ours

            outbox = Outbox(client)
        self.outbox = outbox
        self.now = now
        self.step_hook: Callable[[str], None] | None = None
        self._claim = client.register_script(_CLAIM_LUA)
        self._rewrite = client.register_script(_REWRITE_LUA)
        self._step = client.register_script(_STEP_LUA)
        self._take = client.register_script(_TAKE_LUA)
        self._done = client.register_script(_DONE_LUA)

    ref = staticmethod(booking_ref)

    def claim(self, booking: dict, capacity: int, *, expire_in: int | None = None) -> ClaimResult:
        """Put `booking` in its slot unless the slot already holds `capacity` bookings.

        `expire_in` (seconds) is relative, not an instant: the app's clock may be injected
        (HWBOT_NOW, tests) while Redis expires keys by its own clock.

        Three round trips on success (the office script, the user index, forgetting the intent), one
        when refused. A retry of the same id (`already`) applies the after-effects again.
        """
        ref = booking_ref(booking)
        user = _check_part("user", booking.get("user"))
        if booking.get("status") != "booked":
            raise ValueError('a claimed booking has status "booked"')
        if type(capacity) is not int or capacity < 0:
            raise ValueError("capacity must be a non-negative integer")
        if expire_in is not None and (type(expire_in) is not int or expire_in <= 0):
            raise ValueError("expire_in must be a positive number of seconds (int)")
        office, slot, booking_id = parse_ref(ref)
        intent = Intent.of(office, [(user, ref, True)], [])
        keys = [
            slot_redis_key(office, slot),
            booking_key(office, slot, booking_id),
            day_index_key(office, slot[:10]),
            intent_key(office, intent.id),
            intents_key(office),
        ]
        args = [booking_id, capacity, _encode(booking), "" if expire_in is None else expire_in,
                intent.id, intent.to_json(), self.now()]
        with redis_errors("cannot claim slot"):
            outcome = int(self.durable.script(self._claim, keys, args))
        if outcome in (1, 2):
            self._hook("office")
            # Also on a retry (2): the first attempt may have stopped before the after-effects.
            self._apply(intent)
        if outcome == 1:
            return ClaimResult(ok=True)
        if outcome == 2:
            return ClaimResult(ok=True, already=True)
        if outcome == 3:
            return ClaimResult(ok=False, reason="cancelled")
        return ClaimResult(ok=False, reason="full")

    def move(
        self,
        ref: str,
        slot: str,
        capacity: int,
        *,
        new_id: str,
        at: str,
        by: str,
        changes: dict | None = None,
        expire_in: int | None = None,
    ) -> MoveResult:
        """Move the booked booking `ref` to `slot` (same office) unless `slot` holds `capacity` bookings.

        One script claims the new slot under `new_id` and frees the old one: never neither, never both.
        The old record becomes `cancelled` (`cancelled_at`, `cancelled_by`, `moved_to`: the new ref) and
        keeps its TTL; the new one is the old one without `MOVE_DROPPED`, with `changes` (e.g. start, end,
        office_confirmation), the new id and slot, `moved_from` (the old ref) and `moved_at`, and lives
        `expire_in` seconds. Repeating the same move (same `new_id` and `slot`) returns `already`.
        """
        office, old_slot, old_id = parse_ref(ref)
        _check_slot(slot)
        _check_part("id", new_id)
        if slot == old_slot or new_id == old_id:
            raise ValueError("a move needs another slot and another id")
        if type(capacity) is not int or capacity < 0:
            raise ValueError("capacity must be a non-negative integer")
        if expire_in is not None and (type(expire_in) is not int or expire_in <= 0):
            raise ValueError("expire_in must be a positive number of seconds (int)")
        extra = dict(changes or {})
        if set(extra) & {*IDENTITY_FIELDS, "status", "moved_from", "moved_at"}:
            raise ValueError("move sets id, slot, status and moved_from itself; office and user stay")
        new_ref = f"{office}|{slot}|{new_id}"

        def decide(found: list[dict | None]) -> Plan:
            old, existing = found
            if old is None:
                return Plan(result=MoveResult(ok=False, reason="gone"))
            if old.get("status") != "booked":
                if old.get("moved_to") == new_ref and existing is not None:
                    # A repeated move: the user index gets the new ref again (the first run may have
                    # stopped before its after-effects).
                    index = ((str(old["user"]), new_ref, True),) if old.get("user") is not None else ()
                    return Plan(index=index, result=MoveResult(ok=True, already=True, booking=existing))
                return Plan(result=MoveResult(ok=False, reason="gone"))
            user = _check_part("user", old.get("user"))  # checked before anything is written
            if existing is not None:
                return Plan(result=MoveResult(ok=False, reason="exists"))
            moved = {k: v for k, v in old.items() if k not in MOVE_DROPPED}
            moved.update(extra, id=new_id, slot=slot, status="booked", moved_from=ref, moved_at=at)
            cancelled = {**old, "status": "cancelled", "cancelled_at": at, "cancelled_by": by, "moved_to": new_ref}
            return Plan(bookings={ref: cancelled, new_ref: moved}, free=(ref,), hold=(new_ref,), capacity=capacity,
                        expire_in=expire_in, index=((user, new_ref, True),), result=MoveResult(ok=True, booking=moved))

        try:
            return self.act([ref, new_ref], decide)  # type: ignore[return-value]
        except SlotFull:
            return MoveResult(ok=False, reason="full")

    def get(self, ref: str) -> dict | None:
        """The booking `ref` names, or None."""
        office, slot, booking_id = parse_ref(ref)
        with redis_errors("cannot read booking"):
            raw = self.client.get(booking_key(office, slot, booking_id))
        return None if raw is None else _decode(raw)

    def for_user(self, user: str) -> list[dict]:
        """The user's bookings (any status), earliest slot first; refs whose booking expired are removed."""
        key = user_index_key(user)
        with redis_errors("cannot read the user's bookings"):
            refs = sorted(self.client.smembers(key))
            found = self._get_many([booking_key(*parse_ref(ref)) for ref in refs])
            dangling = [ref for ref, booking in zip(refs, found) if booking is None]
            if dangling:
                self.client.srem(key, *dangling)
        return sorted((booking for booking in found if booking is not None), key=_by_slot)

    def on_day(self, office: str, day: str) -> list[dict]:
        """The office's bookings (any status) on `day` (YYYY-MM-DD), earliest slot first."""
        _check_part("office", office)
        if not isinstance(day, str) or not _DAY.fullmatch(day):
            raise ValueError("day must look like YYYY-MM-DD")
        key = day_index_key(office, day)
        prefix = f"{day_prefix(office, day)}booking:"
        with redis_errors("cannot read the day's bookings"):
            ids = sorted(self.client.smembers(key))
            found = self._get_many([prefix + booking_id for booking_id in ids])
            dangling = [booking_id for booking_id, booking in zip(ids, found) if booking is None]
            if dangling:
                self.client.srem(key, *dangling)
        return sorted((booking for booking in found if booking is not None), key=_by_slot)

    def cancel(self, ref: str, *, at: str, by: str) -> dict | None:
        """Free the slot and mark the booking cancelled; None if it does not exist.

        Cancelling again changes nothing and keeps the first `cancelled_at`/`cancelled_by`.
        """

        def cancelled(booking: dict) -> dict:
            if booking.get("status") == "cancelled":
                return booking
            return {**booking, "status": "cancelled", "cancelled_at": at, "cancelled_by": by}

        return self._change(ref, cancelled, free_slot=True)

    def update(self, ref: str, changes: dict, *, when: Callable[[dict], bool] | None = None) -> dict | None:
        """Merge `changes` into the booking (e.g. status attended/no_show); None if it does not exist.

        Identity fields cannot change, and only `claim` books and only `cancel` cancels, so the slot
        sets and the statuses never disagree. With `when`, the booking is changed only if `when(booking)`
        holds at the moment of writing (checked again on a retry); otherwise it is returned unchanged.
        """
        if set(changes) & set(IDENTITY_FIELDS):
            raise ValueError(f"update cannot change {', '.join(IDENTITY_FIELDS)}")
        if changes.get("status") in ("booked", "cancelled"):
            raise ValueError("use claim() to book and cancel() to cancel")
        if when is None:
            return self._change(ref, lambda booking: {**booking, **changes})
        return self._change(ref, lambda booking: {**booking, **changes} if when(booking) else booking)

    def delete_personal(self, ref: str, fields: Iterable[str] = PERSONAL_FIELDS) -> None:
        """Remove personal fields from the booking (retention, user request); a missing booking is fine."""
        drop = set(fields) - set(IDENTITY_FIELDS)
        self._change(ref, lambda booking: {k: v for k, v in booking.items() if k not in drop})

    def anonymise(self, ref: str, *, at: str) -> dict | None:
        """Strip the personal fields and the user id, and drop the ref from the user index (retention).

        The index entry goes first: a crash between the steps leaves a booking that still names its
        user, so the next run repeats both steps; the other order would leave a ref nobody can find.
        None if the booking does not exist; a second call changes nothing.
        """
        booking = self.get(ref)
        if booking is None:
            return None
        if booking.get("user") is not None:
            with redis_errors("cannot clean the user index"):
                self.client.srem(user_index_key(str(booking["user"])), ref)

        def stripped(current: dict) -> dict:
            if not set(current) & set(ANONYMISED_FIELDS):
                return current
            kept = {k: v for k, v in current.items() if k not in ANONYMISED_FIELDS}
            return {**kept, "anonymised_at": current.get("anonymised_at", at)}

        return self._change(ref, stripped)

    def act(self, refs: list[str], decide: Callable[[list[dict | None]], Plan | None]) -> object:
        """One atomic step over the bookings `refs` name (all of one office: one hash slot): `decide`
        sees them as stored (None: absent) and returns a `Plan` (or None: nothing to do); the plan is
        written only if none of them changed meanwhile (compare-and-set by value, retried with a fresh
        read), with the intent of its after-effects (user index, outbox entries), which are applied
        next. Returns the plan's `result` (None when `decide` returned None); SlotFull when a held slot
        is full. A plan that writes nothing still runs its checks (and waits for the replicas), so a
        repeat answers only once what it found is safe.
        """
        offices = {parse_ref(ref)[0] for ref in refs}
        if len(offices) != 1:
            raise ValueError("one step changes the bookings of one office")
        [office] = offices
        keys: list[str] = []

        def key_index(key: str) -> str:
            if key not in keys:
                keys.append(key)
            return str(keys.index(key) + 1)

        with redis_errors("cannot change booking"):
            for _ in range(_CAS_ATTEMPTS):
                keys.clear()
                raws = [self.client.get(booking_key(*parse_ref(ref))) for ref in refs]
                plan = decide([None if raw is None else _decode(raw) for raw in raws])
                if plan is None:
                    return None
                checks: list[tuple[object, ...]] = []
                writes: list[object] = []
                read = dict(zip(refs, raws))
                for ref, raw in read.items():
                    checks.append(("cas", key_index(booking_key(*parse_ref(ref))), raw or ""))
                for ref in plan.hold:
                    ref_office, slot, booking_id = parse_ref(ref)
                    checks.append(("cap", key_index(slot_redis_key(ref_office, slot)), booking_id, plan.capacity))
                written: list[str] = []
                for ref, booking in plan.bookings.items():
                    ref_office, slot, booking_id = parse_ref(ref)
                    if booking_ref(booking) != ref or ref_office != office:
                        raise ValueError("a plan cannot change a booking's office, slot or id")
                    new = ref not in read or read[ref] is None
                    ttl = "" if not new else (plan.expire_in or "")
                    if new and ref not in read:
                        checks.append(("cas", key_index(booking_key(ref_office, slot, booking_id)), ""))
                    text = _encode(booking)
                    written.append(text)
                    writes += ["set", key_index(booking_key(ref_office, slot, booking_id)), text, ttl]
                    if new:
                        writes += ["sadd", key_index(day_index_key(ref_office, slot[:10])), booking_id]
                for code, refs_ in (("srem", plan.free), ("sadd", plan.hold)):
                    for ref in refs_:
                        ref_office, slot, booking_id = parse_ref(ref)
                        if ref_office != office:
                            raise ValueError("a plan cannot hold or free another office's slot")
                        writes += [code, key_index(slot_redis_key(ref_office, slot)), booking_id]
                intent = Intent.of(office, plan.index, plan.entries, user=_entries_user(plan, office),
                                   salt="\n".join(written))
                if intent:
                    writes += ["set", key_index(intent_key(office, intent.id)), intent.to_json(), ""]
                    writes += ["zadd", key_index(intents_key(office)), self.now(), intent.id]
                args = [len(checks), *(item for check in checks for item in check), *writes]
                answer = self.durable.script(self._step, keys, args)
                if answer[0] == 1:
                    break
                if answer[1] == "full":
                    raise SlotFull("the slot is full")
            else:
                raise ConflictError("booking kept changing; gave up")
        if intent:
            self._hook("office")
            self._apply(intent)
        return plan.result

    # -- after-effects ----------------------------------------------------------------------------

    def _hook(self, step: str) -> None:
        if self.step_hook is not None:
            self.step_hook(step)

    def _apply(self, intent: Intent) -> None:
        """Steps 2-4 of the module doc, in order; each may be repeated (after a crash) with no second effect."""
        with redis_errors("cannot apply a booking's after-effects"):
            for user, ref, add in intent.index:
                key = user_index_key(user)
                self.durable.command(key, "SADD" if add else "SREM", key, ref)
            self._hook("index")
            if intent.entries:
                self.outbox.add_many(list(intent.entries), user=intent.user, dedup=intent.id)
            self._hook("outbox")
            self._done(keys=[intent_key(intent.office, intent.id), intents_key(intent.office)], args=[intent.id])
            self._hook("done")

    def pending(self, office: str, before: float) -> list[str]:
        """Ids of the office's intents written before `before` (unix s of the app clock)."""
        with redis_errors("cannot read pending intents"):
            return list(self.client.zrangebyscore(intents_key(_check_part("office", office)), "-inf", before))

    def recover(self, offices: Iterable[str], now: float, *, min_age: float = RECOVER_AFTER_S) -> int:
        """Apply the after-effects of every intent older than `min_age` seconds (a step that stopped
        between its steps); returns how many were completed. Safe to run in several workers at once."""
        offices = [_check_part("office", office) for office in offices]
        if not offices:
            return 0
        with redis_errors("cannot read pending intents"):
            pipe = self.client.pipeline(transaction=False)
            for office in offices:
                pipe.zrangebyscore(intents_key(office), "-inf", now - min_age, start=0, num=100)
            found = pipe.execute()
        done = 0
        for office, ids in zip(offices, found):
            for intent_id in ids:
                try:
                    done += self._recover_one(office, intent_id, now)
                except StoreError as exc:  # that node is still away: the intent waits for the next run
                    log.warning("intent_not_recovered office=%s intent=%s error=%s", office, intent_id, exc)
        return done

    def _recover_one(self, office: str, intent_id: str, now: float) -> int:
        keys = [intent_key(office, intent_id), intents_key(office)]
        with redis_errors("cannot take an intent"):
            # Re-stamped (the next look is a while away) and waited for: the step that wrote the intent
            # is then on the replicas, so its after-effects may tell the user.
            raw = self.durable.script(self._take, keys, [intent_id, now])
        if raw is None:
            return 0
        try:
            intent = Intent.from_json(intent_id, raw)
        except (ValueError, KeyError, TypeError):
            log.error("intent_unreadable office=%s intent=%s", office, intent_id)
            return 0
        self._apply(intent)
        log.info("intent_recovered office=%s intent=%s", office, intent_id)
        return 1

    def _get_many(self, keys: list[str]) -> list[dict | None]:
        """GET the keys in one round trip (a pipeline; it may span hash tags: no transaction)."""
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return [None if raw is None else _decode(raw) for raw in pipe.execute()]

    def _change(
        self, ref: str, change: Callable[[dict], dict], *, free_slot: bool = False
    ) -> dict | None:
        """Read, change in Python, write back only if nobody wrote meanwhile (retrying); keeps the TTL."""
        office, slot, booking_id = parse_ref(ref)
        keys = [booking_key(office, slot, booking_id), slot_redis_key(office, slot)]
        with redis_errors("cannot change booking"):
            raw = self.client.get(keys[0])
            for _ in range(_CAS_ATTEMPTS):
                if raw is None:
                    return None
                booking = _decode(raw)
                changed = change(booking)
                if changed == booking and not free_slot and not self.durable.min_replicas:
                    return booking  # nothing to write (with replicas to wait for: checked and waited for below)
                new_raw = raw if changed == booking else _encode(changed)
                result = self.durable.script(self._rewrite, keys, [raw, new_raw, booking_id if free_slot else ""])
                if result[0] == 1:
                    return changed
                raw = result[1] if len(result) > 1 else None
        raise ConflictError("booking kept changing; gave up")


def _entries_user(plan: Plan, office: str) -> str:
    """Whose outbox shard takes the plan's entries: the user they are pushed to, else the bookings' user
    (the notices a user's booking causes keep their order with the user's messages), else the office."""
    for entry in plan.entries:
        if entry.get("to"):
            return str(entry["to"])
    for booking in plan.bookings.values():
        if booking.get("user"):
            return str(booking["user"])
    for user, _, _ in plan.index:
        return user
    return office

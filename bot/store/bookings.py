"""Bookings and slot claims: capacity is never exceeded, a retried claim is harmless.

Keys of one office day share the hash tag `{<office>:<day>}` (see `bot.store.slots`), so each atomic
step below is one Lua script on one Redis Cluster node:

    hwbot:{noto:2026-12-01}:slot:1000         set of booking ids holding the slot (its size is the count)
    hwbot:{noto:2026-12-01}:booking:<id>      the booking, JSON (expires at the statistics end when given)
    hwbot:{noto:2026-12-01}:bookings          set of the day's booking ids (the staff's day view)
    hwbot:{u:<user>}:bookings                 set of the user's refs "<office>|<slot>|<id>"

At the end of retention `anonymise` strips the personal fields and the user id from a booking and
drops its ref from the user index: what stays (office, slot, status, answers, times) is the
anonymous record kept for statistics until the key expires.

The user index has another hash tag, so `claim` adds to it in a second step after the script. That
is acceptable because the caller serialises one user's events (conversation compare-and-set), the
booking is written before its ref (so a ref never points at a booking still to come), a retried
claim of the same id re-adds the ref (repairing a crash between the steps), and `for_user` drops
refs whose booking is gone.

`move` puts a booking in another slot (the user changing the date): one Lua script claims the new
slot and frees the old one, so the booking is never in neither slot and never in both. The moved
booking gets a new id (its ref names the slot, and its keys carry the new day's hash tag): the old
record stays, cancelled, with `moved_to` (the new ref), and the new one carries `moved_from`. The
script's keys span two office days (two hash tags), which one Redis server allows and a Redis Cluster
would not; the user index gets the new ref in a second step, as in `claim`.

The JSON is only ever parsed and written by Python: scripts that change a booking compare the stored
text with the text Python read (compare-and-set by value) instead of decoding it with Lua's cjson,
which would turn `[]` into `{}` and round large numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis

from bot.errors import ConflictError, StoreError
from bot.store.conversations import encode_notice
from bot.store.errors import redis_errors
from bot.store.shards import DEFAULT_SHARDS, OUTBOX_MAXLEN, entry_owner, outbox_key, shard_of
from bot.store.slots import day_tag, slot_redis_key

PERSONAL_FIELDS = ("name", "number", "email", "phone")
# What `anonymise` also drops: the LINE user id (the booking can no longer be tied to a person).
ANONYMISED_FIELDS = (*PERSONAL_FIELDS, "user")
IDENTITY_FIELDS = ("id", "office", "slot", "user")
_SLOT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CAS_ATTEMPTS = 5

# KEYS[1] slot set, KEYS[2] booking JSON, KEYS[3] day index (one hash tag).
# ARGV[1] booking id, ARGV[2] capacity, ARGV[3] booking JSON, ARGV[4] seconds to live or ''.
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

# One office step (staff confirm/decline/propose, the user's answer to a proposal, a lapse), in one
# script. ARGV[1] number of checks, then checks, then writes; each names its key by index into KEYS.
#   check "cas" ki expected   the key holds `expected` ('' = must not exist)
#   check "cap" ki member cap member already in the set, or the set holds fewer than `cap`
#   write "set" ki value ttl  SET (KEEPTTL when ttl is '', else EX ttl)
#   write "sadd"/"srem" ki member
#   write "xadd" ki maxlen n field value ...   (n = 2 * fields)
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
    local n = tonumber(ARGV[i + 3])
    redis.call('XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*', unpack(ARGV, i + 4, i + 3 + n))
    i = i + 4 + n
  end
end
return {1}
"""


@dataclass
class Plan:
    """What one office step writes, decided from the bookings as they are (`BookingStore.act`).

    `bookings`: ref -> the booking as it must be; a ref that did not exist is created (with
    `expire_in`, in its day index). `free`: refs whose id leaves its slot; `hold`: refs whose id takes
    its slot (refused when full). `index`: (user, ref, add?) changes of user indexes. `entries`:
    outbox entries (staff notices, pushes) appended in the same step. `result` is handed back.
    """

    bookings: dict[str, dict] = field(default_factory=dict)
    free: tuple[str, ...] = ()
    hold: tuple[str, ...] = ()
    capacity: int = 1
    expire_in: int | None = None
    index: tuple[tuple[str, str, bool], ...] = ()
    entries: list[dict] = field(default_factory=list)
    result: object = None


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
    """`hwbot:{<office>:<day>}:booking:<id>`."""
    return f"hwbot:{day_tag(office, slot[:10])}:booking:{booking_id}"


def day_index_key(office: str, day: str) -> str:
    """`hwbot:{<office>:<day>}:bookings`: ids of the day's bookings."""
    return f"hwbot:{day_tag(office, day)}:bookings"


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
_redis_errors = redis_errors


class BookingStore:
    """Claims slots, reads bookings by user and by day, cancels and updates them."""

    def __init__(self, client: redis.Redis, *, shards: int = DEFAULT_SHARDS):
        self.client = client
        self.shards = shards  # the outbox's: a plan's entries go to their recipient's shard
        self._claim = client.register_script(_CLAIM_LUA)
        self._rewrite = client.register_script(_REWRITE_LUA)
        self._step = client.register_script(_STEP_LUA)

    ref = staticmethod(booking_ref)

    def claim(self, booking: dict, capacity: int, *, expire_in: int | None = None) -> ClaimResult:
        """Put `booking` in its slot unless the slot already holds `capacity` bookings.

        `expire_in` (seconds) is relative, not an instant: the app's clock may be injected
        (HWBOT_NOW, tests) while Redis expires keys by its own clock.

        Two round trips on success (the script, then the user index), one when refused.
        """
        ref = booking_ref(booking)
        user_key = user_index_key(_check_part("user", booking.get("user")))
        if booking.get("status") != "booked":
            raise ValueError('a claimed booking has status "booked"')
        if type(capacity) is not int or capacity < 0:
            raise ValueError("capacity must be a non-negative integer")
        if expire_in is not None and (type(expire_in) is not int or expire_in <= 0):
            raise ValueError("expire_in must be a positive number of seconds (int)")
        office, slot, booking_id = parse_ref(ref)
        keys = [
            slot_redis_key(office, slot),
            booking_key(office, slot, booking_id),
            day_index_key(office, slot[:10]),
        ]
        args = [booking_id, capacity, _encode(booking), "" if expire_in is None else expire_in]
        with _redis_errors("cannot claim slot"):
            outcome = int(self._claim(keys=keys, args=args))
            if outcome in (1, 2):
                # Also on a retry (2): the first attempt may have stopped before this step.
                self.client.sadd(user_key, ref)
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
                    # A repeated move: the user index gets the new ref again (the first may have
                    # been done by the code before this one, which added it in a second step).
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
        with _redis_errors("cannot read booking"):
            raw = self.client.get(booking_key(office, slot, booking_id))
        return None if raw is None else _decode(raw)

    def for_user(self, user: str) -> list[dict]:
        """The user's bookings (any status), earliest slot first; refs whose booking expired are removed."""
        key = user_index_key(user)
        with _redis_errors("cannot read the user's bookings"):
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
        prefix = f"hwbot:{day_tag(office, day)}:booking:"
        with _redis_errors("cannot read the day's bookings"):
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
            with _redis_errors("cannot clean the user index"):
                self.client.srem(user_index_key(str(booking["user"])), ref)

        def stripped(current: dict) -> dict:
            if not set(current) & set(ANONYMISED_FIELDS):
                return current
            kept = {k: v for k, v in current.items() if k not in ANONYMISED_FIELDS}
            return {**kept, "anonymised_at": current.get("anonymised_at", at)}

        return self._change(ref, stripped)

    def act(self, refs: list[str], decide: Callable[[list[dict | None]], Plan | None]) -> object:
        """One atomic step over the bookings `refs` name: `decide` sees them as stored (None: absent)
        and returns a `Plan` (or None: nothing to do); the plan is written only if none of them changed
        meanwhile (compare-and-set by value, retried with a fresh read), together with its outbox
        entries. Returns the plan's `result` (None when `decide` returned None); SlotFull when a held
        slot is full. The keys may span hash tags (two office days, the user index, the outbox): fine
        on the single Redis server deployed, like a turn's save.
        """
        keys: list[str] = []

        def key_index(key: str) -> str:
            if key not in keys:
                keys.append(key)
            return str(keys.index(key) + 1)

        with _redis_errors("cannot change booking"):
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
                    office, slot, booking_id = parse_ref(ref)
                    checks.append(("cap", key_index(slot_redis_key(office, slot)), booking_id, plan.capacity))
                for ref, booking in plan.bookings.items():
                    office, slot, booking_id = parse_ref(ref)
                    if booking_ref(booking) != ref:
                        raise ValueError("a plan cannot change a booking's office, slot or id")
                    new = ref not in read or read[ref] is None
                    ttl = "" if not new else (plan.expire_in or "")
                    if new and ref not in read:
                        checks.append(("cas", key_index(booking_key(office, slot, booking_id)), ""))
                    writes += ["set", key_index(booking_key(office, slot, booking_id)), _encode(booking), ttl]
                    if new:
                        writes += ["sadd", key_index(day_index_key(office, slot[:10])), booking_id]
                for code, refs_ in (("srem", plan.free), ("sadd", plan.hold)):
                    for ref in refs_:
                        office, slot, booking_id = parse_ref(ref)
                        writes += [code, key_index(slot_redis_key(office, slot)), booking_id]
                for user, ref, add in plan.index:
                    writes += ["sadd" if add else "srem", key_index(user_index_key(user)), ref]
                for entry in plan.entries:
                    flat = encode_notice(entry)
                    shard = shard_of(entry_owner(entry), self.shards)  # the recipient's shard
                    writes += ["xadd", key_index(outbox_key(shard)), OUTBOX_MAXLEN, len(flat), *flat]
                answer = self._step(keys=keys, args=[len(checks), *(item for check in checks for item in check), *writes])
                if answer[0] == 1:
                    return plan.result
                if answer[1] == "full":
                    raise SlotFull("the slot is full")
        raise ConflictError("booking kept changing; gave up")

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
        with _redis_errors("cannot change booking"):
            raw = self.client.get(keys[0])
            for _ in range(_CAS_ATTEMPTS):
                if raw is None:
                    return None
                booking = _decode(raw)
                changed = change(booking)
                if changed == booking and not free_slot:
                    return booking
                new_raw = raw if changed == booking else _encode(changed)
                result = self._rewrite(keys=keys, args=[raw, new_raw, booking_id if free_slot else ""])
                if result[0] == 1:
                    return changed
                raw = result[1] if len(result) > 1 else None
        raise ConflictError("booking kept changing; gave up")

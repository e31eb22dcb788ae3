"""BookingStore.move on a real Redis: the new slot is claimed and the old one freed in one step
(never neither, never both), capacity holds under races, and a repeated move acts once."""

from __future__ import annotations

import threading

import pytest

from bot.errors import StoreError
from bot.store import BookingStore, MoveResult, slot_redis_key

USER = "u-7f3a"
OLD = "2026-12-01T10:00"
NEW = "2026-12-02T14:00"
AT = "2026-11-25T09:00:00+09:00"


def booking(booking_id: str, slot: str = OLD, user: str = USER, **extra) -> dict:
    return {"id": booking_id, "office": "noto", "slot": slot, "user": user, "status": "booked", **extra}


def ref(booking_id: str, slot: str = OLD) -> str:
    return f"noto|{slot}|{booking_id}"


@pytest.fixture
def store(redis_client):
    return BookingStore(redis_client)


def slot_members(client, slot: str) -> set[str]:
    return client.smembers(slot_redis_key("noto", slot))


def test_a_move_claims_the_new_slot_frees_the_old_and_links_the_two(store, redis_client):
    store.claim(booking("b1", name="山田 花子", reminder_sent_at="x", meeting_sent_at="y", office_confirmation="confirmed"), 1, expire_in=400 * 86400)
    result = store.move(
        ref("b1"), NEW, 1, new_id="m1", at=AT, by="user",
        changes={"start": "2026-12-02T14:00:00+09:00", "office_confirmation": "pending"}, expire_in=500 * 86400,
    )
    assert result.ok and not result.already
    moved = store.get(ref("m1", NEW))
    assert result.booking == moved
    # The new record: the old one's data, the new slot and id, what was done for the old time dropped.
    assert moved == {
        **booking("m1", NEW, name="山田 花子"),
        "office_confirmation": "pending",
        "start": "2026-12-02T14:00:00+09:00",
        "moved_from": ref("b1"),
        "moved_at": AT,
    }
    old = store.get(ref("b1"))
    assert old["status"] == "cancelled" and old["cancelled_by"] == "user" and old["cancelled_at"] == AT
    assert old["moved_to"] == ref("m1", NEW)
    assert slot_members(redis_client, OLD) == set() and slot_members(redis_client, NEW) == {"m1"}
    # Both day indexes list their own record; the user index holds both refs.
    assert [b["id"] for b in store.on_day("noto", "2026-12-01")] == ["b1"]
    assert [b["id"] for b in store.on_day("noto", "2026-12-02")] == ["m1"]
    assert [(b["id"], b["status"]) for b in store.for_user(USER)] == [("b1", "cancelled"), ("m1", "booked")]
    # Each record keeps its own lifetime: the old one's, and the new one's from the new appointment.
    assert 399 * 86400 < redis_client.ttl("hwbot:{noto}:2026-12-01:booking:b1") <= 400 * 86400
    assert 499 * 86400 < redis_client.ttl("hwbot:{noto}:2026-12-02:booking:m1") <= 500 * 86400


def test_a_full_slot_refuses_and_changes_nothing(store, redis_client):
    store.claim(booking("b1"), 1)
    store.claim(booking("other", NEW, user="u-other"), 1)
    before = {key: redis_client.dump(key) for key in redis_client.keys("*")}
    assert store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user") == MoveResult(ok=False, reason="full")
    assert {key: redis_client.dump(key) for key in redis_client.keys("*")} == before


def test_a_repeated_move_acts_once_and_repairs_the_user_index(store, redis_client):
    store.claim(booking("b1"), 1)
    first = store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user")
    redis_client.srem(f"hwbot:{{u:{USER}}}:bookings", ref("m1", NEW))  # as if the second step was lost
    again = store.move(ref("b1"), NEW, 1, new_id="m1", at="later", by="user")
    assert again == MoveResult(ok=True, already=True, booking=first.booking)
    assert [b["id"] for b in store.for_user(USER)] == ["b1", "m1"]
    assert store.get(ref("b1"))["cancelled_at"] == AT
    assert slot_members(redis_client, NEW) == {"m1"}


def test_a_cancelled_or_missing_booking_does_not_move(store, redis_client):
    store.claim(booking("b1"), 1)
    store.cancel(ref("b1"), at=AT, by="staff")
    assert store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user") == MoveResult(ok=False, reason="gone")
    assert store.move(ref("nope"), NEW, 1, new_id="m2", at=AT, by="user") == MoveResult(ok=False, reason="gone")
    assert slot_members(redis_client, NEW) == set()
    assert store.get(ref("m1", NEW)) is None


def test_a_booking_moved_elsewhere_does_not_move_again(store, redis_client):
    store.claim(booking("b1"), 1)
    assert store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user").ok
    other = "2026-12-03T10:00"
    assert store.move(ref("b1"), other, 1, new_id="m2", at=AT, by="user") == MoveResult(ok=False, reason="gone")
    assert slot_members(redis_client, other) == set()
    # The moved booking itself can move on (and back to its first slot, under a new id).
    assert store.move(ref("m1", NEW), OLD, 1, new_id="m3", at=AT, by="user").ok
    assert slot_members(redis_client, OLD) == {"m3"} and slot_members(redis_client, NEW) == set()
    assert [b["status"] for b in store.for_user(USER)] == ["cancelled", "booked", "cancelled"]


def test_an_existing_new_id_is_never_overwritten(store, redis_client):
    store.claim(booking("b1"), 2)
    store.claim(booking("m1", NEW, user="u-other"), 2)
    assert store.move(ref("b1"), NEW, 2, new_id="m1", at=AT, by="user") == MoveResult(ok=False, reason="exists")
    assert store.get(ref("m1", NEW))["user"] == "u-other"
    assert slot_members(redis_client, OLD) == {"b1"}


def test_a_move_within_the_day_lists_both_records_on_that_day(store, redis_client):
    store.claim(booking("b1"), 1)
    assert store.move(ref("b1"), "2026-12-01T15:00", 1, new_id="m1", at=AT, by="user").ok
    assert [(b["id"], b["status"]) for b in store.on_day("noto", "2026-12-01")] == [("b1", "cancelled"), ("m1", "booked")]
    assert slot_members(redis_client, OLD) == set() and slot_members(redis_client, "2026-12-01T15:00") == {"m1"}


def test_bad_moves_are_refused(store):
    store.claim(booking("b1"), 1)
    for args, kwargs in (
        ((ref("b1"), OLD, 1), {"new_id": "m1"}),  # the same slot
        ((ref("b1"), NEW, 1), {"new_id": "b1"}),  # the same id
        ((ref("b1"), "2026-12-02 14:00", 1), {"new_id": "m1"}),
        ((ref("b1"), NEW, 1), {"new_id": "m|1"}),
        ((ref("b1"), NEW, -1), {"new_id": "m1"}),
        ((ref("b1"), NEW, 1), {"new_id": "m1", "expire_in": 0}),
        ((ref("b1"), NEW, 1), {"new_id": "m1", "changes": {"user": "u-other"}}),
        ((ref("b1"), NEW, 1), {"new_id": "m1", "changes": {"status": "cancelled"}}),
        (("garbage", NEW, 1), {"new_id": "m1"}),
    ):
        with pytest.raises(ValueError):
            store.move(*args, at=AT, by="user", **kwargs)
    assert store.get(ref("b1"))["status"] == "booked"


def test_redis_errors_become_store_errors(store, redis_client):
    store.claim(booking("b1"), 1)
    redis_client.set("hwbot:{noto}:2026-12-02:slot:1400", "not a set")
    with pytest.raises(StoreError, match="WRONGTYPE|ResponseError"):
        store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user")
    assert store.get(ref("b1"))["status"] == "booked"


# --- races, with threads on the real Redis ------------------------------------------------------


def _run_together(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=20)
            results[index] = work(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    assert not errors, errors
    return results


def _consistent(store: BookingStore, client, days: list[str]) -> dict[str, set[str]]:
    """Every booked record is in its slot's set and nothing else is: returns slot -> ids."""
    held: dict[str, set[str]] = {}
    for day in days:
        for record in store.on_day("noto", day):
            if record["status"] == "booked":
                held.setdefault(record["slot"], set()).add(record["id"])
    for slot_key in client.keys("hwbot:{noto}:*:slot:*"):
        day = slot_key.split(":")[2]
        hhmm = slot_key.rsplit(":", 1)[1]
        slot = f"{day}T{hhmm[:2]}:{hhmm[2:]}"
        assert client.smembers(slot_key) == held.get(slot, set()), slot
    return held


def test_movers_and_bookers_racing_for_one_slot_never_overbook(store, redis_client):
    """24 users move their bookings into one slot of capacity 3 while 8 others book it directly."""
    capacity = 3
    movers = 24
    for number in range(movers):
        store.claim(booking(f"b{number}", f"2026-12-01T{9 + number // 4:02d}:{(number % 4) * 15:02d}", user=f"u{number}"), 1)

    def work(index: int) -> str:
        if index < movers:
            result = store.move(ref(f"b{index}", f"2026-12-01T{9 + index // 4:02d}:{(index % 4) * 15:02d}"),
                                NEW, capacity, new_id=f"m{index}", at=AT, by="user")
            return "moved" if result.ok else result.reason
        claimed = store.claim(booking(f"c{index}", NEW, user=f"u{index}"), capacity)
        return "claimed" if claimed.ok else claimed.reason

    results = _run_together(movers + 8, work)
    assert results.count("moved") + results.count("claimed") == capacity
    assert set(results) <= {"moved", "claimed", "full"}
    held = _consistent(store, redis_client, ["2026-12-01", "2026-12-02"])
    assert len(held[NEW]) == capacity
    # Never neither, never both: each mover holds exactly one slot, the old one or the new one.
    for number in range(movers):
        mine = [b for b in store.for_user(f"u{number}") if b["status"] == "booked"]
        assert len(mine) == 1
        assert (mine[0]["slot"] == NEW) == (results[number] == "moved")


def test_one_booking_moved_to_many_slots_at_once_ends_in_exactly_one(store, redis_client):
    store.claim(booking("b1"), 1)
    targets = [f"2026-12-0{2 + index // 4}T{10 + index % 4}:00" for index in range(12)]

    def work(index: int) -> MoveResult:
        return store.move(ref("b1"), targets[index], 1, new_id=f"m{index}", at=AT, by="user")

    results = _run_together(len(targets), work)
    assert [r.ok for r in results].count(True) == 1
    assert {r.reason for r in results if not r.ok} == {"gone"}
    held = _consistent(store, redis_client, ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"])
    [(slot, ids)] = held.items()
    winner = next(index for index, r in enumerate(results) if r.ok)
    assert (slot, ids) == (targets[winner], {f"m{winner}"})
    assert store.get(ref("b1"))["moved_to"] == ref(f"m{winner}", targets[winner])


def test_the_same_move_repeated_at_once_moves_once(store, redis_client):
    store.claim(booking("b1"), 2)
    results = _run_together(10, lambda index: store.move(ref("b1"), NEW, 2, new_id="m1", at=AT, by="user"))
    assert all(r.ok for r in results)
    assert [r.already for r in results].count(False) == 1
    assert slot_members(redis_client, NEW) == {"m1"} and slot_members(redis_client, OLD) == set()
    assert [b["id"] for b in store.for_user(USER)] == ["b1", "m1"]


def test_an_observer_never_sees_the_booking_in_neither_slot_or_in_both(store, redis_client):
    """A reader taking atomic snapshots (MULTI) of both slots while a booking moves back and forth."""
    store.claim(booking("b0"), 1)
    slots = [OLD, NEW]
    done = threading.Event()
    seen: list[int] = []

    def observe() -> None:
        while not done.is_set():
            pipe = redis_client.pipeline(transaction=True)
            pipe.scard(slot_redis_key("noto", OLD))
            pipe.scard(slot_redis_key("noto", NEW))
            seen.append(sum(pipe.execute()))

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        for step in range(1, 41):
            result = store.move(ref(f"b{step - 1}", slots[(step - 1) % 2]), slots[step % 2], 1, new_id=f"b{step}", at=AT, by="user")
            assert result.ok
    finally:
        done.set()
        observer.join(timeout=10)
    assert seen and set(seen) == {1}
    assert slot_members(redis_client, OLD) == {"b40"} and slot_members(redis_client, NEW) == set()


def test_a_booking_without_its_user_is_refused_before_anything_is_written(store, redis_client):
    store.claim(booking("b1"), 1)
    store.update(ref("b1"), {"note": "x"})
    raw = redis_client.get("hwbot:{noto}:2026-12-01:booking:b1").replace(f'"user":"{USER}",', "")
    redis_client.set("hwbot:{noto}:2026-12-01:booking:b1", raw)
    with pytest.raises(ValueError):
        store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user")
    assert slot_members(redis_client, OLD) == {"b1"} and slot_members(redis_client, NEW) == set()

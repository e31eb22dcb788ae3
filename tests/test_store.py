"""bot.store: conversations (compare-and-set with the outbox) and bookings (atomic slot claims), on a real Redis."""

from __future__ import annotations

import multiprocessing
import queue
import random

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from bot.errors import ConflictError, StoreError
from bot.store import BookingStore, ClaimResult, ConversationStore, slot_redis_key

TTL = 1800
USER = "u-7f3a"
# USER's shard is zlib.crc32(b"u-7f3a") % 16 == 0: every key of their conversation carries {o0}
CONV = "hwbot:{o0}:conv:u-7f3a"
OUTBOX = "hwbot:{o0}:outbox"
DAY = "2026-12-01"
SLOTS = ["2026-12-01T10:00", "2026-12-01T10:30", "2026-12-01T11:00", "2026-12-01T13:00", "2026-12-01T13:30"]


def booking(booking_id: str, slot: str = SLOTS[0], user: str = USER, office: str = "noto", **extra) -> dict:
    return {"id": booking_id, "office": office, "slot": slot, "user": user, "status": "booked", **extra}


def connection_info(client: redis.Redis) -> dict:
    """What a separate process needs to reach the same Redis: the embedded server's socket or host/port/db."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return {"unix_socket_path": kwargs["path"]}
    wanted = ("host", "port", "db", "username", "password")
    return {key: kwargs[key] for key in wanted if kwargs.get(key) is not None}


# --- conversations ---------------------------------------------------------------------------


@pytest.fixture
def conversations(redis_client):
    return ConversationStore(redis_client, ttl_seconds=TTL)


def test_absent_conversation_loads_as_none_version_0(conversations):
    assert conversations.load(USER) == (None, 0)


def test_save_then_load(conversations, redis_client):
    data = {"state": "asking_number", "answers": {"name": "山田 太郎"}, "seen": []}
    assert conversations.save(USER, data, 0) == 1
    assert conversations.load(USER) == (data, 1)
    assert conversations.save(USER, {**data, "state": "choosing_slot"}, 1) == 2
    assert conversations.load(USER) == ({**data, "state": "choosing_slot"}, 2)
    assert redis_client.keys("*") == [CONV]
    assert redis_client.hgetall(CONV) == {
        "v": "2",
        "data": '{"state":"choosing_slot","answers":{"name":"山田 太郎"},"seen":[]}',
    }


def test_stale_save_conflicts_and_changes_nothing(conversations, redis_client):
    conversations.save(USER, {"state": "a"}, 0)
    other_worker = ConversationStore(redis_client, ttl_seconds=TTL)
    data, version = other_worker.load(USER)
    assert conversations.save(USER, {"state": "b"}, version) == 2
    with pytest.raises(ConflictError, match="expected version 1, found 2"):
        other_worker.save(USER, {"state": "c"}, version)
    with pytest.raises(ConflictError):
        conversations.save(USER, {"state": "c"}, 0)  # a first save when one exists
    assert conversations.load(USER) == ({"state": "b"}, 2)


def test_first_saves_race_only_one_wins(conversations):
    assert conversations.save(USER, {"state": "a"}, 0) == 1
    with pytest.raises(ConflictError):
        conversations.save(USER, {"state": "b"}, 0)
    assert conversations.load(USER) == ({"state": "a"}, 1)


def test_notices_reach_the_outbox_only_with_the_saved_state(conversations, redis_client):
    notice = {"kind": "booked", "office": "noto", "slot": "2026-12-01T10:00", "count": 2, "extra": {"a": [1]}}
    conversations.save(USER, {"state": "done"}, 0, notices=[notice, {"kind": "second"}])
    entries = redis_client.xrange(OUTBOX)
    assert [fields for _, fields in entries] == [
        {"kind": "booked", "office": "noto", "slot": "2026-12-01T10:00", "count": "2", "extra": '{"a":[1]}'},
        {"kind": "second"},
    ]
    with pytest.raises(ConflictError):
        conversations.save(USER, {"state": "again"}, 0, notices=[{"kind": "lost"}])
    assert len(redis_client.xrange(OUTBOX)) == 2
    conversations.save(USER, {"state": "later"}, 1)  # no notices: the outbox is untouched
    assert len(redis_client.xrange(OUTBOX)) == 2


def test_erase_deletes_with_its_notices_and_event_mark_atomically(conversations, redis_client):
    conversations.save(USER, {"state": "asking_number", "answers": {"name": "山田 太郎"}}, 0)
    with pytest.raises(ConflictError):
        conversations.erase(USER, 0, notices=[{"kind": "user_blocked"}], event_id="ev-1")
    assert redis_client.xlen(OUTBOX) == 0 and not redis_client.exists("hwbot:{o0}:event:ev-1")
    assert conversations.load(USER)[1] == 1
    conversations.erase(USER, 1, notices=[{"kind": "user_blocked", "ref": "r"}], event_id="ev-1")
    assert conversations.load(USER) == (None, 0)
    assert [fields for _, fields in redis_client.xrange(OUTBOX)] == [{"kind": "user_blocked", "ref": "r"}]
    assert redis_client.exists("hwbot:{o0}:event:ev-1")
    conversations.erase(USER, 0)  # nothing there: still fine, and a new conversation starts at version 1
    assert conversations.save(USER, {"state": "idle"}, 0) == 1


def test_empty_notice_is_refused_before_anything_is_written(conversations, redis_client):
    with pytest.raises(ValueError):
        conversations.save(USER, {"state": "a"}, 0, notices=[{}])
    assert conversations.load(USER) == (None, 0)
    assert not redis_client.exists(OUTBOX)


def test_idle_conversation_expires(conversations, redis_client):
    conversations.save(USER, {"state": "a"}, 0)
    assert 0 < redis_client.ttl(CONV) <= TTL
    redis_client.expire(CONV, 1)
    conversations.save(USER, {"state": "b"}, 1)  # each save restarts the idle timer
    assert redis_client.ttl(CONV) > 1


def test_expired_conversation_makes_a_stale_save_conflict(conversations, redis_client):
    conversations.save(USER, {"state": "a"}, 0)
    redis_client.delete(CONV)  # as if the TTL ran out
    with pytest.raises(ConflictError):
        conversations.save(USER, {"state": "b"}, 1)
    assert conversations.load(USER) == (None, 0)


def test_delete(conversations):
    conversations.save(USER, {"state": "a"}, 0)
    conversations.delete(USER)
    conversations.delete(USER)
    assert conversations.load(USER) == (None, 0)


def test_unreadable_conversation_is_a_store_error_without_the_data(conversations, redis_client):
    redis_client.hset(CONV, mapping={"v": "1", "data": "{secret 090-1234-5678"})
    with pytest.raises(StoreError) as caught:
        conversations.load(USER)
    assert "090" not in str(caught.value)


def test_redis_errors_become_store_errors_without_data():
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0), decode_responses=True
    )
    store = ConversationStore(dead, ttl_seconds=TTL)
    with pytest.raises(StoreError, match="ConnectionError") as caught:
        store.save(USER, {"name": "山田 太郎"}, 0)
    assert "山田" not in str(caught.value) and not isinstance(caught.value, ConflictError)
    with pytest.raises(StoreError, match="ConnectionError"):
        BookingStore(dead).claim(booking("b1", name="山田 太郎"), 1)


# --- bookings -----------------------------------------------------------------------------


@pytest.fixture
def bookings(redis_client):
    return BookingStore(redis_client)


def test_claim_writes_the_expected_keys(bookings, redis_client):
    result = bookings.claim(booking("b1", name="山田 太郎", answers=[]), 1)
    assert result == ClaimResult(ok=True, already=False, reason="")
    assert slot_redis_key("noto", "2026-12-01T10:00") == "hwbot:{noto}:2026-12-01:slot:1000"
    assert sorted(redis_client.keys("*")) == [
        "hwbot:{noto}:2026-12-01:booking:b1",
        "hwbot:{noto}:2026-12-01:bookings",
        "hwbot:{noto}:2026-12-01:slot:1000",
        "hwbot:{u:u-7f3a}:bookings",
    ]
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == {"b1"}
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:bookings") == {"b1"}
    assert redis_client.smembers("hwbot:{u:u-7f3a}:bookings") == {"noto|2026-12-01T10:00|b1"}
    assert redis_client.ttl("hwbot:{noto}:2026-12-01:booking:b1") == -1  # no expire_in: kept
    # The script's keys share one cluster slot.
    assert len({key_slot(key.encode()) for key in redis_client.keys("hwbot:{noto}:2026-12-01:*")}) == 1
    assert bookings.get("noto|2026-12-01T10:00|b1") == booking("b1", name="山田 太郎", answers=[])
    assert BookingStore.ref(booking("b1")) == bookings.ref(booking("b1")) == "noto|2026-12-01T10:00|b1"


def test_capacity_1_refuses_a_second_booking(bookings, redis_client):
    assert bookings.claim(booking("b1"), 1).ok
    assert bookings.claim(booking("b2", user="u-other"), 1) == ClaimResult(ok=False, reason="full")
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == {"b1"}
    assert bookings.get("noto|2026-12-01T10:00|b2") is None
    assert not redis_client.exists("hwbot:{u:u-other}:bookings")


def test_same_id_twice_is_already_held(bookings, redis_client):
    assert bookings.claim(booking("b1", name="first"), 1) == ClaimResult(ok=True)
    assert bookings.claim(booking("b1", name="retry"), 1) == ClaimResult(ok=True, already=True)
    assert redis_client.scard("hwbot:{noto}:2026-12-01:slot:1000") == 1
    assert bookings.get("noto|2026-12-01T10:00|b1")["name"] == "first"  # not overwritten


def test_retry_repairs_a_lost_user_index_entry(bookings, redis_client):
    bookings.claim(booking("b1"), 1)
    redis_client.delete("hwbot:{u:u-7f3a}:bookings")  # as if the process died between the two steps
    assert bookings.claim(booking("b1"), 1).already
    assert [b["id"] for b in bookings.for_user(USER)] == ["b1"]


def test_capacity_3(bookings, redis_client):
    results = [bookings.claim(booking(f"b{i}", user=f"u{i}"), 3) for i in range(5)]
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert {r.reason for r in results[3:]} == {"full"}
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == {"b0", "b1", "b2"}
    assert bookings.claim(booking("b9"), 0) == ClaimResult(ok=False, reason="full")


def test_cancel_frees_the_slot(bookings, redis_client):
    bookings.claim(booking("b1"), 1)
    cancelled = bookings.cancel("noto|2026-12-01T10:00|b1", at="2026-11-28T09:00:00+09:00", by="user")
    assert cancelled == {
        **booking("b1"),
        "status": "cancelled",
        "cancelled_at": "2026-11-28T09:00:00+09:00",
        "cancelled_by": "user",
    }
    assert bookings.get("noto|2026-12-01T10:00|b1") == cancelled
    assert redis_client.scard("hwbot:{noto}:2026-12-01:slot:1000") == 0
    assert bookings.claim(booking("b2", user="u-other"), 1) == ClaimResult(ok=True)

    again = bookings.cancel("noto|2026-12-01T10:00|b1", at="2026-11-29T09:00:00+09:00", by="staff")
    assert again == cancelled  # harmless, the first cancellation stands
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == {"b2"}
    assert bookings.cancel("noto|2026-12-01T10:00|nope", at="x", by="user") is None


def test_cancelled_id_is_not_revived_by_a_late_retry(bookings, redis_client):
    bookings.claim(booking("b1"), 2)
    bookings.cancel("noto|2026-12-01T10:00|b1", at="2026-11-28T09:00:00+09:00", by="user")
    assert bookings.claim(booking("b1"), 2) == ClaimResult(ok=False, reason="cancelled")
    assert redis_client.scard("hwbot:{noto}:2026-12-01:slot:1000") == 0
    assert bookings.get("noto|2026-12-01T10:00|b1")["status"] == "cancelled"


def test_for_user_and_on_day(bookings, redis_client):
    bookings.claim(booking("late", slot="2026-12-01T13:30"), 1)
    bookings.claim(booking("early", slot="2026-12-01T10:00"), 1)
    bookings.claim(booking("next-day", slot="2026-12-02T10:00"), 1)
    bookings.claim(booking("other-user", slot="2026-12-01T11:00", user="u-other"), 1)
    bookings.claim(booking("other-office", slot="2026-12-01T09:00", office="sakata"), 1)
    bookings.cancel("noto|2026-12-01T13:30|late", at="2026-11-28T09:00:00+09:00", by="user")

    assert [b["id"] for b in bookings.for_user(USER)] == ["other-office", "early", "late", "next-day"]
    assert [b["status"] for b in bookings.for_user(USER)] == ["booked", "booked", "cancelled", "booked"]
    assert [b["id"] for b in bookings.for_user("u-other")] == ["other-user"]
    assert bookings.for_user("u-nobody") == []
    assert [b["id"] for b in bookings.on_day("noto", DAY)] == ["early", "other-user", "late"]
    assert [b["id"] for b in bookings.on_day("sakata", DAY)] == ["other-office"]
    assert bookings.on_day("noto", "2026-12-03") == []


def test_dangling_refs_are_dropped(bookings, redis_client):
    bookings.claim(booking("b1"), 1)
    bookings.claim(booking("b2", slot="2026-12-01T11:00"), 1)
    redis_client.delete("hwbot:{noto}:2026-12-01:booking:b1")  # as if its retention ran out
    assert [b["id"] for b in bookings.for_user(USER)] == ["b2"]
    assert redis_client.smembers("hwbot:{u:u-7f3a}:bookings") == {"noto|2026-12-01T11:00|b2"}
    assert [b["id"] for b in bookings.on_day("noto", DAY)] == ["b2"]
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:bookings") == {"b2"}


def test_update(bookings):
    bookings.claim(booking("b1", answers=[]), 1)
    ref = "noto|2026-12-01T10:00|b1"
    updated = bookings.update(ref, {"status": "attended", "note": "ok"})
    assert updated == {**booking("b1", answers=[]), "status": "attended", "note": "ok"}
    assert bookings.get(ref) == updated
    assert bookings.update("noto|2026-12-01T10:00|nope", {"status": "no_show"}) is None
    for bad in ({"slot": "2026-12-01T11:00"}, {"id": "x"}, {"status": "cancelled"}, {"status": "booked"}):
        with pytest.raises(ValueError):
            bookings.update(ref, bad)
    assert bookings.get(ref) == updated


def test_delete_personal(bookings, redis_client):
    personal = {"name": "山田 太郎", "number": "12345-6789012", "email": "t@example.jp", "phone": "090-1234-5678"}
    bookings.claim(booking("b1", **personal, topic="求人相談"), 1)
    bookings.delete_personal("noto|2026-12-01T10:00|b1")
    assert bookings.get("noto|2026-12-01T10:00|b1") == booking("b1", topic="求人相談")
    raw = redis_client.get("hwbot:{noto}:2026-12-01:booking:b1")
    assert "山田" not in raw and "090" not in raw
    bookings.delete_personal("noto|2026-12-01T10:00|b1")  # nothing left to remove: fine
    bookings.delete_personal("noto|2026-12-01T10:00|nope")
    bookings.delete_personal("noto|2026-12-01T10:00|b1", fields=("topic",))
    assert bookings.get("noto|2026-12-01T10:00|b1") == booking("b1")


def test_anonymise_keeps_an_anonymous_record_and_cleans_the_user_index(bookings, redis_client):
    personal = {"name": "山田 太郎", "number": "12345-6789012", "email": "t@example.jp", "phone": "090-1234-5678"}
    bookings.claim(booking("b1", **personal, topic="求人相談"), 1, expire_in=365 * 86400)
    bookings.claim(booking("b2", slot=SLOTS[1]), 1)
    ref = "noto|2026-12-01T10:00|b1"
    kept = bookings.anonymise(ref, at="2027-03-01T00:00:00+09:00")
    stored = {k: v for k, v in booking("b1", topic="求人相談").items() if k != "user"}
    assert kept == bookings.get(ref) == {**stored, "anonymised_at": "2027-03-01T00:00:00+09:00"}
    raw = redis_client.get("hwbot:{noto}:2026-12-01:booking:b1")
    assert USER not in raw and "山田" not in raw and "090" not in raw
    assert redis_client.smembers(f"hwbot:{{u:{USER}}}:bookings") == {"noto|2026-12-01T10:30|b2"}
    assert [b["id"] for b in bookings.for_user(USER)] == ["b2"]
    assert [b["id"] for b in bookings.on_day("noto", DAY)] == ["b1", "b2"]  # statistics still count it
    assert redis_client.ttl("hwbot:{noto}:2026-12-01:booking:b1") > 364 * 86400
    assert bookings.anonymise(ref, at="later") == kept  # a second run changes nothing
    assert bookings.anonymise("noto|2026-12-01T10:00|nope", at="t") is None


def test_retention_expiry_survives_changes(bookings, redis_client):
    bookings.claim(booking("b1", name="x"), 1, expire_in=90 * 86400)
    key = "hwbot:{noto}:2026-12-01:booking:b1"
    assert 90 * 86400 - 5 <= redis_client.ttl(key) <= 90 * 86400
    assert redis_client.ttl("hwbot:{noto}:2026-12-01:slot:1000") == -1  # only the booking expires
    bookings.update("noto|2026-12-01T10:00|b1", {"status": "attended"})
    bookings.delete_personal("noto|2026-12-01T10:00|b1")
    bookings.cancel("noto|2026-12-01T10:00|b1", at="t", by="staff")
    assert 90 * 86400 - 5 <= redis_client.ttl(key) <= 90 * 86400


def test_bad_input_is_refused(bookings):
    for bad in (
        booking("a|b"),
        booking("b1", slot="2026-12-01 10:00"),
        booking("b1", office="no{to}"),
        {**booking("b1"), "status": "cancelled"},
        {k: v for k, v in booking("b1").items() if k != "user"},
    ):
        with pytest.raises(ValueError):
            bookings.claim(bad, 1)
    for ttl in (0, -5, 1.5, "60"):  # a relative lifetime in whole seconds, never an instant
        with pytest.raises(ValueError):
            bookings.claim(booking("b1"), 1, expire_in=ttl)
    assert bookings.get("noto|2026-12-01T10:00|b1") is None
    with pytest.raises(ValueError):
        bookings.get("noto|2026-12-01T10:00")


def test_a_warm_claim_takes_three_round_trips(bookings, monkeypatch):
    """The office script (booking and intent), the user index, forgetting the intent; a refusal one."""
    bookings.claim(booking("warm-up", slot="2026-12-01T13:00"), 1)  # loads the script on the server
    sent = []
    connection_class = bookings.client.connection_pool.connection_class
    original = connection_class.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    assert bookings.claim(booking("b1"), 1).ok
    assert len(sent) == 3
    sent.clear()
    assert bookings.claim(booking("b2"), 1).reason == "full"
    assert len(sent) == 1


# --- a race between two OS processes -----------------------------------------------------------


def _race_worker(connection: dict, users: list[int], barrier, results) -> None:
    """One process: each user tries the day's slots in its own random order until one claim succeeds."""
    client = redis.Redis(decode_responses=True, socket_timeout=5, **connection)
    store = BookingStore(client)
    barrier.wait(timeout=20)
    got: dict[int, str | None] = {}
    for number in users:
        order = SLOTS[:]
        random.Random(number).shuffle(order)
        got[number] = None
        for slot in order:
            if store.claim(booking(f"race-{number}", slot=slot, user=f"u{number}"), 1).ok:
                got[number] = slot
                break
    client.close()
    results.put(got)


def test_two_processes_never_overbook(redis_client):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    users = list(range(50))
    connection = connection_info(redis_client)
    procs = [  # interleaved: process 0 has users 0, 2, 4..., process 1 has users 1, 3, 5...
        ctx.Process(target=_race_worker, args=(connection, users[i::2], barrier, results), daemon=True)
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    got: dict[int, str | None] = {}
    try:
        for _ in procs:
            got.update(results.get(timeout=30))
    except queue.Empty:
        pytest.fail(f"a race process did not report within 30 s (exit codes {[p.exitcode for p in procs]})")
    finally:
        for proc in procs:
            proc.join(timeout=5)
        hung = [proc for proc in procs if proc.is_alive()]
        for proc in hung:
            proc.kill()
            proc.join(timeout=5)
        results.close()
        results.join_thread()
    assert not hung, "race processes hung after reporting"
    assert [proc.exitcode for proc in procs] == [0, 0]

    assert sorted(got) == users
    winners = {number: slot for number, slot in got.items() if slot}
    assert sorted(winners.values()) == SLOTS
    assert sum(1 for slot in got.values() if slot is None) == 45
    for slot in SLOTS:
        assert redis_client.scard(slot_redis_key("noto", slot)) == 1
    day = BookingStore(redis_client).on_day("noto", DAY)
    assert len(day) == 5
    assert {(b["user"], b["slot"]) for b in day} == {(f"u{number}", slot) for number, slot in winners.items()}
    assert len(redis_client.keys("hwbot:{noto}:2026-12-01:booking:*")) == 5
    assert len(redis_client.keys("hwbot:{u:*}:bookings")) == 5

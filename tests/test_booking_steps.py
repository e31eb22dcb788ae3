"""A booking step that changes keys of two hash slots: the office's script, then its after-effects (the
user index, the outbox) as idempotent steps in a fixed order, with a recovery for a crash between them.

Every store call here runs under `single_slot`, which refuses a script or MULTI over several slots as a
Redis Cluster would. A crash is played by `BookingStore.step_hook` raising after step k; the worker's
recovery task must then complete the step exactly once: no second push, no double booking, capacity kept.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.errors import StoreError
from bot.staff.aftercare import AfterEffects, scheduled_tasks
from bot.store import BookingStore
from bot.store.bookings import RECOVER_AFTER_S, STEPS, intent_key, intents_key, user_index_key
from bot.testing.slots import single_slot

USER = "u-7f3a"
OLD = "2026-12-01T10:00"
NEW = "2026-12-03T14:00"
AT = "2026-11-25T09:00:00+09:00"
LATER = timedelta(seconds=RECOVER_AFTER_S + 1)


def booking(booking_id: str, slot: str = OLD, user: str = USER, **extra) -> dict:
    return {"id": booking_id, "office": "noto", "slot": slot, "user": user, "status": "booked", **extra}


def ref(booking_id: str, slot: str = OLD) -> str:
    return f"noto|{slot}|{booking_id}"


class Crash(Exception):
    """The process dies here."""


def crash_after(store: BookingStore, step: str) -> None:
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    store.step_hook = hook


@pytest.fixture
def checked(redis_client):
    """The test Redis, refusing cross-slot steps for the whole test."""
    with single_slot(redis_client):
        yield redis_client


@pytest.fixture
def store(checked, clock):
    return BookingStore(checked, now=lambda: clock.now().timestamp())


def recover(store: BookingStore, clock, **kwargs) -> int:
    return store.recover(["noto", "sakata"], clock.now().timestamp(), **kwargs)


def leftovers(client) -> list[str]:
    return sorted(client.keys("hwbot:{noto}:intent*"))


def test_the_keys_of_an_office_share_one_slot_across_days(store, redis_client):
    store.claim(booking("b1"), 1)
    assert store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user").ok
    assert sorted(redis_client.keys("hwbot:{noto}:*")) == [
        "hwbot:{noto}:2026-12-01:booking:b1",
        "hwbot:{noto}:2026-12-01:bookings",
        "hwbot:{noto}:2026-12-03:booking:m1",
        "hwbot:{noto}:2026-12-03:bookings",
        "hwbot:{noto}:2026-12-03:slot:1400",
    ]
    assert redis_client.smembers(user_index_key(USER)) == {ref("b1"), ref("m1", NEW)}


@pytest.mark.parametrize("step", STEPS)
def test_a_claim_cut_off_after_any_step_is_completed_once_by_the_recovery(store, redis_client, clock, step):
    crash_after(store, step)
    with pytest.raises(Crash):
        store.claim(booking("b1"), 1)
    store.step_hook = None
    left = step != "done"
    assert bool(leftovers(redis_client)) == left
    # The booking holds its slot whatever step it stopped after: capacity is kept.
    assert store.claim(booking("b2", user="u-other"), 1).reason == "full"
    assert [b["id"] for b in store.on_day("noto", OLD[:10])] == ["b1"]
    assert recover(store, clock) == 0  # a fresh intent may still be on its way: not the recovery's yet
    clock.advance(LATER)
    assert recover(store, clock) == int(left)
    assert [b["id"] for b in store.for_user(USER)] == ["b1"]
    assert leftovers(redis_client) == []
    assert recover(store, clock) == 0
    # LINE's redelivery (or a save conflict) claims the same id again: already, nothing doubled.
    assert store.claim(booking("b1"), 1).already
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == {"b1"}


@pytest.mark.parametrize("step", STEPS[:2])
def test_a_move_cut_off_after_a_step_is_completed_by_the_recovery(store, redis_client, clock, step):
    store.claim(booking("b1"), 1)
    crash_after(store, step)
    with pytest.raises(Crash):
        store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user")
    store.step_hook = None
    # Never neither, never both: the office step is whole.
    assert redis_client.smembers("hwbot:{noto}:2026-12-01:slot:1000") == set()
    assert redis_client.smembers("hwbot:{noto}:2026-12-03:slot:1400") == {"m1"}
    clock.advance(LATER)
    assert recover(store, clock) == 1
    assert [(b["id"], b["status"]) for b in store.for_user(USER)] == [("b1", "cancelled"), ("m1", "booked")]
    assert leftovers(redis_client) == []
    again = store.move(ref("b1"), NEW, 1, new_id="m1", at=AT, by="user")
    assert again.ok and again.already
    assert redis_client.smembers("hwbot:{noto}:2026-12-03:slot:1400") == {"m1"}


def test_a_step_whose_index_node_is_down_leaves_its_intent_for_the_recovery(store, redis_client, clock, monkeypatch):
    """The user index's node unreachable after the office step: an error (503 for the webhook), and the
    recovery completes the step once the node is back."""
    real = store.durable.command

    def down(key, *command):
        raise StoreError("cannot apply a booking's after-effects: ConnectionError")

    monkeypatch.setattr(store.durable, "command", down)
    with pytest.raises(StoreError):
        store.claim(booking("b1"), 1)
    clock.advance(LATER)
    assert recover(store, clock) == 0  # still down: the intent stays
    assert len(leftovers(redis_client)) == 2
    monkeypatch.setattr(store.durable, "command", real)
    assert recover(store, clock) == 0  # re-stamped by the last try: looked at again a while later
    clock.advance(LATER)
    assert recover(store, clock) == 1
    assert [b["id"] for b in store.for_user(USER)] == ["b1"]


def test_an_index_entry_without_its_intent_is_dropped(store, redis_client, clock):
    redis_client.zadd(intents_key("noto"), {"f" * 32: clock.now().timestamp() - 60})
    assert recover(store, clock) == 0
    assert not redis_client.exists(intents_key("noto"))


def test_two_workers_recovering_at_once_complete_a_step_once(checked, redis_client, clock):
    first = BookingStore(checked, now=lambda: clock.now().timestamp())
    crash_after(first, "office")
    with pytest.raises(Crash):
        first.claim(booking("b1"), 1)
    clock.advance(LATER)
    second = BookingStore(checked, now=lambda: clock.now().timestamp())
    first.step_hook = None
    [intent_id] = redis_client.zrange(intents_key("noto"), 0, -1)
    assert redis_client.exists(intent_key("noto", intent_id))
    # The first takes it and stops before finishing; the second finds it re-stamped (not stale yet).
    crash_after(first, "index")
    with pytest.raises(Crash):
        recover(first, clock)
    assert recover(second, clock) == 0
    clock.advance(LATER)
    assert recover(second, clock) == 1
    assert [b["id"] for b in second.for_user(USER)] == ["b1"]


def test_the_worker_runs_the_recovery(service, clock, redis_client):
    store = service.bookings.store
    crash_after(store, "office")
    with pytest.raises(Crash):
        store.claim(booking("b1"), 1)
    store.step_hook = None
    [task] = [task for task in scheduled_tasks(service) if task.name == "after_effects"]
    assert isinstance(task.task, AfterEffects)
    task(clock.now())
    assert service.bookings.for_user(USER) == []  # not yet: the step may still be under way
    clock.advance(LATER)
    task(clock.now())  # throttled to every 5 s: due again
    assert [b["id"] for b in service.bookings.for_user(USER)] == ["b1"]


# --- a staff action with a push and a notice ------------------------------------------------------


@pytest.fixture
def checked_service(checked, offices, clock):
    """The bot on a client that refuses cross-slot steps, as a Redis Cluster would."""
    from bot.service import BotService
    from bot.settings import load_settings

    return BotService(load_settings(), client=checked, offices=offices, clock=clock)


def outbox_entries(service) -> list[dict[str, str]]:
    return [fields for _, fields in service.outbox.entries(1000)]


@pytest.mark.parametrize("step", STEPS)
def test_a_staff_cancel_cut_off_after_any_step_pushes_and_notifies_exactly_once(checked_service, clock, step):
    from bot.staff.actions import Refused, StaffActions

    service = checked_service
    slot = "2026-11-25T10:00"
    store = service.bookings.store
    store.claim(booking("b1", slot, start="2026-11-25T10:00:00+09:00", end="2026-11-25T10:30:00+09:00"), 1)
    crash_after(store, step)
    with pytest.raises(Crash):
        StaffActions(service).cancel(ref("b1", slot), by="s-staff1")
    store.step_hook = None
    assert store.get(ref("b1", slot))["status"] == "cancelled"
    assert service.bookings.booked_counts("noto", [slot]) == {}  # the slot is free whatever the step
    [task] = [task for task in scheduled_tasks(service) if task.name == "after_effects"]
    clock.advance(LATER)
    task(clock.now())
    entries = outbox_entries(service)
    assert sorted(entry["kind"] for entry in entries) == ["cancellation", "push"]
    [push] = [entry for entry in entries if entry["kind"] == "push"]
    assert push["to"] == USER
    # Staff repeat the action: refused (it is done), nothing sent twice; the recovery finds nothing left.
    with pytest.raises(Refused):
        StaffActions(service).cancel(ref("b1", slot), by="s-staff1")
    clock.advance(LATER)
    assert AfterEffects(service)(clock.now()) == 0
    assert len(outbox_entries(service)) == 2


# --- the turn that runs again after its booking step ----------------------------------------------


def _at_the_card(service) -> tuple:
    """A user at Noto's confirmation card (capacity 1, one upcoming booking at most): (driver, button data)."""
    from bot.testing.driver import ChatDriver, to_noto_card

    driver = ChatDriver(service, user=USER)
    return driver, to_noto_card(driver).data


@pytest.mark.parametrize("step", ["office", "index", "outbox"])
def test_a_booking_turn_stopped_after_its_claim_books_once_when_the_event_comes_again(checked_service, clock, step):
    """The webhook answered 503 after the claim (a node away, replicas late): LINE redelivers the event.
    The turn finds its own booking (even already in the user's list, which counts against the limit of
    one upcoming booking, in the slot of capacity 1) and answers it as booked, once."""
    from bot.dialog import Inbound
    from bot.errors import StoreUnavailable

    service = checked_service
    driver, data = _at_the_card(service)
    store = service.bookings.store

    def away(name: str) -> None:
        if name == step:
            raise StoreUnavailable("a node is away")

    store.step_hook = away
    event = Inbound(user=USER, kind="postback", text=data)
    with pytest.raises(StoreUnavailable):
        service.handle(event, event_id="01HWBOTSTOPPEDAFTERCLAIM00")
    store.step_hook = None
    if step != "office":
        assert [b["id"] for b in service.bookings.for_user(USER)]  # already in the user's list
    outcome = service.handle(event, event_id="01HWBOTSTOPPEDAFTERCLAIM00")
    text = json.dumps([reply.__dict__ for reply in outcome.replies], ensure_ascii=False, default=str)
    assert "ご予約を受け付けました" in text or "予約が確定しました" in text, text
    assert outcome.conversation.state == "idle"
    [mine] = driver.bookings()
    assert mine["status"] == "booked" and mine["slot"] == "2026-11-25T10:00"
    assert [notice.kind for notice in outcome.notices] == ["booking"]
    assert service.handle(event, event_id="01HWBOTSTOPPEDAFTERCLAIM00") is None  # processed: no second effect
    clock.advance(LATER)
    assert AfterEffects(service)(clock.now()) == 0  # the repeated claim finished its after-effects


def _written_then_not_replicated(monkeypatch, store: BookingStore) -> None:
    """The next write step is done on the primary, then its WAIT comes back short (once)."""
    from bot.errors import NotReplicated

    real = store.durable.script

    def once(script, keys, args):
        real(script, keys, args)
        monkeypatch.setattr(store.durable, "script", real)
        raise NotReplicated("0 of 1 replicas acknowledged")

    monkeypatch.setattr(store.durable, "script", once)


def _tap_again(service, driver, label: str, monkeypatch, event_id: str):
    """Tap `label` as a webhook event whose first delivery fails after the store's write (503), then
    comes again (LINE's redelivery): the second outcome."""
    from bot.dialog import Inbound
    from bot.errors import NotReplicated

    from bot.testing.driver import labelled_options

    [option] = [option for reply in driver.exchanges[-1].replies for name, option in labelled_options(reply)
                if name == label]
    event = Inbound(user=USER, kind="postback", text=option.data)
    _written_then_not_replicated(monkeypatch, service.bookings.store)
    with pytest.raises(NotReplicated):
        service.handle(event, event_id=event_id)
    outcome = service.handle(event, event_id=event_id)
    assert service.handle(event, event_id=event_id) is None
    return outcome


def _texts(outcome) -> str:
    return json.dumps([reply.__dict__ for reply in outcome.replies], ensure_ascii=False, default=str)


def test_a_cancel_turn_stopped_after_its_write_is_told_as_cancelled_once(checked_service, monkeypatch):
    from bot.testing.driver import ChatDriver, book_at_noto

    service = checked_service
    driver = ChatDriver(service, user=USER)
    book_at_noto(driver, "11月25日(水) 10:00〜10:30")
    driver.say("予約の確認")
    driver.tap("キャンセル 11/25 10:00")
    outcome = _tap_again(service, driver, "キャンセルする", monkeypatch, "01HWBOTCANCELREDELIVERED00")
    assert "キャンセルしました" in _texts(outcome), _texts(outcome)
    assert [notice.kind for notice in outcome.notices] == ["cancellation"]
    assert [b["status"] for b in driver.bookings()] == ["cancelled"]


def test_a_move_turn_stopped_after_its_write_is_told_as_moved_once(checked_service, monkeypatch):
    from bot.testing.driver import ChatDriver, book_at_noto

    service = checked_service
    driver = ChatDriver(service, user=USER)
    book_at_noto(driver, "11月25日(水) 10:00〜10:30")
    driver.say("予約の確認")
    driver.tap("日時変更 11/25 10:00")
    driver.tap("11月26日(木) 14:00〜14:30")
    outcome = _tap_again(service, driver, "変更する", monkeypatch, "01HWBOTMOVEREDELIVERED0000")
    assert "11月26日(木) 14:00〜14:30" in _texts(outcome), _texts(outcome)
    assert [notice.kind for notice in outcome.notices] == ["rescheduled"]
    assert [(b["slot"], b["status"]) for b in driver.bookings()] == [("2026-11-25T10:00", "cancelled"),
                                                                     ("2026-11-26T14:00", "booked")]

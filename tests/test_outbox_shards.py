"""The outbox split into shards: where entries go, `add_many`'s one step and its dedup, and a worker that
drains every shard (also those of a larger shard count used before)."""

from __future__ import annotations

import uuid

import pytest

from bot.service import BotService
from bot.settings import load_settings
from bot.staff.worker import Worker
from bot.store.outbox import GROUP, SHARDS_KEY, Outbox, dedup_key
from bot.store.shards import outbox_key, shard_of

USERS = ["U" + f"{n:032x}" for n in range(40)]


def push(user: str, text: str) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "push", "to": user, "messages": [{"type": "text", "text": text}]}


def stream(client, shard: int) -> list[dict]:
    return [fields for _, fields in client.xrange(outbox_key(shard))]


def test_a_users_entries_are_all_in_the_users_shard_in_the_order_added(redis_client):
    outbox = Outbox(redis_client, shards=8)
    for round_ in range(3):
        for user in USERS:
            outbox.add(push(user, f"{user}:{round_}"))
    shards = {shard for shard in range(8) if redis_client.exists(outbox_key(shard))}
    assert len(shards) > 4  # 40 users spread over the shards
    for user in USERS:
        mine = [json_text(fields) for fields in stream(redis_client, shard_of(user, 8)) if fields["to"] == user]
        assert mine == [f"{user}:{round_}" for round_ in range(3)]
        assert all(fields["to"] != user for shard in shards - {shard_of(user, 8)} for fields in stream(redis_client, shard))


def json_text(fields: dict) -> str:
    import json

    return json.loads(fields["messages"])[0]["text"]


def test_a_notice_without_a_user_goes_to_its_offices_shard(redis_client):
    outbox = Outbox(redis_client, shards=8)
    outbox.add({"id": "n1", "kind": "booking", "office": "izumo", "summary": "s"})
    assert [fields["id"] for fields in stream(redis_client, shard_of("izumo", 8))] == ["n1"]


def test_add_many_adds_every_entry_to_the_users_shard_in_one_step_and_once_per_dedup_key(redis_client):
    outbox = Outbox(redis_client, shards=16)
    user = USERS[7]
    entries = [push(user, "1"), {"id": "n", "kind": "booking", "office": "noto", "summary": "s"}, push(user, "2")]
    ids = outbox.add_many(entries, user=user, dedup="booking:AB12:confirm")
    shard = shard_of(user, 16)
    assert [stream_id for stream_id, _ in redis_client.xrange(outbox_key(shard))] == ids and len(ids) == 3
    assert [fields["id"] for fields in stream(redis_client, shard)] == [entry["id"] for entry in entries]
    # The notice names another office's shard, but it goes with the user's step: one slot.
    assert not redis_client.exists(outbox_key(shard_of("noto", 16))) or shard_of("noto", 16) == shard
    assert 0 < redis_client.ttl(dedup_key(shard, "booking:AB12:confirm")) <= 4 * 24 * 3600
    # The same step again (a retried request, a redelivered event): nothing more.
    assert outbox.add_many([push(user, "3")], user=user, dedup="booking:AB12:confirm") == []
    assert len(stream(redis_client, shard)) == 3
    # Another key, or none, adds.
    assert len(outbox.add_many([push(user, "4")], user=user, dedup="booking:AB12:cancel")) == 1
    assert len(outbox.add_many([push(user, "5")], user=user)) == 1
    assert [json_text(fields) for fields in stream(redis_client, shard) if fields["kind"] == "push"] == ["1", "2", "4", "5"]


def test_add_many_refuses_an_empty_entry_before_writing_anything(redis_client):
    outbox = Outbox(redis_client)
    with pytest.raises(ValueError):
        outbox.add_many([push(USERS[0], "1"), {}], user=USERS[0], dedup="x")
    assert redis_client.keys("*") == []


def test_the_highest_shard_count_any_process_used_is_noted_and_read(redis_client):
    small, large = Outbox(redis_client, shards=4), Outbox(redis_client, shards=32)
    large.note_shards()
    small.note_shards()
    assert redis_client.get(SHARDS_KEY) == "32"
    assert small.read_shards() == range(32) and Outbox(redis_client, shards=4).refresh_shards() == range(32)
    small.ensure_group()
    assert all(redis_client.xinfo_groups(outbox_key(shard))[0]["name"] == GROUP for shard in range(32))


# -- the worker reads every shard --------------------------------------------------------------------

PUSH = "/v2/bot/message/push"


def sending_service(redis_client, offices, clock, line, shards: int) -> BotService:
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token",
                             line_api_host=line.url, outbox_shards=shards)
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


def pushed(line) -> dict[str, list[str]]:
    """user -> texts LINE accepted for them, in the order it got them."""
    found: dict[str, list[str]] = {}
    for request in line.sent(PUSH):
        found.setdefault(request.body["to"], []).append(request.body["messages"][0]["text"])
    return found


def queue(service: BotService, users: list[str], rounds: int) -> None:
    for round_ in range(rounds):
        for user in users:
            service.queue_push(user, [{"type": "text", "text": f"{round_}"}], retry_key=uuid.uuid4().hex)


def test_the_worker_drains_every_shard_and_sends_each_users_entries_in_order(redis_client, offices, clock, line):
    service = sending_service(redis_client, offices, clock, line, 16)
    queue(service, USERS, 3)
    assert len({service.outbox.shard(user) for user in USERS}) == 16  # every shard has entries
    worker = Worker(service, service.settings, consumer="w1")
    assert worker.run_once(clock.now()) == {"delivered": 3 * len(USERS)}
    assert pushed(line) == {user: ["0", "1", "2"] for user in USERS}
    assert service.outbox.settled() and worker.run_once(clock.now()) == {}


def test_a_lowered_shard_count_still_drains_the_shards_beyond_it(redis_client, offices, clock, line):
    before = sending_service(redis_client, offices, clock, line, 16)  # the web app before the change
    before.outbox.note_shards()  # as it does at its first turn
    queue(before, USERS, 2)
    outside = [user for user in USERS if before.outbox.shard(user) >= 4]
    assert outside  # entries a 4-shard worker would not read on its own
    after = sending_service(redis_client, offices, clock, line, 4)
    worker = Worker(after, after.settings, consumer="w1")
    assert worker.run_once(clock.now()) == {"delivered": 2 * len(USERS)}
    assert pushed(line) == {user: ["0", "1"] for user in USERS}
    assert after.outbox.settled()


def test_without_the_noted_count_a_smaller_worker_would_leave_entries_behind(redis_client, offices, clock, line):
    """What the noted count is for: the same as above with the note gone reads shards 0-3 only."""
    before = sending_service(redis_client, offices, clock, line, 16)
    queue(before, USERS, 1)
    after = sending_service(redis_client, offices, clock, line, 4)
    stats = Worker(after, after.settings, consumer="w1").run_once(clock.now())
    inside = [user for user in USERS if before.outbox.shard(user) < 4]
    assert stats == {"delivered": len(inside)} and set(pushed(line)) == set(inside)
    assert not before.outbox.settled()  # what a 16-shard reader sees: entries left


def test_a_worker_that_started_before_a_larger_count_reads_it_after_its_refresh(redis_client, offices, clock, line):
    small = sending_service(redis_client, offices, clock, line, 4)
    worker = Worker(small, small.settings, consumer="w1")
    assert worker.run_once(clock.now()) == {}  # started: groups of shards 0-3
    large = sending_service(redis_client, offices, clock, line, 32)
    large.outbox.note_shards()
    queue(large, USERS, 1)
    worker._refresh_shards()  # `run` does this every SHARDS_EVERY_S
    assert worker.run_once(clock.now()) == {"delivered": len(USERS)}

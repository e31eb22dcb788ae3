"""`hwbot store migrate`: data written in the key layout before issue 13 (one outbox stream, untagged
threads and staff keys, `{u:<user>}` conversations) moves to the current one, once; start-up refuses the
old layout and names the command; a changed shard count moves the conversations to their new shard."""

from __future__ import annotations

import json

import pytest

from bot.errors import LayoutError
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.worker import Worker
from bot.store import ConversationStore
from bot.store.handoffs import CLOSED_KEY, HANDOFFS_KEY, user_threads_key
from bot.store.migrate import require_current_layout
from bot.store.outbox import Outbox
from bot.store.shards import outbox_key, shard_of
from bot.web import create_app

U1, U2 = "U" + "1" * 32, "U" + "2" * 32
OPEN, CLOSED = "0123456789abcdef", "fedcba9876543210"
PUSH = "/v2/bot/message/push"


def push(entry_id: str, user: str, text: str) -> dict:
    return {"id": entry_id, "kind": "push", "to": user, "messages": json.dumps([{"type": "text", "text": text}])}


def old_data(client) -> None:
    """What the code before issue 13 left on a server, written with its key names."""
    client.hset("hwbot:{u:%s}:conv" % U1, mapping={"v": "3", "data": json.dumps({"state": "asking_name", "office": "noto"})})
    client.expire("hwbot:{u:%s}:conv" % U1, 600)
    client.set("hwbot:{u:%s}:last_reply" % U1, "r-1", ex=120)
    client.set("hwbot:event:01HXEVENT", "1", ex=3600)
    # The outbox: d1 delivered and acknowledged; d2 sent (marker) but not acknowledged; p1 taken by a
    # worker that stopped; n1, n2, n3 never read. U1's entries must keep their order.
    client.xadd("hwbot:outbox", push("d1", U1, "delivered"))
    client.xgroup_create("hwbot:outbox", "workers", id="0")
    client.xreadgroup("workers", "old-worker", {"hwbot:outbox": ">"})
    [(_, [(d1, _)])] = client.xreadgroup("workers", "old-worker", {"hwbot:outbox": "0"})
    client.xack("hwbot:outbox", "workers", d1)
    client.xadd("hwbot:outbox", push("d2", U2, "sent, not acknowledged"))
    client.xadd("hwbot:outbox", push("p1", U1, "first"))
    client.xreadgroup("workers", "old-worker", {"hwbot:outbox": ">"})
    client.set("hwbot:outbox:done:d2", "1", ex=3600)
    client.hset("hwbot:outbox:attempts", "1-1", 2)
    client.zadd("hwbot:outbox:retry", {"1-1": 1})
    client.xadd("hwbot:outbox", push("n1", U1, "second"))
    client.xadd("hwbot:outbox", {"id": "n2", "kind": "handoff", "office": "noto", "summary": "s",
                                 "fields": json.dumps({"thread": OPEN})})
    client.xadd("hwbot:outbox", push("n3", U2, "only"))
    client.xadd("hwbot:outbox:dead", {"kind": "booking", "office": "noto", "summary": "能登の通知", "error": "HTTP 500"})
    client.set("hwbot:outbox:done:old", "1", ex=3600)
    # Handoff threads: U1 waits on OPEN; CLOSED is closed and indexed for retention.
    for thread, closed in ((OPEN, False), (CLOSED, True)):
        client.hset(f"hwbot:thread:{thread}", mapping={"user": U1, "office": "noto", "mode": "console", "since": "x",
                                                       **({"closed_at": "y"} if closed else {})})
        client.rpush(f"hwbot:thread:{thread}:messages", json.dumps({"from": "user", "text": f"in {thread}"}))
        client.sadd(user_threads_key(U1), thread)
    client.expire(f"hwbot:thread:{CLOSED}", 86400)
    client.zadd(CLOSED_KEY, {CLOSED: 1700000000})
    client.hset(HANDOFFS_KEY, U1, json.dumps({"office": "noto", "at": "x", "thread": OPEN}))
    # A staff account with a session.
    client.hset("hwbot:staff:account:s-abcdef", mapping={"id": "s-abcdef", "name": "職員", "role": "staff", "offices": "noto"})
    client.hset("hwbot:staff:names", "職員", "s-abcdef")
    client.hset("hwbot:staff:session:d" + "0" * 63, mapping={"account": "s-abcdef", "stage": "ok"})
    client.expire("hwbot:staff:session:d" + "0" * 63, 3600)


def old_keys(client) -> list[str]:
    """Keys of the old layout (the user's thread set and booking index keep their names)."""
    return sorted(key for key in client.keys("hwbot:*")
                  if key.startswith("hwbot:{u:") and key.endswith((":conv", ":last_reply"))
                  or key.startswith(("hwbot:event:", "hwbot:thread:", "hwbot:staff:"))
                  or key.startswith("hwbot:outbox") and key != "hwbot:outbox:shards")


@pytest.fixture
def old(redis_client):
    old_data(redis_client)
    return redis_client


def test_start_up_refuses_the_old_layout_and_names_the_command(old, cli):
    with pytest.raises(LayoutError, match="hwbot store migrate"):
        require_current_layout(old)
    for command in (("worker", "--once"), ("staff", "list")):
        result = cli(*command)
        assert result.exit_code != 0 and "hwbot store migrate" in result.output, result.output
    with pytest.raises(LayoutError, match="hwbot store migrate"):  # the web app (gunicorn's workers, hwbot serve)
        create_app(load_settings())
    assert "hwbot:outbox" in old.keys("hwbot:outbox")  # nothing was touched


def test_a_dry_run_counts_and_changes_nothing(old, cli):
    before = {key: old.dump(key) for key in old.keys("*")}
    result = cli("store", "migrate", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "outbox entries: 4 would move, 2 dropped" in result.output
    assert "staff accounts: 3 would move" in result.output
    assert {key: old.dump(key) for key in old.keys("*")} == before


def test_the_migration_moves_everything_once(old, cli, offices, clock, line):
    result = cli("store", "migrate")
    assert result.exit_code == 0, result.output
    assert old_keys(old) == []
    require_current_layout(old)  # starts now
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token", line_api_host=line.url)
    service = BotService(settings, client=old, offices=offices, clock=clock)
    # The conversation, with its version and lifetime.
    assert service.conversations.load(U1) == ({"state": "asking_name", "office": "noto"}, 3)
    assert 0 < old.ttl(service.conversations.key(U1)) <= 600
    # The threads: new ids in U1's shard, every reference renamed, text and lifetimes kept.
    shard = shard_of(U1, 16)
    waiting = service.handoffs.info(U1)["thread"]
    assert waiting == f"{shard}-{OPEN}"
    assert service.handoffs.messages(waiting) == [{"from": "user", "text": f"in {OPEN}"}]
    assert service.handoffs.threads_of(U1) == {f"{shard}-{OPEN}", f"{shard}-{CLOSED}"}
    assert service.handoffs.closed_before(1800000000) == [f"{shard}-{CLOSED}"]
    assert service.handoffs.meta(f"{shard}-{CLOSED}")["closed_at"] == "y"
    assert 0 < old.ttl(f"hwbot:{{o{shard}}}:thread:{shard}-{CLOSED}") <= 86400
    # The outbox: what was not delivered is in its shard, in order, the notice naming the new thread id.
    entries = {user: [fields["id"] for _, fields in old.xrange(outbox_key(shard_of(user, 16)))] for user in (U1, U2)}
    assert entries[U1][:2] == ["p1", "n1"] and entries[U2][-1] == "n3" and "d1" not in entries[U1]
    assert all("d2" not in ids for ids in entries.values())
    [notice] = [fields for _, fields in service.outbox.entries() if fields["id"] == "n2"]
    assert json.loads(notice["fields"])["thread"] == f"{shard}-{OPEN}"
    assert [fields["summary"] for _, fields in service.outbox.dead_letters()] == ["能登の通知"]
    # The staff account, its name and session.
    assert old.hget("hwbot:{staff}:names", "職員") == "s-abcdef"
    assert 0 < old.ttl("hwbot:{staff}:session:d" + "0" * 63) <= 3600
    # And the worker sends what was waiting, U1's in order.
    Worker(service, settings, consumer="w1").run_once(clock.now())
    texts = [(request.body["to"], request.body["messages"][0]["text"]) for request in line.sent(PUSH)]
    assert [text for to, text in texts if to == U1] == ["first", "second"]
    assert [text for to, text in texts if to == U2] == ["only"]
    # Once more: nothing to do.
    again = cli("store", "migrate")
    assert again.exit_code == 0 and "nothing to migrate" in again.output, again.output


def test_a_key_whose_new_name_is_taken_is_left_and_reported(old, cli):
    old.hset("hwbot:{staff}:names", "別の職員", "s-other")
    result = cli("store", "migrate")
    assert result.exit_code == 1 and "left: hwbot:staff:names" in result.output, result.output
    assert old.hget("hwbot:staff:names", "職員") == "s-abcdef"  # kept for a person to look at


def test_a_changed_shard_count_moves_the_conversations_to_their_new_shard(redis_client, cli, monkeypatch):
    users = [f"U{n:032x}" for n in range(12)]
    four = ConversationStore(redis_client, ttl_seconds=600, shards=4)
    for user in users:
        four.save(user, {"state": "idle", "who": user}, 0)
    eight = ConversationStore(redis_client, ttl_seconds=600, shards=8)
    moving = [user for user in users if shard_of(user, 4) != shard_of(user, 8)]
    assert moving and all(eight.load(user) == (None, 0) for user in moving)  # lost without the migration
    monkeypatch.setenv("HWBOT_OUTBOX_SHARDS", "8")
    result = cli("store", "migrate")
    assert result.exit_code == 0, result.output
    assert f"conversations (shard count changed): {len(moving)} moved" in result.output
    assert all(eight.load(user) == ({"state": "idle", "who": user}, 1) for user in users)
    assert Outbox(redis_client, shards=8).read_shards() == range(8)


def test_gunicorns_master_stops_with_one_line_naming_the_command(old, cli):
    """Before forking its workers (REDIS_URL set, as the cli fixture does): status 4, the reason logged."""
    from bot import gunicorn_conf

    class Server:
        pidfile = None
        APP_LOAD_ERROR = 4

        class log:
            lines: list[str] = []

            @classmethod
            def error(cls, message: str, *args: object) -> None:
                cls.lines.append(message % args)

    with pytest.raises(SystemExit) as stopped:
        gunicorn_conf.on_starting(Server())
    assert stopped.value.code == 4
    [line] = Server.log.lines
    assert line.startswith("hwbot cannot start:") and "hwbot store migrate" in line

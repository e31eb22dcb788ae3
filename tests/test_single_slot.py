"""Every atomic step of the turn, the outbox, handoff threads and staff accounts touches keys of one Redis
Cluster slot, checked on the test Redis by `bot.testing.slots` (a cluster would answer CROSSSLOT); the
real proof is the cluster tests, which run them on a Redis Cluster."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import ThreadRetention
from bot.staff.worker import Worker
from bot.testing.slots import CrossSlot, single_slot
from bot.web import create_app

SECRET = "secret"
USER = "U" + "9" * 32
GROUP = "C" + "a" * 32


def test_the_check_fails_a_step_across_slots_and_lets_plain_pipelines_through(redis_client):
    with single_slot(redis_client) as steps:
        pipe = redis_client.pipeline(transaction=True)
        pipe.set("hwbot:{a}:x", 1)
        pipe.set("hwbot:{b}:x", 1)
        with pytest.raises(CrossSlot):
            pipe.execute()
        with pytest.raises(CrossSlot):
            redis_client.eval("return 1", 2, "hwbot:{a}:x", "hwbot:{b}:x")
        assert redis_client.eval("return 1", 2, "hwbot:{a}:x", "hwbot:{a}:y") == 1
        pipe = redis_client.pipeline(transaction=False)  # not atomic: a cluster client splits it by node
        pipe.set("hwbot:{a}:x", 1)
        pipe.set("hwbot:{b}:x", 1)
        assert pipe.execute() == [True, True]
    assert [len(slots) for _, slots in steps] == [2, 2, 1]


@pytest.fixture
def service(redis_client, offices, clock, line):
    settings = load_settings(line_channel_secret=SECRET, line_channel_access_token="token", line_api_host=line.url,
                             public_url="https://hw.example")
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


def post(app, *events: dict):
    body = webhook_body(*events)
    response = app.post("/callback", data=body.encode(), headers={"X-Line-Signature": sign(body, SECRET)},
                        content_type="application/json")
    assert response.status_code == 200
    return response


def test_turns_handoffs_deliveries_and_staff_steps_are_each_one_slot(service, redis_client, staff_member, line, clock):
    """A user asks for staff, writes again, gets a staff reply and deletes their data; a group adds the
    bot; staff sign in (once wrongly); the worker delivers, retries, gives up; threads are retained."""
    app = create_app(service.settings, service=service).test_client()
    worker = Worker(service, service.settings, consumer="w1")
    with single_slot(redis_client) as steps:
        member = staff_member("高橋 職員")  # create, set-password link, login, session, CSRF
        assert member.login("wrong password").status_code != 302  # counted failure
        for text in ("こんにちは", "ハローワーク能登", "担当者と話したい", "まだですか"):
            post(app, event_json(USER, "text", text))  # load_for_event, save (reply, notices, marker)
        worker.run_once(clock.now())
        thread = service.handoffs.info(USER)["thread"]
        page = member.text(f"/staff/handoffs/{thread}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
        reply = member.client.post(f"/staff/handoffs/{thread}/reply", data={"csrf": csrf, "nonce": nonce, "text": "お待たせしました"})
        assert reply.status_code in (200, 302)
        assert service.handoffs.messages(thread)[-1]["from"] == "staff"
        line.failing["/v2/bot/message/push"] = 500
        worker.run_once(clock.now())  # the staff reply's push fails: retried later (fail script)
        line.failing.clear()
        worker.run_once(clock.now() + timedelta(minutes=5))  # delivered on retry (ack in MULTI)
        service.close_handoff(USER, by=member.account.id)
        post(app, event_json(USER, "unfollow"))  # erase: conversation, notices, marker; then the threads
        post(app, {"type": "join", "mode": "active", "timestamp": 1, "source": {"type": "group", "groupId": GROUP},
                   "webhookEventId": "01HWBOTJOIN000000000000000", "replyToken": uuid.uuid4().hex,
                   "deliveryContext": {"isRedelivery": False}})
        good = {"id": "p", "kind": "push", "to": USER, "messages": json.dumps([{"type": "text", "text": "x"}])}
        bad = {"id": "q", "kind": "push", "to": USER, "messages": "not JSON"}  # a dead letter at once
        service.outbox.add_many([good, bad], user=USER, dedup="slots-test")
        worker.run_once(clock.now() + timedelta(minutes=10))
        service.handoffs.open("U" + "8" * 32, {"office": "noto", "at": clock.now().isoformat()})
        service.close_handoff("U" + "8" * 32, by="x")
        ThreadRetention(service)(clock.now() + timedelta(days=400))
    assert service.outbox.settled() and service.outbox.dead_letters()
    scripts = [slots for name, slots in steps if name == "EVALSHA"]
    multis = [name for name, _ in steps if name.startswith("MULTI")]
    assert len(scripts) > 15 and multis  # the steps ran (and each was one slot: none raised)
    assert all(len(slots) == 1 for _, slots in steps)

"""The bot end to end on a real Redis Cluster (3 masters, 3 replicas: bot/testing/cluster.py).

A job seeker of every office books through the webhook; 200 users race for 10 slots; `hwbot worker`
killed while it delivers still delivers every notice exactly once; a master killed in the middle of a
run of bookings: the webhook answers 503 (never 500) while a slot has no master, LINE's redeliveries
go through once its replica has taken over, and every booking a user was told about is still there,
no slot holding more than its capacity.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time

from bot.clock import parse_instant
from bot.dialog import SlotPicker
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.staff.worker import Worker, start_thread
from bot.channels.line.api import LineMessaging
from bot.channels.line.webhook import event_json
from bot.store import connect, slot_redis_key
from bot.testing.delivery import SendingClient
from bot.testing.driver import ChatDriver, ManualClock, labelled_options, tap_together, to_noto_slots
from bot.testing.scripts import load_script
from bot.testing.slack_standin import SlackStandIn
from bot.testing.webhook import RecordingService, WebhookDriver, answers_at_line, post_event
from bot.web import create_app

SECRET = "cluster-e2e-secret"
TOKEN = "cluster-e2e-token"
NOW = "2026-11-20T10:00:00+09:00"
BOOKED = "ご予約を受け付けました"

def user_id(*parts: object) -> str:
    return "U" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def e2e_settings(url: str, line, **extra):
    return load_settings(redis_url=url, line_channel_secret=SECRET, line_channel_access_token=TOKEN,
                         line_api_host=line.url, **extra)


def test_a_job_seeker_of_every_office_books_through_the_webhook(cluster, line, offices):
    settings = e2e_settings(cluster.url, line)
    client = connect(settings)
    booked = {}
    for office in offices:
        script = load_script(REPO_ROOT / "dialogs" / f"{office}_booking.yaml")
        service = RecordingService(settings, client=client, offices=offices, clock=ManualClock(script.now))
        app = SendingClient(create_app(settings, service=service).test_client(), service, line.url, TOKEN)
        driver = WebhookDriver(service, user=user_id("office", office), client=app, secret=SECRET)
        for step in script.steps:
            name, value = step.action()
            assert name in ("say", "tap"), f"{office}_booking.yaml: {name}"
            getattr(driver, name)(str(value))
        [booking] = service.bookings.for_user(driver.user)
        assert (booking["office"], booking["status"]) == (office, "booked")
        assert booking["slot"] == script.end.bookings[0].slot
        answers = answers_at_line(line, driver.events, driver.user)
        assert len(answers) == len(driver.events) and BOOKED in answers[-1]  # each event answered once, by the worker
        booked[office] = booking
    assert sorted(booked) == sorted(offices)
    client.close()


def _users_at_the_card(service: BotService, count: int, slots: int, first: str) -> tuple[list[str], dict, str, list]:
    """`count` users at Noto's confirmation card, spread over the first `slots` slots (capacity 1):
    (users, user -> slot key, the book button's data, the slot options)."""
    template_user = ChatDriver(service, user=first)
    to_noto_slots(template_user)
    picker = next(reply for reply in template_user.exchanges[-1].replies if isinstance(reply, SlotPicker))
    contested = [option for day in picker.days for option in day.options][:slots]
    template_user.tap(f"{picker.days[0].label} {contested[0].label}")
    template_user.tap("同意する")
    template, _ = service.conversations.load(first)
    book = next(option.data for reply in template_user.exchanges[-1].replies
                for label, option in labelled_options(reply) if label == "この内容で予約する")
    service.conversations.delete(first)
    users = [user_id(first, index) for index in range(count)]
    slot_of = {}
    for index, user in enumerate(users):
        data = json.loads(json.dumps(template))
        data["user"] = user
        data["answers"]["slot"] = slot_of[user] = contested[index % slots].data.split("|")[2]
        service.conversations.save(user, data, 0)
    return users, slot_of, book, contested


def test_200_users_racing_for_10_slots_book_exactly_10(cluster, offices):
    client = connect(load_settings(redis_url=cluster.url))
    service = BotService(load_settings(redis_url=cluster.url), client=client, offices=offices,
                         clock=ManualClock(parse_instant(NOW)))
    users, slot_of, book, contested = _users_at_the_card(service, 200, 10, user_id("race"))
    outcomes = tap_together(service, users, book, timeout=120)  # 20 threads, released together
    assert len(outcomes) == len(users)
    winners = {user for user in users if service.bookings.for_user(user)}
    assert len(winners) == 10
    assert sorted(slot_of[user] for user in winners) == sorted(option.data.split("|")[2] for option in contested)
    for option in contested:
        slot = option.data.split("|")[2]
        assert service.bookings.booked_counts("noto", [slot]) == {slot: 1}
    for user in set(users) - winners:
        assert outcomes[user].conversation.state == "choosing_slot"  # told the slot is gone, offered others
    client.close()


def test_the_worker_killed_mid_delivery_delivers_every_notice_once(cluster, tmp_path):
    from test_worker import CRASH_NOTICES, STALLED, crash_and_restart

    client = connect(load_settings(redis_url=cluster.url))
    with SlackStandIn() as slack:
        stall = slack.stall_request(STALLED)
        env = {"REDIS_URL": cluster.url, "SLACK_WEBHOOK_URL": slack.url, "LINE_CHANNEL_SECRET": "s",
               "LINE_CHANNEL_ACCESS_TOKEN": "t", "LINE_API_HOST": "http://127.0.0.1:9", "HWBOT_NOW": ""}
        crash_and_restart(env, stall, client, lambda: len(slack.messages) >= CRASH_NOTICES, tmp_path / "worker.log")
        numbers = sorted(block["fields"][-1]["text"].split("\n")[1]
                         for message in slack.messages for block in message["blocks"][1:2])
    assert numbers == [f"N{n:02d}" for n in range(1, CRASH_NOTICES + 1)]  # each once, none lost
    assert len(slack.requests) == CRASH_NOTICES + 1  # the request dropped by the kill, then its redelivery
    client.close()


def test_a_master_killed_during_bookings_answers_503_then_carries_on_and_loses_no_told_booking(cluster, line, offices):
    """40 users book 20 slots of capacity 1 through the webhook (a worker sends the answers to LINE),
    with a replica's acknowledgement required for each booking step; the master holding Noto's bookings
    is killed after the first few. While its slots have no master the webhook answers 503 (LINE
    redelivers), once its replica took over (and the killed node came back as a replica) the rest
    book; every user told "booked" has the booking, each slot holds one."""
    sample_slot = "2026-11-25T10:00"
    victim = cluster.node_of_key(slot_redis_key("noto", sample_slot))
    [replica] = cluster.replicas_of(victim)
    settings = e2e_settings(cluster.url_of(victim), line, redis_min_replicas=1, redis_replica_timeout_ms=500)
    service = BotService(settings, offices=offices, clock=ManualClock(parse_instant(NOW)))
    users, slot_of, book, contested = _users_at_the_card(service, 40, 20, user_id("failover"))
    app = create_app(settings, service=service)
    worker_client = connect(settings, socket_timeout=5.0)
    worker = Worker(BotService(settings, client=worker_client, offices=offices, clock=service.clock), settings,
                    consumer="failover", line=LineMessaging(line.url, TOKEN))
    sender, stop = start_thread(worker)

    statuses: dict[str, list[int]] = {}
    events: dict[str, dict] = {}
    done = threading.Semaphore(0)

    def book_all(lane: list[str]) -> None:
        client = app.test_client()
        for user in lane:
            event = events[user] = event_json(user, "postback", book)
            statuses[user] = post_event(client, event, SECRET, redeliver_until=time.monotonic() + 45)
            done.release()

    lanes = [users[lane::4] for lane in range(4)]
    threads = [threading.Thread(target=book_all, args=(lane,)) for lane in lanes]
    for thread in threads:
        thread.start()
    for _ in range(6):  # the first bookings went through on every path
        assert done.acquire(timeout=30)
    cluster.kill(victim)
    cluster.wait_failover(victim, replica)
    cluster.revive(victim)  # back as the new master's replica: booking steps are acknowledged again
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == len(users)
    deadline = time.monotonic() + 30
    while not service.outbox.settled() and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker sends the last answers
    stop.set()
    sender.join(10)

    seen = {status for answers in statuses.values() for status in answers}
    assert seen <= {200, 503}, seen  # never a 500
    assert 503 in seen  # the kill was felt: some events came back while a slot had no master
    assert all(answers[-1] == 200 for answers in statuses.values())  # every redelivery went through in the end
    told = {user for user in users if any(BOOKED in text for text in answers_at_line(line, [events[user]], user))}
    booked = {user for user in users if service.bookings.for_user(user)}
    assert told and told <= booked  # every booking a user was told about is there
    for option in contested:
        slot = option.data.split("|")[2]
        assert service.bookings.booked_counts("noto", [slot]) == {slot: 1}  # one each: capacity kept
    assert len(booked) == len(contested)
    after = ChatDriver(service, user=user_id("after"))  # and the bot carries on: a new user books
    to_noto_slots(after)
    picker = next(reply for reply in after.exchanges[-1].replies if isinstance(reply, SlotPicker))
    after.tap(f"{picker.days[0].label} {picker.days[0].options[0].label}")
    after.tap("同意する")
    after.tap("この内容で予約する")
    assert [booking["status"] for booking in after.bookings()] == ["booked"]
    service.client.close()
    worker_client.close()


def test_hwbot_bench_runs_against_the_cluster(cluster):
    """`hwbot bench --redis-url` on the cluster, a short run: every user books, every figure is there,
    the Procfile's web and worker ran on it, and what the bench wrote is gone afterwards."""
    from click.testing import CliRunner

    from bot.cli import main
    from bot.store.nodes import key_count

    result = CliRunner().invoke(main, [
        "bench", "--users", "20", "--rate", "100", "--seconds", "1", "--line-latency-ms", "50", "--in-flight", "4",
        "--latency-seconds", "1.5", "--redis-url", cluster.url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["bookings"] == 20
    assert report["app_closed"]["errors"] == 0 and report["app_closed"]["users_done"] == 20
    assert report["round_trips_per_event"] > 0 and report["bytes_per_conversation"] > 0
    for run in (report["shaped_latency"], report["shaped_no_latency"]):
        assert run["events"] > 0 and run["answered"] == run["events"] and run["errors"] == 0
        assert {name: process["exit"] for name, process in run["processes"].items()} == {"web": 0, "worker": 0}
    client = connect(load_settings(redis_url=cluster.url))
    assert key_count(client) == 0  # the bench deleted what it wrote
    client.close()


def test_the_app_the_worker_the_chat_and_the_scripted_dialogs_run_on_the_cluster(cluster, offices):
    """Every entry point connects through REDIS_URL naming any node (here a replica): `hwbot chat`,
    `hwbot worker --once`, `hwbot dialogs run --redis-url`, and the web app (GET /healthz)."""
    from click.testing import CliRunner

    from bot.cli import main
    from bot.store.nodes import flush, key_count

    replica = next(node for node in cluster.live() if cluster.role(node) == "slave")
    url = cluster.url_of(replica)
    env = {"REDIS_URL": url, "HWBOT_NOW": "", "LINE_CHANNEL_SECRET": "", "LINE_CHANNEL_ACCESS_TOKEN": ""}
    chat = CliRunner(env=env).invoke(main, ["chat", "--office", "noto", "--now", NOW, "--user", "U-cluster-cli"],
                                     input="山田 花子\n")
    assert chat.exit_code == 0, chat.output
    assert "求職番号を入力してください" in chat.output  # the name was saved: the next question
    client = connect(load_settings(redis_url=url))
    service = BotService(load_settings(redis_url=url), client=client, offices=offices)
    data, _ = service.conversations.load("U-cluster-cli")
    assert data and data["office"] == "noto"
    assert service.outbox.add({"id": "cli-notice", "kind": "booking", "office": "noto", "summary": "s",
                               "fields": {}, "at": NOW})
    worker = CliRunner(env={**env, "SLACK_WEBHOOK_URL": ""}).invoke(main, ["worker", "--once", "--consumer", "cli"])
    assert worker.exit_code == 0, worker.output
    assert json.loads(worker.output.strip().splitlines()[-1])["nowhere"] == 1  # read from its shard, no channel

    app = create_app(load_settings(redis_url=url), service=service).test_client()
    assert app.get("/healthz").get_json() == {"ok": True, "offices": list(offices), "simulator": True,
                                              "redis": "cluster", "masters": 3}

    scripts = [str(REPO_ROOT / "dialogs" / f"{office}_booking.yaml") for office in ("noto", "sakata")]
    refused = CliRunner(env=env).invoke(main, ["dialogs", "run", *scripts, "-q", "--redis-url", url])
    assert refused.exit_code == 1 and "the database holds" in refused.output  # never on data it would empty
    flush(client)
    dialogs = CliRunner(env=env).invoke(main, ["dialogs", "run", *scripts, "-q", "--redis-url", url])
    assert dialogs.exit_code == 0, dialogs.output
    assert "2 passed, 0 failed" in dialogs.output
    assert key_count(client) == 0  # emptied after the last script
    client.close()

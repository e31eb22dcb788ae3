"""Every Lua script and MULTI/EXEC of bot/store runs on a real Redis Cluster, and none is refused.

The steps are found in the store's source (bot/testing/atomic.py: every `register_script`, every
transactional `pipeline`, every `watch`), not listed by hand; the bot then runs on the cluster of
bot/testing/cluster.py: every scripted dialog of dialogs/ (bookings at every office, cancellations,
moves, requests confirmed, declined and proposed, handoffs, erasure, re-consent...), the staff
console and API (accounts, sign-in with a second factor and a recovery code, sessions, tokens, failed
logins, booking actions, threads), the worker delivering, retrying and giving up, the scheduled
tasks, the simulator's inbox. Every step found must have run at least once, and no step may have been
refused with CROSSSLOT (keys of two hash slots in one atomic step).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.channels.line.api import LineMessaging
from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.staff.aftercare import scheduled_tasks
from bot.staff.identity import Identity
from bot.staff.threads import ThreadActions
from bot.staff.worker import Worker
from bot.store import connect
from bot.store.nodes import flush
from bot.store.sim_inbox import SimInbox
from bot.testing.atomic import StepRecorder, atomic_sites
from bot.testing.driver import ChatDriver, ManualClock, book_at_noto
from bot.testing.scripts import run_script, script_paths
from bot.testing.slack_standin import SlackStandIn
from bot.testing.staff import CHEAP_HASHER, StaffMember, make_account
from bot.web import create_app

SECRET = "cluster-steps-secret"
TOKEN = "cluster-steps-token"
SCRIPTS = script_paths([REPO_ROOT / "dialogs"])
# Steps that never run on a cluster, and why.
SINGLE_SERVER_ONLY = {
    # Moving keys of the layout before issue 13: only a single server can hold them (a cluster refused
    # their cross-slot steps), so these scripts run only there (tests/test_migrate.py).
    "bot/store/migrate.py": "moves keys of the old layout, which only a single server can hold",
}

def test_the_source_scan_finds_the_store_s_steps():
    sites = atomic_sites()
    files = {site.file for site in sites}
    kinds = {site.kind for site in sites}
    assert {"bot/store/conversations.py", "bot/store/bookings.py", "bot/store/outbox.py"} <= files
    assert kinds >= {"script", "multi"} and len(sites) >= 20


def test_every_pipeline_of_the_store_says_whether_it_is_a_transaction():
    """On a single server `pipeline()` is a MULTI/EXEC; on a cluster redis-py's default is no
    transaction (its own multi-key helpers rely on that), so a step written as `pipeline()` would be
    atomic on one and quietly not on the other. The store says which it means, every time."""
    import ast

    bare = []
    for path in sorted((REPO_ROOT / "bot" / "store").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "pipeline"
                    and not node.args and not any(keyword.arg == "transaction" for keyword in node.keywords)):
                bare.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert bare == [], "pipeline() without transaction=True or False: " + ", ".join(bare)


def test_the_recorder_sees_steps_run_and_refused(cluster):
    client = connect(load_settings(redis_url=cluster.url))
    recorder = StepRecorder(client)
    assert recorder.missing(atomic_sites()) == sorted(atomic_sites())  # nothing ran yet
    two_slots = client.register_script("return redis.call('SET', KEYS[1], '1') and redis.call('SET', KEYS[2], '1')")
    with pytest.raises(Exception):
        two_slots(keys=["hwbot:{a}:x", "hwbot:{b}:x"])
    pipe = client.pipeline(transaction=True)
    pipe.set("hwbot:{a}:y", "1")
    pipe.set("hwbot:{b}:y", "1")
    with pytest.raises(Exception):
        pipe.execute()
    assert len(recorder.refused) == 2 and all("outside bot/store" in refusal for refusal in recorder.refused)
    client.close()


def test_every_atomic_step_of_the_store_runs_on_a_cluster(cluster, offices, line):
    client = connect(load_settings(redis_url=cluster.url))
    recorder = StepRecorder(client)  # before any store is built on the client: it sees each registration
    with SlackStandIn() as slack:
        settings = load_settings(redis_url=cluster.url, line_channel_secret=SECRET, line_channel_access_token=TOKEN,
                                 line_api_host=line.url, slack_webhook_url=slack.url)
        failed = _every_dialog(client, settings, offices)
        flush(client)
        service = BotService(settings, client=client, offices=offices,
                             clock=ManualClock(parse_instant("2026-11-20T10:00:00+09:00")))
        _console_and_api(service, line)
        _worker_delivers_retries_and_gives_up(service, line, slack)
        cut_off = _a_booking_cut_off_between_its_steps(service)
        _scheduled_tasks(service, cut_off)
        _simulator_inbox(client)
    client.close()

    assert recorder.refused == [], "CROSSSLOT:\n" + "\n".join(recorder.refused)
    assert failed == [], "scripted dialogs failed on the cluster:\n" + "\n".join(failed)
    missing = [site for site in recorder.missing(atomic_sites()) if site.file not in SINGLE_SERVER_ONLY]
    assert missing == [], "atomic steps no part of this test ran:\n" + "\n".join(map(str, missing))


def _every_dialog(client, settings, offices) -> list[str]:
    """Each script of dialogs/ on the emptied cluster; the failures (none expected)."""
    failed = []
    for path in SCRIPTS:
        def make(clock):
            flush(client)
            return BotService(settings, client=client, offices=offices, clock=clock)

        result = run_script(path, make)
        if not result.passed:
            failed.append(f"{path.name}: {'; '.join(result.failures)}")
    return failed


def _console_and_api(service: BotService, line) -> None:
    """Staff accounts and the console: sign-in with TOTP, a recovery code, a failed login, sessions,
    tokens, booking actions in the console and the API, a thread answered and closed."""
    identity = Identity(service, hasher=CHEAP_HASHER)
    app = create_app(service.settings, service=service)
    admin_account, password, secret = make_account(identity, "管理者", (), admin=True, totp=True)
    admin = StaffMember(app, identity, admin_account, password, secret)
    assert admin.login().status_code == 302  # password, then the TOTP code
    other = StaffMember(app, identity, admin_account, password, secret)
    assert other.login("wrong password").status_code == 401  # a failure counted (backoff)
    codes = identity.enrol_totp(admin_account, secret, admin.code()) or []
    recovery = codes[0] if codes else None
    if recovery:
        assert identity.verify_second_factor(admin_account, recovery) == "recovery"

    driver = ChatDriver(service, user="U" + "5" * 32)
    booking = book_at_noto(driver, "11月25日(水) 10:00〜10:30")
    ref = service.bookings.store.ref(booking)
    assert admin.get("/staff/booking?ref=" + ref).status_code == 200
    admin.act("confirm", ref)
    token_id, token = identity.issue_token(admin_account.id)
    answer = admin.client.post(f"/staff/api/bookings/{ref}/attended", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (200, 409)
    identity.revoke_token(admin_account.id, token_id)

    helped = ChatDriver(service, user="U" + "6" * 32)
    helped.say("こんにちは")
    helped.say("担当者と話したい")
    threads = ThreadActions(service)
    thread = (service.handoffs.info(helped.user) or {}).get("thread")
    if thread:
        threads.reply(thread, "担当者です。ご用件をどうぞ。", "nonce-1", by=admin_account.id)
        threads.close(thread, by=admin_account.id)

    session_id = identity.start_session(admin_account, "ok", client="192.0.2.1", agent="test")
    session = identity.session(session_id)
    assert session is not None
    identity.update_session(session, office="noto")
    identity.end_session(session)
    identity.end_all_sessions(admin_account)
    identity.reset(admin_account.id)
    identity.disable(admin_account.id)


def _worker_delivers_retries_and_gives_up(service: BotService, line, slack) -> None:
    """The worker sends what is queued; a Slack failure is retried and then sent; another is given up
    (dead letter)."""
    settings = service.settings.model_copy(update={"worker_max_attempts": 2})
    worker = Worker(service, settings, consumer="steps", line=LineMessaging(line.url, TOKEN))
    now = service.clock.now()

    def notice(entry_id: str) -> dict:
        return {"id": entry_id, "kind": "booking", "office": "noto", "summary": "s", "fields": {}, "at": now.isoformat()}

    try:
        worker.run_once(now)  # what the console tour queued
        slack.fail_next(1)
        service.outbox.add(notice("steps-retried"))
        assert worker.run_once(now)["failed"] == 1  # retry scheduled
        assert worker.run_once(now + timedelta(minutes=1))["delivered"] == 1  # the retry's acknowledgement
        slack.fail_next(10)
        service.outbox.add(notice("steps-given-up"))
        worker.run_once(now + timedelta(minutes=2))
        assert worker.run_once(now + timedelta(minutes=20))["dead"] == 1
    finally:
        worker.lanes.shutdown()


class Crash(Exception):
    """The process dies here."""


def _a_booking_cut_off_between_its_steps(service: BotService) -> str:
    """A booking whose process dies after its first step (the office's slot): the recovery task of
    the worker completes it later (`_scheduled_tasks`)."""
    store = service.bookings.store

    def crash(step: str) -> None:
        if step == "office":
            raise Crash(step)

    store.step_hook = crash
    driver = ChatDriver(service, user="U" + "7" * 32)
    with pytest.raises(Crash):
        book_at_noto(driver, "11月26日(木) 10:00〜10:30")
    store.step_hook = None
    assert driver.bookings() == []  # the user index is a later step
    return driver.user


def _scheduled_tasks(service: BotService, cut_off: str) -> None:
    """Every task the worker runs: a minute later (the recovery completes the booking cut off), then a
    year later (reminders and lapses long due, retention, trims)."""
    tasks = scheduled_tasks(service)
    for task in tasks:
        task(service.clock.now() + timedelta(minutes=1))
    assert [booking["slot"] for booking in service.bookings.for_user(cut_off)] == ["2026-11-26T10:00"]
    for task in tasks:
        task(service.clock.now() + timedelta(days=400))


def _simulator_inbox(client) -> None:
    """The simulator's stand-in LINE keeps a test user's inbox and reply tokens."""
    inbox = SimInbox(client)
    inbox.add("U-sim", {"type": "text", "text": "こんにちは"})
    inbox.since("U-sim")
    inbox.issue_reply_token("token-1", "U-sim")
    assert inbox.use_reply_token("token-1") == "U-sim"

"""Live handoff threads: what a waiting user writes reaches staff, staff answer in the chat, close,
erase, retention, the "wrote again" notice, LINE Official Account Manager mode and the push count.

Real Redis, the real console and API (Flask's test client), the real worker pushing to a stand-in LINE.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest

from bot.channels.line.api import LineMessaging
from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.dialog import Inbound
from bot.service import BotService
from bot.settings import load_settings
from bot.simulator import SIMULATOR_TOKEN, USERS as SIM_USERS
from bot.staff.aftercare import ThreadRetention
from bot.staff.identity import Identity
from bot.staff.notify import compose, plain_text
from bot.staff.threads import ThreadActions
from bot.staff.worker import Worker
from bot.store.handoffs import messages_key, thread_key, user_threads_key, valid_thread_id
from bot.testing.driver import ChatDriver, ManualClock
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.simulator import LiveServer, SimPhone, http
from bot.web import create_app
from bot.testing.delivery import SendingClient

NOW = "2026-11-20T10:00:00+09:00"  # a Friday, Noto open until 17:15
USER = "U" + "7" * 32
PUSH = "/v2/bot/message/push"
QUESTION = "オンライン相談の前に履歴書を送る必要はありますか？"
ANSWER_1 = "ご質問ありがとうございます。履歴書は当日画面でお見せいただければ大丈夫です。"
ANSWER_2 = "ほかにご不明な点はありますか。"


@pytest.fixture
def service(redis_client, offices, clock, line):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token",
                             line_api_host=line.url, public_url="https://hw.example")
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def worker(service):
    return Worker(service, service.settings, consumer="w1")


@pytest.fixture
def app(service):
    return create_app(service.settings, service=service)


@pytest.fixture
def member(staff_member):
    """A member of staff of every office, signed in."""
    return staff_member("高橋 職員")


@pytest.fixture
def staff(member):
    """The member's browser."""
    return member.client


@pytest.fixture
def bearer(member):
    """The member's API token (Authorization header)."""
    return member.bearer


def waiting_user(service: BotService, user: str = USER) -> ChatDriver:
    """A user at Noto who asked for staff from the menu."""
    driver = ChatDriver(service, user=user)
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    driver.say("担当者と話したい")
    assert "担当者にお伝えしました" in driver.last_text()
    return driver


def thread_of(service: BotService, user: str = USER) -> str:
    return service.handoffs.info(user)["thread"]


def csrf_of(staff, url: str) -> tuple[str, str]:
    page = staff.get(url).get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1), nonce.group(1) if nonce else ""


def reply_in_console(staff, thread: str, text: str, nonce: str | None = None):
    csrf, fresh = csrf_of(staff, f"/staff/handoffs/{thread}")
    return staff.post(f"/staff/handoffs/{thread}/reply", data={"csrf": csrf, "nonce": nonce or fresh, "text": text},
                      follow_redirects=True)


def post_form(staff, thread: str, action: str, **fields: str):
    csrf, _ = csrf_of(staff, f"/staff/handoffs/{thread}")
    return staff.post(f"/staff/handoffs/{thread}/{action}", data={"csrf": csrf, **fields}, follow_redirects=True)


def outbox(service: BotService, kind: str) -> list[dict]:
    return [fields for _, fields in reversed(service.outbox.entries()) if fields.get("kind") == kind]


def pushed_texts(line) -> list[str]:
    return [message["text"] for request in line.sent(PUSH) for message in request.body["messages"]]


def test_a_thread_of_several_messages_each_way_closed_by_staff(service, staff, member, worker, line, clock,
                                                              messaging_spec):
    driver = waiting_user(service)
    thread = thread_of(service)
    assert thread != USER and USER not in thread and valid_thread_id(thread)  # `<shard>-<16 hex>`
    driver.say(QUESTION)
    assert "メッセージを担当者にお伝えしました。本日17:15までに" in driver.last_text()
    clock.advance(timedelta(minutes=1))
    driver.sticker()
    page = staff.get(f"/staff/handoffs/{thread}").get_data(as_text=True)
    assert QUESTION in page and "（スタンプ）" in page and USER not in page

    assert "返信を送りました" in reply_in_console(staff, thread, ANSWER_1).get_data(as_text=True)
    clock.advance(timedelta(minutes=1))
    driver.say("わかりました。当日はどのツールを使いますか？")
    clock.advance(timedelta(minutes=1))
    reply_in_console(staff, thread, ANSWER_2)
    driver.say("ありません。ありがとうございました。")

    messages = service.handoffs.messages(thread)
    assert [(m["from"], m["text"]) for m in messages] == [
        ("user", QUESTION), ("user", "（スタンプ）"), ("staff", ANSWER_1),
        ("user", "わかりました。当日はどのツールを使いますか？"), ("staff", ANSWER_2),
        ("user", "ありません。ありがとうございました。"),
    ]
    assert [m["at"] for m in messages] == sorted(m["at"] for m in messages)

    # Each reply is one push, shown as from the office's staff, valid against LINE's spec.
    assert worker.run_once(clock.now())["delivered"] >= 2
    requests = line.sent(PUSH)
    staff_pushes = [r for r in requests if r.body["to"] == USER]
    assert len(staff_pushes) == 2
    for request in staff_pushes:
        assert validate_request(messaging_spec, "PushMessageRequest", request.body) == []
        assert check_limits(request.body["messages"]) == []
    assert pushed_texts(line)[:2] == [f"【ハローワーク能登 担当者より】\n{ANSWER_1}", f"【ハローワーク能登 担当者より】\n{ANSWER_2}"]
    quick = staff_pushes[0].body["messages"][-1]["quickReply"]["items"]
    assert [item["action"]["label"] for item in quick] == ["自動応答に戻る"]

    closed = post_form(staff, thread, "close").get_data(as_text=True)
    assert "会話を終了し、自動応答に戻しました" in closed
    assert service.handoffs.waiting() == {}
    meta = service.handoffs.meta(thread)
    assert meta["closed_by"] == member.account.id and meta["closed_at"]
    worker.run_once(clock.now())
    assert "担当者の対応が終わりました" in pushed_texts(line)[-1]
    # The bot is back: what the user types now is a conversation with the bot, not kept for staff.
    driver.say("予約する")
    assert "メッセージを担当者にお伝えしました" not in driver.last_text()
    assert len(service.handoffs.messages(thread)) == 6
    assert "終了" in staff.get(f"/staff/handoffs/{thread}").get_data(as_text=True)
    # A closed thread takes no more replies.
    assert "すでに終了" in reply_in_console(staff, thread, "追伸").get_data(as_text=True)


@pytest.mark.parametrize("ask", ["担当者と話したい", "stuck"])
def test_a_user_who_has_not_chosen_an_office_yet_reaches_staff_without_an_office(ask, service, staff, worker, line, clock):
    """Multi-office: the handoff at the office choice has no office; the console says 窓口未選択 and the
    reply comes from 「ハローワーク 担当者」."""
    driver = ChatDriver(service, user=USER)
    driver.say("こんにちは")
    for text in ([ask] if ask != "stuck" else ["ふじさん"] * 3):
        driver.say(text)
    assert "担当者にお伝えしました" in driver.last_text()
    info = service.handoffs.info(USER)
    assert info["office"] == "" and info["reason"] == ("stuck" if ask == "stuck" else "user_request")
    thread = info["thread"]
    driver.say(QUESTION)
    listing = staff.get("/staff/handoffs").get_data(as_text=True)
    assert "<td>窓口未選択</td>" in listing and f"/staff/handoffs/{thread}" in listing
    page = staff.get(f"/staff/handoffs/{thread}").get_data(as_text=True)
    assert "利用者との会話（窓口未選択）" in page and "【ハローワーク 担当者より】" in page and QUESTION in page
    reply_in_console(staff, thread, ANSWER_1)
    assert ThreadActions(service).open_threads()[0]["office"] == ""
    assert worker.run_once(clock.now())["delivered"] >= 1
    assert [r.body["messages"][0]["text"] for r in line.sent(PUSH) if r.body["to"] == USER] == [
        f"【ハローワーク 担当者より】\n{ANSWER_1}"]
    assert worker.outbox.dead_letters() == []


def test_a_thread_closed_by_the_user(service, app, clock, bearer):
    driver = waiting_user(service)
    thread = thread_of(service)
    driver.say(QUESTION)
    api = app.test_client()
    answer = api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": ANSWER_1}, headers=bearer)
    assert answer.status_code == 200
    driver.say("自分で予約してみます。")
    driver.tap("自動応答に戻る")
    assert "自動応答に戻りました" in driver.last_text()
    assert [n.kind for n in driver.exchanges[-1].outcome.notices] == ["handoff_closed"]
    assert service.handoffs.meta(thread)["closed_by"] == "user"
    assert api.get("/staff/api/handoffs", headers=bearer).get_json() == {"handoffs": []}
    late = api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": "追伸"}, headers=bearer)
    assert late.status_code == 409 and late.get_json() == {"error": "handoff: the thread is closed"}
    assert [m["from"] for m in service.handoffs.messages(thread)] == ["user", "staff", "user"]


def test_a_reply_is_pushed_exactly_once_whatever_is_repeated(service, staff, app, worker, line, clock, bearer):
    waiting_user(service)
    thread = thread_of(service)
    csrf, nonce = csrf_of(staff, f"/staff/handoffs/{thread}")
    for _ in range(2):  # a double click: the same form twice
        done = staff.post(f"/staff/handoffs/{thread}/reply", data={"csrf": csrf, "nonce": nonce, "text": ANSWER_1},
                          follow_redirects=True).get_data(as_text=True)
    assert "この返信は送信済みです" in done
    api = app.test_client()
    for _ in range(2):  # an API call repeated with its idempotency key
        response = api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": ANSWER_2},
                            headers={**bearer, "Idempotency-Key": "call-1"})
        assert response.status_code == 200
    assert [m["text"] for m in service.handoffs.messages(thread)] == [ANSWER_1, ANSWER_2]
    assert len(outbox(service, "push")) == 2
    worker.run_once(clock.now())
    worker.run_once(clock.now())
    assert pushed_texts(line) == [f"【ハローワーク能登 担当者より】\n{ANSWER_1}", f"【ハローワーク能登 担当者より】\n{ANSWER_2}"]


def test_the_api_lists_open_threads_and_answers_with_the_right_codes(service, app, bearer):
    driver = waiting_user(service)
    driver.say(QUESTION)
    thread = thread_of(service)
    api = app.test_client()
    assert api.get("/staff/api/handoffs").status_code == 401
    listed = api.get("/staff/api/handoffs?office=noto", headers=bearer).get_json()
    assert listed == {"handoffs": [{
        "id": thread, "office": "noto", "since": "2026-11-20T10:00:00+09:00", "reason": "user_request",
        "mode": "console", "closed": False,
        "messages": [{"from": "user", "text": QUESTION, "at": "2026-11-20T10:00:00+09:00"}],
    }]}
    assert USER not in json.dumps(listed)
    assert api.get("/staff/api/handoffs?office=izumo", headers=bearer).get_json() == {"handoffs": []}
    assert api.get("/staff/api/handoffs?office=nowhere", headers=bearer).status_code == 404
    assert api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": "  "}, headers=bearer).status_code == 400
    assert api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": "あ" * 2001}, headers=bearer).status_code == 400
    assert api.post("/staff/api/handoffs/0123456789abcdef/reply", json={"text": "x"}, headers=bearer).status_code == 404
    assert api.post(f"/staff/api/handoffs/{USER}/close", headers=bearer).status_code == 404
    closed = api.post(f"/staff/api/handoffs/{thread}/close", headers=bearer)
    assert closed.status_code == 200 and closed.get_json()["handoff"]["closed"] is True
    assert api.post(f"/staff/api/handoffs/{thread}/close", headers=bearer).status_code == 409
    assert service.handoffs.waiting() == {}
    data, _ = service.conversations.load(USER)
    assert data["paused"] is None


def test_staff_are_told_a_user_wrote_again_without_the_text_and_not_too_often(service, clock, staff):
    driver = waiting_user(service)
    thread = thread_of(service)
    [handoff] = outbox(service, "handoff")
    link = compose({**handoff, "fields": json.loads(handoff["fields"])}, service.offices["noto"], "https://hw.example").link
    assert link == f"https://hw.example/staff/handoffs/{thread}"
    driver.say(QUESTION)  # right after the handoff notice: nothing more
    assert outbox(service, "handoff_message") == []
    clock.advance(timedelta(minutes=11))
    driver.say("まだでしょうか")
    clock.advance(timedelta(minutes=1))
    driver.say("お待ちしています")
    [notice] = outbox(service, "handoff_message")
    assert QUESTION not in json.dumps(notice, ensure_ascii=False) and "まだでしょうか" not in json.dumps(notice, ensure_ascii=False)
    fields = json.loads(notice["fields"])
    assert fields == {"thread": thread, "since": "2026-11-20T10:00:00+09:00", "reason": "user_request"}
    message = compose({**notice, "fields": fields}, service.offices["noto"], "https://hw.example")
    text = plain_text(message)
    assert message.title == "対応待ちの利用者から新しいメッセージ"
    assert "11月20日 10:00" in text and f"https://hw.example/staff/handoffs/{thread}" in text
    assert "まだでしょうか" not in text and USER not in text
    # A staff reply makes the next message worth a notice at once.
    reply_in_console(staff, thread, ANSWER_1)
    clock.advance(timedelta(minutes=1))
    driver.say("ありがとうございます")
    assert len(outbox(service, "handoff_message")) == 2


def test_while_staff_answer_in_oa_manager_the_bot_is_silent_until_handed_back(service, staff, clock):
    driver = waiting_user(service)
    thread = thread_of(service)
    shown = post_form(staff, thread, "manager", manager="1").get_data(as_text=True)
    assert "LINE公式アカウントマネージャーで対応中" in shown
    clock.advance(timedelta(minutes=30))
    for text in (QUESTION, "もしもし"):
        assert driver.say(text).replies == []
    assert driver.sticker().replies == []
    assert outbox(service, "handoff_message") == []  # staff read it in OA Manager
    assert [m["text"] for m in service.handoffs.messages(thread)] == [QUESTION, "もしもし", "（スタンプ）"]
    assert "この画面から返信する" in staff.get(f"/staff/handoffs/{thread}").get_data(as_text=True)
    post_form(staff, thread, "manager", manager="0")
    driver.say("戻りましたか")
    assert "メッセージを担当者にお伝えしました" in driver.last_text()  # the console mode answers again
    # In OA Manager mode the user can still hand the chat back themselves.
    post_form(staff, thread, "manager", manager="1")
    driver.say("自動応答に戻る")
    assert "自動応答に戻りました" in driver.last_text()
    assert service.handoffs.waiting() == {}


def test_deleting_the_data_erases_the_thread(service, clock):
    driver = waiting_user(service)
    thread = thread_of(service)
    driver.say(QUESTION)
    driver.say("データを削除")
    driver.tap("削除する")
    assert service.client.exists(thread_key(thread), messages_key(thread), user_threads_key(USER)) == 0
    assert service.handoffs.waiting() == {}


def test_blocking_the_bot_erases_open_and_closed_threads(service, clock, staff):
    driver = waiting_user(service)
    first = thread_of(service)
    driver.say(QUESTION)
    post_form(staff, first, "close")
    driver.say("担当者と話したい")
    second = thread_of(service)
    driver.say("もう一度質問です")
    assert first != second
    driver.unfollow()
    for thread in (first, second):
        assert service.client.exists(thread_key(thread), messages_key(thread)) == 0
        assert staff.get(f"/staff/handoffs/{thread}").status_code == 404
    assert service.client.zcard("hwbot:threads:closed") == 0


def test_closed_threads_go_after_the_retention_days(service, clock, staff):
    driver = waiting_user(service)
    closed = thread_of(service)
    driver.say(QUESTION)
    post_form(staff, closed, "close")
    other = waiting_user(service, user="U" + "8" * 32)
    other.say("まだ対応中の質問")
    still_open = thread_of(service, "U" + "8" * 32)
    task = ThreadRetention(service)
    assert task(clock.now() + timedelta(days=29, hours=23)) == 0
    assert service.handoffs.messages(closed) != []
    assert task(clock.now() + timedelta(days=30)) == 1
    assert service.client.exists(thread_key(closed), messages_key(closed)) == 0
    assert service.client.sismember(user_threads_key(USER), closed) == 0
    assert [m["text"] for m in service.handoffs.messages(still_open)] == ["まだ対応中の質問"]
    assert service.client.ttl(thread_key(still_open)) == -1  # an open thread never expires


def test_a_closed_threads_keys_expire_by_themselves_should_the_task_never_run(service, staff):
    driver = waiting_user(service)
    thread = thread_of(service)
    driver.say(QUESTION)
    post_form(staff, thread, "close")
    days = (30 + 30) * 24 * 3600  # the retention days and a month's margin
    for key in (thread_key(thread), messages_key(thread)):
        assert days - 60 < service.client.ttl(key) <= days


@pytest.mark.parametrize("chosen", [True, False])
def test_a_user_still_waits_after_their_conversation_expired(chosen, service, clock):
    if chosen:
        driver = waiting_user(service)
    else:  # asked for staff at the office choice: no office
        driver = ChatDriver(service, user=USER)
        driver.say("こんにちは")
        driver.say("担当者と話したい")
    thread = thread_of(service)
    clock.advance(timedelta(hours=8))
    service.conversations.delete(USER)  # Redis dropped the idle conversation
    driver.say(QUESTION)
    assert "メッセージを担当者にお伝えしました" in driver.last_text()
    assert [m["text"] for m in service.handoffs.messages(thread)] == [QUESTION]


def test_the_text_is_never_logged(service, staff, app, worker, clock, caplog, bearer):
    caplog.set_level(logging.DEBUG)
    driver = waiting_user(service)
    thread = thread_of(service)
    driver.say(QUESTION)
    reply_in_console(staff, thread, ANSWER_1)
    app.test_client().post(f"/staff/api/handoffs/{thread}/reply", json={"text": ANSWER_2}, headers=bearer)
    worker.run_once(clock.now())
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "staff_thread_reply" in logged
    for secret in (QUESTION, ANSWER_1, ANSWER_2, USER):
        assert secret not in logged


def test_pushes_are_counted_per_month_and_shown_in_the_console(service, staff, worker, clock, redis_client):
    waiting_user(service)
    thread = thread_of(service)
    reply_in_console(staff, thread, ANSWER_1)
    reply_in_console(staff, thread, ANSWER_2)
    worker.run_once(clock.now())
    assert service.pushes.month("2026-11") == {"user": 2, "group": 0}
    assert redis_client.ttl("hwbot:pushes:2026-11") > 0
    page = staff.get("/staff/handoffs").get_data(as_text=True)
    assert "2026-11" in page and "2 通" in page and "2026-10" in page
    assert "会話を開く" in page and f"/staff/handoffs/{thread}" in page
    assert "2件（最新: 担当者 11-20 10:00）" in page


def test_a_thread_through_the_webhook_and_a_stand_in_line_every_request_valid(service, app, worker, line, clock,
                                                                               messaging_spec, bearer):
    """Signed events to POST /callback, replies and pushes to the stand-in LINE API, all valid against the spec."""
    client = SendingClient(app.test_client(), service, line.url)

    def send(kind: str, text: str = "") -> None:
        body = webhook_body(event_json(USER, kind, text))
        answer = client.post("/callback", data=body.encode(), content_type="application/json",
                             headers={"X-Line-Signature": sign(body, "secret")})
        assert answer.status_code == 200

    def replies() -> list:
        return line.sent("/v2/bot/message/reply")

    send("follow")
    send("text", "ハローワーク能登")  # typing a button's label taps it
    send("text", "担当者と話したい")
    send("text", QUESTION)
    send("sticker", "sticker")
    assert "メッセージを担当者にお伝えしました" in json.dumps(replies()[-1].body, ensure_ascii=False)
    thread = thread_of(service)
    assert [m["text"] for m in service.handoffs.messages(thread)] == [QUESTION, "（スタンプ）"]
    api = app.test_client()
    assert api.post(f"/staff/api/handoffs/{thread}/reply", json={"text": ANSWER_1}, headers=bearer).status_code == 200
    worker.run_once(clock.now())
    assert pushed_texts(line)[-1] == f"【ハローワーク能登 担当者より】\n{ANSWER_1}"
    # Staff switch to LINE Official Account Manager: the bot calls LINE for nothing at all.
    ThreadActions(service).set_manager(thread, True)
    before = len(line.requests)
    send("text", "もしもし")
    assert len(line.requests) == before
    send("text", "自動応答に戻る")
    assert "自動応答に戻りました" in json.dumps(replies()[-1].body, ensure_ascii=False)
    worker.run_once(clock.now())

    problems = []
    for request in line.requests:
        if request.method == "GET":  # the user's LINE profile, asked once before the first greeting (no body)
            assert request.path.startswith("/v2/bot/profile/")
            continue
        schema = {"/v2/bot/message/reply": "ReplyMessageRequest", "/v2/bot/message/push": "PushMessageRequest",
                  "/v2/bot/chat/loading/start": "ShowLoadingAnimationRequest"}[request.path]
        problems += [f"{request.path}: {e}" for e in validate_request(messaging_spec, schema, request.body)]
        if "messages" in request.body:
            problems += [f"{request.path}: {e}" for e in check_limits(request.body["messages"])]
    assert problems == []
    assert [m["text"] for m in service.handoffs.messages(thread)] == [QUESTION, "（スタンプ）", ANSWER_1, "もしもし"]


def test_in_the_simulator_a_tester_asks_for_staff_and_reads_the_answer_in_the_phone(redis_client, offices):
    """`make run`'s setup: the phone page's events through the signed webhook, the console's reply pushed
    by the worker to the simulator's own stand-in LINE API, shown in the phone."""
    settings = load_settings(line_channel_secret=None, line_channel_access_token=None,
                             line_api_host="https://api.line.me")
    service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
    with LiveServer(create_app(settings, service=service)) as live:
        phone = SimPhone(live.url, SIM_USERS[0]["id"])
        phone.follow()
        phone.tap("ハローワーク能登")
        phone.say("担当者と話したい")
        phone.say(QUESTION)
        assert "メッセージを担当者にお伝えしました" in phone.last_text()
        thread = service.handoffs.info(SIM_USERS[0]["id"])["thread"]
        _, token = Identity(service).issue_token("simulator")  # the simulator's ready-made admin
        status, _ = http("POST", f"{live.url}/staff/api/handoffs/{thread}/reply", {"text": ANSWER_1},
                         headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        line_api = LineMessaging(f"{live.url}/sim/line", SIMULATOR_TOKEN)
        Worker(service, settings, consumer="sim", line=line_api).run_once(service.clock.now())
        assert f"【ハローワーク能登 担当者より】\n{ANSWER_1}" in phone.last_text()
        assert "自動応答に戻る" in phone.buttons()
        phone.tap("自動応答に戻る")
        assert "自動応答に戻りました" in phone.last_text()


def test_an_ineligible_user_asking_for_help_gets_a_thread_staff_can_tell_apart(service, staff):
    driver = ChatDriver(service, user=USER)
    driver.say("こんにちは")
    driver.tap("ハローワーク能登")
    for text in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678"):
        driver.say(text)
    for label in ("職業相談", "同席しない", "登録済み", "いいえ"):
        driver.tap(label)
    assert "対象外" in driver.last_text()
    driver.tap("担当者と話したい")
    driver.say("家族の介護があるのですが、対象になりませんか？")
    thread = thread_of(service)
    assert service.handoffs.meta(thread)["reason"] == "ineligible"
    page = staff.get(f"/staff/handoffs/{thread}").get_data(as_text=True)
    assert "利用条件に当てはまらず" in page and "家族の介護があるのですが" in page
    assert "山田 花子" in page and "12345-12345678" in page  # what they entered before asking: staff know who it is


def test_a_message_is_kept_once_whatever_is_redelivered_or_retried(service):
    waiting_user(service)
    thread = thread_of(service)
    event = Inbound(user=USER, kind="text", text=QUESTION)
    assert service.handle(event, event_id="01HTHREADEVENT0000000000001") is not None
    assert service.handle(event, event_id="01HTHREADEVENT0000000000001") is None  # LINE's redelivery
    # A turn run again after a failed or conflicting save appends under the same event: nothing new.
    meta = service.handoffs.add_user_message(thread, {"from": "user", "text": QUESTION, "at": NOW},
                                             "01HTHREADEVENT0000000000001:0")
    assert meta["office"] == "noto" and not any(name.startswith(("m:", "r:")) for name in meta)
    assert [m["text"] for m in service.handoffs.messages(thread)] == [QUESTION]
    assert service.handoffs.add_user_message("0123456789abcdef", {"from": "user", "text": "x", "at": NOW}, "k") == {}

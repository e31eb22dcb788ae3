"""The simulator over real HTTP: the page, /sim/send through the signed webhook, the stand-in LINE API, staff pane."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.simulator import SIMULATOR_SECRET, SIMULATOR_TOKEN, USERS
from bot.testing.simulator import LiveServer, SimPhone, actions_of, http, texts_of
from bot.store.sim_inbox import SimInbox
from bot.testing.driver import ManualClock
from bot.web import create_app

NOW = "2026-11-20T10:00"
USER, OTHER = USERS[0]["id"], USERS[1]["id"]
LINE = "/sim/line/v2/bot"
AUTH = {"Authorization": f"Bearer {SIMULATOR_TOKEN}"}


def simulator_settings():
    """Simulator mode whatever the environment says: no LINE channel, the default API host."""
    return load_settings(line_channel_secret=None, line_channel_access_token=None, line_api_host="https://api.line.me")


@pytest.fixture
def service(redis_client, offices):
    return BotService(simulator_settings(), client=redis_client, offices=offices,
                      clock=ManualClock(parse_instant(NOW)))


@pytest.fixture
def server(service):
    with LiveServer(create_app(simulator_settings(), service=service)) as live:
        yield live


@pytest.fixture
def phone(server):
    return SimPhone(server.url, USER)


def book_at_noto(phone: SimPhone) -> None:
    """A whole booking at ハローワーク能登 by tapping what the bot shows, typing only personal fields."""
    phone.follow()
    phone.tap("ハローワーク能登")
    assert "お名前" in phone.last_text()
    for text in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678"):
        phone.say(text)
    for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい"):
        phone.tap(label)
    assert "11月25日(水)" in phone.last_text()
    phone.tap(re.compile(r"^(11月25日\(水\) )?10:00〜10:30$"), within="11月25日(水)")
    assert "利用規約" in phone.last_text()
    phone.tap("同意する")
    assert "ご予約内容の確認" in phone.last_text()
    phone.tap("この内容で予約する")


def test_page_is_a_self_contained_japanese_chat(server):
    status, page = http("GET", server.url + "/")
    assert status == 200
    assert '<html lang="ja">' in page and 'name="viewport"' in page
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page):
        if asset == "data:,":
            continue  # the empty favicon
        if asset == "/staff/handoffs":
            continue  # a link to the staff console (served by the app), opened beside the phone
        assert asset.startswith("/sim/static/"), f"{asset} is not served by the app (no CDN: offline)"
        status, body = http("GET", server.url + asset)
        assert status == 200 and "https://" not in body and "@import" not in body
    for label in ("友だち追加", "ブロック", "スタンプ", "職員への通知"):
        assert label in page


def test_users_are_line_shaped_and_the_bot_clock_is_shown(server):
    status, answer = http("GET", server.url + "/sim/users")
    assert status == 200
    assert len(answer["users"]) >= 3
    assert all(re.fullmatch(r"U[0-9a-f]{32}", user["id"]) and user["name"] for user in answer["users"])
    assert answer["now"].startswith("2026-11-20T10:00")
    assert [area["action"]["displayText"] for area in answer["richmenu"]["areas"]][0] == "予約する"
    status, image = http("GET", server.url + answer["richmenu"]["image"])
    assert status == 200


def test_follow_greets_through_the_signed_webhook(phone):
    answer = phone.follow()
    assert answer["status"] == 200
    items = phone.chat()
    assert items[0] == {"from": "system", "type": "event", "text": "友だち追加しました", "at": items[0]["at"], "seq": 1}
    bot = [item for item in items if item["from"] == "bot"]
    assert bot and all(item["via"] == "reply" and item["at"].startswith("2026-11-20T10:00") for item in bot)
    assert "予約をお手伝いします" in phone.last_text()
    assert "ハローワーク能登" in phone.buttons()
    assert [item["seq"] for item in items] == list(range(1, len(items) + 1))


def test_typed_text_and_postback_display_text_show_as_the_users_bubbles(phone):
    phone.say("こんにちは")
    phone.tap("ハローワーク能登")
    mine = [item["text"] for item in phone.chat() if item["from"] == "user"]
    assert mine == ["こんにちは", "ハローワーク能登"]
    assert "お名前" in phone.last_text()


def test_a_full_booking_at_noto_by_tapping_and_the_staff_pane_shows_it(phone, service):
    book_at_noto(phone)
    booked = phone.latest()
    assert "ご予約を受け付けました" in "\n".join(texts_of(message) for message in booked)
    assert any(message["type"] == "flex" for message in booked)
    uris = [action.get("uri", "") for message in booked for _, action in actions_of(message)]
    assert "tel:0768-62-1242" in uris
    [booking] = service.bookings.for_user(USER)
    assert booking["slot"] == "2026-11-25T10:00" and booking["office"] == "noto"

    staff = phone.staff()
    [notice] = [item for item in staff["items"] if item["kind"] == "booking"]
    assert notice["office"] == "noto" and notice["office_name"] == "ハローワーク能登"
    assert "11月25日(水) 10:00〜10:30" in notice["summary"]
    assert isinstance(notice["fields"], dict)
    shown = json.dumps(staff, ensure_ascii=False)
    for personal in ("12345-12345678", "hanako@example.jp", "090-1234-5678"):
        assert personal not in shown  # staff notices carry only what staff need
    assert phone.staff(after=staff["last"])["items"] == []


def test_a_handoff_before_an_office_is_chosen_shows_as_no_office_in_the_staff_pane(phone):
    phone.say("こんにちは")
    phone.say("担当者と話したい")
    [notice] = [item for item in phone.staff()["items"] if item["kind"] == "handoff"]
    assert notice["office"] == "" and notice["office_name"] == "窓口未選択"


def test_pushes_are_not_shown_in_the_staff_pane(phone, service):
    service.queue_push(USER, [{"type": "text", "text": "リマインダー"}], retry_key=str(uuid.uuid4()))
    assert phone.staff()["items"] == []


def test_users_have_separate_chats(server, phone):
    phone.follow()
    other = SimPhone(server.url, OTHER)
    assert other.chat() == []
    other.say("こんにちは")
    assert [item["text"] for item in other.chat() if item["from"] == "user"] == ["こんにちは"]
    assert "こんにちは" not in [item.get("text") for item in phone.chat()]


def test_sticker_and_unfollow(phone, service):
    phone.say("こんにちは")
    phone.sticker()
    assert "スタンプ" in phone.last_text()
    phone.unfollow()
    assert phone.chat()[-1]["text"] == "ブロックしました"  # an unfollow has no reply
    assert service.conversations.load(USER) == (None, 0)


def test_wrong_or_missing_signature_on_callback_is_refused(server, phone):
    body = webhook_body(event_json(USER, "text", "こんにちは"))
    for headers in ({"X-Line-Signature": sign(body, "not-the-secret")}, {}):
        status, _ = http("POST", server.url + "/callback", raw=body.encode(),
                         headers={"Content-Type": "application/json", **headers})
        assert status == 400
    assert phone.chat() == []
    status, _ = http("POST", server.url + "/callback", raw=body.encode(),
                     headers={"Content-Type": "application/json", "X-Line-Signature": sign(body, SIMULATOR_SECRET)})
    assert status == 200  # the same body signed as the simulator signs it is taken


def test_reply_token_works_once(server, phone):
    token = phone.say("こんにちは")["replyToken"]
    before = phone.chat()
    message = {"type": "text", "text": "二度目"}
    status, answer = http("POST", server.url + LINE + "/message/reply",
                          {"replyToken": token, "messages": [message]}, headers=AUTH)
    assert (status, answer["message"]) == (400, "Invalid reply token")
    status, _ = http("POST", server.url + LINE + "/message/reply",
                     {"replyToken": uuid.uuid4().hex, "messages": [message]}, headers=AUTH)
    assert status == 400
    assert phone.chat() == before


def test_a_fresh_reply_token_is_delivered_and_then_used_up(server, service):
    inbox = SimInbox(service.client)
    inbox.issue_reply_token("a" * 32, USER)
    body = {"replyToken": "a" * 32, "messages": [{"type": "text", "text": "返信"}]}
    status, answer = http("POST", server.url + LINE + "/message/reply", body, headers=AUTH)
    assert status == 200 and len(answer["sentMessages"]) == 1
    assert http("POST", server.url + LINE + "/message/reply", body, headers=AUTH)[0] == 400
    assert [item["message"]["text"] for item in SimPhone(server.url, USER).chat()] == ["返信"]


def test_the_stand_in_checks_the_bearer_token_and_message_count(server):
    body = {"to": USER, "messages": [{"type": "text", "text": "x"}]}
    assert http("POST", server.url + LINE + "/message/push", body, headers={"Authorization": "Bearer nope"})[0] == 401
    assert http("POST", server.url + LINE + "/message/push", body)[0] == 401
    six = {"to": USER, "messages": [{"type": "text", "text": str(n)} for n in range(6)]}
    assert http("POST", server.url + LINE + "/message/push", six, headers=AUTH)[0] == 400
    assert http("POST", server.url + LINE + "/message/push", {"to": USER, "messages": []}, headers=AUTH)[0] == 400
    assert http("POST", server.url + LINE + "/unknown/call", {}, headers=AUTH)[0] == 404


def test_push_with_a_repeated_retry_key_is_delivered_once(server):
    phone = SimPhone(server.url, USER)
    key = str(uuid.uuid4())
    body = {"to": USER, "messages": [{"type": "text", "text": "明日は相談日です"}]}
    headers = {**AUTH, "X-Line-Retry-Key": key}
    assert http("POST", server.url + LINE + "/message/push", body, headers=headers)[0] == 200
    status, answer = http("POST", server.url + LINE + "/message/push", body, headers=headers)
    assert status == 409 and "already" in answer["message"]
    assert [(item["via"], item["message"]["text"]) for item in phone.chat()] == [("push", "明日は相談日です")]
    assert http("POST", server.url + LINE + "/message/push", body, headers={**AUTH, "X-Line-Retry-Key": "nope"})[0] == 400
    assert http("POST", server.url + LINE + "/message/push", body, headers=AUTH)[0] == 200  # no key: no dedupe
    assert len(phone.chat()) == 2


def test_loading_indicator_until_a_message_arrives(server):
    status, _ = http("POST", server.url + LINE + "/chat/loading/start",
                     {"chatId": USER, "loadingSeconds": 20}, headers=AUTH)
    assert status == 202
    assert http("GET", f"{server.url}/sim/messages?user={USER}&after=0")[1]["loading"] is True
    http("POST", server.url + LINE + "/message/push", {"to": USER, "messages": [{"type": "text", "text": "x"}]},
         headers=AUTH)
    assert http("GET", f"{server.url}/sim/messages?user={USER}&after=0")[1]["loading"] is False
    assert http("POST", server.url + LINE + "/chat/loading/start", {"chatId": USER, "loadingSeconds": 3},
                headers=AUTH)[0] == 400


def test_messages_after_a_sequence_number_and_clear(server, phone):
    phone.follow()
    everything = phone.chat()
    assert phone.chat(after=1) == everything[1:]
    status, answer = http("GET", f"{server.url}/sim/messages?user={USER}&after={everything[-1]['seq']}")
    assert status == 200 and answer["items"] == [] and answer["last"] == everything[-1]["seq"]
    assert http("POST", server.url + "/sim/clear", {"user": USER})[0] == 200
    assert phone.chat() == []


@pytest.mark.parametrize(
    "body",
    [
        {"user": "U123", "kind": "text", "text": "x"},
        {"user": USER, "kind": "image", "text": "x"},
        {"user": USER, "kind": "text", "text": ""},
        {"user": USER, "kind": "text", "text": "あ" * 5001},
        ["not", "an", "object"],
    ],
)
def test_send_refuses_bad_requests(server, body):
    status, answer = http("POST", server.url + "/sim/send", body)
    assert status == 400 and answer["error"]


def test_bad_reads_are_400(server):
    assert http("GET", server.url + "/sim/messages?user=nobody&after=0")[0] == 400
    assert http("GET", f"{server.url}/sim/messages?user={USER}&after=-1")[0] == 400
    assert http("GET", server.url + "/sim/staff?after=yesterday")[0] == 400


def test_no_simulator_with_a_line_channel(redis_client, offices):
    settings = load_settings(line_channel_secret="s", line_channel_access_token="t", line_api_host="http://127.0.0.1:9")
    service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
    client = create_app(settings, service=service).test_client()
    for path in ("/", "/sim/users", f"/sim/messages?user={USER}&after=0"):
        assert client.get(path).status_code == 404
    assert client.post("/sim/send", json={"user": USER, "kind": "follow"}).status_code == 404
    assert client.post(LINE + "/message/push", json={}).status_code == 404


def test_inbox_sequence_numbers(redis_client):
    inbox = SimInbox(redis_client)
    assert inbox.add(USER, {"n": 1}) == 1
    assert inbox.add(USER, {"n": 2}, {"n": 3}) == 3
    items, last = inbox.since(USER, 1)
    assert [(item["seq"], item["n"]) for item in items] == [(2, 2), (3, 3)] and last == 3
    assert redis_client.ttl(f"hwbot:sim:inbox:{USER}") > 0
    assert inbox.use_reply_token("unknown") is None
    assert inbox.accept_retry_key("k") and not inbox.accept_retry_key("k")


BOOKING_SCRIPTS = ["noto_booking", "hamamatsu_booking", "izumo_booking", "toyooka_booking", "sakata_booking"]
SLOT_LABEL = re.compile(r"^(?P<day>\d+月\d+日\(.\)) (?P<time>\d{1,2}:\d{2}〜\d{1,2}:\d{2})$")


@pytest.mark.parametrize("name", BOOKING_SCRIPTS)
def test_a_new_user_books_at_every_office_by_tapping_in_the_simulator(name, redis_client, offices):
    """Each office's scripted booking replayed on the simulator page's API: signed webhook, real replies."""
    from bot.settings import REPO_ROOT
    from bot.testing.scripts import load_script

    script = load_script(REPO_ROOT / "dialogs" / f"{name}.yaml")
    service = BotService(simulator_settings(), client=redis_client, offices=offices, clock=ManualClock(script.now))
    with LiveServer(create_app(simulator_settings(), service=service)) as live:
        phone = SimPhone(live.url, USERS[2]["id"])
        phone.follow()
        for step in script.steps:
            action, value = step.action()
            if action == "say":
                phone.say(str(value))
            elif action == "tap":
                slot = SLOT_LABEL.match(str(value))
                phone.tap(slot["time"], within=slot["day"]) if slot else phone.tap(str(value))
            else:
                raise AssertionError(f"{name}: the booking script uses {action}, not a plain tap or say")
        assert re.search(r"ご予約(を受け付けました|が完了しました)", phone.last_text())
        assert "予約番号" in phone.last_text()
    [expected] = script.end.bookings
    [booking] = service.bookings.for_user(USERS[2]["id"])
    assert (booking["office"], booking["slot"], booking["status"]) == (expected.office, expected.slot, "booked")

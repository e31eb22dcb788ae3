"""The staff console and its API with Flask's test client: auth, CSRF, each action's effect, CSV, ICS."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import icalendar
import pytest

from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.actions import StaffActions
from bot.staff.export import feed_state
from bot.store import BookingStore
from bot.store.outbox import dead_key
from bot.testing.driver import NOTO_USER, ChatDriver, book_at_noto
from bot.web import create_app

NOW = "2026-11-20T10:00:00+09:00"
SLOT = "11月25日(水) 10:00〜10:30"
PERSONAL = (*NOTO_USER, "U-console")


def settings_for(**overrides):
    base = {"line_channel_secret": "secret", "line_channel_access_token": "token"}
    return load_settings(**{**base, **overrides})


@pytest.fixture
def service(redis_client, offices, clock):
    return BotService(settings_for(), client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def app(service):
    return create_app(service.settings, service=service)


@pytest.fixture
def booked(service):
    """A Noto booking made through the conversation: (booking, ref)."""
    booking = book_at_noto(ChatDriver(service, user="U-console"), SLOT)
    return booking, BookingStore.ref(booking)


def _query(ref: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"ref": ref})


@pytest.fixture
def staff(staff_member):
    """A member of staff of every office, signed in."""
    return staff_member("山本 職員")


def move_to(clock, staff, instant: str) -> None:
    """Days pass: the clock moves on and staff log in again (a session lasts 12 hours)."""
    clock.advance(parse_instant(instant) - clock.now())
    staff.login()


def notices(service, kind: str) -> list[dict]:
    return [entry for _, entry in service.outbox.entries() if entry.get("kind") == kind]


def pushes(service) -> list[str]:
    return [json.loads(entry["messages"])[0]["text"] for entry in notices(service, "push")]


def assert_no_personal_data(entry: dict) -> None:
    text = json.dumps(entry, ensure_ascii=False)
    for value in PERSONAL:
        assert value not in text, value


# -- authentication -------------------------------------------------------------------------------


def test_pages_redirect_to_login_and_a_wrong_password_is_refused(app, staff_member):
    client = app.test_client()
    response = client.get("/staff?date=2026-11-25")
    assert response.status_code == 302 and "/staff/login" in response.location
    member = staff_member(login=False)
    refused = member.login("wrong password!")
    assert refused.status_code == 401 and "アカウントまたはパスワードが違います" in refused.get_data(as_text=True)
    assert member.client.get("/staff").status_code == 302


def test_login_sets_a_strict_httponly_cookie_of_a_server_side_session(app, staff_member, service):
    member = staff_member(login=False)
    response = member.login()
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("hwbot_staff="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/staff" in cookie
    assert "Secure" not in cookie  # HWBOT_PUBLIC_URL is not https here
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert member.password not in cookie and member.account.id not in cookie
    from bot.store.staff_accounts import digest, session_key

    stored = service.client.hgetall(session_key(digest(session_id)))
    assert stored["account"] == member.account.id and stored["stage"] == "ok"
    assert not service.client.keys(f"*{session_id}*")  # the id itself is stored nowhere
    assert member.client.get("/staff").status_code == 200


def test_the_cookie_is_secure_behind_https(redis_client, offices, clock, identity):
    from bot.testing.staff import StaffMember, make_account

    settings = settings_for(public_url="https://hw.example")
    service = BotService(settings, client=redis_client, offices=offices, clock=clock)
    account, password, _ = make_account(identity, "安全 確認", ("noto",))
    member = StaffMember(create_app(settings, service=service), identity, account, password)
    cookie = next(c for c in member.login().headers.getlist("Set-Cookie") if c.startswith("hwbot_staff="))
    assert "Secure" in cookie


def test_login_redirects_only_inside_the_console(staff_member):
    member = staff_member(login=False)
    csrf = member.csrf()
    response = member.client.post("/staff/login", data={"account": member.account.id, "password": member.password,
                                                         "csrf": csrf, "next": "https://evil.example/"})
    assert response.location.endswith("/staff")
    again = staff_member(login=False)
    response = again.client.post("/staff/login", data={"account": again.account.id, "password": again.password,
                                                       "csrf": again.csrf(), "next": "/staff/handoffs"})
    assert response.location.endswith("/staff/handoffs")


def test_post_without_the_csrf_token_changes_nothing(staff, booked, service, clock):
    booking, ref = booked
    move_to(clock, staff, "2026-11-25T10:05")
    response = staff.client.post("/staff/booking/attended", data={"ref": ref, "csrf": "forged"})
    assert response.status_code == 400
    assert service.bookings.get(ref)["status"] == "booked"
    login = staff.client.post("/staff/login", data={"account": staff.account.id, "password": staff.password})
    assert login.status_code == 400


def test_a_session_expires_and_logout_ends_it(staff, clock):
    clock.advance(timedelta(hours=13))
    assert staff.client.get("/staff").status_code == 302
    staff.login()
    clock.advance(timedelta(hours=1, minutes=59))
    assert staff.client.get("/staff").status_code == 200  # idle for less than 2 hours
    clock.advance(timedelta(hours=2))
    assert staff.client.get("/staff").status_code == 302  # idle for 2 hours
    staff.login()
    csrf = staff.page_csrf("/staff")
    staff.client.post("/staff/logout", data={"csrf": csrf})
    assert staff.client.get("/staff").status_code == 302


def test_without_accounts_nobody_gets_in_and_the_old_token_opens_nothing(redis_client, offices, caplog):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token",
                             legacy_staff_token="staff-token-for-tests")
    app = create_app(settings, service=BotService(settings, client=redis_client, offices=offices))
    assert "HWBOT_STAFF_TOKEN is no longer used" in caplog.text
    client = app.test_client()
    assert client.get("/staff").status_code == 302
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    for login in ("", "admin", "staff-token-for-tests"):
        refused = client.post("/staff/login", data={"account": login, "password": "staff-token-for-tests", "csrf": csrf})
        assert refused.status_code in (401, 429)
    api = client.get("/staff/api/bookings?office=noto", headers={"Authorization": "Bearer staff-token-for-tests"})
    assert api.status_code == 401
    assert client.get("/staff/ics/noto.ics?key=staff-token-for-tests").status_code == 403


def test_in_simulator_mode_the_simulator_admin_signs_in_without_a_second_factor(redis_client, offices):
    from bot.testing.staff import StaffMember
    from bot.staff.identity import Identity

    settings = load_settings(line_channel_secret=None, line_channel_access_token=None)
    service = BotService(settings, client=redis_client, offices=offices)
    app = create_app(settings, service=service)
    identity = Identity(service)
    member = StaffMember(app, identity, identity.require("simulator"), "simulator")
    page = member.client.get("/staff/login").get_data(as_text=True)
    assert "アカウント <code>simulator</code>、パスワード <code>simulator</code>" in page
    assert member.login().location.endswith("/staff")
    assert "シミュレーター管理者（管理者）" in member.text("/staff")
    # The same Redis opened by a LINE-mode app: the simulator's account opens nothing there.
    line_settings = settings_for()
    line_app = create_app(line_settings, service=BotService(line_settings, client=redis_client, offices=offices))
    outside = StaffMember(line_app, identity, identity.require("simulator"), "simulator")
    assert outside.login().status_code == 401
    assert "simulator" not in outside.text("/staff/login")
    assert member.client.get("/staff").status_code == 200  # its session stays in simulator mode only
    line_client = line_app.test_client()
    line_client.set_cookie("hwbot_staff", member.client.get_cookie("hwbot_staff", path="/staff").value, path="/staff")
    assert line_client.get("/staff").status_code == 302


# -- the day view and the record ------------------------------------------------------------------


def test_the_day_view_lists_the_days_bookings_with_names(staff, booked):
    booking, ref = booked
    page = staff.client.get("/staff?office=noto&date=2026-11-25").get_data(as_text=True)
    assert "10:00〜10:30" in page and "山田 花子" in page and booking["id"] in page and "予約中" in page
    assert 'href="/staff?office=noto&amp;date=2026-11-24"' in page and "date=2026-11-26" in page
    assert "山田 花子" not in staff.client.get("/staff?office=noto&date=2026-11-26").get_data(as_text=True)


def test_the_day_view_defaults_to_today_and_survives_bad_parameters(staff):
    page = staff.client.get("/staff?office=nowhere&date=2026-13-40").get_data(as_text=True)
    assert "11月20日(金)（今日）" in page
    assert "登録されていません" in page and "日付は 2026-12-01 の形で" in page


def test_banners_for_dead_letters_and_users_waiting(staff, service):
    service.client.xadd(dead_key(3), {"kind": "booking", "office": "noto", "summary": "新しい予約", "error": "HTTP 500"})
    driver = ChatDriver(service, user="U-waiting")
    driver.say("こんにちは")
    driver.say("担当者と話したい")
    page = staff.client.get("/staff").get_data(as_text=True)
    assert "送信できなかった通知が 1 件" in page and "対応を待っている利用者が 1 人" in page
    outbox = staff.client.get("/staff/outbox").get_data(as_text=True)
    assert "新しい予約" in outbox and "HTTP 500" in outbox


def test_the_record_shows_every_stored_field_including_consent(staff, booked):
    booking, ref = booked
    page = staff.client.get("/staff/booking?" + _query(ref)).get_data(as_text=True)
    for value in ("山田 花子", "12345-12345678", "hanako@example.jp", "090-1234-5678", "職業相談",
                  booking["consent"]["version"], "2026-11-20 10:00", "事業所の確認"):
        assert value in page, value
    assert "U-console" not in page  # the LINE user id is shown as a keyed hash
    assert staff.client.get("/staff/booking?ref=noto|bad").status_code == 404


# -- actions ----------------------------------------------------------------------------------------


def test_mark_attended_only_after_the_start(staff, booked, service, clock):
    booking, ref = booked
    early = staff.act("attended", ref)
    assert "開始時刻より前" in early.get_data(as_text=True)
    assert service.bookings.get(ref)["status"] == "booked"
    move_to(clock, staff, "2026-11-25T10:02")
    page = staff.act("attended", ref).get_data(as_text=True)
    assert "「出席」を記録しました" in page
    stored = service.bookings.get(ref)
    assert stored["status"] == "attended" and stored["marked_by"] == staff.account.id
    assert stored["marked_at"] == "2026-11-25T10:02:00+09:00"
    assert notices(service, "no_show") == []


def test_mark_no_show_notifies_staff_without_personal_data(staff, booked, service, clock):
    booking, ref = booked
    move_to(clock, staff, "2026-11-25T10:15")
    staff.act("no_show", ref)
    assert service.bookings.get(ref)["status"] == "no_show"
    [notice] = notices(service, "no_show")
    assert notice["office"] == "noto" and booking["id"] in notice["summary"]
    assert json.loads(notice["fields"])["ref"] == ref
    assert_no_personal_data(notice)
    staff.act("no_show", ref)  # again: no second notice
    assert len(notices(service, "no_show")) == 1


def test_cancel_frees_the_slot_tells_the_user_and_staff(staff, booked, service):
    booking, ref = booked
    page = staff.act("cancel", ref).get_data(as_text=True)
    assert "予約をキャンセルしました" in page
    stored = service.bookings.get(ref)
    assert stored["status"] == "cancelled" and stored["cancelled_by"] == staff.account.id
    assert service.bookings.booked_counts("noto", [booking["slot"]]) == {}
    [push] = notices(service, "push")
    assert push["to"] == "U-console" and "キャンセルされました" in pushes(service)[0]
    [notice] = notices(service, "cancellation")
    assert json.loads(notice["fields"])["by"] == "staff"
    assert_no_personal_data(notice)
    again = staff.act("cancel", ref).get_data(as_text=True)
    assert "キャンセルできません" in again and len(notices(service, "push")) == 1


def test_send_meeting_details_pushes_them_and_records_only_the_time(staff, booked, service):
    booking, ref = booked
    bad = staff.act("meeting", ref, meeting_id="", url="")
    assert "どちらかを入力" in bad.get_data(as_text=True) and notices(service, "push") == []
    staff.act("meeting", ref, meeting_id="123 456 7890", passcode="pass-42", url="https://zoom.example/j/1")
    [text] = pushes(service)
    assert "123 456 7890" in text and "pass-42" in text and "https://zoom.example/j/1" in text and "TeleOffice" in text
    stored = service.bookings.get(ref)
    assert stored["meeting_sent_at"] == "2026-11-20T10:00:00+09:00"
    assert "pass-42" not in json.dumps(stored)
    [notice] = notices(service, "meeting_sent")
    assert "pass-42" not in json.dumps(notice) and "123 456 7890" not in json.dumps(notice)
    assert_no_personal_data(notice)
    assert "https://" in staff.act("meeting", ref, url="http://plain.example").get_data(as_text=True)


def test_book_a_follow_up_copies_identity_and_consent_once(staff, booked, service, clock):
    booking, ref = booked
    move_to(clock, staff, "2026-11-25T10:20")
    page = staff.client.get("/staff/booking?" + _query(ref)).get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
    slots = re.findall(r'<option value="(2026-[^"]+)"', page)
    assert slots and all(slot > "2026-11-25T10:20" for slot in slots)
    csrf = staff.page_csrf("/staff")
    form = {"csrf": csrf, "ref": ref, "slot": slots[0], "nonce": nonce}
    first = staff.client.post("/staff/booking/follow_up", data=form, follow_redirects=True)
    assert "次回の予約" in first.get_data(as_text=True)
    again = staff.client.post("/staff/booking/follow_up", data=form, follow_redirects=True)
    assert "登録済みです" in again.get_data(as_text=True)
    upcoming = [b for b in service.bookings.for_user("U-console") if b.get("follow_up_of") == ref]
    assert len(upcoming) == 1
    follow = upcoming[0]
    assert follow["booked_by"] == staff.account.id and follow["status"] == "booked" and follow["slot"] == slots[0]
    for key in ("name", "number", "email", "phone", "consent", "answers", "topic"):
        assert follow[key] == booking[key], key
    assert len(pushes(service)) == 1 and follow["id"] in pushes(service)[0]
    [notice] = notices(service, "follow_up")
    assert json.loads(notice["fields"])["follow_up_of"] == ref
    assert_no_personal_data(notice)


def test_a_follow_up_bypasses_the_upcoming_limit_but_not_the_calendar(staff, booked, service):
    booking, ref = booked  # the user already holds Noto's one upcoming booking
    csrf = staff.page_csrf("/staff")
    ok = staff.client.post("/staff/booking/follow_up", follow_redirects=True,
                           data={"csrf": csrf, "ref": ref, "slot": "2026-11-26T10:00", "nonce": "n1"})
    assert "次回の予約" in ok.get_data(as_text=True)
    closed = staff.client.post("/staff/booking/follow_up", follow_redirects=True,
                               data={"csrf": csrf, "ref": ref, "slot": "2026-11-28T10:00", "nonce": "n2"})
    assert "予約できません" in closed.get_data(as_text=True)
    taken = staff.client.post("/staff/booking/follow_up", follow_redirects=True,
                              data={"csrf": csrf, "ref": ref, "slot": booking["slot"], "nonce": "n3"})
    assert "予約できません" in taken.get_data(as_text=True)
    assert len([b for b in service.bookings.for_user("U-console") if b["status"] == "booked"]) == 2


def test_resume_a_user_waiting_for_staff(staff, service):
    driver = ChatDriver(service, user="U-waiting")
    driver.say("こんにちは")
    driver.say("担当者と話したい")
    page = staff.client.get("/staff/handoffs").get_data(as_text=True)
    assert "担当者との会話を希望" in page and "U-waiting" not in page
    who = re.search(r'name="who" value="([^"]+)"', page).group(1)
    csrf = staff.page_csrf("/staff/handoffs")
    done = staff.client.post("/staff/handoffs/resume", data={"csrf": csrf, "who": who}, follow_redirects=True)
    assert "自動応答に戻しました" in done.get_data(as_text=True)
    assert service.handoffs.waiting() == {}
    assert any("担当者の対応が終わりました" in text for text in pushes(service))


# -- export, feed, API ------------------------------------------------------------------------------


def test_csv_export_is_utf8_with_bom_for_excel(staff, booked):
    booking, ref = booked
    response = staff.client.get("/staff/export.csv?office=noto&from=2026-11-01&to=2026-11-30")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == 1
    assert rows[0]["予約番号"] == booking["id"] and rows[0]["お名前"] == "山田 花子" and rows[0]["状態"] == "予約中"
    assert rows[0]["規約の版"] == booking["consent"]["version"]
    assert rows[0]["事業所の確認"] == "申込み中・事業所の確認待ち"
    bad = staff.client.get("/staff/export.csv?office=noto&from=2026-11-30&to=2026-11-01", follow_redirects=True)
    assert "終了日は開始日以降" in bad.get_data(as_text=True)


def test_ics_feed_has_no_personal_data_and_marks_cancellations(app, staff, booked, service):
    booking, ref = booked
    staff.act("cancel", ref)
    other = book_at_noto(ChatDriver(service, user="U-other"), "11月25日(水) 11:00〜11:30")
    client = app.test_client()  # a calendar app: no session
    assert client.get("/staff/ics/noto.ics?key=wrong").status_code == 403
    assert client.get("/staff/ics/nowhere.ics?key=x").status_code == 404
    response = client.get(f"/staff/ics/noto.ics?key={feed(staff)}")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    text = response.get_data(as_text=True)
    for value in PERSONAL:
        assert value not in text
    events = {str(e["SUMMARY"]): e for e in icalendar.Calendar.from_ical(response.get_data()).walk("VEVENT")}
    cancelled = events[f"オンライン職業相談 予約番号 {booking['id']}"]
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert cancelled.decoded("DTSTART") == parse_instant("2026-11-25T10:00")
    assert str(events[f"【申込み中】オンライン職業相談 予約番号 {other['id']}"]["STATUS"]) == "TENTATIVE"
    assert feed(staff) in staff.client.get("/staff?office=noto").get_data(as_text=True)


def feed(member, office: str = "noto") -> str:
    """The account's key of an office's ICS feed (as the day view shows it)."""
    return member.identity.feed_key(member.account, office)


def feed_events(app, staff) -> dict[str, icalendar.Event]:
    """Noto's ICS feed as a calendar app reads it: event by booking id."""
    response = app.test_client().get(f"/staff/ics/noto.ics?key={feed(staff)}")
    assert response.status_code == 200
    return {str(e["UID"]).split(".")[0]: e for e in icalendar.Calendar.from_ical(response.get_data()).walk("VEVENT")}


def test_ics_feed_shows_requests_and_held_slots_as_tentative_until_confirmed(app, staff, booked, service):
    booking, ref = booked
    second = book_at_noto(ChatDriver(service, user="U-other"), "11月25日(水) 11:00〜11:30")
    second_ref = BookingStore.ref(second)
    events = feed_events(app, staff)
    assert {str(e["STATUS"]) for e in events.values()} == {"TENTATIVE"}
    assert str(events[booking["id"]]["SUMMARY"]) == f"【申込み中】オンライン職業相談 予約番号 {booking['id']}"
    assert "事業所の確認: 申込み中・事業所の確認待ち" in str(events[booking["id"]]["DESCRIPTION"])

    assert "申込みを確定し" in staff.act("confirm", second_ref).get_data(as_text=True)
    actions = StaffActions(service)
    slot = actions.proposal_slots(service.bookings.get(ref))[0]
    held = actions.propose(ref, slot.key, by=staff.account.id).booking
    held_id = held["proposal"]["ref"].split("|")[-1]
    events = feed_events(app, staff)
    assert set(events) == {booking["id"], second["id"], held_id}
    confirmed = events[second["id"]]
    assert str(confirmed["STATUS"]) == "CONFIRMED"
    assert str(confirmed["SUMMARY"]) == f"オンライン職業相談 予約番号 {second['id']}"
    assert "確定（事業所が確認済み）" in str(confirmed["DESCRIPTION"])
    request = events[booking["id"]]
    assert str(request["STATUS"]) == "TENTATIVE" and str(request["SUMMARY"]).startswith("【申込み中】")
    assert "別の日時を提案中" in str(request["DESCRIPTION"])
    hold = events[held_id]
    assert str(hold["STATUS"]) == "TENTATIVE" and str(hold["SUMMARY"]) == f"【提案中】オンライン職業相談 予約番号 {held_id}"
    assert hold.decoded("DTSTART") == slot.start
    assert f"提案先の申込み: 予約番号 {booking['id']}" in str(hold["DESCRIPTION"])
    text = app.test_client().get(f"/staff/ics/noto.ics?key={feed(staff)}").get_data(as_text=True)
    for value in PERSONAL:
        assert value not in text
    body = staff.client.get("/staff/export.csv?office=noto&from=2026-11-20&to=2026-11-30").get_data()
    rows = {row["予約番号"]: row for row in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))}
    assert rows[booking["id"]]["事業所の確認"] == "申込み中・別の日時を提案中（利用者の返事待ち）"
    assert rows[second["id"]]["事業所の確認"] == "確定（事業所が確認済み）"
    assert (rows[held_id]["状態"], rows[held_id]["事業所の確認"]) == ("提案中の仮押さえ", "")

    # The user accepts the proposal: the held slot is the booking, confirmed; the request is gone.
    [push] = [json.loads(e["messages"]) for e in notices(service, "push") if e["to"] == "U-console"]
    accept = next(item["action"]["data"] for message in push for item in (message.get("quickReply") or {}).get("items", [])
                  if item["action"]["label"] == "この日時でお願いする")
    ChatDriver(service, user="U-console").send("postback", accept)
    events = feed_events(app, staff)
    assert str(events[held_id]["STATUS"]) == "CONFIRMED" and str(events[held_id]["SUMMARY"]).startswith("オンライン")
    assert str(events[booking["id"]]["STATUS"]) == "CANCELLED"


def test_feed_state_of_each_booking_state():
    def state(status: str, confirmation: str | None = None) -> tuple[str, str]:
        booking = {"status": status} if confirmation is None else {"status": status, "office_confirmation": confirmation}
        return feed_state(booking)

    assert state("booked", "pending") == state("booked", "awaiting_consent") == ("TENTATIVE", "申込み中")
    assert state("booked", "proposed") == ("TENTATIVE", "申込み中")
    assert state("held", "proposed") == ("TENTATIVE", "提案中")
    assert state("booked", "confirmed") == state("booked", "not_needed") == state("booked") == ("CONFIRMED", "")
    assert state("attended", "confirmed") == state("no_show") == ("CONFIRMED", "")
    assert state("cancelled", "declined") == state("cancelled", "pending") == ("CANCELLED", "")


def test_api_bookings_answers_json_with_the_right_codes(app, booked, staff_member):
    booking, ref = booked
    client = app.test_client()
    auth = staff_member(login=False).bearer
    assert client.get("/staff/api/bookings?office=noto&date=2026-11-25").status_code == 401
    wrong = client.get("/staff/api/bookings?office=noto&date=2026-11-25", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "error" in wrong.get_json()
    ok = client.get("/staff/api/bookings?office=noto&date=2026-11-25", headers=auth)
    assert ok.status_code == 200
    data = ok.get_json()
    assert data["office"] == "noto" and data["date"] == "2026-11-25"
    assert [b["ref"] for b in data["bookings"]] == [ref] and data["bookings"][0]["name"] == "山田 花子"
    bad_date = client.get("/staff/api/bookings?office=noto&date=25/11", headers=auth)
    assert bad_date.status_code == 400 and bad_date.get_json()["error"].startswith("date")
    missing = client.get("/staff/api/bookings", headers=auth)
    assert missing.status_code == 400 and missing.get_json()["error"].startswith("office")
    assert client.get("/staff/api/bookings?office=nowhere", headers=auth).status_code == 404
    today = client.get("/staff/api/bookings?office=noto", headers=auth).get_json()
    assert today["date"] == "2026-11-20" and today["bookings"] == []

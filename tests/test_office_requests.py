"""Requests the office confirms (issue 11): states and their wording, confirm, decline, propose another
time (accept, decline, lapse), overdue requests, the console and the JSON API, on a real Redis.

Per office where it applies: every office whose profile says `after_booking.confirmed_by_office`.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from bot import calendar
from bot.clock import parse_instant
from bot.dialog import texts as T
from bot.dialog.stages.my_bookings import booking_state
from bot.dialog.buttons import cancel_text
from bot.profiles import Offices, load_offices
from bot.service import BotService
from bot.settings import load_settings
from bot.staff.aftercare import Reminders
from bot.store import BookingStore
from bot.testing.driver import NOTO_USER, ChatDriver, ManualClock, book_at_noto
from bot.testing.line_spec import check_limits, validate_request
from bot.testing.staff import api_token, sign_in
from bot.web import create_app
from bot.testing.delivery import SendingClient
from tests.conftest import PROFILES_DIR

NOW = "2026-11-20T10:00:00+09:00"
USER = "U-request"
PERSONAL = (*NOTO_USER, USER)


def request_offices(offices) -> list[str]:
    return [office for office in offices if offices[office].after_booking.confirmed_by_office]


REQUEST_OFFICES = request_offices(load_offices(PROFILES_DIR))


@pytest.fixture
def offices(offices, make_profile):
    """The five offices and `plain`, a copy of Hamamatsu whose bookings need no confirmation: every
    real office confirms its requests (their documents say so), but the profile field allows it."""
    plain = make_profile("hamamatsu", id="plain", after_booking__confirmed_by_office=False)
    texts = {office: offices.terms_text(office) for office in offices}
    return Offices({**{office: offices[office] for office in offices}, "plain": plain},
                   {**texts, "plain": texts["hamamatsu"]})


@pytest.fixture
def service(redis_client, offices, clock):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token")
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def app(service):
    return create_app(service.settings, service=service)


def make_request(service: BotService, office: str, *, index: int = 0, user: str = USER) -> tuple[dict, str]:
    """A request at `office` as the chat makes it (the `index`-th of the slots nobody holds)."""
    profile = service.offices[office]
    now = service.clock.now()
    counts = service.bookings.booked_counts(office, calendar.grid_keys(profile, now))
    slots = [slot for slot in calendar.bookable_slots(profile, now, {}) if slot.key not in counts]
    slot = slots[index]
    booking = {
        "id": f"REQ{index:05d}",
        "office": office,
        "slot": slot.key,
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "user": user,
        "status": "booked",
        "office_confirmation": "pending" if profile.after_booking.confirmed_by_office else "not_needed",
        "created_at": now.isoformat(),
        "name": NOTO_USER[0],
        "phone": NOTO_USER[3],
        "consent": {"version": profile.terms.version.isoformat(), "at": now.isoformat()},
    }
    assert service.bookings.claim(booking, profile.schedule.capacity).ok
    return booking, BookingStore.ref(booking)


def entries(service: BotService, kind: str) -> list[dict]:
    return [fields for _, fields in reversed(service.outbox.entries()) if fields["kind"] == kind]


def push_texts(service: BotService) -> list[str]:
    return [json.dumps(json.loads(entry["messages"]), ensure_ascii=False) for entry in entries(service, "push")]


def assert_valid_pushes(service: BotService, spec: dict) -> None:
    """Every queued push passes LINE's OpenAPI spec and documented limits."""
    for entry in entries(service, "push"):
        messages = json.loads(entry["messages"])
        assert validate_request(spec, "PushMessageRequest", {"to": entry["to"], "messages": messages}) == []
        assert check_limits(messages) == []


def assert_no_personal_data(entry: dict) -> None:
    text = json.dumps(entry, ensure_ascii=False)
    for value in PERSONAL:
        assert value not in text, value


# -- 1. states and their wording -------------------------------------------------------------------------


def test_a_request_says_so_on_the_booked_card_the_list_and_the_reminder(service, clock):
    driver = ChatDriver(service, user=USER)
    booking = book_at_noto(driver, "11月25日(水) 10:00〜10:30")
    assert booking["office_confirmation"] == "pending"
    assert f"{T.STATE_LABEL}: {T.STATE_REQUESTED}" in driver.last_text()
    driver.say("予約の確認")
    assert f"予約番号 {booking['id']}・申込み中・事業所の確認待ち" in driver.last_text()
    clock.instant = parse_instant("2026-11-24T17:00")
    [(_, replies)] = Reminders(service)(clock.now())
    assert "申込み中・事業所の確認待ち" in json.dumps(push_texts(service), ensure_ascii=False)
    ref = BookingStore.ref(booking)
    service.bookings.update(ref, {"office_confirmation": "confirmed"})
    driver.say("予約の確認")
    assert f"予約番号 {booking['id']}・確定）" in driver.last_text()


def test_an_office_without_confirmation_books_as_confirmed(service, offices):
    office = next(o for o in offices if not offices[o].after_booking.confirmed_by_office)
    booking, _ = make_request(service, office)
    assert booking["office_confirmation"] == "not_needed"
    assert booking_state(booking) == T.STATE_CONFIRMED
    assert booking_state({**booking, "office_confirmation": "pending"}) == T.STATE_REQUESTED
    assert booking_state({k: v for k, v in booking.items() if k != "office_confirmation"}) == T.STATE_CONFIRMED


# -- the console ------------------------------------------------------------------------------------------


class Staff:
    """A member of staff of every office, signed in to `app` (cookies kept by the test client)."""

    def __init__(self, app):
        self.member = sign_in(app)
        self.account = self.member.account
        self.client = self.member.client

    def page(self, ref: str) -> str:
        return self.client.get("/staff/booking?" + urlencode({"ref": ref})).get_data(as_text=True)

    def act(self, action: str, ref: str, **fields: str) -> str:
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.page(ref)).group(1)
        answer = self.client.post(f"/staff/booking/{action}", data={"csrf": csrf, "ref": ref, **fields},
                                  follow_redirects=True)
        return answer.get_data(as_text=True)


@pytest.fixture
def staff(app):
    return Staff(app)


# -- 2. confirm ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_request_then_confirm_in_the_console(office, service, staff, messaging_spec):
    booking, ref = make_request(service, office)
    page = staff.page(ref)
    assert "申込み中・事業所の確認待ち" in page and "この申込みを確定する" in page
    answer = staff.act("confirm", ref)
    assert "申込みを確定し" in answer
    stored = service.bookings.get(ref)
    assert stored["office_confirmation"] == "confirmed" and stored["confirmed_by"] == staff.account.id
    assert stored["status"] == "booked"
    [text] = push_texts(service)
    profile = service.offices[office]
    for needle in ("予約が確定しました", calendar.format_day(calendar.slot_at(profile, booking["slot"])[0].date()),
                   profile.video_tool, "【ご準備】", profile.after_booking.checklist[0], booking["id"]):
        assert needle in text, needle
    # How to cancel, with the office's email address where it takes cancellations by email (Noto).
    assert all(line in text for line in cancel_text(profile).splitlines())
    assert ("キャンセルのメール：hw-noto@mhlw.go.jp" in text) == (office == "noto")
    [notice] = entries(service, "confirmed")
    assert json.loads(notice["fields"])["ref"] == ref
    assert_no_personal_data(notice)
    assert_valid_pushes(service, messaging_spec)
    # A double click: nothing more happens.
    assert "すでに確定しています" in staff.act("confirm", ref)
    assert len(entries(service, "push")) == 1 and len(entries(service, "confirmed")) == 1
    assert "確定（事業所が確認済み）" in staff.page(ref) and "この申込みを確定する" not in staff.page(ref)


def test_confirm_with_the_meeting_details_in_the_same_push(service, staff, messaging_spec):
    _, ref = make_request(service, "noto")
    bad = staff.act("confirm", ref, url="http://plain.example")
    assert "https://" in bad and service.bookings.get(ref)["office_confirmation"] == "pending"
    staff.act("confirm", ref, meeting_id="123 456 7890", passcode="pass-42", url="https://zoom.example/j/1")
    [text] = push_texts(service)
    assert "予約が確定しました" in text and "123 456 7890" in text and "pass-42" in text
    stored = service.bookings.get(ref)
    assert stored["meeting_sent_at"] == NOW and "pass-42" not in json.dumps(stored)
    [notice] = entries(service, "confirmed")
    assert "pass-42" not in json.dumps(notice) and "123 456 7890" not in json.dumps(notice)
    assert_valid_pushes(service, messaging_spec)


def test_only_an_open_request_can_be_confirmed(service, staff, offices):
    plain = next(o for o in offices if not offices[o].after_booking.confirmed_by_office)
    _, ref = make_request(service, plain)
    assert "この申込みを確定する" not in staff.page(ref)
    assert "確認が不要な予約" in staff.act("confirm", ref)
    _, cancelled = make_request(service, "noto", index=1)
    service.bookings.cancel(cancelled, at=NOW, by="user")
    assert "操作できません" in staff.act("confirm", cancelled)
    assert entries(service, "push") == []


# -- 3. decline ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_request_then_decline_with_a_reason(office, service, staff, messaging_spec):
    booking, ref = make_request(service, office)
    assert service.bookings.booked_counts(office, [booking["slot"]]) == {booking["slot"]: 1}
    answer = staff.act("decline", ref, reason_text="ご希望の相談内容はオンラインでは対応できないため")
    assert "お断りし" in answer
    stored = service.bookings.get(ref)
    assert stored["status"] == "cancelled" and stored["office_confirmation"] == "declined"
    assert service.bookings.booked_counts(office, [booking["slot"]]) == {}
    [text] = push_texts(service)
    profile = service.offices[office]
    assert "お受けできませんでした" in text and "オンラインでは対応できない" in text
    assert "窓口" in text and "予約する" in text
    if profile.contact.phone:
        assert profile.contact.phone in text
    [notice] = entries(service, "declined")
    assert "オンラインでは" not in json.dumps(notice, ensure_ascii=False)  # a typed reason stays out of notices
    assert_no_personal_data(notice)
    assert_valid_pushes(service, messaging_spec)
    staff.act("decline", ref, reason_text="again")
    assert len(entries(service, "push")) == 1
    driver = ChatDriver(service, user=USER)
    driver.say("予約の確認")
    assert "現在、ご予約はありません" in driver.last_text()


def test_decline_reasons_come_from_the_profile_and_a_reason_is_required(service, staff, profiles_copy):
    import yaml

    path = profiles_copy / "noto.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["after_booking"]["decline_reasons"] = ["ご希望の日時に担当者の都合がつかないため"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    offices = load_offices(profiles_copy)
    custom = BotService(service.settings, client=service.client, offices=offices, clock=service.clock)
    member = Staff(create_app(custom.settings, service=custom))
    _, ref = make_request(custom, "noto")
    assert "ご希望の日時に担当者の都合がつかないため" in member.page(ref)
    assert "理由を選ぶか" in member.act("decline", ref, reason="", reason_text=" ")
    member.act("decline", ref, reason="ご希望の日時に担当者の都合がつかないため")
    assert "担当者の都合がつかない" in push_texts(custom)[0]


# -- 4. propose another time ------------------------------------------------------------------------------


def propose(service: BotService, staff: Staff, ref: str) -> tuple[str, dict[str, str]]:
    """Staff propose the first slot the console offers; (held slot key, the push's buttons label -> data)."""
    slots = re.findall(r'<option value="(2026-[^"]+)"', staff.page(ref).split('id="propose_slot"')[1].split("</select>")[0])
    assert slots and service.bookings.get(ref)["slot"] not in slots
    assert "別の日時を提案し" in staff.act("propose", ref, slot=slots[0])
    push = entries(service, "push")[-1]
    buttons = {item["action"]["label"]: item["action"]["data"]
               for message in json.loads(push["messages"]) for item in (message.get("quickReply") or {}).get("items", [])}
    return slots[0], buttons


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_request_then_propose_then_accept(office, service, staff, messaging_spec):
    booking, ref = make_request(service, office)
    slot, buttons = propose(service, staff, ref)
    stored = service.bookings.get(ref)
    assert stored["office_confirmation"] == "proposed" and stored["proposal"]["slot"] == slot
    held_ref = stored["proposal"]["ref"]
    held = service.bookings.get(held_ref)
    assert held["status"] == "held" and held["user"] == USER
    assert not set(held) & {"name", "number", "email", "phone"}  # personal data stays on the request
    assert "仮押さえ" in staff.page(held_ref) and "この申込みを確定する" not in staff.page(held_ref)
    assert "利用者の返事を待っています" in staff.page(ref)
    assert service.bookings.booked_counts(office, [booking["slot"], slot]) == {booking["slot"]: 1, slot: 1}
    assert set(buttons) == {"この日時でお願いする", "都合が悪い"}
    text = push_texts(service)[0]
    assert "別の日時をご提案します" in text and "までにお返事がない場合" in text
    assert_valid_pushes(service, messaging_spec)
    [notice] = entries(service, "proposed")
    assert_no_personal_data(notice)
    staff.act("propose", ref, slot=slot)  # a double click holds once and pushes once
    assert len(entries(service, "push")) == 1 and len(entries(service, "proposed")) == 1
    driver = ChatDriver(service, user=USER)
    driver.send("postback", buttons["この日時でお願いする"])
    assert "予約が確定しました" in driver.last_text()
    moved = service.bookings.get(held_ref)
    assert moved["status"] == "booked" and moved["office_confirmation"] == "confirmed" and moved["moved_from"] == ref
    assert (moved["name"], moved["phone"], moved["consent"]) == (booking["name"], booking["phone"], booking["consent"])
    old = service.bookings.get(ref)
    assert old["status"] == "cancelled" and old["moved_to"] == held_ref
    assert service.bookings.booked_counts(office, [booking["slot"], slot]) == {slot: 1}
    [accepted] = entries(service, "proposal_accepted")
    assert_no_personal_data(accepted)
    driver.send("postback", buttons["この日時でお願いする"])  # tapped again: nothing changes
    assert T.PROPOSAL_STALE in driver.last_text() and len(entries(service, "proposal_accepted")) == 1
    driver.say("予約の確認")
    assert f"予約番号 {moved['id']}・確定" in driver.last_text() and booking["id"] not in driver.last_text()


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_request_then_propose_then_the_user_declines(office, service, staff):
    booking, ref = make_request(service, office)
    slot, buttons = propose(service, staff, ref)
    held_ref = service.bookings.get(ref)["proposal"]["ref"]
    driver = ChatDriver(service, user=USER)
    driver.send("postback", buttons["都合が悪い"])
    assert "担当者にお伝えしました" in driver.last_text()
    assert service.bookings.get(held_ref)["status"] == "cancelled"
    request = service.bookings.get(ref)
    assert request["status"] == "booked" and request["office_confirmation"] == "pending"
    assert request["last_proposal"]["answer"] == "declined"
    assert service.bookings.booked_counts(office, [booking["slot"], slot]) == {booking["slot"]: 1}
    [notice] = entries(service, "proposal_declined")
    assert json.loads(notice["fields"])["request"] == ref
    driver.send("postback", buttons["この日時でお願いする"])
    assert T.PROPOSAL_STALE in driver.last_text() and service.bookings.get(ref)["status"] == "booked"
    assert "この申込みを確定する" in staff.page(ref)  # staff can act on the request again


def test_a_user_cannot_answer_someone_elses_proposal(service, staff):
    _, ref = make_request(service, "noto")
    _, buttons = propose(service, staff, ref)
    ChatDriver(service, user="U-other").send("postback", buttons["この日時でお願いする"])
    assert service.bookings.get(ref)["office_confirmation"] == "proposed"


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_request_then_propose_then_lapse(office, service, staff, clock, messaging_spec):
    from bot.staff.aftercare import Proposals

    booking, ref = make_request(service, office)
    slot, buttons = propose(service, staff, ref)
    held_ref = service.bookings.get(ref)["proposal"]["ref"]
    deadline = parse_instant(service.bookings.get(held_ref)["proposal"]["deadline"])
    assert deadline == calendar.deadline(service.offices[office], parse_instant(slot).date())
    clock.instant = deadline - timedelta(seconds=1)
    assert Proposals(service)(clock.now()) == []
    clock.instant = deadline
    driver = ChatDriver(service, user=USER)
    driver.send("postback", buttons["この日時でお願いする"])  # too late, before the task ran
    assert T.PROPOSAL_STALE in driver.last_text()
    [(request, replies)] = Proposals(service)(clock.now())
    assert request["office_confirmation"] == "pending" and request["last_proposal"]["answer"] == "lapsed"
    assert service.bookings.get(held_ref)["status"] == "cancelled"
    assert service.bookings.booked_counts(office, [booking["slot"], slot]) == {booking["slot"]: 1}
    [notice] = entries(service, "proposal_lapsed")
    assert_no_personal_data(notice)
    assert "取り消しました" in push_texts(service)[-1]
    assert_valid_pushes(service, messaging_spec)
    assert Proposals(service)(clock.now() + timedelta(hours=1)) == []  # once
    assert len(entries(service, "proposal_lapsed")) == 1


def test_an_atomic_step_refuses_a_full_slot_and_a_booking_changed_meanwhile(service):
    from bot.store import Plan, SlotFull

    booking, ref = make_request(service, "noto")
    other = {**booking, "id": "OTHER001", "user": "U-other"}
    other_ref = BookingStore.ref(other)
    store = service.bookings.store
    with pytest.raises(SlotFull):  # capacity 1 and held by the first booking
        store.act([other_ref], lambda found: Plan(bookings={other_ref: other}, hold=(other_ref,), capacity=1))
    assert store.get(other_ref) is None
    seen = []

    def decide(found):
        seen.append(found[0].get("note"))
        if len(seen) == 1:  # someone writes between the read and the step: the step reads again
            store.update(ref, {"note": "changed"})
        return Plan(bookings={ref: {**found[0], "tag": "x"}}, entries=[{"id": "n1", "kind": "confirmed", "office": "noto"}])

    store.act([ref], decide)
    assert seen == [None, "changed"]
    assert store.get(ref)["note"] == "changed" and store.get(ref)["tag"] == "x"
    assert len(entries(service, "confirmed")) == 1


# -- 5. overdue requests ----------------------------------------------------------------------------------


def with_reply_days(service: BotService, profiles_copy, office: str, days: int | None) -> BotService:
    import yaml

    path = profiles_copy / f"{office}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["after_booking"]["reply_business_days"] = days
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return BotService(service.settings, client=service.client, offices=load_offices(profiles_copy), clock=service.clock)


@pytest.mark.parametrize("office, days, requested, due", [
    # Requested on Fri 11/20; Mon 11/23 (勤労感謝の日) is a national holiday.
    ("noto", 2, "2026-11-20T10:00", "2026-11-25T17:15"),
    ("izumo", 3, "2026-11-20T10:00", "2026-11-26T17:15"),
    # Requested on Mon 12/28; the offices are closed 12/29-1/3 (年末年始).
    ("noto", 2, "2026-12-28T10:00", "2027-01-05T17:15"),
    ("izumo", 3, "2026-12-28T10:00", "2027-01-06T17:15"),
])
def test_a_request_past_the_office_reply_time_notifies_staff_once_and_shows_a_banner(office, days, requested, due,
                                                                                      service, clock):
    """The reply time of the office's terms (Noto art. 6 (3): 2 business days, Izumo art. 6 (2): 3), counted
    in business days after the request, ends at closing time: the notice comes then, not a minute before."""
    from bot.staff.aftercare import Overdue, overdue_at

    profile = service.offices[office]
    assert profile.after_booking.reply_business_days == days
    clock.instant = parse_instant(requested)
    due = parse_instant(due)
    slots = calendar.bookable_slots(profile, clock.now(), {})
    # A consultation late enough that the reply time comes before noon of the business day before it.
    index = next(i for i, slot in enumerate(slots)
                 if calendar.business_days_before(profile, slot.start.date(), 1) > due.date())
    booking, ref = make_request(service, office, index=index)
    assert overdue_at(profile, booking) == due
    clock.instant = due - timedelta(minutes=1)
    assert Overdue(service)(clock.now()) == [] and entries(service, "request_overdue") == []
    member = Staff(create_app(service.settings, service=service))
    assert "overdue-banner" not in member.client.get(f"/staff?office={office}").get_data(as_text=True)
    clock.instant = due
    [noticed] = Overdue(service)(clock.now())
    assert noticed["id"] == booking["id"]
    [notice] = entries(service, "request_overdue")
    assert json.loads(notice["fields"])["ref"] == ref
    assert_no_personal_data(notice)
    assert Overdue(service)(clock.now() + timedelta(hours=2)) == [] and len(entries(service, "request_overdue")) == 1
    page = member.client.get(f"/staff?office={office}").get_data(as_text=True)
    assert "overdue-banner" in page and booking["id"] in page
    member.act("confirm", ref)
    assert "overdue-banner" not in member.client.get(f"/staff?office={office}").get_data(as_text=True)


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_a_request_is_overdue_at_noon_of_the_last_business_day_before_it(office, service, profiles_copy, clock):
    from bot.staff.aftercare import Overdue, overdue_at

    custom = with_reply_days(service, profiles_copy, office, None)
    profile = custom.offices[office]
    booking, ref = make_request(custom, office, index=0)
    start = parse_instant(booking["start"])
    noon = parse_instant(f"{calendar.business_days_before(profile, start.date(), 1).isoformat()}T12:00")
    assert overdue_at(profile, booking) == noon
    clock.instant = noon - timedelta(minutes=1)
    assert Overdue(custom)(clock.now()) == []
    clock.instant = noon
    assert [b["id"] for b in Overdue(custom)(clock.now())] == [booking["id"]]
    assert custom.bookings.get(ref)["overdue_noticed_at"] == clock.now().isoformat()


def test_a_confirmed_or_proposed_request_is_not_overdue(service, staff, clock):
    from bot.staff.aftercare import Overdue, overdue_at

    confirmed, ref = make_request(service, "noto", index=0)
    staff.act("confirm", ref)
    _, proposed_ref = make_request(service, "noto", index=1, user="U-second")
    propose(service, staff, proposed_ref)
    clock.instant = max(overdue_at(service.offices["noto"], confirmed), clock.now())
    assert Overdue(service)(clock.now()) == []


# -- 6. the JSON API --------------------------------------------------------------------------------------


def api(app, ref: str, action: str, body: object = None, token: str | None = None):
    from urllib.parse import quote

    headers = {"Authorization": f"Bearer {token or api_token(app)}"}
    answer = app.test_client().post(f"/staff/api/bookings/{quote(ref, safe='')}/{action}", json=body, headers=headers)
    return answer.status_code, answer.get_json()


@pytest.mark.parametrize("office", REQUEST_OFFICES)
def test_api_confirm_propose_decline_with_the_consoles_effects(office, service, app, messaging_spec):
    booking, ref = make_request(service, office, index=0)
    status, answer = api(app, ref, "confirm", {})
    assert status == 200 and answer["booking"]["office_confirmation"] == "confirmed" and answer["booking"]["ref"] == ref
    assert api(app, ref, "confirm", {}) == (200, answer)  # a repeated call acts once
    assert len(entries(service, "confirmed")) == 1 and len(entries(service, "push")) == 1
    assert api(app, ref, "decline", {"reason": "x"})[0] == 409  # already confirmed

    second, second_ref = make_request(service, office, index=1, user="U-second")
    free = [s for s in calendar.bookable_slots(service.offices[office], service.clock.now(),
                                               service.bookings.booked_counts(office, [booking["slot"], second["slot"]]))
            if s.key not in (booking["slot"], second["slot"])]
    wanted = free[0].start.isoformat()
    status, answer = api(app, second_ref, "propose", {"slot": wanted})
    assert status == 200 and answer["booking"]["office_confirmation"] == "proposed"
    assert answer["booking"]["proposal"]["slot"] == free[0].key
    assert api(app, second_ref, "propose", {"slot": wanted})[0] == 200  # repeated: held once
    assert service.bookings.booked_counts(office, [free[0].key]) == {free[0].key: 1}
    assert len(entries(service, "proposed")) == 1

    third, third_ref = make_request(service, office, index=2, user="U-third")
    status, answer = api(app, third_ref, "decline", {"reason": "担当者の都合がつかないため"})
    assert status == 200 and answer["booking"]["status"] == "cancelled"
    assert service.bookings.booked_counts(office, [third["slot"]]) == {}
    assert "担当者の都合がつかない" in push_texts(service)[-1]
    assert_valid_pushes(service, messaging_spec)


def test_api_errors_are_400_404_409_and_401(service, app):
    booking, ref = make_request(service, "noto")
    assert api(app, ref, "confirm", {}, token="wrong-token-wrong")[0] == 401
    assert api(app, "noto|2026-11-25T10:00|NOPE0000", "confirm", {})[0] == 404
    assert api(app, "garbage", "confirm", {})[0] == 404
    assert api(app, ref, "teleport", {})[0] == 404
    assert api(app, ref, "decline", {})[0] == 400  # reason required
    assert api(app, ref, "decline", {"reason": 5})[0] == 400
    assert api(app, ref, "propose", {"slot": "next tuesday"})[0] == 400
    assert api(app, ref, "propose", {"slot": booking["start"]})[0] == 409  # its own slot
    assert api(app, ref, "propose", {"slot": "2026-11-21T10:00+09:00"})[0] == 409  # a Saturday
    assert api(app, ref, "confirm", ["not", "an", "object"])[0] == 400
    assert api(app, ref, "confirm", {"url": "http://plain.example"})[0] == 400
    assert api(app, ref, "attended", {})[0] == 409  # before the start
    status, answer = api(app, ref, "cancel")
    assert status == 200 and answer["booking"]["status"] == "cancelled"
    assert api(app, ref, "cancel")[0] == 409
    assert service.bookings.get(ref)["office_confirmation"] == "pending"
    assert entries(service, "confirmed") == []


def test_api_meeting_and_follow_up_and_marks(service, app, clock):
    booking, ref = make_request(service, "noto")
    status, answer = api(app, ref, "meeting", {"url": "https://zoom.example/j/1"})
    assert status == 200 and answer["booking"]["meeting_sent_at"] == NOW
    clock.instant = parse_instant(booking["start"]) + timedelta(minutes=5)
    assert api(app, ref, "no-show", {})[1]["booking"]["status"] == "no_show"
    assert api(app, ref, "attended", {})[1]["booking"]["status"] == "attended"
    slot = calendar.bookable_slots(service.offices["noto"], clock.now(), {})[0]
    status, made = api(app, ref, "follow_up", {"slot": slot.start.isoformat(), "key": "k1"})
    assert status == 200 and made["booking"]["follow_up_of"] == ref
    assert api(app, ref, "follow_up", {"slot": slot.start.isoformat(), "key": "k1"}) == (200, made)


def test_a_request_cancelled_while_a_proposal_waits_frees_the_held_slot(service, staff, clock):
    from bot.staff.aftercare import Proposals

    booking, ref = make_request(service, "noto")
    slot, buttons = propose(service, staff, ref)
    service.bookings.cancel(ref, at=NOW, by="user")
    assert service.bookings.booked_counts("noto", [slot]) == {slot: 1}
    assert Proposals(service)(clock.now()) == []  # not a lapse: no notice, no push
    assert service.bookings.booked_counts("noto", [slot]) == {}
    assert entries(service, "proposal_lapsed") == [] and len(entries(service, "push")) == 1
    ChatDriver(service, user=USER).send("postback", buttons["この日時でお願いする"])
    assert service.bookings.get(ref)["status"] == "cancelled"


def test_in_the_simulator_a_proposal_reaches_the_phone_through_the_worker_and_is_accepted(redis_client, offices):
    """`make run`'s wiring: the API over HTTP, the worker pushing to the stand-in LINE API, the phone's tap
    through the signed webhook."""
    from urllib.parse import quote

    from bot.simulator import USERS
    from bot.testing.simulator import LiveServer, SimPhone, http
    from tests.test_simulator import book_at_noto as book_in_the_phone

    settings = load_settings(line_channel_secret=None, line_channel_access_token=None, line_api_host="https://api.line.me")
    service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
    app = create_app(settings, service=service)
    with LiveServer(app) as live:
        user = USERS[0]["id"]
        phone = SimPhone(live.url, user)
        book_in_the_phone(phone)
        assert "申込み中・事業所の確認待ち" in phone.last_text()
        [booking] = service.bookings.for_user(user)
        ref = BookingStore.ref(booking)
        slot = next(s for s in calendar.bookable_slots(offices["noto"], service.clock.now(), {booking["slot"]: 1})
                    if s.key != booking["slot"])
        status, answer = http("POST", f"{live.url}/staff/api/bookings/{quote(ref, safe='')}/propose",
                              {"slot": slot.start.isoformat()}, headers={"Authorization": f"Bearer {api_token(app)}"})
        assert status == 200, answer
        assert phone.settle()  # the live server's worker pushes the proposal
        assert "別の日時をご提案します" in phone.last_text()
        phone.tap("この日時でお願いする")
        assert "予約が確定しました" in phone.last_text()
        [moved] = [b for b in service.bookings.for_user(user) if b["status"] == "booked"]
        assert moved["slot"] == slot.key and moved["office_confirmation"] == "confirmed"


def test_through_the_webhook_with_a_line_channel_every_request_validates(redis_client, offices, messaging_spec):
    """A request booked through POST /callback, a proposal from the API pushed by the worker to a stand-in
    LINE API, the user's tap on the push posted back, then a confirm: every call to LINE validates."""
    from urllib.parse import quote

    from bot.channels.line.api import LineMessaging
    from bot.channels.line.webhook import event_json, sign, webhook_body
    from bot.staff.worker import Worker
    from bot.testing.line_standin import LineStandIn
    from bot.testing.simulator import actions_of
    from tests.test_line_spec import SCHEMAS

    user = "U" + "d" * 32
    with LineStandIn() as line:
        settings = load_settings(line_channel_secret="s", line_channel_access_token="t", line_api_host=line.url)
        service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(parse_instant(NOW)))
        app = create_app(settings, service=service)
        client = SendingClient(app.test_client(), service, line.url)
        worker = Worker(service, settings, line=LineMessaging(line.url, "t"))

        def send(kind: str, text: str = "") -> None:
            body = webhook_body(event_json(user, kind, text))
            answer = client.post("/callback", data=body.encode(), content_type="application/json",
                                 headers={"X-Line-Signature": sign(body, "s")})
            assert answer.status_code == 200

        def tap(label: str, path: str = "/v2/bot/message/reply") -> None:
            [last] = [r for r in line.requests if r.path == path][-1:]
            actions = [action for message in last.body["messages"] for shown, action in actions_of(message)
                       if shown == label and action.get("type") == "postback"]
            assert actions, f"no button {label!r}"
            send("postback", actions[0]["data"])

        def staff(ref: str, action: str, body: dict) -> dict:
            answer = client.post(f"/staff/api/bookings/{quote(ref, safe='')}/{action}", json=body,
                                 headers={"Authorization": f"Bearer {api_token(app)}"})
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()["booking"]

        send("follow")
        tap("ハローワーク能登")
        for text in NOTO_USER:
            send("text", text)
        for label in ("職業相談", "同席しない", "登録済み", "はい", "用意できる", "はい", "10:00〜10:30",
                      "同意する", "この内容で予約する"):
            tap(label)
        [booking] = service.bookings.for_user(user)
        free = [s for s in calendar.bookable_slots(offices["noto"], service.clock.now(), {booking["slot"]: 1})
                if s.key != booking["slot"]]
        staff(BookingStore.ref(booking), "propose", {"slot": free[0].start.isoformat()})
        worker.run_once(service.clock.now())
        tap("都合が悪い", path="/v2/bot/message/push")
        assert service.bookings.get(BookingStore.ref(booking))["office_confirmation"] == "pending"
        staff(BookingStore.ref(booking), "propose", {"slot": free[1].start.isoformat()})
        worker.run_once(service.clock.now())
        tap("この日時でお願いする", path="/v2/bot/message/push")
        [moved] = [b for b in service.bookings.for_user(user) if b["status"] == "booked"]
        assert moved["slot"] == free[1].key and moved["office_confirmation"] == "confirmed"
        send("text", "予約の確認")

    pushes = [r for r in line.requests if r.path == "/v2/bot/message/push"]
    assert len(pushes) == 2
    problems = []
    for request in line.requests:
        if request.method == "GET":  # the user's profile, asked once before the first greeting (no body)
            assert request.path == f"/v2/bot/profile/{user}"
            continue
        schema = SCHEMAS.get(request.path)
        assert schema, f"unexpected call {request.path}"
        problems += [f"{request.path}: {e}" for e in validate_request(messaging_spec, schema, request.body)]
        if "messages" in request.body:
            problems += [f"{request.path}: {e}" for e in check_limits(request.body["messages"])]
    assert problems == []


def test_staff_cancelling_a_request_with_a_proposal_frees_both_slots_in_one_step(service, staff):
    booking, ref = make_request(service, "noto")
    slot, buttons = propose(service, staff, ref)
    assert "予約をキャンセルしました" in staff.act("cancel", ref)
    assert service.bookings.booked_counts("noto", [booking["slot"], slot]) == {}
    held = service.bookings.get(service.bookings.get(ref)["proposal"]["ref"])
    assert held["status"] == "cancelled"
    ChatDriver(service, user=USER).send("postback", buttons["この日時でお願いする"])
    assert service.bookings.booked_counts("noto", [slot]) == {}
    assert len(entries(service, "cancellation")) == 1


def test_the_answer_to_a_proposal_works_while_waiting_for_staff_and_midway_and_the_same_slot_again(service, staff):
    booking, ref = make_request(service, "noto")
    _, buttons = propose(service, staff, ref)
    driver = ChatDriver(service, user=USER)
    driver.say("担当者と話したい")
    driver.send("postback", buttons["都合が悪い"])
    assert "担当者にお伝えしました" in driver.last_text() and "担当者におつなぎしています" in driver.last_text()
    assert service.bookings.get(ref)["office_confirmation"] == "pending"
    driver.say("自動応答に戻る")
    first = service.bookings.get(ref)["last_proposal"]
    slot, buttons = propose(service, staff, ref)  # the same slot again, after the decline: a new hold
    assert slot == first["slot"] and service.bookings.get(ref)["proposal"]["ref"] != first["ref"]
    assert len(entries(service, "push")) == 2 and len({e["id"] for e in entries(service, "push")}) == 2
    driver.say("予約する")
    driver.tap("ハローワーク豊岡")  # midway through booking another office
    assert "お名前" in driver.last_text()
    driver.send("postback", buttons["この日時でお願いする"])
    assert "予約が確定しました" in driver.last_text() and "お名前" in driver.last_text()  # then the same question

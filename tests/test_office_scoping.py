"""Office scoping: staff of Noto, staff of Izumo and an admin each see and act on only what they may,
through the console and the API (day view, booking, actions, handoff threads, CSV, ICS, dead letters,
JSON); another office's ref is a 404 that looks exactly like a ref that does not exist; every action
records the account id, and the console shows its display name."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote, urlencode

import pytest

from bot import calendar
from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import load_settings
from bot.store import BookingStore
from bot.store.outbox import dead_key
from bot.testing.driver import ChatDriver

# Distinctive personal data of each seeded user (nothing else in the suite has them).
SEEDED = {
    "noto": {"user": "U" + "a1" * 16, "name": "能登 見本子", "number": "11111-22222222",
             "email": "noto-seed@example.jp", "phone": "0768-99-1111"},
    "izumo": {"user": "U" + "b2" * 16, "name": "出雲 見本男", "number": "33333-44444444",
              "email": "izumo-seed@example.jp", "phone": "0853-99-2222"},
}
NOWHERE = "noto|2026-11-25T10:00|NOPE0000"


@pytest.fixture
def service(redis_client, offices, clock):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token")
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


def seed(service: BotService, office: str, index: int = 0) -> tuple[dict, str]:
    """A request at `office` with the office's SEEDED person (the `index`-th free slot)."""
    profile = service.offices[office]
    now = service.clock.now()
    slot = calendar.bookable_slots(profile, now, {})[index]
    person = SEEDED[office]
    booking = {
        "id": f"{office[:2].upper()}SEED{index:02d}", "office": office, "slot": slot.key,
        "start": slot.start.isoformat(), "end": slot.end.isoformat(), "status": "booked",
        "office_confirmation": "pending", "created_at": now.isoformat(),
        "consent": {"version": profile.terms.version.isoformat(), "at": now.isoformat()},
        **person,
    }
    assert service.bookings.claim(booking, profile.schedule.capacity).ok
    return booking, BookingStore.ref(booking)


def waiting(service: BotService, office: str | None, user: str, message: str) -> str:
    """A user waiting for staff at `office` (None: before choosing one) who wrote `message`; the thread id."""
    driver = ChatDriver(service, user=user)
    driver.say("こんにちは")
    if office:
        driver.tap(service.offices[office].short_name)
    driver.say("担当者と話したい")
    driver.say(message)
    return service.handoffs.info(user)["thread"]


@pytest.fixture
def world(service):
    """Two offices' bookings, three waiting users (Noto, Izumo, no office yet) and three dead letters."""
    noto, noto_ref = seed(service, "noto")
    izumo, izumo_ref = seed(service, "izumo")
    threads = {
        "noto": waiting(service, "noto", "U" + "c3" * 16, "能登の相談です"),
        "izumo": waiting(service, "izumo", "U" + "d4" * 16, "出雲の相談です"),
        "": waiting(service, None, "U" + "e5" * 16, "どこの窓口かわかりません"),
    }
    dead = service.client  # dead letters of several shards: the console shows them together
    dead.xadd(dead_key(0), {"kind": "booking", "office": "noto", "summary": "能登の通知", "error": "HTTP 500"})
    dead.xadd(dead_key(5), {"kind": "booking", "office": "izumo", "summary": "出雲の通知", "error": "HTTP 500"})
    dead.xadd(dead_key(15), {"kind": "push", "to": SEEDED["izumo"]["user"], "messages": "[]", "error": "HTTP 400"})
    return {"noto": (noto, noto_ref), "izumo": (izumo, izumo_ref), "threads": threads}


@pytest.fixture
def people(staff_member):
    """Noto's staff, Izumo's staff and an admin (with TOTP), each signed in."""
    return {"noto": staff_member("能登 担当", ("noto",)), "izumo": staff_member("出雲 担当", ("izumo",)),
            "admin": staff_member("全体 管理", admin=True)}


def booking_page(member, ref: str):
    return member.client.get("/staff/booking?" + urlencode({"ref": ref}))


def api_act(member, ref: str, action: str, body: dict | None = None):
    return member.client.post(f"/staff/api/bookings/{quote(ref, safe='')}/{action}", json=body or {},
                              headers=member.bearer)


@pytest.mark.parametrize("me, mine, other", [("noto", "noto", "izumo"), ("izumo", "izumo", "noto")])
def test_staff_see_their_own_office_only_in_the_console(me, mine, other, world, people, service):
    member = people[me]
    mine_booking, mine_ref = world[mine]
    other_booking, other_ref = world[other]
    day = f"/staff?office={mine}&date={mine_booking['slot'][:10]}"
    page = member.text(day)
    assert SEEDED[mine]["name"] in page
    assert f'<option value="{other}"' not in page and f'<option value="{mine}"' in page
    assert '<option value="toyooka"' not in page  # the picker lists the account's offices only
    refused = member.client.get(f"/staff?office={other}&date={other_booking['slot'][:10]}")
    assert refused.status_code == 403 and SEEDED[other]["name"] not in refused.get_data(as_text=True)
    assert SEEDED[other]["name"] not in member.text("/staff")  # the default office is its own

    assert booking_page(member, mine_ref).status_code == 200
    foreign, missing = booking_page(member, other_ref), booking_page(member, NOWHERE)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_data() == missing.get_data()  # nothing tells the two apart

    assert member.get(f"/staff/export.csv?office={other}&from=2026-11-01&to=2026-12-31").status_code == 403
    rows = list(csv.DictReader(io.StringIO(member.get(
        f"/staff/export.csv?office={mine}&from=2026-11-01&to=2026-12-31").get_data().decode("utf-8-sig"))))
    assert [row["お名前"] for row in rows] == [SEEDED[mine]["name"]]

    feed = member.identity.feed_key(member.account, other)
    assert member.app.test_client().get(f"/staff/ics/{other}.ics?key={feed}").status_code == 403
    own = member.identity.feed_key(member.account, mine)
    assert member.app.test_client().get(f"/staff/ics/{mine}.ics?key={own}").status_code == 200
    assert member.app.test_client().get(f"/staff/ics/{other}.ics?key={own}").status_code == 403


@pytest.mark.parametrize("action, fields", [
    ("confirm", {}), ("decline", {"reason": "都合により"}), ("propose", {"slot": "2026-12-01T10:00"}),
    ("cancel", {}), ("attended", {}), ("no_show", {}), ("meeting", {"url": "https://zoom.example/j/1"}),
    ("follow_up", {"slot": "2026-12-01T10:00", "nonce": "n1"}),
])
def test_no_action_reaches_another_offices_booking(action, fields, world, people, service):
    noto = people["noto"]
    izumo, izumo_ref = world["izumo"]
    before = service.bookings.get(izumo_ref)
    outbox = len(service.outbox.entries())
    answer = noto.client.post(f"/staff/booking/{action}", data={"csrf": noto.csrf("/staff"), "ref": izumo_ref, **fields})
    assert answer.status_code == 404
    api_foreign, api_missing = api_act(noto, izumo_ref, action, fields), api_act(noto, NOWHERE, action, fields)
    assert api_foreign.status_code == api_missing.status_code == 404
    assert api_foreign.get_json() == api_missing.get_json()
    assert service.bookings.get(izumo_ref) == before and len(service.outbox.entries()) == outbox


def test_the_json_api_is_scoped_like_the_console(world, people):
    noto, izumo_staff, admin = people["noto"], people["izumo"], people["admin"]
    noto_booking, _ = world["noto"]
    izumo_booking, _ = world["izumo"]
    client = noto.app.test_client()
    day = izumo_booking["slot"][:10]
    assert client.get(f"/staff/api/bookings?office=izumo&date={day}", headers=noto.bearer).status_code == 403
    assert client.get("/staff/api/bookings?office=izumo", headers=noto.bearer).get_json() == {
        "error": "office: this account does not serve 'izumo'"}
    assert client.get("/staff/api/bookings?office=atlantis", headers=noto.bearer).status_code == 404
    got = client.get(f"/staff/api/bookings?office=izumo&date={day}", headers=izumo_staff.bearer).get_json()
    assert [b["name"] for b in got["bookings"]] == [SEEDED["izumo"]["name"]]
    for office, booking in (("noto", noto_booking), ("izumo", izumo_booking)):
        got = client.get(f"/staff/api/bookings?office={office}&date={booking['slot'][:10]}", headers=admin.bearer)
        assert got.status_code == 200 and got.get_json()["bookings"][0]["id"] == booking["id"]
    assert client.get("/staff/api/bookings?office=noto", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_handoff_threads_are_their_offices_and_the_unassigned_are_everyones(world, people, service):
    noto, admin = people["noto"], people["admin"]
    threads = world["threads"]
    listing = noto.text("/staff/handoffs")
    assert f"/staff/handoffs/{threads['noto']}" in listing and f"/staff/handoffs/{threads['']}" in listing
    assert f"/staff/handoffs/{threads['izumo']}" not in listing
    assert "能登の相談です" in noto.text(f"/staff/handoffs/{threads['noto']}")
    foreign = noto.client.get(f"/staff/handoffs/{threads['izumo']}")
    missing = noto.client.get("/staff/handoffs/0123456789abcdef")
    assert foreign.status_code == missing.status_code == 404 and foreign.get_data() == missing.get_data()
    assert noto.client.post(f"/staff/handoffs/{threads['izumo']}/reply",
                            data={"csrf": noto.csrf("/staff"), "text": "x", "nonce": "n"}).status_code == 404
    api = noto.app.test_client()
    listed = api.get("/staff/api/handoffs", headers=noto.bearer).get_json()["handoffs"]
    assert sorted(t["office"] for t in listed) == ["", "noto"]
    assert api.get("/staff/api/handoffs?office=izumo", headers=noto.bearer).status_code == 403
    assert api.post(f"/staff/api/handoffs/{threads['izumo']}/reply", json={"text": "x"},
                    headers=noto.bearer).get_json() == {"error": "handoff: no such thread"}
    assert api.post(f"/staff/api/handoffs/{threads['izumo']}/close", headers=noto.bearer).status_code == 404
    # The izumo user cannot be handed back from Noto's list either.
    who = [line for line in admin.text("/staff/handoffs").split("<tr>") if "出雲" in line]
    hashed = who[0].split('name="who" value="')[1].split('"')[0]
    noto.client.post("/staff/handoffs/resume", data={"csrf": noto.csrf("/staff/handoffs"), "who": hashed})
    assert service.handoffs.info("U" + "d4" * 16) is not None
    everything = api.get("/staff/api/handoffs", headers=admin.bearer).get_json()["handoffs"]
    assert sorted(t["office"] for t in everything) == ["", "izumo", "noto"]
    assert "出雲の相談です" in admin.text(f"/staff/handoffs/{threads['izumo']}")


def test_dead_letters_of_other_offices_are_hidden_and_pushes_are_for_admins(world, people):
    noto, admin = people["noto"], people["admin"]
    page = noto.text("/staff/outbox")
    assert "能登の通知" in page and "出雲の通知" not in page and "<td>利用者へのLINE送信</td>" not in page
    assert "送信できなかった通知が 1 件" in noto.text("/staff")
    everything = admin.text("/staff/outbox")
    assert "能登の通知" in everything and "出雲の通知" in everything and "<td>利用者へのLINE送信</td>" in everything
    assert "送信できなかった通知が 3 件" in admin.text("/staff")


def test_the_admin_sees_and_acts_on_every_office(world, people, service):
    admin = people["admin"]
    izumo, izumo_ref = world["izumo"]
    assert SEEDED["izumo"]["name"] in admin.text(f"/staff?office=izumo&date={izumo['slot'][:10]}")
    assert "申込みを確定し" in admin.act("confirm", izumo_ref).get_data(as_text=True)
    assert service.bookings.get(izumo_ref)["confirmed_by"] == admin.account.id
    assert admin.get("/staff/export.csv?office=izumo&from=2026-11-01&to=2026-12-31").status_code == 200
    key = admin.identity.feed_key(admin.account, "izumo")
    assert admin.app.test_client().get(f"/staff/ics/izumo.ics?key={key}").status_code == 200


# -- who did it -----------------------------------------------------------------------------------------------


def test_every_action_records_the_account_id_and_the_console_shows_the_name(world, people, service, clock):
    noto, izumo_staff = people["noto"], people["izumo"]
    _, noto_ref = world["noto"]
    _, izumo_ref = world["izumo"]
    by_noto, by_izumo = noto.account.id, izumo_staff.account.id

    # Console: confirm with the meeting details; API: propose, then the izumo request is declined.
    noto.act("confirm", noto_ref, meeting_id="123 456 7890")
    confirmed = service.bookings.get(noto_ref)
    assert confirmed["confirmed_by"] == confirmed["meeting_sent_by"] == by_noto
    slot = next(s for s in calendar.bookable_slots(service.offices["izumo"], clock.now(), {}) if s.key != world["izumo"][0]["slot"])
    proposed = api_act(izumo_staff, izumo_ref, "propose", {"slot": slot.start.isoformat()}).get_json()["booking"]
    assert proposed["proposed_by"] == by_izumo
    second, second_ref = seed(service, "izumo", index=3)
    declined = api_act(izumo_staff, second_ref, "decline", {"reason": "担当者の都合"}).get_json()["booking"]
    assert declined["declined_by"] == declined["cancelled_by"] == by_izumo

    # After the start: marks, the meeting details again, a follow-up, then a cancel of the follow-up.
    clock.instant = parse_instant(confirmed["start"])
    noto.login()  # a new day's session
    noto.act("attended", noto_ref)
    assert service.bookings.get(noto_ref)["marked_by"] == by_noto
    api_act(noto, noto_ref, "no_show")
    assert service.bookings.get(noto_ref)["marked_by"] == by_noto
    api_act(noto, noto_ref, "meeting", {"url": "https://zoom.example/j/2"})
    follow_slot = calendar.bookable_slots(service.offices["noto"], clock.now(), {})[0]
    made = api_act(noto, noto_ref, "follow_up", {"slot": follow_slot.start.isoformat(), "key": "k1"}).get_json()["booking"]
    assert made["booked_by"] == by_noto
    cancelled = api_act(noto, made["ref"], "cancel").get_json()["booking"]
    assert cancelled["cancelled_by"] == by_noto

    # Threads: a reply and the close carry the account.
    thread = world["threads"]["noto"]
    noto.client.post(f"/staff/handoffs/{thread}/reply", data={"csrf": noto.csrf(f"/staff/handoffs/{thread}"),
                                                              "text": "ご連絡ありがとうございます。", "nonce": "r1"})
    [reply] = [m for m in service.handoffs.messages(thread) if m["from"] == "staff"]
    assert reply["by"] == by_noto
    assert "能登 担当・" in noto.text(f"/staff/handoffs/{thread}")
    listed = noto.app.test_client().get("/staff/api/handoffs?office=noto", headers=noto.bearer).get_json()
    assert listed["handoffs"][0]["messages"][-1]["by"] == by_noto
    noto.app.test_client().post(f"/staff/api/handoffs/{thread}/close", headers=noto.bearer)
    assert service.handoffs.meta(thread)["closed_by"] == by_noto

    # The record shows names; an id the console does not know shows as it is.
    page = booking_page(noto, noto_ref).get_data(as_text=True)
    for label in ("確定した人", "接続情報を送った人", "出欠を記録した人"):
        assert f"<th>{label}</th><td>能登 担当</td>" in page.replace("\n", "").replace("  ", ""), label
    service.bookings.update(noto_ref, {"marked_by": "s-gone00"})
    assert "s-gone00" in booking_page(noto, noto_ref).get_data(as_text=True)
    izumo_staff.login()
    izumo_page = booking_page(izumo_staff, izumo_ref).get_data(as_text=True)
    assert "出雲 担当" in izumo_page and "別の日時を提案した人" in izumo_page
    assert json.dumps(service.bookings.get(second_ref), ensure_ascii=False).count(by_izumo) == 2

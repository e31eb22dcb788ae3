"""The audit trail as staff use the console, the API and `hwbot staff`: every login, view of personal
data, action, export and account change is an entry with the right account, office, ref and client
address; and no entry holds a name, 求職番号, email, phone, what a user or staff wrote, or a password."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import quote, urlencode

import pyotp

from bot import calendar
from bot.clock import parse_instant
from bot.store.staff_accounts import digest
from bot.testing.staff import StaffMember
# The scoping tests' world: two offices' seeded bookings, three waiting users, three dead letters.
from test_office_scoping import SEEDED, people, seed, service, world  # noqa: F401

QUESTION = "能登の相談です"  # what the waiting Noto user wrote (test_office_scoping.world)
REPLY = "お問い合わせありがとうございます。明日お電話します。"


def entries(service) -> list[dict[str, str]]:
    return service.audit.query(limit=10_000)


def has(found: list[dict[str, str]], account: str, action: str, **fields: str) -> bool:
    return any(e["account"] == account and e["action"] == action and all(e[k] == v for k, v in fields.items())
               for e in found)


def test_every_login_view_action_export_and_account_change_is_audited_without_personal_data(
        world, people, service, clock, app, identity, cli):
    noto, izumo, admin = people["noto"], people["izumo"], people["admin"]
    noto_booking, noto_ref = world["noto"]
    izumo_booking, izumo_ref = world["izumo"]
    thread = world["threads"]["noto"]
    nobody_thread = world["threads"][""]
    secrets = [noto.password, izumo.password, admin.password]

    # Logins: the fixture's, a wrong password, and a name typed where the account goes (never recorded).
    stranger = StaffMember(app, identity, noto.account, "wrong-password-123")
    assert stranger.login().status_code == 401
    typo = StaffMember(app, identity, noto.account, SEEDED["noto"]["phone"])
    assert typo.login(login=SEEDED["noto"]["name"]).status_code == 401
    secrets += ["wrong-password-123"]

    # Views of personal data, in the console and through the API.
    day = noto_booking["slot"][:10]
    noto.text(f"/staff?office=noto&date={day}")
    noto.text("/staff/booking?" + urlencode({"ref": noto_ref}))
    noto.text("/staff/handoffs")
    noto.text(f"/staff/handoffs/{thread}")
    assert noto.client.get("/staff/booking?" + urlencode({"ref": izumo_ref})).status_code == 404  # another office's
    assert noto.client.get("/staff/booking?ref=" + quote(SEEDED["izumo"]["name"])).status_code == 404  # garbage
    api = app.test_client()
    api.get(f"/staff/api/bookings?office=izumo&date={izumo_booking['slot'][:10]}", headers=izumo.bearer)
    api.get("/staff/api/handoffs", headers=izumo.bearer)

    # Actions: console and API, each office's own.
    noto.act("confirm", noto_ref, meeting_id="123 456 7890", passcode="secret-pass-42")
    slot = next(s for s in calendar.bookable_slots(service.offices["izumo"], clock.now(), {})
                if s.key != izumo_booking["slot"])
    api.post(f"/staff/api/bookings/{quote(izumo_ref, safe='')}/propose", json={"slot": slot.start.isoformat()},
             headers=izumo.bearer)
    _, second_izumo = seed(service, "izumo", index=4)
    api.post(f"/staff/api/bookings/{quote(second_izumo, safe='')}/decline", json={"reason": "担当者の都合"},
             headers=izumo.bearer)
    _, second_noto = seed(service, "noto", index=3)
    noto.act("cancel", second_noto)
    noto.act("meeting", noto_ref, url="https://zoom.example/j/9")
    secrets.append("secret-pass-42")

    # Threads: a reply and the close in the console, a reply through the API.
    noto.client.post(f"/staff/handoffs/{thread}/reply",
                     data={"csrf": noto.csrf(f"/staff/handoffs/{thread}"), "text": REPLY, "nonce": "n1"})
    api.post(f"/staff/api/handoffs/{nobody_thread}/reply", json={"text": REPLY}, headers=izumo.bearer)
    noto.client.post(f"/staff/handoffs/{thread}/close", data={"csrf": noto.csrf(f"/staff/handoffs/{thread}")})

    # Exports.
    noto.get("/staff/export.csv?office=noto&from=2026-11-01&to=2026-12-31")
    feed = identity.feed_key(noto.account, "noto")
    assert api.get(f"/staff/ics/noto.ics?key={feed}").status_code == 200

    # Account changes: the command line, a TOTP enrolment, a revoked session, logouts.
    added = cli("staff", "add", "酒田 新人", "--office", "sakata", "--id", "sakata-new")
    assert added.exit_code == 0, added.output
    token_out = cli("staff", "token", "sakata-new").output.strip().splitlines()[-1]
    token_id = token_out.split("_")[1]
    cli("staff", "revoke-token", "sakata-new", token_id)
    cli("staff", "reset", "sakata-new")
    cli("staff", "disable", "sakata-new")
    secrets.append(token_out)
    page = noto.text("/staff/account/totp")
    totp_secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    noto.client.post("/staff/account/totp", data={"code": pyotp.TOTP(totp_secret).at(clock.now()),
                                                  "csrf": noto.csrf("/staff/account/totp")})
    secrets.append(totp_secret)
    second = StaffMember(app, identity, izumo.account, izumo.password)
    second.login()
    mine = digest(izumo.client.get_cookie("hwbot_staff", path="/staff").value)
    [other] = [d for d in re.findall(r'name="session" value="([0-9a-f]{64})"', izumo.text("/staff/account")) if d != mine]
    izumo.client.post("/staff/account/revoke", data={"session": other, "csrf": izumo.csrf("/staff/account")})
    izumo.client.post("/staff/account/logout-everywhere", data={"csrf": izumo.csrf("/staff/account")})
    noto.post("/staff/logout")
    clock.advance(timedelta(minutes=1))

    found = entries(service)
    expected = [
        (noto.account.id, "login", {"detail": "password", "client": "127.0.0.1"}),
        (admin.account.id, "login_password", {}),
        (admin.account.id, "login", {"detail": "totp"}),
        (noto.account.id, "login_failed", {"detail": "wrong_password"}),
        ("?", "login_failed", {"detail": "unknown_account"}),
        (noto.account.id, "day_view", {"office": "noto", "detail": day}),
        (noto.account.id, "booking_view", {"office": "noto", "ref": noto_ref}),
        (noto.account.id, "booking_view", {"office": "", "ref": izumo_ref, "detail": "not_found"}),
        (noto.account.id, "booking_view", {"ref": "?", "detail": "not_found"}),
        (noto.account.id, "handoffs_view", {}),
        (noto.account.id, "thread_view", {"office": "noto", "ref": thread}),
        (izumo.account.id, "api_bookings", {"office": "izumo"}),
        (izumo.account.id, "api_handoffs", {"detail": "2"}),
        (noto.account.id, "booking_confirm", {"office": "noto", "ref": noto_ref, "detail": "ok"}),
        (izumo.account.id, "booking_propose", {"office": "izumo", "ref": izumo_ref, "detail": "api"}),
        (izumo.account.id, "booking_decline", {"office": "izumo", "ref": second_izumo}),
        (noto.account.id, "booking_cancel", {"office": "noto", "ref": second_noto}),
        (noto.account.id, "booking_meeting", {"office": "noto", "ref": noto_ref}),
        (noto.account.id, "thread_reply", {"office": "noto", "ref": thread}),
        (izumo.account.id, "thread_reply", {"office": "", "ref": nobody_thread, "detail": "api"}),
        (noto.account.id, "thread_close", {"office": "noto", "ref": thread}),
        (noto.account.id, "export_csv", {"office": "noto", "detail": "2026-11-01..2026-12-31"}),
        (noto.account.id, "ics_fetch", {"office": "noto"}),
        ("cli", "account_add", {"ref": "sakata-new", "detail": "staff", "client": "cli"}),
        ("cli", "token_issue", {"ref": "sakata-new", "detail": token_id}),
        ("cli", "token_revoke", {"ref": "sakata-new", "detail": token_id}),
        ("cli", "account_reset", {"ref": "sakata-new"}),
        ("cli", "account_disable", {"ref": "sakata-new"}),
        (noto.account.id, "totp_enrol", {}),
        (izumo.account.id, "session_revoke", {"detail": "other"}),
        (izumo.account.id, "logout_everywhere", {"detail": "1"}),
        (noto.account.id, "logout", {}),
    ]
    missing = [(account, action, fields) for account, action, fields in expected if not has(found, account, action, **fields)]
    assert missing == [], missing

    # Personal data, what people wrote, and secrets: in no field of any entry.
    forbidden = [value for person in SEEDED.values() for key, value in person.items() if key != "user"]
    forbidden += [person["user"] for person in SEEDED.values()]
    forbidden += [QUESTION, REPLY, "担当者の都合", "123 456 7890", *secrets]
    for entry in found:
        text = json.dumps(entry, ensure_ascii=False)
        for value in forbidden:
            assert value not in text, (value, entry)
    assert all(set(entry) == {"at", "account", "action", "office", "ref", "client", "detail"} for entry in found)
    # Each entry's time is the app's clock (the command line's is its own).
    assert all(entry["at"].startswith("2026-11-20T10:0") for entry in found if entry["account"] != "cli")


def test_the_api_follow_up_and_marks_are_audited_after_the_start(world, people, service, clock):
    noto = people["noto"]
    noto_booking, noto_ref = world["noto"]
    clock.instant = parse_instant(noto_booking["start"])
    client = noto.app.test_client()
    quoted = quote(noto_ref, safe="")
    client.post(f"/staff/api/bookings/{quoted}/attended", json={}, headers=noto.bearer)
    slot = calendar.bookable_slots(service.offices["noto"], clock.now(), {})[0]
    made = client.post(f"/staff/api/bookings/{quoted}/follow_up", json={"slot": slot.start.isoformat(), "key": "k"},
                       headers=noto.bearer).get_json()["booking"]
    refused = client.post(f"/staff/api/bookings/{quoted}/cancel", json={}, headers=noto.bearer)
    assert refused.status_code == 409
    found = entries(service)
    account = noto.account.id
    assert has(found, account, "booking_attended", office="noto", ref=noto_ref, detail="api")
    assert has(found, account, "booking_follow_up", office="noto", ref=noto_ref, detail="api")
    assert has(found, account, "booking_booked", office="noto", ref=made["ref"], detail="follow_up")
    assert has(found, account, "booking_cancel", office="noto", ref=noto_ref, detail="refused")

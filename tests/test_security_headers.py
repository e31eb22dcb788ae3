"""Every route of the app answers with the security headers of its class (`bot.web.security_headers`).

The test walks `app.url_map` itself: a new route gets checked without anyone adding it here, and a
route with a parameter this file has no sample for fails until one is added.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import quote

import pytest

from bot.service import BotService
from bot.settings import load_settings
from bot.store import BookingStore
from bot.testing.driver import ChatDriver, book_at_noto
from bot.testing.staff import CHEAP_HASHER, make_account, sign_in
from bot.web import create_app, route_class

SLOT = "11月25日(水) 10:00〜10:30"

# A value for each route parameter, per endpoint where one value does not fit all.
SAMPLES = {
    "action": "attended", "office": "noto", "office_id": "noto", "thread": "0123456789abcdef",
    "rest": "v2/bot/info", "filename": "nothing.txt",
}
ENDPOINT_SAMPLES = {
    ("staff_static.static", "filename"): "staff.js",
    ("simulator.static", "filename"): "sim.js",
    ("simulator.line_profile", "user"): "U" + "0" * 31 + "1",
}


def settings_for(simulator: bool):
    line = {} if simulator else {"line_channel_secret": "secret", "line_channel_access_token": "token"}
    return load_settings(**line)


@pytest.fixture(params=["simulator", "line"])
def app(request, redis_client, offices, clock):
    service = BotService(settings_for(request.param == "simulator"), client=redis_client, offices=offices,
                         clock=clock)
    app = create_app(service.settings, service=service)
    app.config["booked_ref"] = BookingStore.ref(book_at_noto(ChatDriver(service, user="U-headers"), SLOT))
    return app


def directives(csp: str) -> dict[str, list[str]]:
    found = {}
    for part in csp.split(";"):
        name, *values = part.split()
        found[name] = values
    return found


def check(path: str, response) -> None:
    """The headers `path`'s class must carry (the assertion names the path and the status)."""
    where = f"{path} ({response.status_code})"
    headers = response.headers
    kind = route_class(path)
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    csp = directives(headers.get("Content-Security-Policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], where
    assert csp.get("default-src") == ["'none'"], where
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"], where
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"], where
    if kind == "staff":
        assert headers.get("Cache-Control") == "no-store", where
        assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"], where
    elif kind == "terms":
        assert "script-src" not in csp and [s.startswith("'sha256-") for s in csp["style-src"]] == [True], where
    elif kind == "simulator":
        assert csp["script-src"] == ["'self'"] and csp["connect-src"] == ["'self'"], where
        if not path.startswith(("/sim/static/", "/sim/richmenu.png")):
            assert headers.get("Cache-Control") == "no-store", where
    else:
        assert kind == "plain" and set(csp) == {"default-src", "frame-ancestors", "base-uri"}, where
        assert headers.get("Cache-Control") == "no-store", where


def urls(app) -> list[tuple[str, str]]:
    """(method, path) for every rule and each of its methods, parameters filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        values = {}
        for name in rule.arguments:
            value = ENDPOINT_SAMPLES.get((rule.endpoint, name), SAMPLES.get(name))
            if name == "ref":
                value = app.config["booked_ref"]
            assert value is not None, f"add a sample value for {rule.endpoint}'s parameter {name!r} to SAMPLES"
            values[name] = value
        path = rule.rule
        for name, value in values.items():
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", quote(value, safe="/"), path)
        for method in sorted(rule.methods & {"GET", "POST", "PUT", "DELETE"}):
            found.append((method, path))
    return found


def test_every_route_carries_the_headers_of_its_class_signed_in_or_not(app):
    walked = urls(app)
    assert ("GET", "/staff/audit") in walked and ("GET", "/offices/noto/terms") in walked
    anonymous = app.test_client()
    admin = sign_in(app, admin=True)  # an admin: the audit pages too
    staff = admin.client
    statuses = {}
    for method, path in walked:
        for client, extra in ((anonymous, {}), (staff, {"headers": admin.bearer})):
            response = client.open(path, method=method, **extra)
            response.close()  # a file answer (static files, the simulator page) holds the file open
            check(path, response)
            statuses[(method, path, client is staff)] = response.status_code
    # The signed-in walk reached the pages themselves, not only the login redirect.
    assert statuses[("GET", "/staff", True)] == 200 and statuses[("GET", "/staff", False)] == 302
    assert statuses[("GET", "/staff/audit", True)] == 200
    assert statuses[("GET", "/staff/api/audit", True)] == 200 and statuses[("GET", "/staff/api/audit", False)] == 401
    assert statuses[("GET", "/staff/static/staff.js", False)] == 200
    assert statuses[("GET", "/offices/noto/terms", False)] == 200
    # An unknown path (404) gets the plain set.
    check("/nowhere", anonymous.get("/nowhere"))


def test_the_terms_pages_inline_style_is_the_one_its_policy_allows(app):
    response = app.test_client().get("/offices/noto/terms")
    page = response.get_data(as_text=True)
    [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert directives(response.headers["Content-Security-Policy"])["style-src"] == [f"'sha256-{digest}'"]
    assert "<script" not in page and " style=" not in page


INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.I)


def test_no_staff_page_has_inline_script_or_style(app):
    """What the CSP would block in a browser: inline <script>/<style>, style= and on...= attributes."""
    ref = app.config["booked_ref"]
    page = app.test_client().get("/staff/login").get_data(as_text=True)
    assert not INLINE.search(page)
    staff = sign_in(app, admin=True).client
    service = app.extensions["hwbot"]
    ChatDriver(service, user="U-waiting").say("担当者と話したい")
    [thread] = [info["thread"] for info in service.handoffs.waiting().values() if info.get("thread")]
    for path in ("/staff", "/staff?office=noto&date=2026-11-25", f"/staff/booking?ref={quote(ref)}",
                 "/staff/handoffs", f"/staff/handoffs/{thread}", "/staff/outbox", "/staff/audit", "/staff/account"):
        response = staff.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert not INLINE.search(body), (path, INLINE.search(body).group(0))
        assert "/staff/static/staff.css" in body and "/staff/static/staff.js" in body
    booking = staff.get(f"/staff/booking?ref={quote(ref)}").get_data(as_text=True)
    assert booking.count("data-confirm=") >= 2  # cancel and (after the start) no-show still ask first


def test_the_sign_in_pages_have_no_inline_script_or_style(app):
    """The set-password, second-factor, TOTP set-up and recovery-code pages, as a new admin meets them."""
    from bot.staff.identity import Identity

    identity = Identity(app.extensions["hwbot"], hasher=CHEAP_HASHER)
    account = identity.create("見出し 確認", (), admin=True)
    browser = app.test_client()
    link = identity.set_link(account.id)
    pages = [browser.get(f"/staff/password?token={link}")]
    identity.set_password_with_link(link, "midashi-kakunin-77")
    page = browser.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    browser.post("/staff/login", data={"account": account.id, "password": "midashi-kakunin-77", "csrf": csrf})
    pages.append(browser.get("/staff/account/totp"))
    enrol = pages[-1].get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', enrol).group(1).replace(" ", "")
    import pyotp

    csrf = re.search(r'name="csrf" value="([^"]+)"', enrol).group(1)
    pages.append(browser.post("/staff/account/totp", data={"code": pyotp.TOTP(secret).at(identity.now()), "csrf": csrf}))
    other, password, secret = make_account(identity, "見出し 二", (), admin=True, totp=True)
    second = app.test_client()
    page = second.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    second.post("/staff/login", data={"account": other.id, "password": password, "csrf": csrf})
    pages.append(second.get("/staff/login/code"))
    for response in pages:
        body = response.get_data(as_text=True)
        assert response.status_code == 200, response.status_code
        assert not INLINE.search(body), INLINE.search(body).group(0)
        check(response.request.path, response)
    assert "recovery-codes" in pages[2].get_data(as_text=True) and 'id="code"' in pages[3].get_data(as_text=True)

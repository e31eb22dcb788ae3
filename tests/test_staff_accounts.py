"""Staff accounts end to end: `hwbot staff`, the one-time set-password link, password rules, TOTP and
recovery codes on a frozen clock, sessions (list, revoke, everywhere, disable), API tokens, and the
failed-login backoff under a burst of wrong passwords over loopback."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from datetime import timedelta

import pyotp
import pytest

from bot.service import BotService
from bot.settings import load_settings
from bot.staff.identity import (ACCOUNT_CAP_S, ACCOUNT_FREE, PAIR_CAP_S, Identity, password_problems, short_agent)
from bot.store.staff_accounts import digest, link_key
from bot.testing.simulator import LiveServer
from bot.testing.staff import StaffMember, make_account
from bot.web import create_app


@pytest.fixture
def service(redis_client, offices, clock):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token")
    return BotService(settings, client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def run(cli):
    """`hwbot staff ...` against the test Redis, as an operator runs it on the host."""
    return lambda *args: cli("staff", *args)


def link_token(output: str) -> str:
    return re.search(r"/staff/password\?token=(\S+)", output).group(1)


def set_password(client, token: str, password: str, again: str | None = None):
    """Submit the set-password form as a browser does (the CSRF token of the login page when the link's
    own page has no form any more)."""
    page = client.get(f"/staff/password?token={token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page) or re.search(
        r'name="csrf" value="([^"]+)"', client.get("/staff/login").get_data(as_text=True))
    return client.post("/staff/password", data={"token": token, "password": password,
                                                "again": password if again is None else again,
                                                "csrf": csrf.group(1)})


# -- hwbot staff ------------------------------------------------------------------------------------------


def test_add_prints_the_id_and_a_one_time_link_that_sets_the_password_once(run, app, identity, redis_client):
    result = run("add", "能登 太郎", "--office", "noto", "--id", "noto-taro")
    assert result.exit_code == 0, result.output
    assert "id: noto-taro" in result.output and "http://127.0.0.1:8000/staff/password?token=" in result.output
    token = link_token(result.output)
    assert redis_client.get(link_key(digest(token))) == "noto-taro" and token not in json.dumps(redis_client.keys("*"))
    assert 24 * 3600 - 60 < redis_client.ttl(link_key(digest(token))) <= 24 * 3600  # it expires by itself
    client = app.test_client()
    page = client.get(f"/staff/password?token={token}").get_data(as_text=True)
    assert "能登 太郎" in page and "noto-taro" in page
    for bad, why in (("short-pass", "12文字以上"), ("password1234", "よく使われる"), ("Noto-Taro-2026!", "アカウント名"),
                     ("aaaaaaaaaaaaaaaa", "単純")):
        refused = set_password(client, token, bad)
        assert refused.status_code == 400 and why in refused.get_data(as_text=True), bad
    assert "一致しません" in set_password(client, token, "kumo-no-ue-7781", "kumo-no-ue-7782").get_data(as_text=True)
    done = set_password(client, token, "kumo-no-ue-7781")  # the refused tries used nothing up
    assert done.status_code == 302 and done.location.endswith("/staff/login")
    assert app.test_client().get(f"/staff/password?token={token}").status_code == 404
    again = set_password(client, token, "another-pass-9921")
    assert again.status_code == 404 and "使用済みか、有効期限が切れています" in again.get_data(as_text=True)
    member = StaffMember(app, identity, identity.require("noto-taro"), "kumo-no-ue-7781")
    assert member.login().location.endswith("/staff")
    assert member.login(login="能登 太郎").location.endswith("/staff")  # by display name too


def test_a_newer_link_replaces_the_older_and_valid_hours_bound_it(run, app, redis_client):
    first = link_token(run("add", "出雲 一郎", "--office", "izumo", "--id", "izumo-ichiro").output)
    second = run("reset", "izumo-ichiro", "--valid-hours", "1")
    assert second.exit_code == 0, second.output
    newer = link_token(second.output)
    assert redis_client.exists(link_key(digest(first))) == 0
    assert 3600 - 60 < redis_client.ttl(link_key(digest(newer))) <= 3600
    assert app.test_client().get(f"/staff/password?token={first}").status_code == 404
    assert set_password(app.test_client(), newer, "izumo-taisha-8080").status_code == 302
    assert run("reset", "izumo-ichiro", "--valid-hours", "100").exit_code == 2


def test_add_refuses_an_unknown_office_naming_it_and_the_valid_ids(run):
    result = run("add", "誰か", "--office", "atlantis")
    assert result.exit_code == 1
    assert "'atlantis'" in result.output and "valid ids: hamamatsu, izumo, noto, sakata, toyooka" in result.output
    assert "at least one office" in run("add", "誰か").output
    assert run("add", "管理 者", "--admin").exit_code == 0  # an admin serves every office
    taken = run("add", "管理 者", "--office", "noto")
    assert taken.exit_code == 1 and "unique" in taken.output
    assert "not a valid id" in run("add", "利用者", "--office", "noto", "--id", "user").output
    assert "no staff account 'nobody'" in run("disable", "nobody").output


def test_list_token_tokens_revoke_and_disable(run, app, identity):
    run("add", "豊岡 花子", "--office", "toyooka", "--id", "hanako")
    issued = run("token", "hanako")
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]
    assert re.fullmatch(r"hwbot_[0-9a-f]{8}_[\w-]{40,}", token)  # alone on the last line
    token_id = token.split("_")[1]
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/staff/api/bookings?office=toyooka", headers=bearer).status_code == 200
    assert client.get("/staff/api/bookings?office=noto", headers=bearer).status_code == 403
    [listed] = json.loads(run("list", "--json").output)
    assert listed.pop("created_at")  # the command's own clock
    assert listed == {"id": "hanako", "name": "豊岡 花子", "role": "staff", "offices": ["toyooka"],
                      "disabled_at": None, "totp": False, "tokens": [token_id]}
    assert token_id in run("tokens", "hanako").output
    second = run("token", "hanako").output.strip().splitlines()[-1]
    assert run("revoke-token", "hanako", token_id).exit_code == 0
    assert client.get("/staff/api/bookings?office=toyooka", headers=bearer).status_code == 401  # at once
    assert client.get("/staff/api/bookings?office=toyooka", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert "no token" in run("revoke-token", "hanako", token_id).output
    text = run("list").output
    assert "hanako\t豊岡 花子\tstaff\ttoyooka\tactive" in text
    assert run("disable", "hanako").exit_code == 0
    assert client.get("/staff/api/bookings?office=toyooka", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert "\tdisabled 20" in run("list").output
    assert "is disabled" in run("token", "hanako").output


def test_a_disabled_accounts_sessions_tokens_and_feed_stop_at_once(app, identity, staff_member):
    member = staff_member("能登 職員", ("noto",))
    other = StaffMember(app, identity, member.account, member.password)
    assert other.login().status_code == 302  # a second browser
    token = member.token
    feed = identity.feed_key(member.account, "noto")
    assert app.test_client().get(f"/staff/ics/noto.ics?key={feed}").status_code == 200
    identity.disable(member.account.id)
    for browser in (member, other):
        assert browser.client.get("/staff").status_code == 302
    assert app.test_client().get("/staff/api/bookings?office=noto",
                                 headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert app.test_client().get(f"/staff/ics/noto.ics?key={feed}").status_code == 403
    assert member.login().status_code == 401  # the right password opens nothing


def test_a_disabled_account_is_refused_even_while_its_session_key_lingers(app, identity, staff_member, service):
    """The account is read on every request: a session the disable did not reach still stops."""
    member = staff_member("出雲 職員", ("izumo",))
    service.client.hset(f"hwbot:{{staff}}:account:{member.account.id}", "disabled_at", "2026-11-20T10:00:00+09:00")
    assert member.client.get("/staff").status_code == 302


def test_reset_ends_sessions_and_clears_the_password_and_second_factor(run, app, identity, staff_member, clock):
    admin = staff_member("管理 一郎", admin=True)
    assert identity.require(admin.account.id).totp
    result = run("reset", admin.account.id)
    assert result.exit_code == 0, result.output
    assert admin.client.get("/staff").status_code == 302
    assert admin.login().status_code == 401
    clock.advance(timedelta(seconds=1))  # that failure's wait
    account = identity.require(admin.account.id)
    assert not account.totp and identity.recovery_left(account) == 0
    assert set_password(app.test_client(), link_token(result.output), "hikari-no-umi-42").status_code == 302
    again = StaffMember(app, identity, account, "hikari-no-umi-42")
    assert again.login().location.endswith("/staff/account/totp")  # an admin sets TOTP up again


# -- passwords ----------------------------------------------------------------------------------------------


def test_password_rules():
    assert password_problems("tsuki-to-hoshi-2026") == []
    assert password_problems("short") and password_problems("x" * 300)
    assert password_problems("Password1234") == ["よく使われるパスワードや単純なパスワードは使えません。"]
    assert password_problems("Qwerty123456")  # in the list of common passwords, whatever the case
    assert password_problems("yamada-hanako-99", names=("s-abc123", "山田 花子", "yamada")) != []
    assert password_problems("tsuki-to-hoshi-2026", names=("ab",)) == []  # a two-letter id is no name


def test_short_agent_names_browser_and_system():
    windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    assert short_agent(windows) == "Chrome（Windows）" and short_agent(iphone) == "Safari（iOS）"
    assert short_agent("curl/8.0") == "curl/8.0" and short_agent("") == "不明"


# -- the second factor ------------------------------------------------------------------------------------


def test_an_admin_enrols_totp_at_the_first_login_and_gets_ten_single_use_recovery_codes(app, identity, clock):
    account, password, _ = make_account(identity, "管理 花子", (), admin=True)
    member = StaffMember(app, identity, account, password)
    response = member.login()
    assert response.location.endswith("/staff/account/totp")
    assert member.client.get("/staff").location.endswith("/staff/account/totp")  # nothing else until it is set
    assert member.client.get("/staff/handoffs").status_code == 302
    page = member.text("/staff/account/totp")
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert f"otpauth://totp/hwbot:{account.id}?secret={secret}" in page
    csrf = member.csrf("/staff/account/totp")
    wrong = member.client.post("/staff/account/totp", data={"code": "000000", "csrf": csrf})
    assert wrong.status_code == 400 and "確認コードが違います" in wrong.get_data(as_text=True)
    done = member.client.post("/staff/account/totp", data={"code": pyotp.TOTP(secret).at(clock.now()), "csrf": csrf})
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", done.get_data(as_text=True))
    assert done.status_code == 200 and len(set(codes)) == 10
    assert member.client.get("/staff").status_code == 200  # signed in now
    stored = json.dumps(identity.store.client.hgetall(f"hwbot:{{staff}}:account:{account.id}"))
    assert all(code not in stored for code in codes)
    assert identity.recovery_left(identity.require(account.id)) == 10

    # The next login needs a code; a recovery code works once.
    member.post("/staff/logout", csrf_from="/staff")
    again = StaffMember(app, identity, identity.require(account.id), password, secret)
    step_one = again.login(follow=False)
    assert step_one.location.endswith("/staff/login/code")
    assert again.client.get("/staff").location.endswith("/staff/login/code")
    used = again.client.post("/staff/login/code", data={"code": codes[0].upper().replace("-", " "),
                                                         "csrf": again.csrf("/staff/login/code")})
    assert used.status_code == 302 and again.client.get("/staff").status_code == 200
    assert identity.recovery_left(identity.require(account.id)) == 9
    third = StaffMember(app, identity, identity.require(account.id), password, secret)
    third.login(follow=False)
    refused = third.client.post("/staff/login/code", data={"code": codes[0], "csrf": third.csrf("/staff/login/code")})
    assert refused.status_code == 401 and "確認コードが違います" in refused.get_data(as_text=True)


def test_totp_codes_on_a_frozen_clock_drift_and_replay(app, identity, clock):
    account, password, secret = make_account(identity, "管理 次郎", (), admin=True, totp=True)
    totp = pyotp.TOTP(secret)

    def code_login(code: str) -> int:
        member = StaffMember(app, identity, account, password, secret)
        assert member.login(follow=False).location.endswith("/staff/login/code")
        return member.client.post("/staff/login/code", data={"code": code, "csrf": member.csrf("/staff/login/code")}).status_code

    now = clock.now()
    assert code_login(totp.at(now - timedelta(seconds=90))) == 401  # three steps old
    clock.advance(timedelta(seconds=2))  # the failure's wait (1 s) passes
    assert code_login(totp.at(now - timedelta(seconds=30))) == 302  # the step before: a slow phone
    assert code_login(totp.at(now - timedelta(seconds=30))) == 401  # the same code again: refused
    clock.advance(timedelta(seconds=2))
    assert code_login(totp.at(now)) == 302
    clock.advance(timedelta(seconds=2))
    assert code_login(totp.at(now)) == 401  # replayed within its own 30 s
    clock.advance(timedelta(seconds=60))
    assert code_login(totp.at(clock.now())) == 302


def test_staff_may_turn_totp_on_and_then_need_it(app, identity, staff_member, clock):
    member = staff_member("能登 三郎", ("noto",))
    assert "未設定" in member.text("/staff/account")
    page = member.text("/staff/account/totp")
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    member.client.post("/staff/account/totp", data={"code": pyotp.TOTP(secret).at(clock.now()),
                                                    "csrf": member.csrf("/staff/account/totp")})
    assert "設定済み（回復コード残り10個）" in member.text("/staff/account")
    clock.advance(timedelta(minutes=1))
    later = StaffMember(app, identity, identity.require(member.account.id), member.password, secret)
    assert later.login(follow=False).location.endswith("/staff/login/code")
    assert later.login().status_code == 302


def test_the_session_id_changes_after_the_second_factor(app, identity):
    account, password, secret = make_account(identity, "管理 三郎", (), admin=True, totp=True)
    member = StaffMember(app, identity, account, password, secret)
    member.login(follow=False)
    before = member.client.get_cookie("hwbot_staff", path="/staff").value
    member.client.post("/staff/login/code", data={"code": member.code(), "csrf": member.csrf("/staff/login/code")})
    after = member.client.get_cookie("hwbot_staff", path="/staff").value
    assert before != after
    stolen = app.test_client()
    stolen.set_cookie("hwbot_staff", before, path="/staff")
    assert stolen.get("/staff").status_code == 302


def test_a_pending_second_factor_lapses_after_ten_minutes(app, identity, clock):
    account, password, secret = make_account(identity, "管理 四郎", (), admin=True, totp=True)
    member = StaffMember(app, identity, account, password, secret)
    member.login(follow=False)
    clock.advance(timedelta(minutes=10))
    assert member.client.get("/staff/login/code").location.endswith("/staff/login")


# -- sessions -----------------------------------------------------------------------------------------------


def test_the_account_page_lists_sessions_and_revokes_one_or_all(app, identity, staff_member, service, clock):
    office = staff_member("浜松 職員", ("hamamatsu",), login=False)
    office.client.environ_base.update(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT=(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"))
    office.login()
    clock.advance(timedelta(minutes=5))
    phone = StaffMember(app, identity, office.account, office.password)
    phone.client.environ_base.update(REMOTE_ADDR="198.51.100.20", HTTP_USER_AGENT=(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"))
    phone.login()
    page = office.text("/staff/account")
    assert "192.0.2.10" in page and "198.51.100.20" in page
    assert "Chrome（Windows）（この端末）" in page and "Safari（iOS）" in page
    assert "2026-11-20 10:05" in page  # the phone's login
    digests = re.findall(r'name="session" value="([0-9a-f]{64})"', page)
    phone_digest = next(d for d in digests if service.client.hget(f"hwbot:{{staff}}:session:{d}", "client") == "198.51.100.20")
    done = office.client.post("/staff/account/revoke", data={"session": phone_digest, "csrf": office.csrf("/staff/account")},
                              follow_redirects=True)
    assert "ログインを取り消しました" in done.get_data(as_text=True)
    assert phone.client.get("/staff").status_code == 302 and office.client.get("/staff").status_code == 200
    other = staff_member("浜松 別人", ("hamamatsu",))
    foreign = office.client.post("/staff/account/revoke", data={"session": digest("x"), "csrf": office.csrf("/staff/account")},
                                 follow_redirects=True)
    assert "すでに終了" in foreign.get_data(as_text=True)
    phone.login()
    ended = office.client.post("/staff/account/logout-everywhere", data={"csrf": office.csrf("/staff/account")},
                               follow_redirects=True)
    assert "すべての端末（2件）からログアウトしました" in ended.get_data(as_text=True)
    assert office.client.get("/staff").status_code == 302 and phone.client.get("/staff").status_code == 302
    assert other.client.get("/staff").status_code == 200  # another account's session is untouched


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(redis_client, offices, clock, identity):
    settings = load_settings(line_channel_secret="secret", line_channel_access_token="token", trusted_proxies=1)
    service = BotService(settings, client=redis_client, offices=offices, clock=clock)
    app = create_app(settings, service=service)
    account, password, _ = make_account(identity, "鳥取 職員", ("toyooka",))
    member = StaffMember(app, identity, account, password)
    member.client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.9")
    member.login()
    assert "198.51.100.9" in member.text("/staff/account") and "127.0.0.1" not in member.text("/staff/account")


# -- the failed-login backoff -------------------------------------------------------------------------------


class Browser:
    """A browser at one loopback address: real HTTP to the live server, its own cookies."""

    def __init__(self, url: str, source: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.source = parts.hostname, parts.port, source
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10, source_address=(self.source, 0))
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key] = rest.split(";")[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        finally:
            connection.close()

    def login(self, account: str, password: str) -> tuple[int, int]:
        """(status, Retry-After or 0) of one login attempt."""
        _, _, page = self.request("GET", "/staff/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        status, headers, _ = self.request("POST", "/staff/login", {"account": account, "password": password, "csrf": csrf})
        return status, int(headers.get("retry-after", 0))


def test_a_burst_of_wrong_passwords_slows_that_pair_down_and_locks_nobody_else(app, identity, service, clock):
    hammered, right, _ = make_account(identity, "能登 標的", ("noto",))
    colleague, colleague_password, _ = make_account(identity, "能登 同僚", ("noto",))
    with LiveServer(app) as live:
        attacker = Browser(live.url, "127.0.0.1")
        burst = [attacker.login(hammered.id, f"guess-{n}") for n in range(40)]
        assert burst[0] == (401, 0)
        assert all(status == 429 and wait >= 1 for status, wait in burst[1:])  # refused unchecked
        assert service.client.hget(f"hwbot:{{staff}}:fail:pair:{hammered.id}|127.0.0.1", "n") == "1"
        assert attacker.login(hammered.id, right)[0] == 429  # even the right one waits out its window

        # A colleague at the same address, another account: in at once.
        assert Browser(live.url, "127.0.0.1").login(colleague.id, colleague_password)[0] == 302
        # The hammered account's owner at another address: in at once (one failure is under the free three).
        assert Browser(live.url, "127.0.0.2").login(hammered.id, right)[0] == 302

        # The attacker keeps going, each time just after its window: the wait doubles up to its cap.
        waits = []
        for _ in range(14):
            clock.advance(timedelta(seconds=identity.wait_seconds(hammered.id, "127.0.0.1")))
            assert attacker.login(hammered.id, "still-guessing")[0] == 401
            waits.append(identity.wait_seconds(hammered.id, "127.0.0.1"))
        assert waits == [min(2 ** n, PAIR_CAP_S) for n in range(1, 15)] and waits[-1] == PAIR_CAP_S

        # Meanwhile the account waits at most a minute from anywhere else.
        status, wait = attacker.login(hammered.id, right)
        assert status == 429 and wait == PAIR_CAP_S
        owner = Browser(live.url, "127.0.0.2")
        status, wait = owner.login(hammered.id, right)
        assert status == 429 and wait == ACCOUNT_CAP_S
        clock.advance(timedelta(seconds=wait))
        assert owner.login(hammered.id, right)[0] == 302
        assert attacker.login(hammered.id, right)[0] == 429  # the attacker's address still waits
        assert Browser(live.url, "127.0.0.1").login(colleague.id, colleague_password)[0] == 302


def test_the_account_waits_after_three_failures_from_many_addresses_at_most_a_minute(app, identity, clock):
    account, password, _ = make_account(identity, "出雲 標的", ("izumo",))
    waits = []
    for n in range(10):
        waits.append(identity.login_failed(account.id, f"192.0.2.{n}"))
    # Each address failed once (its pair waits 1 s); the account's own wait starts after the free three.
    expected = [max(1, min(2 ** (n - ACCOUNT_FREE), ACCOUNT_CAP_S)) if n >= ACCOUNT_FREE else 1 for n in range(10)]
    assert waits == expected and max(waits) <= ACCOUNT_CAP_S
    member = StaffMember(app, identity, account, password)
    member.client.environ_base["REMOTE_ADDR"] = "198.51.100.77"
    assert member.login().status_code == 429
    clock.advance(timedelta(seconds=ACCOUNT_CAP_S))
    assert member.login().status_code == 302


def test_an_address_trying_many_accounts_waits_but_not_one_hammering_a_single_account(app, identity, clock, service):
    colleague, password, _ = make_account(identity, "酒田 同僚", ("sakata",))
    for name in ("alice", "bob", "carol", "dave", "erin"):
        identity.login_failed(name, "192.0.2.50")
    # A name that is no account is counted by its digest: what was typed (a mistyped password?) is not kept.
    kept = service.client.keys("hwbot:{staff}:*") + sorted(service.client.smembers("hwbot:{staff}:tried:192.0.2.50"))
    assert len(kept) > 5 and not any("alice" in key for key in kept)
    assert identity.wait_seconds(colleague.id, "192.0.2.50") == 0  # five names: no wait yet
    identity.login_failed("frank", "192.0.2.50")
    assert identity.wait_seconds(colleague.id, "192.0.2.50") == 1  # spraying: the address waits
    for _ in range(20):
        identity.login_failed("alice", "192.0.2.60")
        clock.advance(timedelta(seconds=PAIR_CAP_S))
    assert identity.wait_seconds(colleague.id, "192.0.2.60") == 0


def test_the_simulator_account_needs_no_setup_in_simulator_mode(redis_client, offices, clock):
    settings = load_settings(line_channel_secret=None, line_channel_access_token=None)
    service = BotService(settings, client=redis_client, offices=offices, clock=clock)
    create_app(settings, service=service)
    create_app(settings, service=service)  # idempotent
    identity = Identity(service)
    [account] = identity.accounts()
    assert (account.id, account.admin, account.simulator) == ("simulator", True, True)
    assert not identity.needs_totp(account)

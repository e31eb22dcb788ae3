"""A member of staff in the console and the API, for tests and testers: real accounts, real logins.

Accounts are made through `bot.staff.identity` (as `hwbot staff add` does) with argon2's cheapest
parameters (a test hashes in microseconds; production uses the library's RFC 9106 profile): the login
still verifies the stored hash, checks the second factor and opens a server-side session.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pyotp
from argon2 import PasswordHasher, profiles

from bot.staff.identity import Account, Identity

CHEAP_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_account(identity: Identity, name: str, offices: tuple[str, ...] | list[str], *, admin: bool = False,
                 totp: bool = False, account_id: str | None = None) -> tuple[Account, str, str]:
    """(account, password, TOTP secret or '') made as `hwbot staff add` makes it, its password set
    through its one-time link, and its second factor enrolled when `totp`."""
    account = identity.create(name, offices, admin=admin, account_id=account_id)
    password = "pw-" + secrets.token_urlsafe(12)
    identity.set_password_with_link(identity.set_link(account.id), password)
    secret = ""
    if totp:
        secret = identity.new_totp_secret()
        now = identity.now()
        # Enrolled a minute ago, so that the code of now is still unused for the first login.
        step = pyotp.TOTP(secret).timecode(now) - 2
        identity.store.update(account.id, {"totp": secret, "totp_at": now.isoformat(), "totp_last": str(step)})
    return identity.require(account.id), password, secret


@dataclass
class StaffMember:
    """One member of staff with a browser (Flask's test client keeps the cookies)."""

    app: Any
    identity: Identity
    account: Account
    password: str
    totp_secret: str = ""

    def __post_init__(self) -> None:
        self.client = self.app.test_client()
        self._token = ""

    def csrf(self, url: str = "/staff/login") -> str:
        page = self.client.get(url).get_data(as_text=True)
        found = CSRF.search(page)
        assert found, f"no CSRF token on {url}"
        return found.group(1)

    page_csrf = csrf

    def code(self) -> str:
        """The TOTP code of the app's current instant."""
        return pyotp.TOTP(self.totp_secret).at(self.identity.now())

    def login(self, password: str | None = None, *, login: str | None = None, follow: bool = True) -> Any:
        """Sign in with the account's id and password (and the TOTP code when it has one); the last
        response (302 to the console when it worked)."""
        response = self.client.post("/staff/login", data={
            "account": login or self.account.id, "password": self.password if password is None else password,
            "csrf": self.csrf()})
        if follow and response.status_code == 302 and response.location.endswith("/staff/login/code"):
            response = self.client.post("/staff/login/code", data={"code": self.code(),
                                                                   "csrf": self.csrf("/staff/login/code")})
        return response

    def get(self, url: str, **options: Any) -> Any:
        return self.client.get(url, **options)

    def text(self, url: str) -> str:
        return self.client.get(url).get_data(as_text=True)

    def post(self, url: str, data: dict[str, str] | None = None, *, csrf_from: str = "/staff", **options: Any) -> Any:
        """POST a form as the console does (with the CSRF token of the page `csrf_from`)."""
        return self.client.post(url, data={"csrf": self.csrf(csrf_from), **(data or {})}, **options)

    def act(self, action: str, ref: str, **fields: str) -> Any:
        """A booking action from the booking's page (flash messages followed)."""
        csrf = self.csrf("/staff/booking?" + urlencode({"ref": ref}))
        return self.client.post(f"/staff/booking/{action}", data={"csrf": csrf, "ref": ref, **fields},
                                follow_redirects=True)

    @property
    def token(self) -> str:
        """An API token of the account (issued once, as `hwbot staff token` does)."""
        if not self._token:
            _, self._token = self.identity.issue_token(self.account.id)
        return self._token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def api_token(app: Any, offices: tuple[str, ...] | None = None) -> str:
    """An API token of an account of the app's service (every office unless told), made once per app
    and offices, as `hwbot staff add` and `hwbot staff token` make them."""
    tokens = app.extensions.setdefault("hwbot-test-tokens", {})
    key = offices or ()
    if key not in tokens:
        service = app.extensions["hwbot"]
        identity = Identity(service, hasher=CHEAP_HASHER)
        account, _, _ = make_account(identity, f"API {len(tokens) + 1}", offices or tuple(service.offices))
        tokens[key] = identity.issue_token(account.id)[1]
    return tokens[key]


def sign_in(app: Any, offices: tuple[str, ...] | None = None, *, name: str | None = None,
            admin: bool = False) -> StaffMember:
    """A new account of the app's service (every office unless told; an admin with TOTP), signed in."""
    service = app.extensions["hwbot"]
    identity = Identity(service, hasher=CHEAP_HASHER)
    account, password, secret = make_account(identity, name or f"職員 {secrets.token_hex(3)}",
                                              () if admin else (offices or tuple(service.offices)),
                                              admin=admin, totp=admin)
    member = StaffMember(app, identity, account, password, secret)
    response = member.login()
    assert response.status_code == 302 and not response.location.endswith("/staff/login"), response.status_code
    return member

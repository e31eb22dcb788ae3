"""Staff identity without Flask: accounts, passwords, TOTP, recovery codes, sessions, API tokens, backoff.

One account per member of staff (`hwbot staff add`), kept in Redis (`bot.store.staff_accounts`):
an id, a display name, the offices it serves and a role (`staff`, or `admin` who sees every office).
Passwords are argon2id hashes (argon2-cffi's RFC 9106 profile); a new password is at least 12
characters, not one of the 30,000 most common passwords (zxcvbn's list) and not the account's name.
Admins must use a second factor (TOTP, pyotp), with ten single-use recovery codes; staff may.

A session is server-side (`hwbot:{staff}:session:<digest>`): the browser holds only a random id. It ends
after 2 idle hours or 12 hours in all, at logout, when revoked, and at once when its account is
disabled: `session()` reads the account with the session on every request and caches nothing.

Failed logins slow down (`wait_seconds`): each failure doubles the wait for the same account from the
same address (1 s, 2 s, 4 s … at most 15 min); the account from any address waits after 3 failures, at
most 60 s (a colleague elsewhere gets in within a minute however hard one address hammers); an address
that fails on more than 5 different accounts within an hour waits, at most 5 min (password spraying).
Attempts inside a wait are refused without being checked or counted; nothing sleeps.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.errors import AccountError, PasswordRejected
from bot.service import BotService
from bot.staff.export import feed_key
from bot.store.staff_accounts import StaffAccountStore, digest

ROLES = ("staff", "admin")
# Words that `*_by` fields already use for other actors: no account may be called so.
RESERVED_IDS = frozenset({"user", "staff", "moved", "accepted", "declined", "lapsed", "system", "admin"})
ID_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,31}")
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
NAME_MAX = 60
LOGIN_MAX = 100

PASSWORD_MIN = 12
PASSWORD_MAX = 256  # argon2 hashes anything, but a megabyte-long "password" is only a way to burn CPU

SESSION_HOURS = 12  # a session's whole life
IDLE_HOURS = 2  # without a request
PENDING_MINUTES = 10  # between the password and the second factor (or its enrolment)
SEEN_EVERY = timedelta(minutes=1)  # how often a session's last-seen time is written back
LINK_HOURS = 24  # a set-password link's default validity (`--valid-hours`)
LINK_HOURS_MAX = 72

RECOVERY_CODES = 10
TOTP_ISSUER = "hwbot"

# Failed logins (see the module doc).
PAIR_CAP_S = 15 * 60
ACCOUNT_FREE = 3
ACCOUNT_CAP_S = 60
ADDRESS_FREE = 5
ADDRESS_CAP_S = 5 * 60
FAIL_KEEP_S = 24 * 3600
ADDRESS_KEEP_S = 3600

# Simulator mode (`make run`): a ready-made admin, honoured only in simulator mode.
SIMULATOR_ACCOUNT = "simulator"
SIMULATOR_PASSWORD = "simulator"
SIMULATOR_NAME = "シミュレーター管理者"

# Session stages: waiting for the TOTP code, for the TOTP enrolment, or signed in.
TOTP, ENROL, SIGNED_IN = "totp", "enrol", "ok"


@dataclass(frozen=True)
class Account:
    """A staff account as the console and the API use it."""

    id: str
    name: str
    role: str
    offices: tuple[str, ...]
    created_at: str = ""
    disabled_at: str = ""
    totp: bool = False
    simulator: bool = False

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def serves(self, office: str) -> bool:
        """Whether the account may see and act on `office`'s bookings (admins: every office)."""
        return self.admin or office in self.offices

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Account":
        return cls(
            id=fields["id"], name=fields.get("name", fields["id"]), role=fields.get("role", "staff"),
            offices=tuple(o for o in fields.get("offices", "").split(",") if o),
            created_at=fields.get("created_at", ""), disabled_at=fields.get("disabled_at", ""),
            totp=bool(fields.get("totp")), simulator=fields.get("simulator") == "1",
        )


@dataclass(frozen=True)
class Session:
    """A live console session (what `Identity.session` found valid)."""

    id: str  # the browser's secret; stored only as its digest
    digest: str
    account: Account
    stage: str
    created: str
    seen: str
    client: str
    agent: str
    csrf: str
    office: str = ""
    totp_pending: str = ""

    @property
    def signed_in(self) -> bool:
        return self.stage == SIGNED_IN


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords, lower case: zxcvbn's ranked list, drawn from leaked-password
    corpora (Xato's ten million passwords); only its list is used, not its estimator."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, names: tuple[str, ...] = ()) -> list[str]:
    """Why a new password is refused (Japanese, for the set-password page); [] when it is fine."""
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"パスワードは{PASSWORD_MIN}文字以上にしてください。")
    if len(password) > PASSWORD_MAX:
        problems.append(f"パスワードは{PASSWORD_MAX}文字以内にしてください。")
    folded = password.strip().lower()
    if folded in common_passwords() or len(set(folded)) <= 2:
        problems.append("よく使われるパスワードや単純なパスワードは使えません。")
    squeezed = "".join(folded.split())
    for name in names:
        name = "".join(name.lower().split())
        if len(name) >= 3 and name in squeezed:
            problems.append("アカウント名やお名前を含むパスワードは使えません。")
            break
    return problems


def short_agent(agent: str) -> str:
    """`Chrome（Windows）` from a User-Agent header, for the session list (the header's start otherwise)."""
    browsers = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                ("Safari/", "Safari"))
    systems = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("Windows", "Windows"),
               ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
    browser = next((name for token, name in browsers if token in agent), "")
    system = next((name for token, name in systems if token in agent), "")
    if browser:
        return f"{browser}（{system}）" if system else browser
    return agent[:40] or "不明"


def _recovery_code() -> str:
    code = "".join(secrets.choice(ID_ALPHABET) for _ in range(10))
    return f"{code[:5]}-{code[5:]}"


def _normal_code(code: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", code).lower() if ch.isalnum())


_made: dict[tuple[Any, ...], str] = {}


def _hash_of(hasher: PasswordHasher, password: str) -> str:
    """A hash made once per process and hasher parameters (the simulator account's well-known password,
    the stand-in verified for an unknown account): each hash costs a fifth of a second."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len, hasher.salt_len,
           hasher.type, password)
    if key not in _made:
        _made[key] = hasher.hash(password)
    return _made[key]


class Identity:
    """Staff accounts over the bot's service (its Redis, clock and settings)."""

    def __init__(self, service: BotService, *, hasher: PasswordHasher | None = None):
        self.service = service
        self.settings = service.settings
        self.store = StaffAccountStore(service.client)
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's low-memory profile

    def now(self) -> datetime:
        return self.service.clock.now()

    # -- accounts ---------------------------------------------------------------------------------

    def create(self, name: str, offices: list[str] | tuple[str, ...], *, admin: bool = False,
               account_id: str | None = None) -> Account:
        """A new account (no password yet: `set_link` gives the link to set one)."""
        name = " ".join(name.split())
        if not name or len(name) > NAME_MAX or any(unicodedata.category(ch).startswith("C") for ch in name):
            raise AccountError(f"NAME: give a display name of 1 to {NAME_MAX} printable characters")
        known = list(self.service.offices)
        unknown = [office for office in offices if office not in known]
        if unknown:
            raise AccountError(f"--office: unknown office {unknown[0]!r}; valid ids: {', '.join(known)}")
        if not offices and not admin:
            raise AccountError(f"--office: a staff account serves at least one office; valid ids: {', '.join(known)}")
        if account_id is not None:
            if not ID_PATTERN.fullmatch(account_id) or account_id in RESERVED_IDS:
                raise AccountError(f"--id: {account_id!r} is not a valid id (2-32 of a-z, 0-9, '-', starting "
                                   f"with a letter; not {', '.join(sorted(RESERVED_IDS))})")
            if self.store.id_for_name(account_id) is not None:
                raise AccountError(f"--id: {account_id!r} is another account's display name")
        if name != account_id and self.store.get(name) is not None:
            raise AccountError(f"NAME: {name!r} is another account's id; choose another display name")
        fields = {
            "name": name, "role": "admin" if admin else "staff",
            "offices": ",".join(dict.fromkeys(offices)), "created_at": self.now().isoformat(),
            "feed": secrets.token_hex(16),
        }
        for _ in range(5):
            chosen = account_id or "s-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(6))
            created = self.store.create({"id": chosen, **fields})
            if created == 1:
                return Account.from_fields({"id": chosen, **fields})
            if created == -1:
                raise AccountError(f"NAME: {name!r} is taken; display names are unique (they log in by it)")
            if account_id:
                raise AccountError(f"--id: {account_id!r} is taken")
        raise AccountError("could not find a free account id")  # pragma: no cover (6 random characters)

    def get(self, account_id: str) -> Account | None:
        fields = self.store.get(account_id) if account_id else None
        return Account.from_fields(fields) if fields else None

    def require(self, account_id: str) -> Account:
        """The account, or AccountError naming the id (the CLI's commands)."""
        account = self.get(account_id)
        if account is None:
            raise AccountError(f"ID: no staff account {account_id!r} (hwbot staff list shows them)")
        return account

    def find(self, login: str) -> Account | None:
        """The account a login names: its id, or its display name."""
        login = " ".join(login.split())[:LOGIN_MAX]
        if not login:
            return None
        account = self.get(login.lower()) if ID_PATTERN.fullmatch(login.lower()) else None
        if account is None:
            found = self.store.id_for_name(login)
            account = self.get(found) if found else None
        return account

    def accounts(self) -> list[Account]:
        return [Account.from_fields(fields) for fields in self.store.all()]

    def name_of(self, account_id: str) -> str:
        """Who did something, as the console shows it: the display name, or the id of an unknown one."""
        account = self.get(account_id) if account_id else None
        return account.name if account else account_id

    def usable(self, account: Account | None) -> bool:
        """Not disabled, and the simulator's account only in simulator mode."""
        if account is None or account.disabled_at:
            return False
        return not account.simulator or self.settings.simulator_mode

    def needs_totp(self, account: Account) -> bool:
        """Admins sign in with a second factor (not the simulator's in simulator mode); staff when enrolled."""
        if account.simulator and self.settings.simulator_mode:
            return False
        return account.admin or account.totp

    def disable(self, account_id: str) -> Account:
        """Disable the account: its sessions end now; its tokens, feeds and links stop working."""
        account = self.require(account_id)
        if not account.disabled_at:
            self.store.update(account.id, {"disabled_at": self.now().isoformat()}, remove=("link",))
        self.store.drop_sessions(account.id)
        return self.require(account_id)

    # -- passwords --------------------------------------------------------------------------------

    def set_link(self, account_id: str, hours: int = LINK_HOURS) -> str:
        """A new one-time set-password link token for the account (the previous one stops working)."""
        account = self.require(account_id)
        if account.disabled_at:
            raise AccountError(f"ID: {account.id} is disabled")
        if not 1 <= hours <= LINK_HOURS_MAX:
            raise AccountError(f"--valid-hours: 1 to {LINK_HOURS_MAX}")
        token = secrets.token_urlsafe(32)
        self.store.set_link(account.id, digest(token), hours * 3600)
        return token

    def link_account(self, token: str) -> Account | None:
        """The account a set-password link is for (still valid, not used), without using it."""
        found = self.store.link_account(digest(token)) if token else None
        account = self.get(found) if found else None
        return account if self.usable(account) else None

    def set_password_with_link(self, token: str, password: str) -> Account:
        """Use the link once to set the password; PasswordRejected when the password breaks a rule or the
        link is no longer valid (nothing is used up by a refused password)."""
        account = self.link_account(token)
        if account is None:
            raise PasswordRejected("このリンクは使用済みか、有効期限が切れています。管理者に新しいリンクを依頼してください。")
        problems = password_problems(password, names=(account.id, account.name))
        if problems:
            raise PasswordRejected(" ".join(problems))
        if self.store.take_link(digest(token)) != account.id:
            raise PasswordRejected("このリンクは使用済みか、有効期限が切れています。管理者に新しいリンクを依頼してください。")
        self._store_password(account.id, password)
        self.store.drop_sessions(account.id)
        return account

    def _store_password(self, account_id: str, password: str) -> None:
        self.store.update(account_id, {"password": self.hasher.hash(password), "password_at": self.now().isoformat()})

    def check_password(self, account: Account | None, password: str) -> bool:
        """Whether `password` is the account's (as long whether the account exists or not)."""
        stored = (self.store.get(account.id) or {}).get("password") if account else None
        try:
            # An unknown account costs the same hash as a known one (the time tells nothing).
            checked = stored or _hash_of(self.hasher, "no such account")
            return self.hasher.verify(checked, password[:PASSWORD_MAX + 1]) and bool(stored)
        except (VerificationError, InvalidHashError):
            return False

    def reset(self, account_id: str, hours: int = LINK_HOURS) -> str:
        """Lost password or second factor: the password, TOTP and recovery codes go, every session ends,
        the feed URLs change; returns a new set-password link token. API tokens stay (revoke them apart)."""
        account = self.require(account_id)
        self.store.update(account.id, {"feed": secrets.token_hex(16)},
                          remove=("password", "password_at", "totp", "totp_at", "totp_last"))
        self.store.set_recovery(account.id, [])
        self.store.drop_sessions(account.id)
        return self.set_link(account.id, hours)

    def ensure_simulator_account(self) -> Account:
        """Simulator mode: the ready-made admin `simulator` (password `simulator`), made once."""
        account = self.get(SIMULATOR_ACCOUNT)
        if account is None:
            self.store.create({"id": SIMULATOR_ACCOUNT, "name": SIMULATOR_NAME, "role": "admin", "offices": "",
                               "created_at": self.now().isoformat(), "feed": secrets.token_hex(16), "simulator": "1",
                               "password": _hash_of(self.hasher, SIMULATOR_PASSWORD)})
            account = self.require(SIMULATOR_ACCOUNT)
        return account

    # -- the second factor ------------------------------------------------------------------------

    @staticmethod
    def new_totp_secret() -> str:
        return pyotp.random_base32()

    def totp_uri(self, account: Account, secret: str) -> str:
        """The otpauth:// URI an authenticator app reads (typed or pasted: no QR code is fetched)."""
        return pyotp.TOTP(secret).provisioning_uri(name=account.id, issuer_name=TOTP_ISSUER)

    def _matching_step(self, secret: str, code: str) -> int | None:
        """The time step (now, or one either side for clock drift) whose code `code` is."""
        code = _normal_code(code)
        if not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret)
        now = self.now()
        step = totp.timecode(now)
        for candidate in (step - 1, step, step + 1):
            if hmac.compare_digest(totp.generate_otp(candidate), code):
                return candidate
        return None

    def verify_second_factor(self, account: Account, code: str) -> str | None:
        """'totp' or 'recovery' when `code` is a valid TOTP code (each used once) or an unused recovery
        code (then used up); None otherwise."""
        secret = (self.store.get(account.id) or {}).get("totp")
        step = self._matching_step(secret, code) if secret else None
        if step is not None:
            return "totp" if self.store.claim_totp_step(account.id, step) else None
        normal = _normal_code(code)
        if len(normal) == 10 and self.store.use_recovery(account.id, digest(f"{account.id}:{normal}")):
            return "recovery"
        return None

    def enrol_totp(self, account: Account, secret: str, code: str) -> list[str] | None:
        """Turn TOTP on with `secret` once `code` proves the app has it; the new recovery codes (shown
        once, stored hashed), or None for a wrong code."""
        step = self._matching_step(secret, code)
        if step is None:
            return None
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        self.store.update(account.id, {"totp": secret, "totp_at": self.now().isoformat(), "totp_last": str(step)})
        self.store.set_recovery(account.id, [digest(f"{account.id}:{_normal_code(c)}") for c in codes])
        return codes

    def recovery_left(self, account: Account) -> int:
        return self.store.recovery_left(account.id)

    # -- API tokens -------------------------------------------------------------------------------

    def issue_token(self, account_id: str) -> tuple[str, str]:
        """(token id, token): the token is shown once and kept only as its digest."""
        account = self.require(account_id)
        if account.disabled_at:
            raise AccountError(f"ID: {account.id} is disabled")
        token_id = secrets.token_hex(4)
        token = f"hwbot_{token_id}_{secrets.token_urlsafe(32)}"
        self.store.add_token(account.id, token_id, digest(token), self.now().isoformat())
        return token_id, token

    def tokens(self, account_id: str) -> dict[str, str]:
        """token id -> when it was made."""
        return {token_id: info["created"] for token_id, info in self.store.tokens_of(self.require(account_id).id).items()}

    def revoke_token(self, account_id: str, token_id: str) -> None:
        account = self.require(account_id)
        if not self.store.revoke_token(account.id, token_id):
            raise AccountError(f"TOKEN_ID: {account.id} has no token {token_id!r} (hwbot staff tokens {account.id})")

    def account_for_token(self, token: str) -> Account | None:
        """The usable account a bearer token belongs to (read now: a revoked token or disabled account fails)."""
        if not token.startswith("hwbot_") or len(token) > 200:
            return None
        found = self.store.token(digest(token))
        account = self.get(found["account"]) if found else None
        return account if self.usable(account) else None

    # -- the ICS feed -----------------------------------------------------------------------------

    def feed_key(self, account: Account, office: str) -> str:
        """`<account>.<mac>` for `/staff/ics/<office>.ics?key=`: per account and office; a reset changes it."""
        secret = (self.store.get(account.id) or {}).get("feed", "")
        return f"{account.id}.{feed_key(secret, office)}"

    def feed_account(self, key: str, office: str) -> Account | None:
        """The usable account serving `office` whose feed key this is."""
        account_id, _, _ = key.rpartition(".")
        account = self.get(account_id) if ID_PATTERN.fullmatch(account_id) else None
        if not self.usable(account) or account is None or not account.serves(office):
            return None
        return account if hmac.compare_digest(self.feed_key(account, office), key) else None

    # -- sessions ---------------------------------------------------------------------------------

    def start_session(self, account: Account, stage: str, *, client: str, agent: str, office: str = "") -> str:
        """A new session; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        now = self.now().isoformat()
        lifetime = timedelta(hours=SESSION_HOURS) if stage == SIGNED_IN else timedelta(minutes=PENDING_MINUTES)
        fields = {"account": account.id, "stage": stage, "created": now, "seen": now, "client": client[:64],
                  "agent": short_agent(agent), "csrf": secrets.token_urlsafe(32)}
        if office:
            fields["office"] = office
        self.store.create_session(digest(session_id), fields, int(lifetime.total_seconds()))
        return session_id

    def session(self, session_id: str) -> Session | None:
        """The live session of this id, with its account read now; None (and the session ended) when it
        expired, or its account is gone, disabled or not allowed here."""
        if not session_id or len(session_id) > 100:
            return None
        session_digest = digest(session_id)
        fields, account_fields = self.store.session(session_digest)
        if not fields:
            return None
        account = Account.from_fields(account_fields) if account_fields else None
        now = self.now()
        try:
            created = datetime.fromisoformat(fields["created"])
            seen = datetime.fromisoformat(fields["seen"])
        except (KeyError, ValueError):
            created = seen = now - timedelta(days=365)
        stage = fields.get("stage", "")
        lifetime = timedelta(hours=SESSION_HOURS) if stage == SIGNED_IN else timedelta(minutes=PENDING_MINUTES)
        if (account is None or not self.usable(account) or now - created >= lifetime
                or now - seen >= timedelta(hours=IDLE_HOURS)):
            self.store.drop_session(session_digest, fields.get("account", ""))
            return None
        if now - seen >= SEEN_EVERY:
            self.store.touch_session(session_digest, {"seen": now.isoformat()})
        return Session(id=session_id, digest=session_digest, account=account, stage=stage,
                       created=fields["created"], seen=fields["seen"], client=fields.get("client", ""),
                       agent=fields.get("agent", ""), csrf=fields.get("csrf", ""), office=fields.get("office", ""),
                       totp_pending=fields.get("totp_pending", ""))

    def update_session(self, session: Session, **fields: str) -> None:
        self.store.touch_session(session.digest, fields)

    def promote(self, session: Session, stage: str) -> str:
        """The next stage in a new session (a new id: the one seen before the second factor stops)."""
        self.store.drop_session(session.digest, session.account.id)
        return self.start_session(session.account, stage, client=session.client, agent=session.agent,
                                  office=session.office)

    def end_session(self, session: Session) -> None:
        self.store.drop_session(session.digest, session.account.id)

    def sessions(self, account: Account) -> list[dict[str, str]]:
        """The account's signed-in sessions, newest first: digest, created, seen, client, agent."""
        found = [{**fields, "digest": session_digest} for session_digest, fields in self.store.sessions_of(account.id)
                 if fields.get("stage") == SIGNED_IN]
        return sorted(found, key=lambda fields: fields.get("created", ""), reverse=True)

    def revoke_session(self, account: Account, session_digest: str) -> bool:
        """End one of the account's own sessions (by its digest, as the account page lists them)."""
        if not any(d == session_digest for d, _ in self.store.sessions_of(account.id)):
            return False
        self.store.drop_session(session_digest, account.id)
        return True

    def end_all_sessions(self, account: Account) -> int:
        return self.store.drop_sessions(account.id)

    # -- failed logins ----------------------------------------------------------------------------

    def _backoff_who(self, login: str) -> str:
        """The counters' key: the account id, or a digest of a name that is no account (what was typed may
        be a mistyped password: it is not kept)."""
        account = self.find(login)
        return account.id if account else "?" + digest(" ".join(login.split()).lower()[:LOGIN_MAX])[:16]

    def wait_seconds(self, login: str, client: str) -> int:
        """Seconds before `login` may be tried again from `client` (0: now)."""
        who = self._backoff_who(login)
        until = self.store.blocked_until(f"{who}|{client}", who, client)
        return max(0, math.ceil(until - self.now().timestamp()))

    def login_failed(self, login: str, client: str) -> int:
        """Count a failed password or code; the seconds the next attempt must wait."""
        who = self._backoff_who(login)
        now = self.now().timestamp()
        until = self.store.record_failure(
            f"{who}|{client}", who, client, who, now=now, keep_seconds=FAIL_KEEP_S, pair_cap=PAIR_CAP_S,
            account_free=ACCOUNT_FREE, account_cap=ACCOUNT_CAP_S, address_free=ADDRESS_FREE,
            address_cap=ADDRESS_CAP_S, address_keep_seconds=ADDRESS_KEEP_S)
        return max(0, math.ceil(until - now))

    def login_succeeded(self, account: Account, client: str) -> None:
        self.store.clear_failures(f"{account.id}|{client}", account.id)


def describe(account: Account) -> dict[str, Any]:
    """An account as `hwbot staff list --json` prints it."""
    return {"id": account.id, "name": account.name, "role": account.role, "offices": list(account.offices),
            "created_at": account.created_at, "disabled_at": account.disabled_at or None, "totp": account.totp}

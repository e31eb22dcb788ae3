"""Who is asking, on the console's blueprint: sessions, the login pages, the account page, bearer tokens.

`Auth.install` puts a guard before every `/staff` request:

- `/staff/api/...` takes `Authorization: Bearer <token>` (an account's API token): 401 without a valid
  one (revoked, or its account disabled: read on every request);
- `/staff/ics/<office>.ics` checks its own per-account key;
- every other page needs a signed-in session (cookie `hwbot_staff`: a random id, HttpOnly,
  SameSite=Strict, Secure behind https; the session itself is in Redis, `bot.staff.identity`), and
  every POST form carries the session's CSRF token. Before signing in (the login, second-factor and
  set-password pages) the CSRF token and the flash messages live in Flask's signed cookie, whose key
  is derived from the channel secret.

The routes here: `/staff/login` (account and password), `/staff/login/code` (TOTP or a recovery
code), `/staff/account/totp` (TOTP enrolment: the secret as text, a code to confirm, ten recovery
codes shown once), `/staff/password?token=` (set a password with a one-time link), `/staff/account`
(sessions: when, where, which browser; revoke one, log out everywhere), `/staff/logout`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (Blueprint, Response, abort, flash, g, jsonify, redirect, render_template, request, session,
                   url_for)

from bot.errors import PasswordRejected
from bot.service import BotService
from bot.settings import Settings
from bot.staff.identity import (ENROL, LOGIN_MAX, PASSWORD_MIN, SIGNED_IN, SIMULATOR_ACCOUNT, SIMULATOR_PASSWORD,
                                TOTP, Account, Identity, Session)

log = logging.getLogger("hwbot.staff")

COOKIE = "hwbot_staff"
# Pages that need no signed-in session (they check their own stage or link).
OPEN_ENDPOINTS = ("staff.login", "staff.login_code", "staff.password", "staff.logout", "staff.enrol")


def cookie_secret(settings: Settings) -> bytes:
    """The key of Flask's pre-login cookie (CSRF token, flash messages): derived from the channel
    secret, so every process shares it; it never opens a session (those are in Redis)."""
    secret = settings.line_channel_secret or "hwbot simulator"  # simulator mode: nothing to protect
    return hmac.new(secret.encode(), b"hwbot staff console pre-login cookie", hashlib.sha256).digest()


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def client_address(settings: Settings) -> str:
    """The client's address: the peer's, or the one `HWBOT_TRUSTED_PROXIES` reverse proxies put in front
    of `X-Forwarded-For` (each proxy appends the address it saw)."""
    hops = settings.trusted_proxies
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops][:64]
    return (request.remote_addr or "")[:64]


def safe_next(target: str) -> str:
    """A redirect target inside the console, else the day view (never another site)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/staff") or target.startswith("/staff/login"):
        return url_for("staff.index")
    return target


class Auth:
    """The guard and the sign-in pages of one blueprint."""

    def __init__(self, service: BotService, settings: Settings, identity: Identity):
        self.service = service
        self.settings = settings
        self.identity = identity

    # -- what the routes ask ----------------------------------------------------------------------

    def account(self) -> Account:
        """The signed-in account (or the API token's) of this request."""
        return g.staff_account

    def signed_in(self) -> Account | None:
        """The account of this request, or None before signing in."""
        return g.get("staff_account")

    def session(self) -> Session | None:
        return g.get("staff_session")

    def csrf_token(self) -> str:
        current = self.session()
        if current is not None:
            return current.csrf
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def client(self) -> str:
        return client_address(self.settings)

    def record(self, account: str, action: str, *, office: str = "", ref: str = "", detail: str = "ok") -> None:
        """One audit entry (`service.audit`) with this request's client address: ids and words only."""
        self.service.audit.record(account, action, office=office, ref=ref, client=self.client(), detail=detail)

    def _set_cookie(self, session_id: str | None) -> None:
        g.staff_cookie = session_id or ""

    @staticmethod
    def api_error(status: int, message: str) -> Response:
        response = jsonify({"error": message})
        response.status_code = status
        return response

    # -- the guard --------------------------------------------------------------------------------

    def install(self, bp: Blueprint) -> None:
        identity = self.identity

        @bp.record_once
        def _configure(state: Any) -> None:
            state.app.secret_key = cookie_secret(self.settings)
            state.app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
            if self.https:
                state.app.config["SESSION_COOKIE_SECURE"] = True

        @bp.before_request
        def _guard() -> Response | None:
            if request.path.startswith("/staff/api/"):
                scheme, _, given = request.headers.get("Authorization", "").partition(" ")
                account = identity.account_for_token(given.strip()) if scheme.lower() == "bearer" else None
                if account is None:
                    response = self.api_error(401, "missing, wrong or revoked bearer token "
                                                   "(Authorization: Bearer <token from hwbot staff token ID>)")
                    response.headers["WWW-Authenticate"] = "Bearer"
                    return response
                g.staff_account = account
                return None
            if request.endpoint == "staff.ics":
                return None  # checks its own key
            current = identity.session(request.cookies.get(COOKIE, ""))
            g.staff_session = current
            if current is None and request.cookies.get(COOKIE):
                self._set_cookie(None)  # expired or revoked: drop the cookie
            if request.method == "POST" and not _same(request.form.get("csrf", ""), self.csrf_token()):
                return Response(render_template("staff/message.html", title="もう一度お試しください",
                                                message="画面の有効期限が切れました。前の画面に戻り、再読み込みしてからやり直してください。"),
                                status=400)
            if current is not None and current.signed_in:
                g.staff_account = current.account
                return None
            if request.endpoint in OPEN_ENDPOINTS:
                return None
            if current is not None and current.stage == TOTP:
                return redirect(url_for("staff.login_code"))
            if current is not None and current.stage == ENROL:
                return redirect(url_for("staff.enrol"))
            if request.method == "POST":
                abort(403)
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))

        @bp.after_request
        def _cookie(response: Response) -> Response:
            value = g.get("staff_cookie")
            if value:
                response.set_cookie(COOKIE, value, httponly=True, samesite="Strict", secure=self.https, path="/staff")
            elif value == "":
                response.delete_cookie(COOKIE, path="/staff", httponly=True, samesite="Strict", secure=self.https)
            return response

        @bp.context_processor
        def _globals() -> dict[str, Any]:
            current = self.session()
            return {"csrf_token": self.csrf_token,
                    "account": current.account if current is not None and current.signed_in else None}

        self._routes(bp)

    @property
    def https(self) -> bool:
        return (self.settings.public_url or "").startswith("https://")

    # -- the pages --------------------------------------------------------------------------------

    def _routes(self, bp: Blueprint) -> None:
        identity = self.identity
        simulator = self.settings.simulator_mode

        def login_page(status: int = 200, **extra: Any) -> tuple[str, int]:
            return render_template("staff/login.html", next=safe_next(request.values.get("next", "")),
                                   simulator_login=simulator, simulator_account=SIMULATOR_ACCOUNT,
                                   simulator_password=SIMULATOR_PASSWORD, **extra), status

        def refused(wait: int) -> tuple[str, int]:
            flash(f"ログインの失敗が続いたため、しばらくログインできません。{wait}秒ほど待ってからやり直してください。", "error")
            page, _ = login_page(429)
            return page, 429

        @bp.route("/login", methods=["GET", "POST"])
        def login() -> Any:
            if request.method == "GET":
                return login_page()
            login_name = request.form.get("account", "")[:LOGIN_MAX]
            client = self.client()
            wait = identity.wait_seconds(login_name, client)
            account = identity.find(login_name)
            # Who was tried: the account's id; an unknown name is not recorded (it may be a mistyped password).
            tried = account.id if account else "?"
            if wait:
                log.warning("staff_login ok=0 refused=backoff wait=%d", wait)
                self.record(tried, "login_failed", detail="backoff")
                page, status = refused(wait)
                return Response(page, status=status, headers={"Retry-After": str(wait)})
            if not identity.check_password(account, request.form.get("password", "")) or not identity.usable(account):
                identity.login_failed(login_name, client)
                log.warning("staff_login ok=0")
                why = ("unknown_account" if account is None else "not_usable" if not identity.usable(account)
                       else "wrong_password")
                self.record(tried, "login_failed", detail=why)
                flash("アカウントまたはパスワードが違います。", "error")
                return login_page(401)
            assert account is not None
            identity.login_succeeded(account, client)
            if g.get("staff_session") is not None:
                identity.end_session(g.staff_session)  # one browser, one session
            stage = TOTP if identity.needs_totp(account) and account.totp else (
                ENROL if identity.needs_totp(account) else SIGNED_IN)
            self._set_cookie(identity.start_session(account, stage, client=client,
                                                    agent=request.headers.get("User-Agent", "")))
            session["next"] = safe_next(request.form.get("next", ""))
            log.info("staff_login ok=1 account=%s stage=%s", account.id, stage)
            self.record(account.id, "login" if stage == SIGNED_IN else "login_password", detail="password")
            if stage == TOTP:
                return redirect(url_for("staff.login_code"))
            if stage == ENROL:
                flash("管理者のアカウントは2段階認証が必要です。認証アプリを設定してください。", "ok")
                return redirect(url_for("staff.enrol"))
            flash("ログインしました。", "ok")
            return redirect(session.pop("next", url_for("staff.index")))

        @bp.route("/login/code", methods=["GET", "POST"])
        def login_code() -> Any:
            current = self.session()
            if current is None or current.stage != TOTP:
                return redirect(url_for("staff.login"))
            if request.method == "GET":
                return render_template("staff/code.html")
            client = self.client()
            wait = identity.wait_seconds(current.account.id, client)
            if wait:
                self.record(current.account.id, "login_failed", detail="backoff")
                flash(f"確認コードの誤りが続いたため、{wait}秒ほど待ってからやり直してください。", "error")
                return Response(render_template("staff/code.html"), status=429, headers={"Retry-After": str(wait)})
            used = identity.verify_second_factor(current.account, request.form.get("code", ""))
            if used is None:
                identity.login_failed(current.account.id, client)
                log.warning("staff_login_code ok=0 account=%s", current.account.id)
                self.record(current.account.id, "login_failed", detail="wrong_code")
                flash("確認コードが違います（同じコードは一度しか使えません）。", "error")
                return render_template("staff/code.html"), 401
            identity.login_succeeded(current.account, client)
            self._set_cookie(identity.promote(current, SIGNED_IN))
            log.info("staff_login_code ok=1 account=%s with=%s", current.account.id, used)
            self.record(current.account.id, "login", detail=used)
            if used == "recovery":
                left = identity.recovery_left(current.account)
                flash(f"回復コードでログインしました（残り{left}個）。使ったコードはもう使えません。", "ok")
            else:
                flash("ログインしました。", "ok")
            return redirect(session.pop("next", url_for("staff.index")))

        @bp.route("/account/totp", methods=["GET", "POST"])
        def enrol() -> Any:
            current = self.session()
            if current is None or current.stage not in (ENROL, SIGNED_IN):
                return redirect(url_for("staff.login"))
            if current.stage == SIGNED_IN and current.account.totp:
                flash("2段階認証は設定済みです。設定し直すには管理者にリセットを依頼してください。", "ok")
                return redirect(url_for("staff.account"))
            secret = current.totp_pending
            if not secret:
                secret = identity.new_totp_secret()
                identity.update_session(current, totp_pending=secret)
            shown = {"secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                     "uri": identity.totp_uri(current.account, secret), "required": current.stage == ENROL}
            if request.method == "GET":
                return render_template("staff/enrol.html", **shown)
            codes = identity.enrol_totp(current.account, secret, request.form.get("code", ""))
            if codes is None:
                flash("確認コードが違います。認証アプリに表示されている6桁の数字を入力してください。", "error")
                self.record(current.account.id, "totp_enrol", detail="wrong_code")
                return render_template("staff/enrol.html", **shown), 400
            log.info("staff_totp_enrolled account=%s", current.account.id)
            self.record(current.account.id, "totp_enrol")
            if current.stage == ENROL:
                self.record(current.account.id, "login", detail="totp")
            if current.stage == ENROL:
                self._set_cookie(identity.promote(current, SIGNED_IN))
            else:
                identity.update_session(current, totp_pending="")
            return render_template("staff/recovery.html", codes=codes,
                                   next=session.pop("next", url_for("staff.index")))

        @bp.route("/password", methods=["GET", "POST"])
        def password() -> Any:
            token = request.values.get("token", "")
            account = identity.link_account(token)
            if account is None:
                return render_template("staff/message.html", title="リンクが無効です",
                                       message="このリンクは使用済みか、有効期限が切れています。管理者に新しいリンクを依頼してください。"), 404
            if request.method == "GET":
                return render_template("staff/password.html", token=token, target=account, minimum=PASSWORD_MIN)
            first, again = request.form.get("password", ""), request.form.get("again", "")
            try:
                if first != again:
                    raise PasswordRejected("確認のため入力したパスワードが一致しません。")
                identity.set_password_with_link(token, first)
            except PasswordRejected as exc:
                flash(str(exc), "error")
                return render_template("staff/password.html", token=token, target=account, minimum=PASSWORD_MIN), 400
            log.info("staff_password_set account=%s", account.id)
            self.record(account.id, "password_set")
            flash("パスワードを設定しました。ログインしてください。", "ok")
            return redirect(url_for("staff.login"))

        @bp.post("/logout")
        def logout() -> Response:
            current = self.session()
            if current is not None:
                identity.end_session(current)
                log.info("staff_logout account=%s", current.account.id)
                self.record(current.account.id, "logout")
            self._set_cookie(None)
            flash("ログアウトしました。", "ok")
            return redirect(url_for("staff.login"))

        @bp.get("/account")
        def account() -> str:
            current = self.session()
            assert current is not None
            me = current.account
            sessions = [{**fields, "current": fields["digest"] == current.digest}
                        for fields in identity.sessions(me)]
            return render_template("staff/account.html", me=me, sessions=sessions, tokens=identity.tokens(me.id),
                                   offices=[self.service.offices[o].short_name for o in me.offices if o in self.service.offices],
                                   recovery_left=identity.recovery_left(me) if me.totp else 0)

        @bp.post("/account/revoke")
        def revoke() -> Response:
            current = self.session()
            assert current is not None
            target = request.form.get("session", "")
            if identity.revoke_session(current.account, target):
                log.info("staff_session_revoked account=%s", current.account.id)
                self.record(current.account.id, "session_revoke", detail="this" if target == current.digest else "other")
                if target == current.digest:
                    self._set_cookie(None)
                    flash("この端末からログアウトしました。", "ok")
                    return redirect(url_for("staff.login"))
                flash("選んだ端末のログインを取り消しました。", "ok")
            else:
                flash("そのログインはすでに終了しています。", "error")
            return redirect(url_for("staff.account"))

        @bp.post("/account/logout-everywhere")
        def logout_everywhere() -> Response:
            current = self.session()
            assert current is not None
            ended = identity.end_all_sessions(current.account)
            log.info("staff_logout_everywhere account=%s sessions=%d", current.account.id, ended)
            self.record(current.account.id, "logout_everywhere", detail=str(ended))
            self._set_cookie(None)
            flash(f"すべての端末（{ended}件）からログアウトしました。", "ok")
            return redirect(url_for("staff.login"))

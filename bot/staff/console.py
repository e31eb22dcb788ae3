"""The staff console (`/staff`, Japanese, server-rendered) and the staff JSON API (`/staff/api/...`).

Three ways in, all keyed by `HWBOT_STAFF_TOKEN` (in simulator mode without it: the token `simulator`):
the browser logs in once and gets a signed session cookie (HttpOnly, SameSite=Strict; its key is an
HMAC of the token, so changing the token logs everybody out) and every POST form carries a CSRF token;
the API takes `Authorization: Bearer <token>`; an office's ICS feed takes `?key=` (an HMAC of the
token and the office id) because calendar apps cannot send headers. Without a token outside the
simulator, everything here answers 503.

The routes only parse and render; `bot.staff.actions` changes bookings.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, session, url_for

from bot import calendar
from bot.clock import JST
from bot.dialog.texts import INTERPRETER_CHOICES
from bot.errors import StaffActionError, StoreError, UnknownOfficeError
from bot.profiles.models import OfficeProfile
from bot.service import BotService, user_hash
from bot.settings import Settings
from bot.staff.aftercare import is_overdue
from bot.staff.api import register_api
from bot.staff.actions import (CONFIRMATION_LABELS, STATUS_LABELS, StaffActions, confirmation_label, find_office,
                               office_label, upcoming_for, when_label)
from bot.staff import audit, threads
from bot.staff.export import bookings_csv, bookings_ics, feed_key
from bot.store.bookings import booking_ref

log = logging.getLogger("hwbot.staff")

# Simulator mode without HWBOT_STAFF_TOKEN: the console opens with this token (the login page says so).
SIMULATOR_STAFF_TOKEN = "simulator"
SESSION_HOURS = 12
MAX_EXPORT_DAYS = 366
ICS_DAYS_BACK = 30
FOLLOW_UP_CHOICES = 60
def staff_token(settings: Settings) -> str | None:
    """The token the console accepts, or None when it must stay closed."""
    if settings.staff_token:
        return settings.staff_token
    return SIMULATOR_STAFF_TOKEN if settings.simulator_mode else None


def session_secret(token: str) -> bytes:
    """Flask's cookie-signing key, derived from the token (the token itself never signs anything)."""
    return hmac.new(token.encode(), b"hwbot staff console session", hashlib.sha256).digest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def category_label(profile: OfficeProfile | None, booking: dict[str, Any]) -> str:
    """Sakata's category as staff read it (label, and the second half where asked)."""
    value = booking.get("category")
    if not value:
        return ""
    categories = profile.eligibility.categories if profile else None
    item = next((c for c in categories.items if c.id == value), None) if categories else None
    label = item.label if item else str(value)
    if booking.get("category_detail"):
        label += "（条件の後半: " + ("該当" if booking["category_detail"] == "yes" else "非該当") + "）"
    return label


def booking_row(profile: OfficeProfile | None, booking: dict[str, Any]) -> dict[str, Any]:
    """What a table row of the day view shows."""
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    end = datetime.fromisoformat(booking["end"]).astimezone(JST)
    return {
        "ref": booking_ref(booking),
        "id": booking["id"],
        "time": f"{start:%H:%M}〜{end:%H:%M}",
        "status": booking.get("status", ""),
        "status_label": STATUS_LABELS.get(booking.get("status", ""), booking.get("status", "")),
        "confirmation": confirmation_label(booking),
        "confirmation_key": booking.get("office_confirmation", ""),
        "topic": booking.get("topic", ""),
        "interpreter": dict(INTERPRETER_CHOICES).get(booking.get("interpreter", ""), booking.get("interpreter", "")),
        "category": category_label(profile, booking),
        "name": booking.get("name", ""),
        "meeting_sent": bool(booking.get("meeting_sent_at")),
        "follow_up": bool(booking.get("follow_up_of")),
    }


def _when(value: Any) -> str:
    """An ISO instant as staff read it (JST), or the value as it is."""
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(JST)
    except ValueError:
        return str(value)
    return f"{moment:%Y-%m-%d %H:%M}"


def booking_record(profile: OfficeProfile | None, booking: dict[str, Any], who: str) -> list[tuple[str, str]]:
    """Every stored field of a booking as (label, value), known fields first, then any others as stored."""
    consent = booking.get("consent") or {}
    by = {"staff": "担当者", "user": "利用者（LINE）"}
    rows = [
        ("予約番号", booking.get("id", "")),
        ("事業所", profile.name if profile else booking.get("office", "")),
        ("日時", when_label(booking)),
        ("状態", STATUS_LABELS.get(booking.get("status", ""), str(booking.get("status", "")))),
        ("お名前", booking.get("name", "")),
        ("求職番号", booking.get("number", "")),
        ("メールアドレス", booking.get("email", "")),
        ("電話番号", booking.get("phone", "")),
        ("相談内容", booking.get("topic", "")),
        ("通訳・介助者", dict(INTERPRETER_CHOICES).get(booking.get("interpreter", ""), booking.get("interpreter", ""))),
        ("対象区分", category_label(profile, booking)),
        ("LINE利用者（識別用）", who),
        ("予約日時", _when(booking.get("created_at", ""))),
        ("予約した人", by.get(booking.get("booked_by", "user"), str(booking.get("booked_by")))),
        ("前回の予約", booking.get("follow_up_of", "")),
        ("規約の版", consent.get("version", "")),
        ("規約に同意した日時", _when(consent.get("at", "")) if consent.get("at") else ""),
        ("事業所の確認", CONFIRMATION_LABELS.get(booking.get("office_confirmation", ""), booking.get("office_confirmation", ""))),
        ("接続情報を送った日時", _when(booking["meeting_sent_at"]) if booking.get("meeting_sent_at") else ""),
        ("出欠を記録した日時", _when(booking["marked_at"]) if booking.get("marked_at") else ""),
        ("キャンセル日時", _when(booking["cancelled_at"]) if booking.get("cancelled_at") else ""),
        ("キャンセルした人", by.get(booking.get("cancelled_by", ""), booking.get("cancelled_by", ""))),
    ]
    questions = {q.id: q for q in profile.eligibility.questions} if profile else {}
    for key, answer in (booking.get("answers") or {}).items():
        question = questions.get(key.removeprefix("q_"))
        choice = next((c.label for c in question.choices if c.id == answer), answer) if question else answer
        rows.append((f"確認: {question.text if question else key}", str(choice)))
    shown = {"id", "office", "slot", "start", "end", "status", "name", "number", "email", "phone", "topic",
             "interpreter", "category", "category_detail", "user", "created_at", "booked_by", "follow_up_of",
             "consent", "office_confirmation", "meeting_sent_at", "meeting_sent_by", "marked_at", "marked_by",
             "cancelled_at", "cancelled_by", "answers"}
    rows += [(key, str(value)) for key, value in sorted(booking.items()) if key not in shown]
    return [(label, str(value)) for label, value in rows]


def create_blueprint(service: BotService, settings: Settings) -> Blueprint:
    """The console and API; `create_app` registers it in every mode."""
    token = staff_token(settings)
    actions = StaffActions(service)
    bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates")
    who_key = settings.line_channel_secret or "hwbot"

    @bp.record_once
    def _configure(state: Any) -> None:
        if token:
            state.app.secret_key = session_secret(token)
        state.app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
        if (settings.public_url or "").startswith("https://"):
            state.app.config["SESSION_COOKIE_SECURE"] = True

    def now() -> datetime:
        return service.clock.now()

    def who(user: str) -> str:
        return user_hash(user, who_key)

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    @bp.context_processor
    def _globals() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "offices": service.offices, "simulator_login": token == SIMULATOR_STAFF_TOKEN and not settings.staff_token}

    def api_error(status: int, message: str) -> Response:
        response = jsonify({"error": message})
        response.status_code = status
        return response

    def logged_in() -> bool:
        since = session.get("since")
        if not session.get("staff") or not isinstance(since, str):
            return False
        try:
            return now() - datetime.fromisoformat(since) < timedelta(hours=SESSION_HOURS)
        except ValueError:
            return False

    @bp.before_request
    def _guard() -> Response | None:
        if token is None:
            if request.path.startswith("/staff/api/"):
                return api_error(503, "HWBOT_STAFF_TOKEN is not set")
            return Response("HWBOT_STAFF_TOKEN is not set", status=503, mimetype="text/plain")
        if request.path.startswith("/staff/api/"):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not _same(given.strip(), token):
                response = api_error(401, "missing or wrong bearer token (Authorization: Bearer <HWBOT_STAFF_TOKEN>)")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            return None
        if request.endpoint == "staff.ics":
            return None  # checks its own key
        if request.method == "POST" and not _same(request.form.get("csrf", ""), session.get("csrf", "\0")):
            return Response(render_template("staff/message.html", title="もう一度お試しください",
                                            message="画面の有効期限が切れました。前の画面に戻り、再読み込みしてからやり直してください。"),
                            status=400)
        if request.endpoint == "staff.login" or logged_in():
            return None
        if request.method == "POST":
            abort(403)
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))

    @bp.errorhandler(StoreError)
    def _store_down(exc: StoreError) -> tuple[str, int]:
        log.error("staff_store_error error=%s", exc)
        return render_template("staff/message.html", title="一時的なエラー",
                               message="データベースに接続できません。しばらくしてから再読み込みしてください。"), 503

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        target = request.values.get("next", "")
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not target.startswith("/staff"):
            target = url_for("staff.index")
        if request.method == "POST":
            if _same(request.form.get("token", ""), token or ""):
                session.clear()
                session.update(staff=True, since=now().isoformat(), csrf=secrets.token_urlsafe(32))
                log.info("staff_login ok=1")
                flash("ログインしました。", "ok")
                return redirect(target)
            log.warning("staff_login ok=0")
            flash("トークンが違います。", "error")
            return render_template("staff/login.html", next=target), 401
        return render_template("staff/login.html", next=target)

    @bp.post("/logout")
    def logout() -> Response:
        session.clear()
        flash("ログアウトしました。", "ok")
        return redirect(url_for("staff.login"))

    def pick_office(value: str | None) -> OfficeProfile:
        office_id = value or session.get("office") or next(iter(service.offices))
        try:
            profile = service.offices[office_id]
        except UnknownOfficeError:
            flash(f"事業所「{office_id}」は登録されていません。", "error")
            profile = service.offices[next(iter(service.offices))]
        session["office"] = profile.id
        return profile

    @bp.get("")
    def index() -> str:
        profile = pick_office(request.args.get("office"))
        today = now().date()
        day = _parse_day(request.args.get("date"))
        if day is None:
            if request.args.get("date"):
                flash("日付は 2026-12-01 の形で指定してください。今日を表示しています。", "error")
            day = today
        bookings = service.bookings.store.on_day(profile.id, day.isoformat())
        rows = [booking_row(profile, booking) for booking in bookings]
        overdue = overdue_requests(profile) if profile.after_booking.confirmed_by_office else []
        first = day.replace(day=1)
        return render_template(
            "staff/index.html", profile=profile, day=day, today=today, rows=rows,
            day_label=calendar.format_day(day), closed=calendar.closure_reason(profile, day),
            prev_day=(day - timedelta(days=1)).isoformat(), next_day=(day + timedelta(days=1)).isoformat(),
            dead=len(service.outbox.dead_letters()), waiting=len(service.handoffs.waiting()), overdue=overdue,
            feed=url_for("staff.ics", office=profile.id, key=feed_key(token or "", profile.id), _external=True),
            export_from=first.isoformat(), export_to=(first + timedelta(days=40)).replace(day=1) - timedelta(days=1),
        )

    def overdue_requests(profile: OfficeProfile) -> list[tuple[str, str, str]]:
        """(ref, booking number, when) of the office's requests past its reply time, earliest first."""
        found = []
        for day in calendar.iter_days(now().date(), calendar.window_end(profile, now())):
            for booking in service.bookings.store.on_day(profile.id, day.isoformat()):
                if is_overdue(profile, booking, now()):
                    found.append((booking_ref(booking), booking["id"], when_label(booking)))
        return found

    def load(ref: str) -> dict[str, Any] | None:
        try:
            return actions.booking(ref)
        except StaffActionError:
            return None

    @bp.get("/booking")
    def booking() -> Any:
        ref = request.args.get("ref", "")
        record = load(ref)
        if record is None:
            return render_template("staff/message.html", title="予約が見つかりません",
                                   message="保存期間を過ぎたか、予約番号が正しくありません。"), 404
        profile = find_office(service.offices, record["office"])
        start = datetime.fromisoformat(record["start"])
        end = datetime.fromisoformat(record["end"])
        status = record.get("status")
        started = start <= now()
        follow_ups = actions.follow_up_slots(record)[:FOLLOW_UP_CHOICES] if status not in ("cancelled", "held") else []
        request_open = (status == "booked" and not started
                        and record.get("office_confirmation") in ("pending", "awaiting_consent"))
        return render_template(
            "staff/booking.html", b=record, ref=ref, profile=profile, when=when_label(record),
            fields=booking_record(profile, record, who(record["user"])),
            status_label=STATUS_LABELS.get(status, status),
            can_mark=started and status in ("booked", "attended", "no_show"),
            can_cancel=status == "booked" and not started,
            request_open=request_open,
            proposals=[(slot.key, slot.label()) for slot in follow_ups if slot.key != record["slot"]],
            decline_reasons=actions.decline_reasons(record),
            confirmation=confirmation_label(record),
            can_send=status in ("booked", "attended") and end > now(),
            follow_ups=[(slot.key, slot.label()) for slot in follow_ups], nonce=uuid.uuid4().hex,
            day=start.astimezone(JST).date().isoformat(),
        )

    @bp.post("/booking/<action>")
    def act(action: str) -> Response:
        ref = request.form.get("ref", "")
        back = url_for("staff.booking", ref=ref)
        try:
            if action in ("attended", "no_show"):
                actions.mark(ref, action)
                flash("「出席」を記録しました。" if action == "attended" else "「無断欠席」を記録し、担当者に通知しました。", "ok")
            elif action == "cancel":
                actions.cancel(ref)
                flash("予約をキャンセルしました。利用者にLINEでお知らせします。", "ok")
            elif action == "meeting":
                actions.send_meeting(ref, meeting_id=request.form.get("meeting_id", ""),
                                     passcode=request.form.get("passcode", ""), url=request.form.get("url", ""))
                flash("接続情報を利用者にLINEで送信しました。", "ok")
            elif action == "confirm":
                done = actions.confirm(ref, meeting_id=request.form.get("meeting_id", ""),
                                       passcode=request.form.get("passcode", ""), url=request.form.get("url", ""))
                flash("申込みを確定し、利用者にLINEでお知らせします。" if done.acted else "この申込みはすでに確定しています。", "ok")
            elif action == "decline":
                reason = request.form.get("reason_text", "").strip() or request.form.get("reason", "")
                done = actions.decline(ref, reason)
                flash("申込みをお断りし、利用者に理由をLINEでお知らせします。" if done.acted else "この申込みはすでにお断りしています。", "ok")
            elif action == "propose":
                done = actions.propose(ref, request.form.get("slot", ""))
                flash("別の日時を提案し、利用者にLINEでお知らせします。" if done.acted else "この日時はすでに提案しています。", "ok")
            elif action == "follow_up":
                made, new = actions.book_follow_up(ref, request.form.get("slot", ""), request.form.get("nonce", ""))
                flash(f"次回の予約（{when_label(made)}、予約番号 {made['id']}）を"
                      + ("登録し、利用者にLINEでお知らせします。" if new else "登録済みです。"), "ok")
                return redirect(url_for("staff.booking", ref=booking_ref(made)))
            else:
                abort(404)
        except StaffActionError as exc:
            flash(str(exc), "error")
        return redirect(back)

    @bp.get("/handoffs")
    def handoffs() -> str:
        items = []
        for user, info in service.handoffs.waiting().items():
            items.append({
                "who": who(user),
                "office": office_label(service.offices, info.get("office", "")),
                "reason": threads.REASONS.get(info.get("reason", ""), info.get("reason", "")),
                "step": info.get("step", ""),
                "since": _when(info.get("at", "")),
                "bookings": [(b.get("name", ""), b["id"], booking_ref(b), when_label(b))
                             for b in upcoming_for(service, user, now())],
                "thread": info.get("thread", ""),
                "latest": threads.latest(service, info.get("thread", "")),
            })
        pushes = threads.ThreadActions(service).push_counts()
        return render_template("staff/handoffs.html", items=items, pushes=pushes)

    @bp.post("/handoffs/resume")
    def resume() -> Response:
        wanted = request.form.get("who", "")
        user = next((u for u in service.handoffs.waiting() if _same(who(u), wanted)), None)
        if user is None:
            flash("この利用者はすでに自動応答に戻っています。", "error")
        elif service.resume(user):
            log.info("staff_resume user=%s", who(user))
            flash("自動応答に戻しました。利用者にLINEでお知らせします。", "ok")
        else:
            flash("この利用者はすでに自動応答に戻っています。", "ok")
        return redirect(url_for("staff.handoffs"))

    @bp.get("/outbox")
    def outbox() -> str:
        entries = []
        for stream_id, entry in service.outbox.dead_letters():
            entries.append({
                "id": stream_id,
                "kind": entry.get("kind", ""),
                "office": "" if entry.get("kind") == "push" else office_label(service.offices, entry.get("office", "")),
                "summary": entry.get("summary", "") or ("利用者へのLINE送信" if entry.get("kind") == "push" else ""),
                "at": _when(entry.get("at", "")),
                "error": entry.get("error", "") or entry.get("last_error", ""),
                "to": who(entry["to"]) if entry.get("to") else "",
            })
        return render_template("staff/outbox.html", entries=entries)

    @bp.get("/export.csv")
    def export_csv() -> Any:
        profile = find_office(service.offices, request.args.get("office", ""))
        first = _parse_day(request.args.get("from"))
        last = _parse_day(request.args.get("to"))
        problem = None
        if profile is None:
            problem = "事業所を選んでください。"
        elif first is None or last is None:
            problem = "期間（開始日・終了日）を 2026-12-01 の形で指定してください。"
        elif last < first or (last - first).days >= MAX_EXPORT_DAYS:
            problem = f"終了日は開始日以降、期間は{MAX_EXPORT_DAYS}日以内にしてください。"
        if problem or profile is None or first is None or last is None:
            flash(problem or "", "error")
            return redirect(url_for("staff.index"))
        bookings = [b for day in calendar.iter_days(first, last)
                    for b in service.bookings.store.on_day(profile.id, day.isoformat())]
        log.info("staff_export office=%s days=%d rows=%d", profile.id, (last - first).days + 1, len(bookings))
        name = f"hwbot-{profile.id}-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(bookings_csv(bookings).encode("utf-8"), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Content-Type": "text/csv; charset=utf-8"})

    @bp.get("/ics/<office>.ics")
    def ics(office: str) -> Response:
        profile = find_office(service.offices, office)
        if profile is None:
            abort(404)
        if not _same(request.args.get("key", ""), feed_key(token or "", office)):
            abort(403)
        today = now().date()
        days = calendar.iter_days(today - timedelta(days=ICS_DAYS_BACK), calendar.window_end(profile, now()))
        bookings = [b for day in days for b in service.bookings.store.on_day(office, day.isoformat())]
        body = bookings_ics(profile, bookings, now())
        return Response(body, mimetype="text/calendar", headers={"Content-Type": "text/calendar; charset=utf-8"})

    register_api(bp, actions, api_error)

    @bp.get("/api/bookings")
    def api_bookings() -> Response:
        office = request.args.get("office", "")
        if not office:
            return api_error(400, "office: required (an office id such as noto)")
        profile = find_office(service.offices, office)
        if profile is None:
            return api_error(404, f"office: unknown office {office!r}")
        text = request.args.get("date")
        day = _parse_day(text) if text else now().date()
        if day is None:
            return api_error(400, "date: must be YYYY-MM-DD")
        bookings = service.bookings.store.on_day(office, day.isoformat())
        return jsonify({"office": office, "date": day.isoformat(),
                        "bookings": [{**b, "ref": booking_ref(b)} for b in bookings]})

    threads.add_routes(bp, service, api_error=api_error, who=who)
    # TEMPORARY (issue 12, until staff accounts land): whoever passed the token guard above is an admin.
    audit.add_routes(bp, service, current_account=lambda: SimpleNamespace(id="staff", role="admin", offices=list(service.offices)), api_error=api_error)
    return bp

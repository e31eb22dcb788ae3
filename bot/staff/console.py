"""The staff console (`/staff`, Japanese, server-rendered) and the staff JSON API (`/staff/api/...`).

Who is asking is `bot.staff.auth`'s (an account's session, or its bearer token for the API; each
office's ICS feed takes a per-account `?key=`). Every route here shows and acts on the offices the
account serves only (admins: all): an office it does not serve named in a parameter answers 403, and a
booking, thread or dead letter of such an office is as if it did not exist (404), so a ref gives
nothing away. Every action records the account's id (`marked_by`, `cancelled_by`, ...).

The routes only parse and render; `bot.staff.actions` changes bookings.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from bot import calendar
from bot.clock import JST
from bot.dialog import texts
from bot.staff import languages
from bot.errors import NotReplicated, StaffActionError, StoreError
from bot.profiles.models import OfficeProfile
from bot.service import BotService, user_hash
from bot.settings import Settings
from bot.staff.aftercare import is_overdue
from bot.staff.api import register_api
from bot.staff.auth import Auth
from bot.staff.identity import Identity
from bot.staff.actions import (CONFIRMATION_LABELS, STATUS_LABELS, StaffActions, confirmation_label, find_office,
                               office_label, upcoming_for, when_label)
from bot.staff import audit, threads
from bot.staff.export import bookings_csv, bookings_ics
from bot.store.bookings import booking_ref

log = logging.getLogger("hwbot.staff")

MAX_EXPORT_DAYS = 366
ICS_DAYS_BACK = 30
FOLLOW_UP_CHOICES = 60
# Who did something, when it is not a staff account: the words `*_by` fields held before accounts.
ACTORS = {"staff": "担当者", "user": "利用者（LINE）", "moved": "利用者（日時の変更）", "accepted": "利用者（提案を承諾）",
          "declined": "利用者（提案を辞退）", "lapsed": "期限切れ"}


# A booking ref as the store makes it: what an audit entry may quote of a ref the caller sent.
BOOKING_ACTIONS = ("attended", "no_show", "cancel", "meeting", "confirm", "decline", "propose", "follow_up")
REF_SHAPE = re.compile(r"[a-z0-9_-]{1,40}\|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}\|[A-Za-z0-9]{1,20}")


def audit_ref(ref: str) -> str:
    """The ref for the audit trail when it has a ref's shape, else `?` (whatever was typed stays out)."""
    return ref if REF_SHAPE.fullmatch(ref) else "?"


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
        "interpreter": dict(texts.japanese("INTERPRETER_CHOICES")).get(booking.get("interpreter", ""), booking.get("interpreter", "")),
        "language": languages.wish(booking.get("lang")),
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


def booking_record(profile: OfficeProfile | None, booking: dict[str, Any], who: str,
                   name_of: Callable[[str], str] = str) -> list[tuple[str, str]]:
    """Every stored field of a booking as (label, value), known fields first, then any others as stored.

    Who did something is shown by name (`name_of` an account id; an unknown id shows as it is)."""
    consent = booking.get("consent") or {}

    def by(field: str, default: str = "") -> str:
        value = str(booking.get(field, default) or "")
        return ACTORS.get(value) or (name_of(value) if value else "")

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
        ("通訳・介助者", dict(texts.japanese("INTERPRETER_CHOICES")).get(booking.get("interpreter", ""), booking.get("interpreter", ""))),
        (languages.LABEL, languages.wish(booking.get("lang")) or languages.JAPANESE),
        ("対象区分", category_label(profile, booking)),
        ("LINE利用者（識別用）", who),
        ("予約日時", _when(booking.get("created_at", ""))),
        ("予約した人", by("booked_by", "user")),
        ("前回の予約", booking.get("follow_up_of", "")),
        ("規約の版", consent.get("version", "")),
        ("規約の要約を読んだ言語", languages.name(consent.get("terms_lang")) if consent else ""),
        ("規約に同意した日時", _when(consent.get("at", "")) if consent.get("at") else ""),
        ("事業所の確認", CONFIRMATION_LABELS.get(booking.get("office_confirmation", ""), booking.get("office_confirmation", ""))),
        ("確定した人", by("confirmed_by")),
        ("別の日時を提案した人", by("proposed_by")),
        ("お断りした人", by("declined_by")),
        ("接続情報を送った日時", _when(booking["meeting_sent_at"]) if booking.get("meeting_sent_at") else ""),
        ("接続情報を送った人", by("meeting_sent_by")),
        ("出欠を記録した日時", _when(booking["marked_at"]) if booking.get("marked_at") else ""),
        ("出欠を記録した人", by("marked_by")),
        ("キャンセル日時", _when(booking["cancelled_at"]) if booking.get("cancelled_at") else ""),
        ("キャンセルした人", by("cancelled_by")),
    ]
    questions = {q.id: q for q in profile.eligibility.questions} if profile else {}
    for key, answer in (booking.get("answers") or {}).items():
        question = questions.get(key.removeprefix("q_"))
        choice = next((c.label for c in question.choices if c.id == answer), answer) if question else answer
        rows.append((f"確認: {question.text if question else key}", str(choice)))
    shown = {"id", "office", "slot", "start", "end", "status", "name", "number", "email", "phone", "topic",
             "interpreter", "category", "category_detail", "user", "created_at", "booked_by", "follow_up_of",
             "consent", "office_confirmation", "meeting_sent_at", "meeting_sent_by", "marked_at", "marked_by",
             "cancelled_at", "cancelled_by", "answers", "confirmed_by", "proposed_by", "declined_by", "lang"}
    rows += [(key, str(value)) for key, value in sorted(booking.items()) if key not in shown]
    return [(label, str(value)) for label, value in rows]


def create_blueprint(service: BotService, settings: Settings, *, identity: Identity | None = None) -> Blueprint:
    """The console and API; `create_app` registers it in every mode."""
    identity = identity or Identity(service)
    auth = Auth(service, settings, identity)
    actions = StaffActions(service)
    bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates")
    who_key = settings.line_channel_secret or "hwbot"
    if settings.legacy_staff_token:
        log.warning("staff_token_ignored HWBOT_STAFF_TOKEN is no longer used: sign in with staff accounts "
                    "(hwbot staff add), then remove the variable")
    if settings.simulator_mode:
        identity.ensure_simulator_account()
    auth.install(bp)
    current_account = auth.account

    def record(action: str, *, office: str = "", ref: str = "", detail: str = "ok") -> None:
        """An audit entry of the signed-in account (or the API token's): ids and words, never personal data."""
        auth.record(current_account().id, action, office=office, ref=ref, detail=detail)

    def now() -> datetime:
        return service.clock.now()

    def who(user: str) -> str:
        return user_hash(user, who_key)

    def my_offices() -> list[str]:
        """The office ids the account serves, in the profiles' order (admins: all)."""
        account = current_account()
        return [office for office in service.offices if account.serves(office)]

    def sees(office: str) -> bool:
        """Whether the account sees things of `office`; '' (a user who chose no office yet) every account."""
        return office == "" or current_account().serves(office)

    @bp.context_processor
    def _globals() -> dict[str, Any]:
        current = auth.session()
        account = current.account if current is not None and current.signed_in else None
        shown = [o for o in service.offices if account is not None and account.serves(o)]
        return {"offices": {office: service.offices[office] for office in shown}}

    def forbidden_office() -> tuple[str, int]:
        return render_template("staff/message.html", title="この事業所は表示できません",
                               message="このアカウントが担当していない事業所です。"), 403

    def not_found() -> tuple[str, int]:
        return render_template("staff/message.html", title="予約が見つかりません",
                               message="保存期間を過ぎたか、予約番号が正しくありません。"), 404

    @bp.errorhandler(StoreError)
    def _store_down(exc: StoreError) -> Any:
        log.error("staff_store_error error=%s", exc)
        if isinstance(exc, NotReplicated):
            # Written on the primary, not yet on a replica in time: repeating the action is safe (it
            # finds it done and waits again) and is the only way to know it is kept.
            message = "変更を保存しましたが、控えのデータベースへの反映を確認できませんでした。もう一度同じ操作をしてください。"
        else:
            message = "データベースに接続できません。しばらくしてから再読み込みしてください。"
        if request.path.startswith("/staff/api/"):
            return jsonify({"error": message}), 503
        return render_template("staff/message.html", title="一時的なエラー", message=message), 503

    def pick_office(value: str | None) -> OfficeProfile | None:
        """The office to show: the one asked for, else the session's last, else the account's first."""
        mine = my_offices()
        current = auth.session()
        office_id = value or (current.office if current is not None else "") or (mine[0] if mine else "")
        if office_id not in mine:
            if value and find_office(service.offices, value) is None:
                flash(f"事業所「{value}」は登録されていません。", "error")
            office_id = mine[0] if mine else ""
        if not office_id:
            return None
        if current is not None and current.office != office_id:
            identity.update_session(current, office=office_id)
        return service.offices[office_id]

    @bp.get("")
    def index() -> Any:
        asked = request.args.get("office")
        if asked and find_office(service.offices, asked) is not None and not current_account().serves(asked):
            return forbidden_office()
        profile = pick_office(asked)
        if profile is None:
            return render_template("staff/message.html", title="担当の事業所がありません",
                                   message="このアカウントには担当の事業所が登録されていません。管理者に連絡してください。"), 403
        today = now().date()
        day = _parse_day(request.args.get("date"))
        if day is None:
            if request.args.get("date"):
                flash("日付は 2026-12-01 の形で指定してください。今日を表示しています。", "error")
            day = today
        bookings = service.bookings.store.on_day(profile.id, day.isoformat())
        rows = [booking_row(profile, booking) for booking in bookings]
        record("day_view", office=profile.id, detail=day.isoformat())  # the day's names are shown
        overdue = overdue_requests(profile) if profile.after_booking.confirmed_by_office else []
        first = day.replace(day=1)
        return render_template(
            "staff/index.html", profile=profile, day=day, today=today, rows=rows,
            day_label=calendar.format_day(day), closed=calendar.closure_reason(profile, day),
            prev_day=(day - timedelta(days=1)).isoformat(), next_day=(day + timedelta(days=1)).isoformat(),
            dead=len(dead_letters()), waiting=len(waiting()), overdue=overdue,
            feed=url_for("staff.ics", office=profile.id, key=identity.feed_key(current_account(), profile.id),
                         _external=True),
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
        """The booking if it exists and is of an office the account serves (else None: a 404)."""
        try:
            found = actions.booking(ref)
        except StaffActionError:
            return None
        return found if current_account().serves(found.get("office", "")) else None

    def waiting() -> dict[str, dict[str, Any]]:
        """The users waiting for staff at the account's offices (and those who chose no office yet)."""
        return {user: info for user, info in service.handoffs.waiting().items() if sees(info.get("office", ""))}

    def dead_letters() -> list[tuple[str, dict[str, Any]]]:
        """Dead letters the account may see: notices of its offices (and of no office); pushes to users
        (which name no office) only to admins."""
        account = current_account()
        return [(stream_id, entry) for stream_id, entry in service.outbox.dead_letters()
                if (account.admin if entry.get("kind") == "push" else sees(entry.get("office", "")))]

    @bp.get("/booking")
    def booking() -> Any:
        ref = request.args.get("ref", "")
        found = load(ref)
        if found is None:
            record("booking_view", ref=audit_ref(ref), detail="not_found")
            return not_found()
        record("booking_view", office=found["office"], ref=booking_ref(found))
        profile = find_office(service.offices, found["office"])
        start = datetime.fromisoformat(found["start"])
        end = datetime.fromisoformat(found["end"])
        status = found.get("status")
        started = start <= now()
        follow_ups = actions.follow_up_slots(found)[:FOLLOW_UP_CHOICES] if status not in ("cancelled", "held") else []
        request_open = (status == "booked" and not started
                        and found.get("office_confirmation") in ("pending", "awaiting_consent"))
        return render_template(
            "staff/booking.html", b=found, ref=ref, profile=profile, when=when_label(found),
            fields=booking_record(profile, found, who(found["user"]) if found.get("user") else "", identity.name_of),
            status_label=STATUS_LABELS.get(status, status),
            can_mark=started and status in ("booked", "attended", "no_show"),
            can_cancel=status == "booked" and not started,
            request_open=request_open,
            proposals=[(slot.key, slot.label()) for slot in follow_ups if slot.key != found["slot"]],
            decline_reasons=actions.decline_reasons(found),
            confirmation=confirmation_label(found),
            can_send=status in ("booked", "attended") and end > now(),
            follow_ups=[(slot.key, slot.label()) for slot in follow_ups], nonce=uuid.uuid4().hex,
            day=start.astimezone(JST).date().isoformat(),
        )

    @bp.post("/booking/<action>")
    def act(action: str) -> Any:
        ref = request.form.get("ref", "")
        found = load(ref)
        if found is None:
            record(f"booking_{action if action in BOOKING_ACTIONS else '?'}", ref=audit_ref(ref), detail="not_found")
            return not_found()
        back = url_for("staff.booking", ref=ref)
        by = current_account().id
        done_detail = "ok"
        try:
            if action in ("attended", "no_show"):
                actions.mark(ref, action, by=by)
                flash("「出席」を記録しました。" if action == "attended" else "「無断欠席」を記録し、担当者に通知しました。", "ok")
            elif action == "cancel":
                actions.cancel(ref, by=by)
                flash("予約をキャンセルしました。利用者にLINEでお知らせします。", "ok")
            elif action == "meeting":
                actions.send_meeting(ref, meeting_id=request.form.get("meeting_id", ""),
                                     passcode=request.form.get("passcode", ""), url=request.form.get("url", ""), by=by)
                flash("接続情報を利用者にLINEで送信しました。", "ok")
            elif action == "confirm":
                done = actions.confirm(ref, meeting_id=request.form.get("meeting_id", ""),
                                       passcode=request.form.get("passcode", ""), url=request.form.get("url", ""), by=by)
                flash("申込みを確定し、利用者にLINEでお知らせします。" if done.acted else "この申込みはすでに確定しています。", "ok")
                done_detail = "ok" if done.acted else "repeat"
            elif action == "decline":
                reason = request.form.get("reason_text", "").strip() or request.form.get("reason", "")
                done = actions.decline(ref, reason, by=by)
                flash("申込みをお断りし、利用者に理由をLINEでお知らせします。" if done.acted else "この申込みはすでにお断りしています。", "ok")
                done_detail = "ok" if done.acted else "repeat"
            elif action == "propose":
                done = actions.propose(ref, request.form.get("slot", ""), by=by)
                flash("別の日時を提案し、利用者にLINEでお知らせします。" if done.acted else "この日時はすでに提案しています。", "ok")
                done_detail = "ok" if done.acted else "repeat"
            elif action == "follow_up":
                made, new = actions.book_follow_up(ref, request.form.get("slot", ""), request.form.get("nonce", ""), by=by)
                flash(f"次回の予約（{when_label(made)}、予約番号 {made['id']}）を"
                      + ("登録し、利用者にLINEでお知らせします。" if new else "登録済みです。"), "ok")
                record("booking_follow_up", office=found["office"], ref=booking_ref(found), detail="ok" if new else "repeat")
                record("booking_booked", office=made["office"], ref=booking_ref(made), detail="follow_up")
                return redirect(url_for("staff.booking", ref=booking_ref(made)))
            else:
                abort(404)
        except StaffActionError as exc:
            flash(str(exc), "error")
            done_detail = "refused"
        record(f"booking_{action}", office=found["office"], ref=booking_ref(found), detail=done_detail)
        return redirect(back)

    @bp.get("/handoffs")
    def handoffs() -> str:
        items = []
        for user, info in waiting().items():
            items.append({
                "who": who(user),
                "office": office_label(service.offices, info.get("office", "")),
                "reason": threads.REASONS.get(info.get("reason", ""), info.get("reason", "")),
                "step": info.get("step", ""),
                "since": _when(info.get("at", "")),
                "bookings": [(b.get("name", ""), b["id"], booking_ref(b), when_label(b))
                             for b in upcoming_for(service, user, now()) if current_account().serves(b["office"])],
                "thread": info.get("thread", ""),
                "latest": threads.latest(service, info.get("thread", "")),
            })
        pushes = threads.ThreadActions(service).push_counts()
        record("handoffs_view", detail=str(len(items)))  # names of the waiting users' bookings are shown
        return render_template("staff/handoffs.html", items=items, pushes=pushes)

    @bp.post("/handoffs/resume")
    def resume() -> Response:
        wanted = request.form.get("who", "")
        user = next((u for u in waiting() if _same(who(u), wanted)), None)
        waiting_info = service.handoffs.info(user) if user else None
        if user is None:
            flash("この利用者はすでに自動応答に戻っています。", "error")
        elif service.resume(user, by=current_account().id):
            log.info("staff_resume user=%s account=%s", who(user), current_account().id)
            record("handoff_resume", office=(waiting_info or {}).get("office", ""), ref=(waiting_info or {}).get("thread", ""))
            flash("自動応答に戻しました。利用者にLINEでお知らせします。", "ok")
        else:
            flash("この利用者はすでに自動応答に戻っています。", "ok")
        return redirect(url_for("staff.handoffs"))

    @bp.get("/outbox")
    def outbox() -> str:
        entries = []
        for stream_id, entry in dead_letters():
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
        if profile is not None and not current_account().serves(profile.id):
            return forbidden_office()
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
        log.info("staff_export office=%s days=%d rows=%d account=%s", profile.id, (last - first).days + 1,
                 len(bookings), current_account().id)
        record("export_csv", office=profile.id, detail=f"{first.isoformat()}..{last.isoformat()}")
        name = f"hwbot-{profile.id}-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(bookings_csv(bookings).encode("utf-8"), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Content-Type": "text/csv; charset=utf-8"})

    @bp.get("/ics/<office>.ics")
    def ics(office: str) -> Response:
        profile = find_office(service.offices, office)
        if profile is None:
            abort(404)
        reader = identity.feed_account(request.args.get("key", ""), office)
        if reader is None:
            abort(403)
        auth.record(reader.id, "ics_fetch", office=office)
        today = now().date()
        days = calendar.iter_days(today - timedelta(days=ICS_DAYS_BACK), calendar.window_end(profile, now()))
        bookings = [b for day in days for b in service.bookings.store.on_day(office, day.isoformat())]
        body = bookings_ics(profile, bookings, now())
        return Response(body, mimetype="text/calendar", headers={"Content-Type": "text/calendar; charset=utf-8"})

    register_api(bp, actions, auth.api_error, current_account, record, audit_ref)

    @bp.get("/api/bookings")
    def api_bookings() -> Response:
        office = request.args.get("office", "")
        if not office:
            return auth.api_error(400, "office: required (an office id such as noto)")
        profile = find_office(service.offices, office)
        if profile is None:
            return auth.api_error(404, f"office: unknown office {office!r}")
        if not current_account().serves(office):
            return auth.api_error(403, f"office: this account does not serve {office!r}")
        text = request.args.get("date")
        day = _parse_day(text) if text else now().date()
        if day is None:
            return auth.api_error(400, "date: must be YYYY-MM-DD")
        bookings = service.bookings.store.on_day(office, day.isoformat())
        record("api_bookings", office=office, detail=day.isoformat())
        return jsonify({"office": office, "date": day.isoformat(),
                        "bookings": [{**b, "ref": booking_ref(b)} for b in bookings]})

    threads.add_routes(bp, service, api_error=auth.api_error, who=who, account=current_account,
                       name_of=identity.name_of, record=record)
    audit.add_routes(bp, service, current_account=auth.signed_in, api_error=auth.api_error)
    return bp

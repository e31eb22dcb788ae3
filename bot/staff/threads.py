"""Live handoff threads: staff read what a waiting user wrote and answer in the chat.

`ThreadActions` (no Flask) reads the open threads and acts on them: a reply goes to the user as a
LINE push through the outbox, appended to the thread and queued in one atomic step, once per nonce
(a double click or a repeated API call sends once); closing hands the user back to the bot (and
tells them by push); the OA Manager switch makes the bot silent for the user while staff answer in
LINE Official Account Manager's chat. `add_routes` puts the console pages
(`/staff/handoffs/<id>`) and the JSON API (`/staff/api/handoffs…`) on the console's blueprint, so
they share its login, CSRF check and bearer token.

What the user and staff wrote is personal data: it is shown behind the staff login only and never
logged (log lines carry the thread id and the action).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for

from bot import i18n
from bot.channels.line.render import to_messages
from bot.clock import JST
from bot.dialog import texts as T
from bot.dialog.buttons import command_option
from bot.dialog.replies import Ask, Reply
from bot.errors import StaffActionError
from bot.service import BotService
from bot.staff import languages
from bot.staff.actions import find_office, office_label, upcoming_for, when_label
from bot.staff.identity import Account
from bot.store.bookings import booking_ref
from bot.store.handoffs import valid_thread_id

log = logging.getLogger("hwbot.staff")

REPLY_MAX = 2000  # characters of one staff reply (LINE's text message takes 5,000)
# Push retry keys of staff replies: uuid5 of the thread and the form's (or the API call's) nonce.
NAMESPACE = uuid.UUID("0f4a8d3e-6c1b-4e2f-9a7d-3b5c8e1f2a60")
REASONS = {
    "user_request": "担当者との会話を希望",
    "ineligible": "利用条件に当てはまらず、担当者との会話を希望",
    "stuck": "同じ質問で何度も先に進めない",
    "other_times": "案内時間以外の相談時間を希望",
    "no_show_limit": "無断キャンセルの上限に達した",
    "cancel_no_phone": "キャンセルを希望（案内できる電話番号なし）",
    "change_no_phone": "日時の変更を希望（案内できる電話番号なし）",
}
# What the user already entered in the booking in progress, shown to staff on an open thread.
ENTERED = (("name", "お名前"), ("number", "求職番号"), ("email", "メールアドレス"), ("phone", "電話番号"),
           ("topic", "相談内容"))


class ThreadActions:
    """The open handoff threads and what staff do with them, over the bot's service."""

    def __init__(self, service: BotService):
        self.service = service
        self.store = service.handoffs

    def now(self) -> datetime:
        return self.service.clock.now()

    def open_threads(self, office: str | None = None, *, shown: Callable[[str], bool] = lambda office: True
                     ) -> list[dict[str, Any]]:
        """The open threads (oldest first) as the API shows them: id, office, since, reason, mode, messages;
        of `office` only, or of every office `shown` accepts."""
        found = []
        for info in self.store.waiting().values():
            thread = info.get("thread")
            if not thread or (office and info.get("office") != office) or not shown(info.get("office", "")):
                continue
            meta = self.store.meta(thread)
            if meta:
                found.append(self.describe(thread, meta))
        return found

    def describe(self, thread: str, meta: dict[str, str]) -> dict[str, Any]:
        messages = [{"from": m.get("from", ""), "text": m.get("text", ""), "at": m.get("at", ""),
                     **({"by": m["by"]} if m.get("by") else {})}
                    for m in self.store.messages(thread)]
        return {"id": thread, "office": meta.get("office", ""), "since": meta.get("since", ""),
                "reason": meta.get("reason", ""), "mode": meta.get("mode", "console"),
                "closed": bool(meta.get("closed_at")), "messages": messages}

    def thread(self, thread: str) -> tuple[dict[str, str], str]:
        """(fields, user) of a thread; StaffActionError (404) when there is none."""
        meta = self.store.meta(thread) if valid_thread_id(thread) else {}
        if not meta or not meta.get("user"):
            raise StaffActionError("この会話は見つかりません（削除されたか、保存期間を過ぎました）。")
        return meta, meta["user"]

    def _open(self, thread: str) -> tuple[dict[str, str], str]:
        meta, user = self.thread(thread)
        if meta.get("closed_at") or (self.store.info(user) or {}).get("thread") != thread:
            raise StaffActionError("この会話はすでに終了しています。")
        return meta, user

    def reply(self, thread: str, text: str, nonce: str, *, by: str) -> bool:
        """Send staff's answer to the user (push via the outbox); False when this nonce was sent already.

        The message records who wrote it (`by`: the account's id)."""
        text = text.strip()
        if not text:
            raise StaffActionError("返信の内容を入力してください。")
        if len(text) > REPLY_MAX:
            raise StaffActionError(f"返信は{REPLY_MAX}文字以内にしてください。")
        meta, user = self._open(thread)
        with i18n.using(self.service.user_language(user)):  # the frame in the user's language; the text as typed
            messages = to_messages(self.reply_replies(meta, text), base_url=self.service.settings.public_url or "")
        nonce = nonce or uuid.uuid4().hex
        at = self.now().isoformat()
        push = {"id": str(uuid.uuid5(NAMESPACE, f"{thread}|{nonce}")), "kind": "push", "to": user,
                "messages": messages, "at": at}
        status = self.store.staff_reply(thread, {"from": "staff", "by": by, "text": text, "at": at}, push, nonce)
        if status < 0:
            raise StaffActionError("この会話はすでに終了しています。")
        log.info("staff_thread_reply thread=%s new=%d", thread, status)
        return status == 1

    def reply_replies(self, meta: dict[str, str], text: str) -> list[Reply]:
        """What the user reads: the answer, shown as from the office's staff, and 「自動応答に戻る」."""
        shown = T.STAFF_REPLY.format(office=sender(self.service, meta), text=text)
        return [Ask(shown, (command_option("resume_bot"),))]

    def close(self, thread: str, *, by: str) -> None:
        """Staff (`by`) end the thread: the bot resumes for the user and tells them so by push."""
        _, user = self._open(thread)
        self.service.resume(user, by=by)
        log.info("staff_thread_closed thread=%s", thread)

    def set_manager(self, thread: str, manager: bool) -> None:
        """Answer in LINE Official Account Manager (the bot stays silent) or here again."""
        _, user = self._open(thread)
        if not self.service.set_quiet(user, manager):
            raise StaffActionError("この会話はすでに終了しています。")
        log.info("staff_thread_mode thread=%s mode=%s", thread, "manager" if manager else "console")

    def push_counts(self) -> list[tuple[str, dict[str, int]]]:
        """(YYYY-MM, counts) of this month and the one before (Japan time)."""
        today = self.now().astimezone(JST).date()
        this = today.replace(day=1)
        last = (this - timedelta(days=1)).replace(day=1)
        return [(f"{month:%Y-%m}", self.service.pushes.month(f"{month:%Y-%m}")) for month in (this, last)]


def sender(service: BotService, meta: dict[str, str]) -> str:
    """Whom a staff reply is from, in the language of the turn: the office's short name, or ハローワーク
    before the user chose one."""
    office = meta.get("office", "")
    if find_office(service.offices, office) is None:
        return T.NO_OFFICE_SENDER
    return service.offices.localized(office, i18n.current()).short_name


def latest(service: BotService, thread: str) -> str:
    """The waiting list's summary of a thread: how many messages, and who wrote last and when."""
    messages = service.handoffs.messages(thread) if thread else []
    if not messages:
        return "なし"
    last = messages[-1]
    who = "利用者" if last.get("from") == "user" else "担当者"
    return f"{len(messages)}件（最新: {who} {_when(last.get('at', ''))[5:]}）"


def _when(value: str) -> str:
    try:
        return f"{datetime.fromisoformat(value).astimezone(JST):%Y-%m-%d %H:%M}"
    except ValueError:
        return value


def add_routes(bp: Blueprint, service: BotService, *, api_error: Callable[[int, str], Response],
               who: Callable[[str], str], account: Callable[[], Account], name_of: Callable[[str], str],
               record: Callable[..., None]) -> None:
    """The thread pages and API on the console's blueprint (its guard checks the login or the token).

    A thread of an office the account does not serve is as if it did not exist (404); a thread of a
    user who chose no office yet is every account's. Each view and action is an audit entry (`record`)
    with the thread id as its ref."""
    threads = ThreadActions(service)

    def sees(office: str) -> bool:
        return office == "" or account().serves(office)

    def audit_id(thread: str) -> str:
        """The thread id for the audit trail when it has an id's shape, else `?`."""
        return thread if valid_thread_id(thread) else "?"

    def find(thread: str) -> tuple[dict[str, str], str]:
        """(fields, user) of a thread the account may see; StaffActionError (404) otherwise."""
        meta, user = threads.thread(thread)
        if not sees(meta.get("office", "")):
            raise StaffActionError("この会話は見つかりません（削除されたか、保存期間を過ぎました）。")
        return meta, user

    @bp.get("/handoffs/<thread>")
    def thread_page(thread: str) -> Any:
        try:
            meta, user = find(thread)
        except StaffActionError as exc:
            record("thread_view", ref=audit_id(thread), detail="not_found")
            return render_template("staff/message.html", title="会話が見つかりません", message=str(exc)), 404
        record("thread_view", office=meta.get("office", ""), ref=thread)
        is_open = not meta.get("closed_at") and (service.handoffs.info(user) or {}).get("thread") == thread
        messages = [{**m, "at": _when(m.get("at", "")), "by_name": name_of(m["by"]) if m.get("by") else ""}
                    for m in service.handoffs.messages(thread)]
        bookings = [(b.get("name", ""), b["id"], booking_ref(b), when_label(b))
                    for b in upcoming_for(service, user, threads.now()) if account().serves(b["office"])]
        answers = ((service.conversations.load(user)[0] or {}).get("answers") or {}) if is_open else {}
        language = languages.wish(service.user_language(user)) or languages.JAPANESE
        entered = [(label, answers[key]) for key, label in ENTERED if answers.get(key)]
        return render_template(
            "staff/thread.html", thread=thread, meta=meta, messages=messages, is_open=is_open,
            office=office_label(service.offices, meta.get("office", "")), sender=sender(service, meta),
            reason=REASONS.get(meta.get("reason", ""), meta.get("reason", "")), since=_when(meta.get("since", "")),
            closed_at=_when(meta.get("closed_at", "")), who=who(user), bookings=bookings, entered=entered,
            manager=meta.get("mode") == "manager", nonce=uuid.uuid4().hex, reply_max=REPLY_MAX, language=language,
        )

    @bp.post("/handoffs/<thread>/<action>")
    def thread_act(thread: str, action: str) -> Any:
        try:
            meta, _ = find(thread)
        except StaffActionError as exc:
            record(f"thread_{action if action in ('reply', 'close', 'manager') else '?'}", ref=audit_id(thread),
                   detail="not_found")
            return render_template("staff/message.html", title="会話が見つかりません", message=str(exc)), 404
        back = redirect(url_for("staff.thread_page", thread=thread))
        by = account().id
        office = meta.get("office", "")
        try:
            if action == "reply":
                sent = threads.reply(thread, request.form.get("text", ""), request.form.get("nonce", ""), by=by)
                flash("返信を送りました（利用者にLINEで届きます）。" if sent else "この返信は送信済みです。", "ok")
                record("thread_reply", office=office, ref=thread, detail="ok" if sent else "repeat")
            elif action == "close":
                threads.close(thread, by=by)
                flash("会話を終了し、自動応答に戻しました。利用者にLINEでお知らせします。", "ok")
                record("thread_close", office=office, ref=thread)
                return redirect(url_for("staff.handoffs"))
            elif action == "manager":
                manager = request.form.get("manager") == "1"
                threads.set_manager(thread, manager)
                flash("LINE公式アカウントマネージャーで返信します。その間、ボットはこの利用者に返信しません。" if manager
                      else "この画面から返信します。", "ok")
                record("thread_mode", office=office, ref=thread, detail="manager" if manager else "console")
            else:
                return Response("not found", status=404)
        except StaffActionError as exc:
            flash(str(exc), "error")
            record(f"thread_{action if action in ('reply', 'close', 'manager') else '?'}", office=office, ref=thread,
                   detail="refused")
        return back

    @bp.get("/api/handoffs")
    def api_handoffs() -> Response:
        office = request.args.get("office") or None
        if office and find_office(service.offices, office) is None:
            return api_error(404, f"office: unknown office {office!r}")
        if office and not account().serves(office):
            return api_error(403, f"office: this account does not serve {office!r}")
        found = threads.open_threads(office, shown=sees)
        record("api_handoffs", office=office or "", detail=str(len(found)))  # what the users wrote is shown
        return jsonify({"handoffs": found})

    @bp.post("/api/handoffs/<thread>/<action>")
    def api_thread(thread: str, action: str) -> Response:
        try:
            meta, _ = find(thread)
        except StaffActionError:
            record(f"thread_{action if action in ('reply', 'close', 'manager') else '?'}", ref=audit_id(thread),
                   detail="not_found")
            return api_error(404, "handoff: no such thread")
        office = meta.get("office", "")
        body = request.get_json(silent=True)
        try:
            if action == "reply":
                text = body.get("text") if isinstance(body, dict) else None
                if not isinstance(text, str) or not text.strip():
                    return api_error(400, "text: required (a non-empty string)")
                if len(text.strip()) > REPLY_MAX:
                    return api_error(400, f"text: at most {REPLY_MAX} characters")
                key = request.headers.get("Idempotency-Key", "")[:100]
                sent = threads.reply(thread, text, key, by=account().id)
                record("thread_reply", office=office, ref=thread, detail="api" if sent else "repeat")
            elif action == "close":
                threads.close(thread, by=account().id)
                record("thread_close", office=office, ref=thread, detail="api")
            else:
                return api_error(404, "action: reply or close")
        except StaffActionError:
            record(f"thread_{action if action in ('reply', 'close', 'manager') else '?'}", office=office, ref=thread,
                   detail="refused")
            return api_error(409, "handoff: the thread is closed")
        meta, _ = threads.thread(thread)
        return jsonify({"handoff": threads.describe(thread, meta)})

"""The simulator: without LINE credentials the app plays the LINE platform for itself.

    GET  /                      the phone-shaped chat page (static/index.html, sim.css, sim.js)
    POST /sim/send              {"user", "kind", "text", "display"} -> a signed webhook event to /callback
    GET  /sim/messages          ?user=U…&after=N: the user's chat after sequence N, and the typing indicator
    GET  /sim/staff             ?after=<stream id>: staff notices from the outbox as they are produced
    GET  /sim/users             the test users, the bot's clock and the rich menu
    POST /sim/clear             {"user"}: forget what that user's screen shows
    POST /sim/profile           {"user", "language"}: the `language` of the user's LINE profile ("" for none)
    POST /sim/line/v2/bot/...   the stand-in Messaging API the bot really calls (see line_api.py)

Events go to `/callback` over real HTTP with a real signature, so the page exercises exactly what
LINE would. The webhook queues its answer; the outbox worker (a thread of `hwbot serve` in simulator
mode) sends it to the stand-in's reply endpoint, and the page reads it from `/sim/messages`, whose
`settled` says when nothing queued is left to send. Under gunicorn the web process needs threads
(`--threads`) or more than one free worker, because /sim/send waits for /callback.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file

from bot.channels.line.richmenu import IMAGE as RICHMENU_IMAGE, rich_menu
from bot.channels.line.webhook import event_json, sign, webhook_body
from bot.dialog import texts
from bot.errors import StoreError
from bot.service import BotService
from bot.simulator import line_api
from bot.store.sim_inbox import SimInbox

log = logging.getLogger("hwbot.simulator")

STATIC = Path(__file__).resolve().parent / "static"
KINDS = ("text", "postback", "follow", "unfollow", "sticker")
MAX_TEXT = 5000  # LINE's limit for a text message
WEBHOOK_TIMEOUT_S = 15  # the webhook itself answers in well under 2 s; this only stops a deadlock
_USER_ID = re.compile(r"U[0-9a-f]{32}")
_LANGUAGE_TAG = re.compile(r"(|[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*)")

# The channel credentials of simulator mode: the app signs its own webhook events with the secret,
# and the stand-in Messaging API accepts only the token.
SIMULATOR_SECRET = "hwbot-simulator-secret"
SIMULATOR_TOKEN = "hwbot-simulator-token"

# Test users: LINE user ids have the form U + 32 hex digits.
USERS = (
    {"id": "U" + "0" * 31 + "1", "name": "山田 花子"},
    {"id": "U" + "0" * 31 + "2", "name": "佐藤 美咲"},
    {"id": "U" + "0" * 31 + "3", "name": "鈴木 一郎"},
)

# What the user's own screen shows for an event that has no text of its own.
EVENT_NOTES = {"follow": "友だち追加しました", "unfollow": "ブロックしました"}

# No proxies: the simulator only ever calls this very app.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def create_blueprint(service: BotService, secret: str) -> Blueprint:
    """The simulator's page, its event sender, its reads, and the stand-in Messaging API."""
    bp = Blueprint("simulator", __name__, static_folder=str(STATIC), static_url_path="/sim/static")
    inbox = SimInbox(service.client)
    line_api.register(bp, service, inbox, SIMULATOR_TOKEN)

    @bp.get("/")
    def page() -> Response:
        response = send_file(STATIC / "index.html", mimetype="text/html", max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/sim/users")
    def users() -> tuple[Response, int] | Response:
        menu = rich_menu()
        try:
            languages = {user["id"]: inbox.language(user["id"]) or "" for user in USERS}
        except StoreError:
            return jsonify({"error": "store unavailable"}), 503
        return jsonify(
            {
                "users": [{**user, "language": languages[user["id"]]} for user in USERS],
                "now": service.clock.now().isoformat(),
                "richmenu": {
                    "image": "/sim/richmenu.png",
                    "size": menu["size"],
                    "chatBarText": menu["chatBarText"],
                    "areas": menu["areas"],
                },
            }
        )

    @bp.get("/sim/richmenu.png")
    def richmenu_image() -> Response:
        return send_file(RICHMENU_IMAGE, mimetype="image/png", max_age=3600)

    @bp.post("/sim/send")
    def send() -> tuple[Response, int] | Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "a JSON object is expected"}), 400
        user, kind = body.get("user"), body.get("kind")
        text, display = body.get("text") or "", body.get("display")
        if not isinstance(user, str) or not _USER_ID.fullmatch(user):
            return jsonify({"error": "user must be a LINE user id (U + 32 hex digits)"}), 400
        if kind not in KINDS:
            return jsonify({"error": f"kind must be one of {', '.join(KINDS)}"}), 400
        if not isinstance(text, str) or len(text) > MAX_TEXT or (display is not None and not isinstance(display, str)):
            return jsonify({"error": f"text must be a string of at most {MAX_TEXT} characters"}), 400
        if kind == "text" and not text:
            return jsonify({"error": "a text message needs text"}), 400

        now = service.clock.now()
        event = event_json(user, kind, text, timestamp_ms=int(now.timestamp() * 1000))
        try:
            if event.get("replyToken"):
                inbox.issue_reply_token(event["replyToken"], user)
            shown = _shown(kind, text, display)
            if shown:
                inbox.add(user, {**shown, "at": now.isoformat()})
        except StoreError as exc:
            log.error("simulator_store_unavailable error=%s", exc)
            return jsonify({"error": "store unavailable"}), 503

        payload = webhook_body(event).encode()
        call = urllib.request.Request(
            request.host_url.rstrip("/") + "/callback",
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": sign(payload, secret)},
        )
        try:
            with _opener.open(call, timeout=WEBHOOK_TIMEOUT_S) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            log.warning("simulator_webhook_unreachable error=%s", exc.__class__.__name__)
            return jsonify({"error": "the webhook did not answer (under gunicorn, run with --threads)"}), 504
        return jsonify({"status": status, "ok": status == 200, "replyToken": event.get("replyToken")})

    @bp.post("/sim/clear")
    def clear() -> tuple[Response, int] | Response:
        """Forget what a test user's screen shows (the bot's own data is untouched)."""
        body = request.get_json(silent=True)
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or not _USER_ID.fullmatch(user):
            return jsonify({"error": "user must be a LINE user id (U + 32 hex digits)"}), 400
        try:
            inbox.clear(user)
        except StoreError:
            return jsonify({"error": "store unavailable"}), 503
        return jsonify({"ok": True})

    @bp.post("/sim/profile")
    def profile() -> tuple[Response, int] | Response:
        """The `language` the stand-in's LINE profile gives for a test user (issue 14)."""
        body = request.get_json(silent=True)
        user = body.get("user") if isinstance(body, dict) else None
        language = body.get("language") if isinstance(body, dict) else None
        if not isinstance(user, str) or not _USER_ID.fullmatch(user):
            return jsonify({"error": "user must be a LINE user id (U + 32 hex digits)"}), 400
        if language is not None and (not isinstance(language, str) or not _LANGUAGE_TAG.fullmatch(language)):
            return jsonify({"error": "language must be a BCP 47 tag such as en or ja-JP, or empty"}), 400
        try:
            inbox.set_language(user, language or None)
        except StoreError:
            return jsonify({"error": "store unavailable"}), 503
        return jsonify({"ok": True, "language": language or ""})

    @bp.get("/sim/messages")
    def messages() -> tuple[Response, int] | Response:
        user = request.args.get("user", "")
        after = request.args.get("after", "0")
        if not _USER_ID.fullmatch(user) or not after.isdigit():
            return jsonify({"error": "?user=U… (a LINE user id) and ?after=N (a number) are needed"}), 400
        try:
            items, last = inbox.since(user, int(after))
            loading = inbox.loading(user)
            settled = service.outbox.settled()
        except StoreError:
            return jsonify({"error": "store unavailable"}), 503
        # settled: the worker has sent everything queued (answers come from the worker, not the webhook)
        return jsonify({"items": items, "last": last, "loading": loading, "settled": settled})

    @bp.get("/sim/staff")
    def staff() -> tuple[Response, int] | Response:
        after = request.args.get("after", "")
        if after and not _stream_id(after):
            return jsonify({"error": "?after= takes a stream id such as 1700000000000-0"}), 400
        try:
            entries = service.outbox.entries()
        except StoreError:
            return jsonify({"error": "store unavailable"}), 503
        notices = []
        for entry_id, fields in reversed(entries):  # oldest first
            if fields.get("kind") in ("push", "reply") or (after and _stream_id(entry_id) <= _stream_id(after)):
                continue
            notices.append(_notice(service, entry_id, fields))
        last = entries[0][0] if entries else after
        return jsonify({"items": notices, "last": last})

    return bp


def _shown(kind: str, text: str, display: str | None) -> dict[str, Any] | None:
    """What the user's own screen shows for what they did (LINE shows a postback's displayText only)."""
    if kind == "text":
        return {"from": "user", "type": "text", "text": text}
    if kind == "postback":
        return {"from": "user", "type": "text", "text": display} if display else None
    if kind == "sticker":
        return {"from": "user", "type": "sticker"}
    return {"from": "system", "type": "event", "text": EVENT_NOTES[kind]}


def _stream_id(value: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)-(\d+)", value)
    return (int(match[1]), int(match[2])) if match else None


def _notice(service: BotService, entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """An outbox entry as the staff pane shows it (JSON fields decoded, the office's name added)."""
    notice: dict[str, Any] = {"entry": entry_id}
    for name, value in fields.items():
        if name == "fields":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        notice[name] = value
    office = fields.get("office", "")
    notice["office_name"] = service.offices[office].short_name if office in service.offices else office or texts.japanese("NO_OFFICE")
    return notice


__all__ = ["USERS", "create_blueprint"]

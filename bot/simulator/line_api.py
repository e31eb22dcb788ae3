"""The stand-in LINE Messaging API under `/sim/line`: the bot's real reply, push and loading calls land here.

It answers as LINE does where the bot could notice the difference: a bad bearer token is 401, an
unknown or already used reply token is 400, a push repeated with the same `X-Line-Retry-Key` is 409
and delivered once, 1–5 messages per call. What it accepts goes to the user's simulator inbox.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bot.channels.line.api import profile_answer

from bot.service import BotService
from bot.store.sim_inbox import SimInbox

MAX_MESSAGES = 5


def _error(status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"message": message, **extra}), status


def _sent(messages: list[Any]) -> dict[str, Any]:
    """LINE's answer to a reply or push: an id (and quote token) per message sent."""
    return {"sentMessages": [{"id": str(uuid.uuid4().int)[:18], "quoteToken": uuid.uuid4().hex} for _ in messages]}


def register(bp: Blueprint, service: BotService, inbox: SimInbox, token: str) -> None:
    """Add the stand-in's routes to the simulator blueprint."""

    def authorised() -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def messages_of(body: Any) -> list[dict[str, Any]] | None:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            return None
        if not all(isinstance(message, dict) and message.get("type") for message in messages):
            return None
        return messages

    def deliver(user: str, messages: list[dict[str, Any]], via: str) -> None:
        at = service.clock.now().isoformat()
        inbox.add(user, *({"from": "bot", "via": via, "at": at, "message": message} for message in messages))
        inbox.stop_loading(user)  # LINE hides the loading animation when a message arrives

    @bp.post("/sim/line/v2/bot/message/reply")
    def line_reply():
        if not authorised():
            return _error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        body = request.get_json(silent=True)
        messages = messages_of(body)
        if messages is None:
            return _error(400, "The request body has 1 error(s)", details=[{"message": "must be 1-5 messages", "property": "messages"}])
        user = inbox.use_reply_token(str(body.get("replyToken") or ""))
        if user is None:
            return _error(400, "Invalid reply token")
        deliver(user, messages, "reply")
        return jsonify(_sent(messages))

    @bp.post("/sim/line/v2/bot/message/push")
    def line_push():
        if not authorised():
            return _error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        body = request.get_json(silent=True)
        messages = messages_of(body)
        to = body.get("to") if isinstance(body, dict) else None
        if messages is None or not isinstance(to, str) or not to.startswith(("U", "C", "R")) or len(to) > 64:
            return _error(400, "The request body has 1 error(s)", details=[{"message": "invalid to or messages", "property": "to"}])
        retry_key = request.headers.get("X-Line-Retry-Key")
        if retry_key is not None:
            try:
                retry_key = str(uuid.UUID(retry_key))
            except ValueError:
                return _error(400, "The value for the 'X-Line-Retry-Key' header is invalid")
            if not inbox.accept_retry_key(retry_key):
                response, status = _error(409, "The retry key is already accepted")
                response.headers["x-line-accepted-request-id"] = retry_key
                return response, status
        deliver(to, messages, "push")
        return jsonify(_sent(messages))

    @bp.post("/sim/line/v2/bot/chat/loading/start")
    def line_loading():
        if not authorised():
            return _error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        body = request.get_json(silent=True) or {}
        chat = body.get("chatId") if isinstance(body, dict) else None
        seconds = body.get("loadingSeconds", 20) if isinstance(body, dict) else 20
        if not isinstance(chat, str) or not chat or type(seconds) is not int or not 5 <= seconds <= 60 or seconds % 5:
            return _error(400, "The request body has 1 error(s)")
        inbox.start_loading(chat, seconds)
        return jsonify({}), 202

    @bp.get("/sim/line/v2/bot/profile/<user>")
    def line_profile(user: str):
        """The user's profile; `language` as the simulator page set it for the test user (else none)."""
        if not authorised():
            return _error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        try:
            language = inbox.language(user)
        except ValueError:
            return _error(404, "Not found")
        return jsonify(profile_answer(user, language))

    @bp.route("/sim/line/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def line_other(rest: str):
        """Anything else the bot might call: LINE's JSON 404, so a caller sees a clear failure."""
        return _error(404, f"Not found: /{rest} is not played by the simulator")

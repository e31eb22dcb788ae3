"""`POST /callback`: verify, convert each LINE event to an `Inbound`, run the turn, queue the answer. Nothing more.

Only a user's one-to-one chat in active mode reaches the dialog; a join to a group or room gets one
short reply (offices add the bot to a group for staff notices); every other event, source and mode
is acknowledged with 200 and ignored (README "The webhook" has the table).

Order matters (docs/architecture.md, "One webhook event, end to end"): size cap and signature before any work; an
event id already processed is skipped; the id is marked processed in the same atomic save as the
turn's effects and its rendered answer (an outbox entry that `hwbot worker` sends: `replies`); Redis
trouble answers 503, so LINE redelivers and nothing is lost. The request never waits for LINE.

The signature is checked with line-bot-sdk's `SignatureValidator`; the events are read from the
JSON directly (`read_events`) rather than through the SDK's `WebhookParser`, whose pydantic models
cost ~0.2 ms an event to build (`hwbot bench`) for the five fields a turn needs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from flask import Blueprint, Response, current_app, request
from linebot.v3 import SignatureValidator

from bot.channels.line.api import LineMessaging
from bot.channels.line.later import Later
from bot.channels.line.replies import LOADING_AFTER_S, reply_entry, show_loading
from bot.channels.line.render import to_messages
from bot.dialog import Inbound, Outcome
from bot.dialog.conversation import EventKind
from bot.errors import StoreError
from bot.service import BotService, user_hash

log = logging.getLogger("hwbot.webhook")

MAX_BODY_BYTES = 256 * 1024


# A user id as it becomes part of a Redis key (LINE's are U + 32 hex digits); other ids are not read.
_USER_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")
# A group or room id as an office profile's staff.notify.line_group_id takes it.
_CHAT_ID = re.compile(r"[CR][0-9a-f]{32}")
_CHAT_SOURCES = {"group": "groupId", "room": "roomId"}  # the id field of each
# The join reply (the bot was added to a group or room): staff notices go there, job seekers book 1:1.
JOIN_TEXT = (
    "ハローワークのオンライン職業相談の予約ボットです。{place}には、予約などに関する職員向けのお知らせをお送りします。"
    "求職者の方のご予約は、このアカウントとの1対1のトークでお受けしています。"
)
JOIN_ID_TEXT = (
    "\n\nお知らせの送り先として、プロファイル（office_profiles/<id>.yaml の staff.notify.line_group_id）に"
    "設定する{name}は次のとおりです。\n{chat}"
)
JOIN_PLACES = {"group": ("このグループ", "グループID"), "room": ("このトーク", "トークID")}


@dataclass(slots=True)  # not frozen: a frozen one's __init__ costs ~0.8 µs an event (read_events is hot)
class LineEvent:
    """What the bot reads of one webhook event, and which of its three reactions it gets.

    `inbound` set: the dialog runs (a user's message, postback, follow or unfollow in a one-to-one
    chat); `join`: the join reply goes to the group or room; neither: acknowledged and ignored.
    """

    kind: str  # the event's type, as LINE sent it
    source: str  # user | group | room | other (none, or a source type LINE has not defined)
    inbound: Inbound | None
    join: bool  # the bot was added to a group or room (active mode, the chat's id given)
    chat: str | None  # the group or room id of a group or room source
    event_id: str | None  # webhookEventId (None when absent or empty)
    reply_token: str | None
    redelivery: bool
    standby: bool  # mode standby (another channel, e.g. a module, holds the chat) or unknown: never answered


class MalformedEvent(ValueError):
    """The body is not a LINE webhook body (answered 400)."""


def _field(data: dict[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        raise MalformedEvent(f"{name} is not a {kind.__name__}")
    return value


def read_events(body: str | bytes) -> list[LineEvent]:
    """The events of a webhook body (after its signature was checked); raises MalformedEvent.

    Read as the SDK's models read them: `events` must be a list of objects with a `type`; a
    message or postback event without its content is malformed, and so is a body whose text is
    not valid Unicode (an escaped lone surrogate). Only a user's one-to-one chat in active mode
    reaches the dialog (an unfollow in standby mode too: it erases personal data and sends
    nothing); a join to a group or room is answered; every other event is read and ignored.
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedEvent("not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedEvent("not an object")
    if _escapes_surrogates(body) and _has_lone_surrogate(payload):
        raise MalformedEvent("not valid Unicode")
    events = _field(payload, "events", list, required=True)
    result = []
    for data in events:
        if not isinstance(data, dict):
            raise MalformedEvent("an event is not an object")
        kind = _field(data, "type", str, required=True)
        source = _field(data, "source", dict) or {}
        context = _field(data, "deliveryContext", dict) or {}
        mode = data.get("mode")
        standby = mode is not None and mode != "active"  # an unknown mode is not taken as ours either
        what, text = _content(data, kind)
        source_type = source.get("type")
        inbound, chat, join = None, None, False
        if source_type == "user":
            user = _field(source, "userId", str)
            if what and user and _USER_ID.fullmatch(user) and (not standby or what == "unfollow"):
                inbound = Inbound(user=user, kind=what, text=text)
        elif source_type in _CHAT_SOURCES:
            chat = _field(source, _CHAT_SOURCES[source_type], str)
            join = kind == "join" and not standby and bool(chat)
        result.append(LineEvent(
            kind=kind,
            source=source_type if source_type in ("user", "group", "room") else "other",
            inbound=inbound,
            join=join,
            chat=chat,
            event_id=_field(data, "webhookEventId", str) or None,
            reply_token=_field(data, "replyToken", str),
            redelivery=bool(_field(context, "isRedelivery", bool)),
            standby=standby,
        ))
    return result


def _content(data: dict[str, Any], kind: str) -> tuple[EventKind | None, str]:
    """The dialog's kind and text of an event type (None: not one the dialog takes)."""
    if kind == "message":
        message = _field(data, "message", dict, required=True)
        message_type = _field(message, "type", str, required=True)
        if message_type == "text":
            return "text", _field(message, "text", str, required=True)
        return "media", message_type  # image, video, audio, file, location, sticker (and any later type)
    if kind == "postback":
        postback = _field(data, "postback", dict, required=True)
        return "postback", _field(postback, "data", str, required=True)
    if kind == "follow" or kind == "unfollow":
        return kind, ""
    return None, ""


def _escapes_surrogates(body: str | bytes) -> bool:
    """Whether the body has a \\uD800-\\uDFFF escape (the only way JSON gets a lone surrogate)."""
    if isinstance(body, bytes):
        return b"\\ud" in body or b"\\uD" in body
    return "\\ud" in body or "\\uD" in body


def _has_lone_surrogate(value: Any) -> bool:
    """True when a string in `value` holds half a surrogate pair (Redis and LINE take UTF-8 only)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def create_blueprint(
    service: BotService,
    channel_secret: str,
    messaging: Callable[[], LineMessaging],
) -> Blueprint:
    """The webhook; `messaging()` gives the LINE client for the current request."""
    bp = Blueprint("line", __name__)
    validator = SignatureValidator(channel_secret)
    log_key = channel_secret
    later = Later()

    @bp.post("/callback")
    def callback() -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Response("payload too large", status=413)
        signature = request.headers.get("X-Line-Signature", "")
        body = request.get_data(as_text=True)
        if not signature:
            return Response("missing signature", status=400)
        if not validator.validate(body, signature):
            log.warning("webhook_bad_signature")
            return Response("invalid signature", status=400)
        try:
            events = read_events(body)
        except MalformedEvent as exc:  # a client error, never a 500
            log.warning("webhook_malformed error=%s", exc)
            return Response("malformed body", status=400)
        api = messaging()
        received = time.time()  # reply tokens expire in real time, whatever the app's clock says
        for event in events:
            try:
                if event.inbound is not None:
                    _handle(service, api, event, log_key, later, received)
                elif event.join:
                    _join(service, event, received)
                else:
                    log.info("webhook_ignored type=%s source=%s mode=%s", _loggable(event.kind), event.source,
                             "standby" if event.standby else "active")
            except StoreError as exc:
                log.error("webhook_store_unavailable error=%s", exc)
                return Response("store unavailable", status=503)
        return Response("OK", status=200)

    return bp


def _handle(service: BotService, api: LineMessaging, event: LineEvent, log_key: str, later: Later,
            received: float) -> None:
    """Run the turn and queue its answer in the same save (nothing for an event already processed)."""
    inbound = event.inbound
    assert inbound is not None

    def answer(outcome: Outcome) -> dict[str, Any] | None:
        if not outcome.replies:
            return None
        base_url = current_app.config.get("PUBLIC_URL") or request.host_url.rstrip("/")
        return reply_entry(inbound.user, event.reply_token, to_messages(outcome.replies, base_url=base_url),
                           at=service.clock.now().isoformat(), received=received,
                           ask_profile=base_url if outcome.ask_profile else None)

    # Only a turn that is itself slow (Redis slow) shows the animation from here; an answer waiting
    # for a sender shows it from the worker.
    cancel = later.call(LOADING_AFTER_S, show_loading, api, inbound.user) if inbound.kind in ("text", "postback") else None
    try:
        outcome = service.handle(inbound, event_id=event.event_id, reply=answer)
    finally:
        if cancel is not None:
            cancel()
    if outcome is None:
        log.info("webhook_duplicate user=%s redelivery=%s", user_hash(inbound.user, log_key), event.redelivery)


def _join(service: BotService, event: LineEvent, received: float) -> None:
    """The bot was added to a group or room: say what it does there, once (offices get staff notices so)."""
    chat = event.chat
    assert chat is not None
    if event.event_id is not None and not service.claim_event(event.event_id, chat):
        log.info("webhook_duplicate type=join source=%s redelivery=%s", event.source, event.redelivery)
        return
    place, name = JOIN_PLACES[event.source]
    text = JOIN_TEXT.format(place=place)
    if _CHAT_ID.fullmatch(chat):  # an id that the profile would refuse is not offered
        text += JOIN_ID_TEXT.format(name=name, chat=chat)
    service.outbox.add(reply_entry(chat, event.reply_token, [{"type": "text", "text": text}],
                                   at=service.clock.now().isoformat(), received=received))
    log.info("webhook_join source=%s", event.source)


def _loggable(kind: str) -> str:
    """An event type fit for a log line (LINE's are short ASCII words; anything else is not logged as sent)."""
    return kind if len(kind) <= 40 and kind.isascii() and kind.isalnum() else "other"


def sign(body: bytes | str, secret: str) -> str:
    """X-Line-Signature of `body` (used by the simulator and tests to send events as LINE does)."""
    import base64
    import hashlib
    import hmac

    raw = body.encode() if isinstance(body, str) else body
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def event_json(user: str, kind: str, text: str = "", *, event_id: str | None = None, redelivery: bool = False,
               timestamp_ms: int = 0) -> dict[str, Any]:
    """A webhook event as LINE sends it (simulator, tests)."""
    event: dict[str, Any] = {
        "mode": "active",
        "timestamp": timestamp_ms,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or uuid.uuid4().hex.upper()[:26],
        "deliveryContext": {"isRedelivery": redelivery},
    }
    reply_token = uuid.uuid4().hex
    if kind == "text":
        event.update(type="message", replyToken=reply_token,
                     message={"type": "text", "id": uuid.uuid4().hex[:18], "quoteToken": uuid.uuid4().hex, "text": text})
    elif kind == "postback":
        event.update(type="postback", replyToken=reply_token, postback={"data": text})
    elif kind == "sticker":
        event.update(type="message", replyToken=reply_token,
                     message={"type": "sticker", "id": uuid.uuid4().hex[:18], "quoteToken": uuid.uuid4().hex,
                              "packageId": "446", "stickerId": "1988", "stickerResourceType": "STATIC"})
    elif kind == "follow":
        event.update(type="follow", replyToken=reply_token, follow={"isUnblocked": False})
    elif kind == "unfollow":
        event.update(type="unfollow")
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    return event


def webhook_body(*events: dict[str, Any], destination: str = "U" + "0123456789abcdef" * 2) -> str:
    """A webhook body as LINE sends it (`destination` is the bot's user id)."""
    return json.dumps({"destination": destination, "events": list(events)}, ensure_ascii=False)

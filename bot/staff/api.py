"""The staff JSON API's actions on one booking: `POST /staff/api/bookings/<ref>/<action>`.

The same rules and effects as the console's buttons (`bot.staff.actions`), with an account's Bearer token
(checked by the blueprint's guard, as `GET /staff/api/bookings`); the booking records the account's id
(`confirmed_by`, ...). A body is a JSON object; the answer is `{"booking": {... every stored field and
"ref"}}` (200; a repeat of what was already done changes nothing and answers the same) or `{"error":
"..."}` with 400 (malformed body or field), 404 (no such booking or action, or a booking of an office
the account does not serve) or 409 (the booking's state or the slot does not allow it).

    confirm     {"meeting_id"?, "passcode"?, "url"?}   confirm a request (with the meeting details)
    propose     {"slot": "2026-12-07T14:00+09:00"}      propose another time (the slot is held)
    decline     {"reason": "..."}                        decline a request with a reason
    cancel      {}                                       cancel (the slot is freed, the user is told)
    attended, no_show   {}                               mark the consultation (after its start)
    meeting     {"meeting_id"?, "passcode"?, "url"?}     push the meeting details
    follow_up   {"slot": "...", "key": "..."}            book the next consultation; `key` makes a retry book once
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from bot.calendar import slot_key
from bot.clock import parse_instant
from bot.errors import StaffActionError
from bot.staff.actions import NOT_FOUND, BadRequest, NotFound, StaffActions
from bot.staff.identity import Account
from bot.store.bookings import booking_ref

log = logging.getLogger("hwbot.staff")

STATUS = {NotFound: 404, BadRequest: 400}


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"{name}: must be a string")
    if required and not value.strip():
        raise BadRequest(f"{name}: required")
    return value


def _slot(body: dict[str, Any]) -> str:
    """The slot key (`YYYY-MM-DDTHH:MM`, Japan time) of an ISO instant; a naive one is Japan time."""
    try:
        return slot_key(parse_instant(_text(body, "slot", required=True)))
    except ValueError:
        raise BadRequest("slot: must be an ISO date-time such as 2026-12-07T14:00+09:00") from None


def register_api(bp: Blueprint, actions: StaffActions, error: Callable[[int, str], Response],
                 account: Callable[[], Account], record: Callable[..., None],
                 audit_ref: Callable[[str], str]) -> None:
    """Add the action routes to the staff blueprint (whose guard checks the Bearer token); `record` writes
    an audit entry of the token's account (each call, with its booking ref, office and outcome)."""

    def run(action: str, ref: str, body: dict[str, Any], by: str) -> dict[str, Any]:
        if action == "confirm":
            return actions.confirm(ref, meeting_id=_text(body, "meeting_id"), passcode=_text(body, "passcode"),
                                   url=_text(body, "url"), by=by).booking
        if action == "propose":
            return actions.propose(ref, _slot(body), by=by).booking
        if action == "decline":
            return actions.decline(ref, _text(body, "reason", required=True), by=by).booking
        if action == "cancel":
            return actions.cancel(ref, by=by)
        if action in ("attended", "no_show"):
            return actions.mark(ref, action, by=by)
        if action == "meeting":
            return actions.send_meeting(ref, meeting_id=_text(body, "meeting_id"), passcode=_text(body, "passcode"),
                                        url=_text(body, "url"), by=by)
        if action == "follow_up":
            made, _ = actions.book_follow_up(ref, _slot(body), _text(body, "key", required=True), by=by)
            return made
        raise NotFound(f"action: unknown action {action!r}")

    @bp.post("/api/bookings/<ref>/<action>")
    def api_act(ref: str, action: str) -> Response:
        body = request.get_json(silent=True) if request.get_data() else {}
        known = ("confirm", "propose", "decline", "cancel", "attended", "no_show", "meeting", "follow_up")
        name = "booking_" + (action.replace("-", "_") if action.replace("-", "_") in known else "?")
        if not isinstance(body, dict):
            record(name, ref=audit_ref(ref), detail="bad_request")
            return error(400, "body: must be a JSON object")
        office = ""
        try:
            found = actions.booking(ref)  # 404 before anything else
            if not account().serves(found["office"]):
                raise NotFound(NOT_FOUND)  # another office's: as if it did not exist
            office = found["office"]
            booking = run(action.replace("-", "_"), ref, body, account().id)
        except StaffActionError as exc:
            code = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 409)
            record(name, office=office, ref=audit_ref(ref), detail={404: "not_found", 400: "bad_request"}.get(code, "refused"))
            return error(code, str(exc))
        record(name, office=office, ref=ref, detail="api")
        if action.replace("-", "_") == "follow_up":
            record("booking_booked", office=booking["office"], ref=booking_ref(booking), detail="follow_up")
        log.info("staff_api action=%s office=%s booking=%s account=%s", action, booking.get("office"),
                 booking.get("id"), account().id)
        return jsonify({"booking": {**booking, "ref": booking_ref(booking)}})

"""What staff do to a booking from the console, without Flask.

Each action changes the booking in Redis, tells the user by push where they must know, and appends a
staff notice to the outbox (kinds `cancellation`, `no_show`, `meeting_sent`, `follow_up`, and for
requests `confirmed`, `declined`, `proposed`), through one `BookingStore.act` step: the booking change
in its office's slot with an intent listing the push and the notice, which go to the outbox right
after (or, after a crash, by the worker's recovery), exactly once. Notice fields carry references and
times only, never personal data. A refused action raises StaffActionError (NotFound, BadRequest,
Refused: the API's 404, 400, 409) with a Japanese message for the console's flash; a change no replica
acknowledged in time raises `NotReplicated` (the console asks staff to repeat the action).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import calendar, i18n
from bot.channels.line.render import to_messages
from bot.clock import JST
from bot.dialog import Reply
from bot.dialog import formats
from bot.dialog import texts as T
from bot.dialog.pushes import confirmed_replies, declined_replies, in_language, proposal_replies
from bot.errors import ConflictError, StaffActionError, UnknownOfficeError
from bot.profiles.models import OfficeProfile
from bot.service import BotService
from bot.store import Plan, SlotFull
from bot.staff.languages import language_field
from bot.store.bookings import PERSONAL_FIELDS, booking_ref

log = logging.getLogger("hwbot.staff")

STATUSES = ("booked", "cancelled", "attended", "no_show", "held")
STATUS_LABELS = {"booked": "予約中", "cancelled": "キャンセル", "attended": "出席", "no_show": "無断欠席",
                 "held": "提案中の仮押さえ"}
CONFIRMATION_LABELS = {
    "pending": "申込み中・事業所の確認待ち",
    "proposed": "申込み中・別の日時を提案中（利用者の返事待ち）",
    "awaiting_consent": "申込み中・新しい規約への同意待ち",
    "confirmed": "確定（事業所が確認済み）",
    "not_needed": "確定（確認不要）",
    "declined": "お断り済み",
}


def confirmation_label(booking: dict[str, Any]) -> str:
    """申込み中・事業所の確認待ち / 確定 … of a booked booking ('' for other statuses)."""
    if booking.get("status") != "booked":
        return ""
    value = booking.get("office_confirmation") or "not_needed"
    return CONFIRMATION_LABELS.get(value, str(value))


# A follow-up copies who the user is and what they consented to; nothing about the slot.
COPIED_FIELDS = ("user", "name", "number", "email", "phone", "topic", "interpreter", "category",
                 "category_detail", "answers", "consent", "lang")
# Marks that correct each other: staff may fix an attended/no-show mistake.
MARKABLE = ("booked", "attended", "no_show")
MEETING_FIELD_MAX = 300
REASON_MAX = 200
_CHANGED_ATTEMPTS = 3
# Retry keys of the pushes and ids of the notices of the request actions: the same action on the
# same booking gives the same id, so a repeat is recognisable downstream too.
NAMESPACE = uuid.UUID("9d3a4c1e-6b2f-4e8a-a5d7-3f1c0b8e2d64")
# What each request action may start from (`office_confirmation` of a booked request).
OPEN_REQUEST = ("pending", "awaiting_consent")
CONFIRMATION_REFUSALS = {
    "not_needed": "この予約は事業所の確認が不要な予約です（すでに確定しています）。",
    "confirmed": "この申込みはすでに確定しています。",
    "proposed": "別の日時を提案中です。利用者の返事（または期限）を待ってください。",
    "declined": "この申込みはすでにお断りしています。",
}


# A booking that does not exist, or of an office the account does not serve: the same words for both.
NOT_FOUND = "予約が見つかりません（保存期間を過ぎたか、予約番号が正しくありません）。"


class NotFound(StaffActionError):
    """The booking does not exist (the API's 404)."""


class BadRequest(StaffActionError):
    """What staff gave is malformed or missing (the API's 400)."""


class Refused(StaffActionError):
    """The booking's state (or the slot's) does not allow the action now (the API's 409)."""


@dataclass(frozen=True)
class Done:
    """What a request action did: the booking as it now is, whether this call changed it (False: a
    repeat of what was already done), and what the user was pushed."""

    booking: dict[str, Any]
    acted: bool
    replies: list[Reply] = field(default_factory=list)


def when_label(booking: dict[str, Any]) -> str:
    """`12月1日(火) 10:00〜10:30` for a stored booking, as staff read it (a user reads `formats.when`)."""
    start = datetime.fromisoformat(booking["start"]).astimezone(JST)
    end = datetime.fromisoformat(booking["end"]).astimezone(JST)
    return f"{calendar.format_day(start.date())} {start:%H:%M}〜{end:%H:%M}"


def follow_up_id(ref: str, slot: str, nonce: str) -> str:
    """The follow-up's id, the same for a resubmitted form (same nonce): a double click books once."""
    digest = hashlib.sha256(f"{ref}|{slot}|{nonce}".encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def held_id(ref: str, slot: str, count: int) -> str:
    """The id of the slot held for the request's `count`-th proposal (counted from 0): a double click
    holds once, a later proposal of the same slot (after a decline or a lapse) gets its own."""
    digest = hashlib.sha256(f"held|{ref}|{slot}|{count}".encode()).digest()
    return "P" + base64.b32encode(digest).decode()[:7]


def find_office(offices: Mapping[str, OfficeProfile], office_id: str) -> OfficeProfile | None:
    """The profile, or None for an unknown id (`Offices` raises UnknownOfficeError, not KeyError)."""
    try:
        return offices[office_id]
    except (UnknownOfficeError, KeyError):
        return None


def office_label(offices: Mapping[str, OfficeProfile], office_id: str) -> str:
    """The office as the console names it: its short name, 窓口未選択 before the user chose one."""
    if not office_id:
        return T.japanese("NO_OFFICE")
    profile = find_office(offices, office_id)
    return profile.short_name if profile else office_id


class StaffActions:
    """The console's actions on bookings, over the bot's service (Redis, clock, outbox, pushes)."""

    def __init__(self, service: BotService):
        self.service = service
        self.store = service.bookings.store

    def now(self) -> datetime:
        return self.service.clock.now()

    def office(self, booking: dict[str, Any]) -> OfficeProfile | None:
        return find_office(self.service.offices, booking["office"])

    def booking(self, ref: str) -> dict[str, Any]:
        """The booking `ref` names; StaffActionError when the ref is malformed or the booking gone."""
        try:
            booking = self.store.get(ref)
        except ValueError:
            booking = None
        if booking is None:
            raise NotFound(NOT_FOUND)
        return booking

    def mark(self, ref: str, status: str, *, by: str) -> dict[str, Any]:
        """Record that the user attended or did not show up; only once the consultation has started.

        One atomic step with the `no_show` notice (the first time it is marked so). `by` is the staff
        account's id, as in every action below."""
        if status not in ("attended", "no_show"):
            raise BadRequest("記録できる状態は「出席」と「無断欠席」だけです。")
        self.booking(ref)
        at = self.now().isoformat()

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current = self._found(found[0])
            if datetime.fromisoformat(current["start"]) > self.now():
                raise Refused("相談の開始時刻より前には、出席・無断欠席を記録できません。")
            if current.get("status") not in MARKABLE:
                raise Refused(f"この予約は「{STATUS_LABELS.get(current.get('status'), '?')}」のため記録できません。")
            marked = {**current, "status": status, "marked_at": at, "marked_by": by}
            entries = []
            if status == "no_show" and current.get("status") != "no_show":
                entries.append(self._notice_entry("no_show", marked, "無断欠席を記録"))
            return Plan(bookings={ref: marked}, entries=entries, result=marked)

        updated: dict[str, Any] = self.store.act([ref], decide)  # type: ignore[assignment]
        log.info("staff_mark office=%s booking=%s status=%s", updated["office"], updated["id"], status)
        return updated

    def cancel(self, ref: str, *, by: str) -> dict[str, Any]:
        """Cancel a future booking for the user (the slot is freed) and tell them by push, in one step.

        A slot held for a time proposed to this request is freed in the same step."""
        at = self.now().isoformat()
        for _ in range(_CHANGED_ATTEMPTS):
            held_ref = (self.booking(ref).get("proposal") or {}).get("ref")
            try:
                cancelled = self.store.act([ref, held_ref] if held_ref else [ref], self._cancelling(ref, held_ref, at, by))
            except ConflictError:
                continue
            log.info("staff_cancel office=%s booking=%s", cancelled["office"], cancelled["id"])
            return cancelled
        raise Refused("予約が変更されました。画面を開き直してください。")

    def _cancelling(self, ref: str, held_ref: str | None, at: str,
                    by: str) -> Callable[[list[dict[str, Any] | None]], Plan]:
        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current = self._found(found[0])
            if current.get("status") != "booked":
                raise Refused(f"この予約は「{STATUS_LABELS.get(current.get('status'), '?')}」のためキャンセルできません。")
            if datetime.fromisoformat(current["start"]) <= self.now():
                raise Refused("開始時刻を過ぎた予約はキャンセルできません。出席または無断欠席を記録してください。")
            if (current.get("proposal") or {}).get("ref") != held_ref:
                raise ConflictError("the proposal changed meanwhile")
            cancelled = {**current, "status": "cancelled", "cancelled_at": at, "cancelled_by": by}
            with self._speaking(cancelled) as office:
                name = office.short_name if office else cancelled["office"]
                text = T.STAFF_CANCELLED.format(office=name, when=formats.when(cancelled), ref=cancelled["id"])
                if office and office.contact.phone:
                    text += "\n" + T.STAFF_PHONE.format(phone=formats.phone(office))
            plan = Plan(bookings={ref: cancelled}, free=(ref,), result=cancelled, entries=[
                self._text_entry(cancelled, text, "cancel"),
                self._notice_entry("cancellation", cancelled, "担当者がキャンセル", by="staff")])
            held = found[1] if held_ref else None
            if held is not None and held.get("status") == "held":
                plan.bookings[held_ref] = {**held, "status": "cancelled", "cancelled_at": at, "cancelled_by": by}
                plan.free += (held_ref,)
            return plan

        return decide

    def send_meeting(self, ref: str, *, meeting_id: str = "", passcode: str = "", url: str = "",
                     by: str) -> dict[str, Any]:
        """Push the meeting details to the user; the booking records when (never the passcode). One step."""
        self._meeting_lines(meeting_id, passcode, url, required=True)  # refuses missing details first
        self.booking(ref)
        at = self.now().isoformat()

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current = self._found(found[0])
            if current.get("status") not in ("booked", "attended"):
                raise Refused(f"この予約は「{STATUS_LABELS.get(current.get('status'), '?')}」のため送信できません。")
            if datetime.fromisoformat(current["end"]) <= self.now():
                raise Refused("終了した相談の接続情報は送信できません。")
            with self._speaking(current) as office:
                name = office.short_name if office else current["office"]
                tool = office.video_tool if office else ""
                details = self._meeting_lines(meeting_id, passcode, url, required=True)
                lines = [T.STAFF_MEETING.format(office=name, when=formats.when(current), tool=tool), *details,
                         T.STAFF_MEETING_HINT]
            japanese = self.office(current)
            tool = japanese.video_tool if japanese else ""  # the notice: staff's words
            updated = {**current, "meeting_sent_at": at, "meeting_sent_by": by}
            return Plan(bookings={ref: updated}, result=updated, entries=[
                self._text_entry(updated, "\n".join(lines), f"meeting|{uuid.uuid4().hex}"),
                self._notice_entry("meeting_sent", updated, "接続情報を送信", tool=tool)])

        updated: dict[str, Any] = self.store.act([ref], decide)  # type: ignore[assignment]
        log.info("staff_meeting_sent office=%s booking=%s", updated["office"], updated["id"])
        return updated

    def _found(self, booking: dict[str, Any] | None) -> dict[str, Any]:
        if booking is None:
            raise NotFound("予約が見つかりません。")
        return booking

    def follow_up_slots(self, booking: dict[str, Any]) -> list[calendar.Slot]:
        """The office's bookable slots now, with live counts (the dialog's rules)."""
        office = self.office(booking)
        if office is None:
            return []
        now = self.now()
        booked = self.service.bookings.booked_counts(office.id, calendar.grid_keys(office, now))
        return calendar.bookable_slots(office, now, booked)

    def book_follow_up(self, ref: str, slot_key: str, nonce: str, *, by: str) -> tuple[dict[str, Any], bool]:
        """Book the next consultation for the same user; (booking, True) when new, False when a resubmit.

        The user's upcoming-booking limit does not apply: staff book it during a consultation.
        """
        original = self.booking(ref)
        office = self.office(original)
        if office is None:
            raise Refused("この予約の事業所の設定が見つかりません。")
        if not nonce or len(nonce) > 64:
            raise BadRequest("画面が古くなっています。予約の画面を開き直してください。")
        slot = next((s for s in self.follow_up_slots(original) if s.key == slot_key), None)
        booking_id = follow_up_id(ref, slot_key, nonce)
        if slot is None:
            existing = self._existing(office.id, slot_key, booking_id)
            if existing is not None:  # the same form again after the slot filled up with it
                return existing, False
            raise Refused("その日時は予約できません（締切・満席・休業日）。別の日時を選んでください。")
        booking = {
            "id": booking_id,
            "office": office.id,
            "slot": slot.key,
            "start": slot.start.isoformat(),
            "end": slot.end.isoformat(),
            "status": "booked",
            # Staff made it during a consultation: the office has confirmed it.
            "office_confirmation": "not_needed",
            "created_at": self.now().isoformat(),
            "booked_by": by,
            "follow_up_of": ref,
        }
        booking.update({key: original[key] for key in COPIED_FIELDS if key in original})
        if not booking.get("user"):
            raise Refused("利用者のLINEの情報が残っていないため、次回の予約を取れません。")
        new_ref = booking_ref(booking)
        with self._speaking(booking) as theirs:
            assert theirs is not None
            text = T.STAFF_FOLLOW_UP.format(office=theirs.short_name, when=formats.when(booking), ref=booking_id)
            if theirs.contact.phone:
                text += "\n" + T.STAFF_PHONE.format(phone=formats.phone(theirs))

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            if found[0] is not None:  # the same form again: booked already
                return Plan(result=(found[0], False))
            entries = [self._text_entry(booking, text, "follow_up"),
                       self._notice_entry("follow_up", booking, "次回の予約（担当者）", follow_up_of=ref)]
            # The booking, its slot, the user's index, the push and the notice: one step.
            return Plan(bookings={new_ref: booking}, hold=(new_ref,), capacity=office.schedule.capacity,
                        expire_in=self.service.bookings.expire_in(booking), index=((booking["user"], new_ref, True),),
                        entries=entries, result=(booking, True))

        try:
            made, new = self.store.act([new_ref], decide)  # type: ignore[misc]
        except SlotFull:
            raise Refused("その日時はちょうど埋まりました。別の日時を選んでください。") from None
        if new:
            log.info("staff_follow_up office=%s booking=%s of=%s", office.id, booking_id, original["id"])
        return made, new

    # -- requests the office confirms: confirm, decline, propose another time ------------------------

    def _request(self, ref: str) -> tuple[dict[str, Any], OfficeProfile]:
        booking = self.booking(ref)
        office = self.office(booking)
        if office is None:
            raise Refused("この予約の事業所の設定が見つかりません。")
        return booking, office

    def _check_open(self, booking: dict[str, Any], repeat: str | None = None) -> bool:
        """True when the request is open for an action; False when it is `repeat` (already done)."""
        confirmation = booking.get("office_confirmation") or "not_needed"
        status = booking.get("status")
        if repeat is not None and confirmation == repeat:
            return False
        if status != "booked":
            raise Refused(f"この予約は「{STATUS_LABELS.get(status, '?')}」のため操作できません。")
        if confirmation not in OPEN_REQUEST:
            raise Refused(CONFIRMATION_REFUSALS.get(confirmation, "この申込みは操作できない状態です。"))
        if datetime.fromisoformat(booking["start"]) <= self.now():
            raise Refused("開始時刻を過ぎた申込みは操作できません。")
        return True

    def _current(self, booking: dict[str, Any] | None, repeat: str) -> tuple[dict[str, Any], Plan | None]:
        """The booking as the step reads it, and the plan of a repeat (nothing to write) if it is one."""
        booking = self._found(booking)
        if not self._check_open(booking, repeat=repeat):
            return booking, Plan(result=Done(booking, False))
        return booking, None

    def _act(self, what: str, refs: list[str], decide: Callable[[list[dict[str, Any] | None]], Plan | None]) -> Done:
        try:
            done = self.store.act(refs, decide)
        except SlotFull:
            raise Refused("その日時はちょうど埋まりました。別の日時を選んでください。") from None
        log.info("staff_%s office=%s booking=%s acted=%d", what, done.booking["office"], done.booking["id"], done.acted)
        return done

    def confirm(self, ref: str, *, meeting_id: str = "", passcode: str = "", url: str = "", by: str) -> Done:
        """Confirm a request: 「予約が確定しました」 pushed with the date, time, tool and checklist, and the
        meeting details when given (the booking records when they were sent, never the passcode)."""
        meeting = self._meeting_lines(meeting_id, passcode, url, required=False)
        _, office = self._request(ref)
        at = self.now().isoformat()

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current, repeated = self._current(found[0], repeat="confirmed")
            if repeated:
                return repeated
            changes = {"office_confirmation": "confirmed", "confirmed_at": at, "confirmed_by": by}
            if meeting:
                changes.update(meeting_sent_at=at, meeting_sent_by=by)
            confirmed = {**current, **changes}
            with self._speaking(confirmed) as theirs:
                details = self._meeting_lines(meeting_id, passcode, url, required=False)
                replies = confirmed_replies(theirs or office, confirmed, tuple(details))
                push = self._push_entry(confirmed, replies, "confirm")
            entries = [push, self._notice_entry("confirmed", confirmed, "申込みを確定", meeting="yes" if meeting else "no")]
            # The slot is checked again: the booking still holds it (it joins it again if it was lost).
            return Plan(bookings={ref: confirmed}, hold=(ref,), capacity=office.schedule.capacity,
                        entries=entries, result=Done(confirmed, True, replies))

        return self._act("confirm", [ref], decide)

    def decline_reasons(self, booking: dict[str, Any]) -> list[str]:
        office = self.office(booking)
        return list(office.after_booking.decline_reasons) if office else []

    def decline(self, ref: str, reason: str, *, by: str) -> Done:
        """Decline a request with a reason (the profile's or typed): the slot is freed and the user is
        told the reason and what to do instead (phone, email, the counter, another booking)."""
        reason = " ".join((reason or "").split())
        if not reason:
            raise BadRequest("お断りの理由を選ぶか、入力してください。")
        if len(reason) > REASON_MAX:
            raise BadRequest(f"お断りの理由は{REASON_MAX}文字以内で入力してください。")
        _, office = self._request(ref)
        at = self.now().isoformat()

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current, repeated = self._current(found[0], repeat="declined")
            if repeated:
                return repeated
            declined = {**current, "status": "cancelled", "cancelled_at": at, "cancelled_by": by,
                        "declined_by": by, "office_confirmation": "declined", "decline_reason": reason}
            with self._speaking(declined) as theirs:
                replies = declined_replies(theirs or office, declined, reason)
                push = self._push_entry(declined, replies, "decline")
            # The reason may be typed: it goes to the user, never into a staff notice.
            entries = [push, self._notice_entry("declined", declined, "申込みをお断り")]
            return Plan(bookings={ref: declined}, free=(ref,), entries=entries, result=Done(declined, True, replies))

        return self._act("decline", [ref], decide)

    def proposal_slots(self, booking: dict[str, Any]) -> list[calendar.Slot]:
        """The slots staff may propose instead: the office's bookable slots but the request's own."""
        return [slot for slot in self.follow_up_slots(booking) if slot.key != booking["slot"]]

    def propose(self, ref: str, slot_key: str, *, by: str) -> Done:
        """Propose another time: the new slot is held for this request (a `held` booking, counted in
        the slot) until the user answers or the slot's booking deadline passes, and the user gets a
        push with 「この日時でお願いする」 / 「都合が悪い」. Proposing the slot already proposed does nothing."""
        booking, office = self._request(ref)

        def repeat(current: dict[str, Any] | None) -> bool:
            return (current or {}).get("office_confirmation") == "proposed" and \
                (current or {}).get("proposal", {}).get("slot") == slot_key

        if repeat(booking):
            return Done(booking, False)
        self._check_open(booking)
        count = int(booking.get("proposals", 0))
        held_ref = f"{office.id}|{slot_key}|{held_id(ref, slot_key, count)}"
        slot = next((s for s in self.proposal_slots(booking) if s.key == slot_key), None)
        if slot is None:
            raise Refused("その日時は提案できません（締切・満席・休業日・元の日時）。別の日時を選んでください。")
        at = self.now().isoformat()
        deadline = calendar.deadline(office, slot.start.date())
        held = {
            "id": held_id(ref, slot_key, count), "office": office.id, "slot": slot.key,
            "start": slot.start.isoformat(), "end": slot.end.isoformat(), "status": "held",
            "office_confirmation": "proposed", "created_at": at, "booked_by": booking.get("booked_by", "user"),
            "held_for": ref, "proposal": {"at": at, "deadline": deadline.isoformat()},
        }
        # Personal fields stay on the request only (data deletion finds it by the user's index); they
        # join the held booking when the user accepts it.
        held.update({key: booking[key] for key in COPIED_FIELDS if key in booking and key not in PERSONAL_FIELDS})

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current, existing = found
            if repeat(current):
                return Plan(result=Done(current, False))
            current, _ = self._current(current, repeat="")
            if existing is not None or int(current.get("proposals", 0)) != count:
                raise Refused("申込みが変更されました。画面を開き直してください。")
            proposed = {**current, "office_confirmation": "proposed", "proposals": count + 1, "proposed_by": by,
                        "proposal": {"ref": held_ref, "slot": slot.key, "at": at, "deadline": deadline.isoformat()}}
            with self._speaking(proposed) as theirs:
                replies = proposal_replies(theirs or office, proposed, held, formats.day_time(deadline))
                push = self._push_entry(proposed, replies, f"propose|{count}|{slot.key}")
            entries = [push,
                       self._notice_entry("proposed", proposed, "別の日時を提案", proposed_slot=slot.key,
                                          deadline=deadline.isoformat())]
            return Plan(bookings={ref: proposed, held_ref: held}, hold=(held_ref,), capacity=office.schedule.capacity,
                        expire_in=self.service.bookings.expire_in(held), entries=entries,
                        result=Done(proposed, True, replies))

        return self._act("propose", [ref, held_ref], decide)

    def _meeting_lines(self, meeting_id: str, passcode: str, url: str, *, required: bool) -> list[str]:
        """The meeting details as pushed (validated); [] when none were given and none are required."""
        meeting_id, passcode, url = (" ".join(v.split())[:MEETING_FIELD_MAX + 1] for v in (meeting_id, passcode, url))
        if any(len(v) > MEETING_FIELD_MAX for v in (meeting_id, passcode, url)):
            raise BadRequest(f"ミーティングID・パスコード・URLは{MEETING_FIELD_MAX}文字以内で入力してください。")
        if not (meeting_id or url):
            if required or passcode:
                raise BadRequest("「ミーティングID」か「参加URL」のどちらかを入力してください。")
            return []
        if url and not url.startswith("https://"):
            raise BadRequest("「参加URL」は https:// で始まるURLを入力してください。")
        templates = ((T.STAFF_MEETING_ID, meeting_id), (T.STAFF_MEETING_PASSCODE, passcode), (T.STAFF_MEETING_URL, url))
        return [template.format(value=value) for template, value in templates if value]

    @contextmanager
    def _speaking(self, booking: dict[str, Any]) -> Iterator[OfficeProfile | None]:
        """Say what goes to the booking's user in the booking's language (kept from the chat): inside the
        block every text is in it; yields the office's profile in it (None for an unknown office)."""
        if self.office(booking) is None:
            with i18n.using(booking.get("lang")):
                yield None
            return
        with in_language(self.service.offices, booking["office"], booking.get("lang")) as profile:
            yield profile

    def _push_entry(self, booking: dict[str, Any], replies: list[Reply], what: str) -> dict[str, Any]:
        messages = to_messages(replies, base_url=self.service.settings.public_url or "")
        key = str(uuid.uuid5(NAMESPACE, f"{what}|{booking_ref(booking)}"))
        return {"id": key, "kind": "push", "to": booking["user"], "messages": messages, "at": self.now().isoformat()}

    def _existing(self, office: str, slot_key: str, booking_id: str) -> dict[str, Any] | None:
        try:
            return self.store.get(f"{office}|{slot_key}|{booking_id}")
        except ValueError:
            return None

    def _text_entry(self, booking: dict[str, Any], text: str, what: str) -> dict[str, Any]:
        key = str(uuid.uuid5(NAMESPACE, f"{what}|{booking_ref(booking)}"))
        return {"id": key, "kind": "push", "to": booking["user"], "messages": [{"type": "text", "text": text}],
                "at": self.now().isoformat()}

    def _notice_entry(self, kind: str, booking: dict[str, Any], what: str, **extra: str) -> dict[str, Any]:
        """A staff notice with references and times only (no name, 求職番号, phone, email or user id)."""
        office = self.office(booking)
        name = office.short_name if office else booking["office"]
        return {
            "id": uuid.uuid4().hex,
            "kind": kind,
            "office": booking["office"],
            "summary": f"{what}: {name} {when_label(booking)}（予約番号 {booking['id']}）",
            "fields": {"ref": booking_ref(booking), "booking_id": booking["id"], "slot": booking["slot"],
                       **language_field(booking.get("lang")), **extra},
            "at": self.now().isoformat(),
        }


def upcoming_for(service: BotService, user: str, now: datetime) -> list[dict[str, Any]]:
    """The user's booked consultations still to come (the handoff list shows them)."""
    return [
        booking
        for booking in service.bookings.for_user(user)
        if booking.get("status") == "booked" and datetime.fromisoformat(booking["start"]) > now
    ]


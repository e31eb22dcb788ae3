"""One turn end to end: load the conversation, run the dialog, save with compare-and-set.

Shared by every channel (LINE webhook, console, scripted dialogs): the channel converts its input
into an `Inbound` event, calls `BotService.handle`, and renders the outcome's replies.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Callable

from bot import i18n
from bot.clock import Clock
from bot.dialog import Conversation, Dialog, Inbound, Outcome, StaffNotice
from bot.dialog import texts
from bot.dialog.engine import booking_language
from bot.errors import ConflictError, StoreError
from bot.profiles import Offices, load_offices
from bot.settings import Settings
from bot.store import (
    AuditLog, BookingStore, ClaimResult, ConversationStore, HandoffStore, MoveResult, Outbox, Plan, PushCounter,
    RedisClient, SlotStore, connect,
)
from bot.store.bookings import PERSONAL_FIELDS
from bot.store.durable import Durable

log = logging.getLogger("hwbot.service")

# Save conflicts mean another worker handled the same user meanwhile: reload and run the turn again.
MAX_ATTEMPTS = 5
# An expired conversation stays this long so that the next message can say it expired; its answers
# (personal data) are erased at that message, or by Redis at the end of this grace.
EXPIRY_GRACE = timedelta(hours=6)
# The anonymous booking record (no personal data, no user id) stays this long for statistics; the
# personal fields go earlier, at HWBOT_RETENTION_DAYS (bot.staff.aftercare's retention task).
STATISTICS_DAYS = 365
# Staff hear that a waiting user wrote again at most this often per thread (or after each staff reply).
WROTE_AGAIN_EVERY = timedelta(minutes=10)
# Ids of the staff notices of a user's answer to a proposal: one per proposal and answer.
PROPOSAL_NAMESPACE = uuid.UUID("0c5e2f8b-7d1a-4b9e-8f3c-2a6d4e1b9c70")


def user_hash(user: str, key: str) -> str:
    """A keyed hash of a user id for logs (never log the id or anything the user typed)."""
    return hmac.new(key.encode(), user.encode(), hashlib.sha256).hexdigest()[:12]


class StoreBookings:
    """The dialog's `Bookings` port over Redis."""

    def __init__(self, client: RedisClient, retention_days: int, clock: Clock, *, durable: Durable | None = None,
                 outbox: Outbox | None = None):
        self.clock = clock
        self.slots = SlotStore(client)
        self.store = BookingStore(client, durable=durable, outbox=outbox, now=lambda: clock.now().timestamp())
        self.retention = timedelta(days=retention_days)

    def booked_counts(self, office: str, slot_keys: list[str]) -> dict[str, int]:
        return self.slots.booked_counts(office, slot_keys)

    def expire_in(self, booking: dict[str, Any]) -> int:
        """Seconds the booking's key lives: past retention, so the retention task strips it first."""
        end = datetime.fromisoformat(booking["end"])
        keep = max(timedelta(days=STATISTICS_DAYS), self.retention + timedelta(days=30))
        # Relative to the app's clock, so a rehearsal (HWBOT_NOW) or a test keeps its record as long.
        return max(int((end + keep - self.clock.now()).total_seconds()), 1)

    def claim(self, booking: dict[str, Any], capacity: int) -> ClaimResult:
        return self.store.claim(booking, capacity, expire_in=self.expire_in(booking))

    def move(self, ref: str, slot: str, capacity: int, *, new_id: str, at: str, changes: dict[str, Any]) -> MoveResult:
        """The user moves their booking `ref` to `slot`; `changes` must hold the new `start` and `end`."""
        return self.store.move(ref, slot, capacity, new_id=new_id, at=at, by="user", changes=changes,
                               expire_in=self.expire_in(changes))

    def for_user(self, user: str) -> list[dict[str, Any]]:
        return self.store.for_user(user)

    def get(self, ref: str) -> dict[str, Any] | None:
        try:
            return self.store.get(ref)
        except ValueError:  # a malformed ref from a forged or garbled button
            return None

    def cancel(self, ref: str, *, at: str, by: str) -> dict[str, Any] | None:
        return self.store.cancel(ref, at=at, by=by)

    def update(self, ref: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        return self.store.update(ref, changes)

    def delete_personal(self, ref: str) -> None:
        self.store.delete_personal(ref)

    def answer_proposal(
        self, ref: str, *, accept: bool, at: datetime, notice: StaffNotice
    ) -> dict[str, Any] | None:
        entry = notice_entry(notice, at, entry_id=uuid.uuid5(PROPOSAL_NAMESPACE, f"{notice.kind}|{ref}").hex)
        return self.end_proposal(ref, answer="accepted" if accept else "declined", at=at, entries=[entry])

    def end_proposal(
        self, ref: str, *, answer: str, at: datetime, entries: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """End the proposal whose held slot is `ref`; `entries` (notice, push) are its after-effects, sent once.

        `accepted` (before its deadline): the held booking becomes the booking, confirmed, and the
        request is cancelled as moved (its slot freed). `declined` / `lapsed`: the held slot is freed
        and the request, if still waiting for this answer, waits for staff again. Returns the booking
        the user now has (None when the proposal was already answered, lapsed or is unknown).
        """
        request_ref = self._held_for(ref)
        if request_ref is None:
            return None
        stamp = at.isoformat()

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            held, request = found
            if held is None or held.get("status") != "held":
                return None
            deadline = datetime.fromisoformat((held.get("proposal") or {}).get("deadline", stamp))
            waiting = (request is not None and request.get("status") == "booked"
                       and (request.get("proposal") or {}).get("ref") == ref)
            if answer == "accepted":
                if not waiting or at >= deadline:
                    return None
                personal = {key: request[key] for key in PERSONAL_FIELDS if key in request}
                moved = {**held, **personal, "status": "booked", "office_confirmation": "confirmed",
                         "confirmed_at": stamp, "confirmed_by": "user", "moved_from": request_ref}
                moved.pop("held_for", None)
                old = {**request, "status": "cancelled", "cancelled_at": stamp, "cancelled_by": "moved",
                       "moved_to": ref}
                return Plan(bookings={ref: moved, request_ref: old}, free=(request_ref,),
                            index=((held["user"], ref, True),), entries=entries, result=moved)
            gone = {**held, "status": "cancelled", "cancelled_at": stamp, "cancelled_by": answer}
            changed = {ref: gone}
            result = request
            if waiting and request is not None:
                proposal = {**request["proposal"], "answer": answer, "answered_at": stamp}
                result = {**{k: v for k, v in request.items() if k != "proposal"},
                          "office_confirmation": "pending", "last_proposal": proposal}
                changed[request_ref] = result
            return Plan(bookings=changed, free=(ref,), entries=entries, result=result)

        return self.store.act([ref, request_ref], decide)  # type: ignore[return-value]

    def _held_for(self, ref: str) -> str | None:
        held = self.get(ref)
        return held.get("held_for") if held else None


def notice_entry(notice: StaffNotice, at: datetime, *, entry_id: str | None = None) -> dict[str, Any]:
    """A staff notice as an outbox entry (what the worker delivers)."""
    return {
        "id": entry_id or uuid.uuid4().hex,
        "kind": notice.kind,
        "office": notice.office,
        "summary": notice.summary,
        "fields": notice.fields,
        "at": at.isoformat(),
    }


class BotService:
    """Everything a channel needs to run the conversation."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: RedisClient | None = None,
        offices: Offices | None = None,
        clock: Clock | None = None,
    ):
        self.settings = settings
        self.offices = offices or load_offices(settings.profiles_dir)
        self.client = client if client is not None else connect(settings)
        self.clock = clock or (Clock(settings.now) if settings.now else Clock())
        ttl = timedelta(minutes=settings.conversation_ttl_minutes)
        self.dialog = Dialog(self.offices, ttl=ttl, reminders=settings.reminders)
        shards = settings.outbox_shards
        self.conversations = ConversationStore(
            self.client, ttl_seconds=int((ttl + EXPIRY_GRACE).total_seconds()), shards=shards
        )
        self.outbox = Outbox(self.client, shards=shards)
        # Booking steps wait for HWBOT_REDIS_MIN_REPLICAS replicas before the user is told (bot.store.durable).
        durable = Durable(self.client, settings.redis_min_replicas, settings.redis_replica_timeout_ms)
        self.bookings = StoreBookings(self.client, settings.retention_days, self.clock, durable=durable,
                                      outbox=self.outbox)
        self.handoffs = HandoffStore(self.client, shards=shards)
        self.pushes = PushCounter(self.client)
        self.audit = AuditLog(self.client, self.clock)  # who saw and changed what (bot.store.audit)
        self._log_key = settings.line_channel_secret or "hwbot"

    def handle(
        self,
        event: Inbound,
        *,
        event_id: str | None = None,
        reply: Callable[[Outcome], Mapping[str, object] | None] | None = None,
    ) -> Outcome | None:
        """Run one turn for `event.user`; raises StoreError when Redis fails (nothing half-saved).

        With `event_id` (LINE's webhookEventId) an event already processed returns None, and the id
        is marked processed in the same atomic save as its effects. With `reply`, the outbox entry it
        makes of the outcome (the channel's rendered answer; None for none) is saved in that same step,
        so that the answer goes out (by the worker) if and only if the turn was saved.
        """
        who = user_hash(event.user, self._log_key)
        try:
            self.outbox.note_shards()  # once per process: the workers then read every shard written to
        except StoreError:
            pass  # the turn's own calls say whether Redis is away
        once = event_id or uuid.uuid4().hex  # what the user wrote is kept once, whatever is retried
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if event_id is not None:
                data, version, seen = self.conversations.load_for_event(event.user, event_id)
                if seen:
                    log.info("event_duplicate user=%s", who)
                    return None
            else:
                data, version = self.conversations.load(event.user)
            conversation = Conversation.from_json(data) if data else self._still_waiting(event.user)
            outcome = self.dialog.handle(conversation, event, self.clock.now(), self.bookings)
            for notice in outcome.notices:
                if notice.kind == "handoff":  # the thread's opaque id, for the console link
                    notice.fields["thread"] = self.handoffs.new_id(event.user)
            # Before the save, so that the "wrote again" notice is saved with the turn (once per event).
            wrote_again = self._keep_thread(event.user, outcome, once)
            notices = [notice_entry(notice, self.clock.now()) for notice in outcome.notices]
            answer = None
            if reply is not None:
                with i18n.using(outcome.conversation.lang):  # rendered in the language the turn ended in
                    answer = reply(outcome)
            try:
                if outcome.erase_user:
                    # Unfollow or data deletion: the notices, the deletion and the event mark are one step.
                    self.conversations.erase(event.user, version, notices=notices, event_id=event_id, reply=answer)
                else:
                    self.conversations.save(
                        event.user, outcome.conversation.to_json(), version, notices=notices, event_id=event_id,
                        reply=answer,
                    )
            except ConflictError:
                log.info("turn_conflict user=%s attempt=%d", who, attempt)
                continue
            if outcome.erase_user:
                self.handoffs.erase_user(event.user)  # the threads' text goes with the conversation
            if wrote_again:
                self.handoffs.set_fields(wrote_again, {"notified_at": self.clock.now().isoformat()})
            self._track_handoffs(event.user, outcome)
            log.info(
                "turn user=%s kind=%s state=%s replies=%d notices=%d",
                who,
                event.kind,
                outcome.conversation.state,
                len(outcome.replies),
                len(notices),
            )
            return outcome
        raise StoreError(f"conversation kept changing for {MAX_ATTEMPTS} attempts")

    def profile_turn(self, user: str, tag: str | None) -> Outcome | None:
        """LINE's profile language of a user just greeted (`Outcome.ask_profile`): the turn that greets
        them again in that language, to send instead of the first answer; None when it changes nothing
        (Japanese, no language, or the user chose one meanwhile)."""
        outcome = self.handle(Inbound(user=user, kind="profile", text=tag or ""))
        return outcome if outcome is not None and outcome.replies else None

    def claim_event(self, event_id: str, owner: str) -> bool:
        """Mark a webhook event processed whose only effect is a reply (`owner`: the group or room it came
        from, whose shard keeps the marker); False when it already was."""
        return self.conversations.mark_event(event_id, owner)

    def queue_push(self, user: str, messages: list[dict[str, Any]], *, retry_key: str) -> None:
        """Queue LINE messages for the worker to push (a reply that failed, a reminder…)."""
        self.outbox.add(
            {"id": retry_key, "kind": "push", "to": user, "messages": messages, "at": self.clock.now().isoformat()}
        )

    def queue_notice(self, notice: StaffNotice, *, entry_id: str | None = None) -> None:
        """Queue a staff notice outside a turn (scheduled tasks); `entry_id` makes a repeat recognisable."""
        self.outbox.add(notice_entry(notice, self.clock.now(), entry_id=entry_id))

    def _track_handoffs(self, user: str, outcome: Outcome) -> None:
        """Keep the staff console's list of users waiting for staff (and their threads) in step with the turn."""
        for notice in outcome.notices:
            if notice.kind == "handoff":
                info = {"office": notice.office, "at": self.clock.now().isoformat(), **notice.fields}
                self.handoffs.open(user, info)
            elif notice.kind == "handoff_closed":
                self.close_handoff(user, by="user")

    def close_handoff(self, user: str, *, by: str) -> str | None:
        """Take the user off the waiting list; their thread closes (kept until the thread retention)."""
        now = self.clock.now()
        keep = self.settings.thread_retention_days * 24 * 3600
        return self.handoffs.close(user, at=now.isoformat(), by=by, closed_ts=now.timestamp(), keep_seconds=keep)

    def _still_waiting(self, user: str) -> Conversation | None:
        """No conversation (it expired) but an open handoff thread: the user still waits for staff."""
        info = self.handoffs.info(user)
        if not info:
            return None
        meta = self.handoffs.meta(info["thread"]) if info.get("thread") else {}
        office = info.get("office") if info.get("office") in self.offices else None
        return Conversation(user=user, office=office, paused=info.get("at") or self.clock.now().isoformat(),
                            quiet=meta.get("mode") == "manager")

    def _keep_thread(self, user: str, outcome: Outcome, once: str) -> str | None:
        """Keep what a waiting user wrote with their thread (once per `once`); when staff should hear that
        the user wrote again (throttled; never the text), add that notice to the turn's and return the thread."""
        if not outcome.thread:
            return None
        now = self.clock.now()
        conversation = outcome.conversation
        info = self.handoffs.info(user)
        thread = (info or {}).get("thread") or self.handoffs.open(
            user, {"office": conversation.office or "", "at": conversation.paused or now.isoformat(), "reason": ""}
        )
        meta: dict[str, str] = {}
        for number, (kind, text) in enumerate(outcome.thread):
            message = {"from": "user", "text": text, "at": now.isoformat()}
            if kind == "media":
                # As staff read it: in Japanese, whatever the user's language.
                note = texts.japanese("MEDIA_NOTES").get(text, texts.japanese("MEDIA_NOTE_OTHER"))
                message = {**message, "text": note, "kind": text}
            meta = self.handoffs.add_user_message(thread, message, f"{once}:{number}")
        if not meta or meta.get("mode") == "manager" or not self._wrote_again_due(meta, now):
            return None
        outcome.notices.append(StaffNotice(
            kind="handoff_message",
            office=meta.get("office", ""),
            summary="対応待ちの利用者から新しいメッセージがあります。",
            fields={"thread": thread, "since": meta.get("since", ""), "reason": meta.get("reason", ""),
                    **({"lang": conversation.lang} if conversation.lang != i18n.SOURCE else {})},
        ))
        return thread

    @staticmethod
    def _wrote_again_due(meta: dict[str, str], now: datetime) -> bool:
        """Once per WROTE_AGAIN_EVERY per thread (the handoff notice counts), and again after each staff reply."""
        last = meta.get("notified_at") or meta.get("since")
        if not last:
            return True
        last_at = datetime.fromisoformat(last)
        if meta.get("staff_at") and datetime.fromisoformat(meta["staff_at"]) > last_at:
            return True
        return now - last_at >= WROTE_AGAIN_EVERY

    def _change_paused(self, user: str, change: Callable[[Conversation], None]) -> Conversation | None:
        """Apply `change(conversation)` to a paused user's conversation (compare-and-set); None if not paused."""
        for _ in range(MAX_ATTEMPTS):
            data, version = self.conversations.load(user)
            conversation = Conversation.from_json(data) if data else self._still_waiting(user)
            if conversation is None or not conversation.paused:
                return None
            change(conversation)
            try:
                self.conversations.save(user, conversation.to_json(), version)
            except ConflictError:
                continue
            return conversation
        raise StoreError(f"conversation kept changing for {MAX_ATTEMPTS} attempts")

    def resume(self, user: str, *, by: str = "staff") -> bool:
        """Staff (`by`: the account's id) hand the user back to the bot; the user is told by push. False if
        not paused."""

        def unpause(conversation: Conversation) -> None:
            conversation.paused = None
            conversation.quiet = False

        resumed = self._change_paused(user, unpause) is not None
        self.close_handoff(user, by=by)
        if resumed:
            with i18n.using(self.user_language(user)):
                text = texts.STAFF_RESUMED
            self.queue_push(user, [{"type": "text", "text": text}], retry_key=uuid.uuid4().hex)
        return resumed

    def user_language(self, user: str) -> str:
        """The language a user is spoken to in: their conversation's, else their latest booking's, else Japanese
        (for what is said to them outside a turn: a staff reply, the end of a handoff)."""
        data, _ = self.conversations.load(user)
        if data and data.get("lang") in i18n.LANGUAGES:
            return data["lang"]
        return booking_language(self.bookings, user) or i18n.DEFAULT

    def set_quiet(self, user: str, quiet: bool) -> bool:
        """Staff answer in LINE Official Account Manager (quiet: the bot says nothing) or in the console again."""

        def mark(conversation: Conversation) -> None:
            conversation.quiet = quiet

        if self._change_paused(user, mark) is None:
            return False
        thread = (self.handoffs.info(user) or {}).get("thread")
        if thread:
            self.handoffs.set_fields(thread, {"mode": "manager" if quiet else "console"})
        return True

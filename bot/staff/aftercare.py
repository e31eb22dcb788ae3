"""Scheduled work after booking: reminders, terms re-consent, lapsed proposals, overdue requests, retention
(of bookings, handoff threads and the audit trail), and the after-effects of booking steps that stopped
half-way (`AfterEffects`).

`scheduled_tasks(service)` returns callables `(now) -> None`; the worker calls each one every cycle
and each throttles itself. Due bookings are found by scanning the offices' day indexes
(`BookingStore.on_day`), so there is no second schedule to keep in step with the bookings.
Every task is safe to repeat: a push carries a retry key derived from the booking (LINE accepts a
retry key once), and what was done is recorded on the booking.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from bot import calendar, i18n
from bot.channels.line.render import to_messages
from bot.clock import JST
from bot.dialog import Reply, StaffNotice
from bot.dialog.conversation import booking_ref, booking_when, parse_when
from bot.dialog.pushes import in_language, lapsed_replies, reconsent_replies, reminder_replies
from bot.errors import HwbotError
from bot.profiles import OfficeProfile
from bot.profiles.models import TermsChange
from bot.service import BotService, notice_entry
from bot.staff.languages import language_field
from bot.store import Plan
from bot.store.bookings import ANONYMISED_FIELDS, PERSONAL_FIELDS

log = logging.getLogger("hwbot.aftercare")

# Retry keys and notice ids are uuid5 in this namespace: the same booking gives the same key.
NAMESPACE = uuid.UUID("5b8f5f0e-2f55-4d3c-9a57-6f1d8a4e2c10")
# Days before a cut-off that the retention task looks at again, so a worker stopped for up to this
# long still catches up.
LOOKBACK_DAYS = 31


def retry_key(*parts: str) -> str:
    """A LINE retry key (a UUID) derived from `parts`: a repeated push is accepted once."""
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def bookings_between(service: BotService, office: str, first: date, last: date) -> Iterator[dict[str, Any]]:
    """The office's bookings (any status) from `first` to `last` inclusive, day by day."""
    for day in calendar.iter_days(first, last):
        yield from service.bookings.store.on_day(office, day.isoformat())


class Throttled:
    """Runs `task` at most once per `every`; an error is logged and the task runs again next cycle."""

    def __init__(self, name: str, every: timedelta, task: Callable[[datetime], Any]):
        self.name = name
        self.every = every
        self.task = task
        self.last: datetime | None = None

    def __call__(self, now: datetime) -> None:
        if self.last is not None and self.last <= now < self.last + self.every:
            return
        try:
            self.task(now)
        except HwbotError as exc:
            log.warning("aftercare_failed task=%s error=%s", self.name, exc.__class__.__name__)
            return
        self.last = now


class Reminders:
    """The day before the appointment, at the office's `staff.reminder_time`, a push to the user."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> list[tuple[dict[str, Any], list[Reply]]]:
        """Queue every due reminder; returns (booking, replies) of those sent."""
        mode = self.service.settings.reminders
        sent = []
        if mode == "off":
            return sent
        today = now.astimezone(JST).date()
        for profile in self.service.offices.values():
            # Today too: a reminder missed while the worker was stopped still goes before the start.
            for booking in bookings_between(self.service, profile.id, today, today + timedelta(days=1)):
                if self.due(profile, booking, now, opt_in=mode == "opt_in"):
                    sent.append((booking, self.send(profile, booking, now)))
        return sent

    @staticmethod
    def due(profile: OfficeProfile, booking: dict[str, Any], now: datetime, *, opt_in: bool) -> bool:
        if booking.get("status") != "booked" or booking.get("reminder_sent_at") or not booking.get("user"):
            return False
        if opt_in and booking.get("reminder") != "yes":
            return False
        start = parse_when(booking.get("start"))
        if start is None or start <= now:
            return False
        at = datetime.combine(start.astimezone(JST).date() - timedelta(days=1), profile.staff.reminder_time, tzinfo=JST)
        if now < at:
            return False
        # Booked after the reminder time of the day before: no reminder. The booked card the user
        # has just read carries the same date, checklist and cancellation rules; a push minutes
        # later would only repeat it.
        created = parse_when(booking.get("created_at"))
        return created is None or created < at

    def send(self, profile: OfficeProfile, booking: dict[str, Any], now: datetime) -> list[Reply]:
        ref = booking_ref(booking)
        with in_language(self.service.offices, profile.id, booking.get("lang")) as theirs:  # the booking's language
            replies = reminder_replies(theirs, booking)
            messages = to_messages(replies, base_url=self.service.settings.public_url or "")
        # Push first, then record: a crash between repeats the push, which the retry key makes harmless.
        self.service.queue_push(booking["user"], messages, retry_key=retry_key("reminder", ref))
        self.service.bookings.update(ref, {"reminder_sent_at": now.isoformat()})
        log.info("reminder_queued office=%s booking=%s", profile.id, booking["id"])
        return replies


class Reconsent:
    """The office's terms changed after a booking was made: ask the user to consent again, once per version."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> list[tuple[dict[str, Any], list[Reply], StaffNotice]]:
        """Ask every user whose future booking carries an older consent; returns what was queued."""
        asked = []
        today = now.astimezone(JST).date()
        for profile in self.service.offices.values():
            last = calendar.window_end(profile, now)
            for booking in bookings_between(self.service, profile.id, today, last):
                if self.due(profile, booking, now):
                    asked.append((booking, *self.ask(profile, booking, now)))
        return asked

    @staticmethod
    def due(profile: OfficeProfile, booking: dict[str, Any], now: datetime) -> bool:
        version = profile.terms.version.isoformat()
        if booking.get("status") != "booked" or not booking.get("user"):
            return False
        start = parse_when(booking.get("start"))
        if start is None or start <= now:
            return False
        consented = (booking.get("consent") or {}).get("version")
        return consented != version and (booking.get("reconsent") or {}).get("version") != version

    def terms_url(self, profile: OfficeProfile, lang: str | None = None) -> str | None:
        """The full terms' page (its frame in `lang`: `?lang=`), absolute; None without HWBOT_PUBLIC_URL."""
        base = self.service.settings.public_url
        if not base:
            return None
        query = f"?lang={lang}" if lang and lang != i18n.SOURCE and lang in i18n.LANGUAGES else ""
        return f"{base.rstrip('/')}/offices/{profile.id}/terms{query}"

    def ask(self, profile: OfficeProfile, booking: dict[str, Any], now: datetime) -> tuple[list[Reply], StaffNotice]:
        ref = booking_ref(booking)
        version = profile.terms.version.isoformat()
        with in_language(self.service.offices, profile.id, booking.get("lang")) as theirs:
            replies = reconsent_replies(theirs, booking, self.terms_url(profile, booking.get("lang")))
            messages = to_messages(replies, base_url=self.service.settings.public_url or "")
        waits = profile.terms.change == TermsChange.reply
        self.service.queue_push(booking["user"], messages, retry_key=retry_key("reconsent", ref, version))
        notice = StaffNotice(
            kind="reconsent_needed",
            office=profile.id,
            summary=f"利用規約の改定につき再同意を依頼: {profile.short_name} {booking_when(booking)}",
            fields={
                "ref": ref,
                "booking_id": booking["id"],
                "slot": booking["slot"],
                "version": version,
                "awaiting_consent": "yes" if waits else "no",
                **language_field(booking.get("lang")),
            },
        )
        self.service.queue_notice(notice, entry_id=uuid.uuid5(NAMESPACE, f"reconsent_needed|{ref}|{version}").hex)
        previous = booking.get("reconsent") or {}
        record = {"version": version, "asked_at": now.isoformat()}
        changes: dict[str, Any] = {"reconsent": record}
        if waits:
            # The booking waits for consent; the state it had comes back when the user consents.
            confirmation = booking.get("office_confirmation")
            if confirmation == "awaiting_consent":
                confirmation = previous.get("confirmation", "pending")
            record["confirmation"] = confirmation or "pending"
            changes["office_confirmation"] = "awaiting_consent"
        self.service.bookings.update(ref, changes)
        log.info("reconsent_asked office=%s booking=%s version=%s", profile.id, booking["id"], version)
        return replies, notice


class Proposals:
    """A time staff proposed that the user has not answered by the slot's booking deadline lapses: the
    held slot is freed, the request waits for staff again, staff and the user are told (one step)."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> list[tuple[dict[str, Any], list[Reply]]]:
        """Lapse every due proposal; returns (request, replies pushed) of those lapsed now."""
        lapsed = []
        today = now.astimezone(JST).date()
        for profile in self.service.offices.values():
            # The held slot's day is after its deadline: look from today to the end of the window.
            for held in bookings_between(self.service, profile.id, today, calendar.window_end(profile, now)):
                if held.get("status") != "held":
                    continue
                deadline = parse_when((held.get("proposal") or {}).get("deadline"))
                if deadline is not None and deadline <= now:
                    result = self.lapse(profile, held, now)
                    if result is not None:
                        lapsed.append(result)
                elif not self.waited_for(held):
                    # The request was cancelled meanwhile (by the user or staff): free the slot now.
                    self.service.bookings.end_proposal(booking_ref(held), answer="orphaned", at=now, entries=[])
        return lapsed

    def waited_for(self, held: dict[str, Any]) -> bool:
        request = self.service.bookings.get(held.get("held_for", ""))
        return (request is not None and request.get("status") == "booked"
                and (request.get("proposal") or {}).get("ref") == booking_ref(held))

    def lapse(self, profile: OfficeProfile, held: dict[str, Any], now: datetime) -> tuple[dict[str, Any], list[Reply]] | None:
        ref = booking_ref(held)
        request = self.service.bookings.get(held.get("held_for", "")) or held
        with in_language(self.service.offices, profile.id, request.get("lang")) as theirs:
            replies = lapsed_replies(theirs, request, held)
            messages = to_messages(replies, base_url=self.service.settings.public_url or "")
        notice = StaffNotice(
            kind="proposal_lapsed",
            office=profile.id,
            summary=f"提案した日時が期限切れ: {profile.short_name} {booking_when(held)}",
            fields={"ref": ref, "booking_id": held["id"], "slot": held["slot"], "request": held.get("held_for", ""),
                    **language_field(request.get("lang"))},
        )
        entries = [notice_entry(notice, now, entry_id=uuid.uuid5(NAMESPACE, f"proposal_lapsed|{ref}").hex)]
        if request.get("status") == "booked" and held.get("user"):  # the request still waits: tell the user
            entries.append({"id": retry_key("proposal_lapsed", ref), "kind": "push", "to": held["user"],
                            "messages": messages, "at": now.isoformat()})
        result = self.service.bookings.end_proposal(ref, answer="lapsed", at=now, entries=entries)
        if result is None:
            return None
        log.info("proposal_lapsed office=%s booking=%s", profile.id, held["id"])
        return result, replies


def business_days_after(profile: OfficeProfile, day: date, count: int) -> date:
    """The `count`-th business day after `day` (count=0: `day` itself)."""
    current = day
    while count > 0:
        current += timedelta(days=1)
        if calendar.is_open(profile, current):
            count -= 1
    return current


def overdue_at(profile: OfficeProfile, booking: dict[str, Any]) -> datetime | None:
    """When an unconfirmed request becomes overdue: the office's reply time (`reply_business_days`
    after the request, at closing time) or noon of the last business day before the consultation,
    whichever comes first."""
    start = parse_when(booking.get("start"))
    created = parse_when(booking.get("created_at"))
    if start is None:
        return None
    start = start.astimezone(JST)
    last_day = calendar.business_days_before(profile, start.date(), 1)
    due = datetime.combine(last_day, time(12, 0), tzinfo=JST)
    days = profile.after_booking.reply_business_days
    if days is not None and created is not None:
        reply_day = business_days_after(profile, created.astimezone(JST).date(), days)
        due = min(due, datetime.combine(reply_day, profile.hours.close, tzinfo=JST))
    return due


def is_overdue(profile: OfficeProfile, booking: dict[str, Any], now: datetime) -> bool:
    """A request still waiting for the office past its reply time (the console's banner, the notice)."""
    if booking.get("status") != "booked" or booking.get("office_confirmation") != "pending":
        return False
    start = parse_when(booking.get("start"))
    due = overdue_at(profile, booking)
    return start is not None and due is not None and due <= now < start


class Overdue:
    """A request the office has not acted on in its reply time gives staff a notice, once."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> list[dict[str, Any]]:
        """Notify every newly overdue request; returns those notified now."""
        noticed = []
        today = now.astimezone(JST).date()
        for profile in self.service.offices.values():
            if not profile.after_booking.confirmed_by_office:
                continue
            for booking in bookings_between(self.service, profile.id, today, calendar.window_end(profile, now)):
                if is_overdue(profile, booking, now) and not booking.get("overdue_noticed_at"):
                    if self.notify(profile, booking, now):
                        noticed.append(booking)
        return noticed

    def notify(self, profile: OfficeProfile, booking: dict[str, Any], now: datetime) -> bool:
        ref = booking_ref(booking)
        notice = StaffNotice(
            kind="request_overdue",
            office=profile.id,
            summary=f"確認待ちの申込み: {profile.short_name} {booking_when(booking)}",
            fields={"ref": ref, "booking_id": booking["id"], "slot": booking["slot"], **language_field(booking.get("lang"))},
        )
        entry = notice_entry(notice, now, entry_id=uuid.uuid5(NAMESPACE, f"request_overdue|{ref}").hex)

        def decide(found: list[dict[str, Any] | None]) -> Plan | None:
            current = found[0]
            if current is None or current.get("overdue_noticed_at") or not is_overdue(profile, current, now):
                return None
            return Plan(bookings={ref: {**current, "overdue_noticed_at": now.isoformat()}}, entries=[entry], result=True)

        done = bool(self.service.bookings.store.act([ref], decide))
        if done:
            log.info("request_overdue office=%s booking=%s", profile.id, booking["id"])
        return done


class Retention:
    """Personal fields go `HWBOT_RETENTION_DAYS` after the appointment (and at `erase_after`)."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> int:
        """Strip what is due; returns how many bookings changed."""
        keep = timedelta(days=self.service.settings.retention_days)
        today = now.astimezone(JST).date()
        cutoff = (now - keep).astimezone(JST).date()
        changed = 0
        for profile in self.service.offices.values():
            for booking in bookings_between(self.service, profile.id, cutoff - timedelta(days=LOOKBACK_DAYS), cutoff):
                end = parse_when(booking.get("end"))
                if end is not None and end + keep <= now and set(booking) & set(ANONYMISED_FIELDS):
                    self.service.bookings.store.anonymise(booking_ref(booking), at=now.isoformat())
                    changed += 1
            # A blocked user's bookings: personal fields go right after the appointment.
            for booking in bookings_between(self.service, profile.id, today - timedelta(days=LOOKBACK_DAYS), today):
                erase_after = parse_when(booking.get("erase_after"))
                if erase_after is not None and erase_after <= now and set(booking) & set(PERSONAL_FIELDS):
                    self.service.bookings.delete_personal(booking_ref(booking))
                    changed += 1
        if changed:
            log.info("retention_applied bookings=%d", changed)
        return changed


class ThreadRetention:
    """Handoff threads (what the user and staff wrote) go `HWBOT_THREAD_RETENTION_DAYS` after they closed."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> int:
        """Delete the threads that are due; returns how many."""
        keep = timedelta(days=self.service.settings.thread_retention_days)
        handoffs = self.service.handoffs
        deleted = 0
        while due := handoffs.closed_before((now - keep).timestamp()):
            handoffs.delete(due)
            deleted += len(due)
        if deleted:
            log.info("thread_retention_applied threads=%d", deleted)
        return deleted


class AuditRetention:
    """Audit entries go `HWBOT_AUDIT_RETENTION_DAYS` after they were recorded (XTRIM MINID)."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> int:
        """Trim the audit trail; returns how many entries went."""
        dropped = self.service.audit.trim(now - timedelta(days=self.service.settings.audit_retention_days))
        if dropped:
            log.info("audit_retention_applied entries=%d", dropped)
        return dropped


class AfterEffects:
    """A booking step whose after-effects (the user index, its pushes and notices) were cut off by a crash
    or an unreachable node left an intent in its office's slot: apply it, once (`BookingStore.recover`)."""

    def __init__(self, service: BotService):
        self.service = service

    def __call__(self, now: datetime) -> int:
        """Complete every intent older than a few seconds; returns how many."""
        offices = [profile.id for profile in self.service.offices.values()]
        done = self.service.bookings.store.recover(offices, now.timestamp())
        if done:
            log.info("after_effects_recovered intents=%d", done)
        return done


def scheduled_tasks(service: BotService) -> list[Callable[[datetime], None]]:
    """The periodic tasks the worker calls every cycle (each throttles itself)."""
    return [
        Throttled("after_effects", timedelta(seconds=5), AfterEffects(service)),
        Throttled("reminders", timedelta(minutes=1), Reminders(service)),
        Throttled("reconsent", timedelta(minutes=10), Reconsent(service)),
        Throttled("proposals", timedelta(minutes=1), Proposals(service)),
        Throttled("overdue", timedelta(minutes=5), Overdue(service)),
        Throttled("retention", timedelta(hours=1), Retention(service)),
        Throttled("thread_retention", timedelta(hours=1), ThreadRetention(service)),
        Throttled("audit_retention", timedelta(days=1), AuditRetention(service)),
    ]

"""`hwbot worker`: delivers the outbox (staff notices to Slack and LINE groups, pushes to users).

Each cycle runs the scheduled tasks (reminders, re-consent, retention: supplied by their owners),
then takes what is due: on the first cycle this consumer's own pending entries (what it was sending
when it stopped), entries a dead worker left pending longer than the lease, retries whose backoff has
passed, and new entries. A delivered entry gets a marker and is acknowledged in one step; a marker
found before delivering means "already sent", so nothing is sent twice after a crash between the
delivery and the acknowledgement. LINE pushes carry `X-Line-Retry-Key`, so even a crash between
LINE's acceptance and the marker sends once (LINE answers 409). Slack webhooks have no such key: only
a crash between Slack's 200 and the marker can repeat a Slack notice.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bot.channels.line.api import LineApiError, LineMessaging
from bot.clock import JST
from bot.errors import DeliveryError, StoreError, UnknownOfficeError
from bot.profiles import OfficeProfile
from bot.service import BotService
from bot.settings import Settings
from bot.staff.notify import SlackSender, StaffMessage, compose, line_messages
from bot.store.outbox import Entry, done_key

log = logging.getLogger("hwbot.worker")

Task = Callable[[datetime], None]
BLOCK_MS = 1000  # the blocking read of `run`: how long a stop request may wait
BATCH = 100
# Retry keys of entries whose id is not a UUID (LINE wants a UUID) are derived in this namespace.
RETRY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "outbox.hwbot")


def retry_key(entry_id: str, channel: str = "") -> str:
    """The entry id as a UUID string for `X-Line-Retry-Key` (uuid5 of it when it is not a UUID)."""
    if not channel:
        try:
            return str(uuid.UUID(entry_id))
        except ValueError:
            pass
    return str(uuid.uuid5(RETRY_NAMESPACE, f"{entry_id}:{channel}" if channel else entry_id))


def default_consumer() -> str:
    """The host name: stable across restarts, so a restarted worker takes back its own entries at once."""
    return socket.gethostname() or "worker"


class Worker:
    """Delivers the outbox of `service`'s Redis; `run_once` for tests and `--once`, `run` until stopped."""

    def __init__(
        self,
        service: BotService,
        settings: Settings,
        *,
        tasks: Iterable[Task] = (),
        consumer: str | None = None,
        line: LineMessaging | None = None,
        slack: SlackSender | None = None,
    ):
        self.service = service
        self.settings = settings
        self.outbox = service.outbox
        self.tasks = list(tasks)
        self.consumer = consumer or default_consumer()
        self.line = line or LineMessaging(settings.line_api_host, settings.line_channel_access_token or "")
        self.slack = slack or SlackSender()
        self._started = False
        self._cursor = "0-0"
        self._nowhere_logged: set[str] = set()

    def run_once(self, now: datetime, *, block_ms: int | None = None,
                 stop: threading.Event | None = None) -> dict[str, int]:
        """Do what is due at `now` and return counts (delivered, failed, dead, skipped, nowhere, handed_back).

        Waits up to `block_ms` for a new entry only when nothing else was due (`run` passes it). Once
        `stop` is set, the entries not yet sent are handed back: they stay pending for this consumer,
        which takes them back at its next start (another worker takes them after the lease).
        """
        stats: Counter[str] = Counter()
        self._run_tasks(now)
        entries: list[Entry] = []
        if not self._started:
            self.outbox.ensure_group()
            entries += self.outbox.own_pending(self.consumer)
            self._started = True
        lease_ms = self.settings.worker_lease_seconds * 1000
        self._cursor, stale = self.outbox.claim_stale(self.consumer, lease_ms, self._cursor, BATCH)
        entries += stale
        entries += self.outbox.claim_due(self.consumer, now.timestamp(), BATCH)
        entries += self.outbox.read_new(self.consumer, BATCH, None if entries else block_ms)
        unique = list({entry.stream_id: entry for entry in entries}.values())
        done = self.outbox.delivered([done_key(entry.id) for entry in unique])
        for entry in unique:
            if stop is not None and stop.is_set():
                stats["handed_back"] += 1
            elif not entry.raw:  # trimmed from the stream before anyone delivered it
                self.outbox.ack(entry)
                stats["skipped"] += 1
            elif done_key(entry.id) in done:
                log.info("outbox_already_delivered stream_id=%s kind=%s", entry.stream_id, entry.kind)
                self.outbox.ack(entry)
                stats["skipped"] += 1
            else:
                stats[self._deliver(entry, now)] += 1
        return dict(stats)

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; a failed cycle (Redis away) is logged and tried again a second later."""
        log.info("worker_started consumer=%s", self.consumer)
        while not stop.is_set():
            try:
                self.run_once(self.service.clock.now(), block_ms=BLOCK_MS, stop=stop)
            except Exception as exc:  # keep delivering whatever went wrong in one cycle
                log.error("worker_cycle_failed error=%s", exc.__class__.__name__)
                stop.wait(1.0)
        log.info("worker_stopped consumer=%s", self.consumer)

    def _run_tasks(self, now: datetime) -> None:
        for task in self.tasks:
            try:
                task(now)
            except Exception as exc:  # one task's failure must not stop deliveries or the other tasks
                name = getattr(task, "__name__", task.__class__.__name__)
                log.error("worker_task_failed task=%s error=%s", name, exc.__class__.__name__)

    def _deliver(self, entry: Entry, now: datetime) -> str:
        """Send one entry; 'delivered', 'nowhere', 'failed' or 'dead'."""
        try:
            outcome = self._push(entry) if entry.kind == "push" else self._notice(entry)
        except DeliveryError as exc:
            failure = self.outbox.fail(
                entry,
                str(exc),
                now=now.timestamp(),
                failed_at=now.isoformat(),
                max_attempts=self.settings.worker_max_attempts,
                permanent=exc.permanent,
            )
            if failure.dead:
                log.error("outbox_dead stream_id=%s kind=%s attempts=%d error=%s",
                          entry.stream_id, entry.kind, failure.attempts, exc)
                return "dead"
            log.warning("outbox_retry stream_id=%s kind=%s attempts=%d error=%s next_in=%.0fs",
                        entry.stream_id, entry.kind, failure.attempts, exc, (failure.next_at or 0) - now.timestamp())
            return "failed"
        self.outbox.ack(entry)
        log.info("outbox_delivered stream_id=%s kind=%s to=%s", entry.stream_id, entry.kind, outcome)
        return "nowhere" if outcome == "nowhere" else "delivered"

    def _push(self, entry: Entry) -> str:
        """A LINE push to a user (`to`, `messages`) with the entry id as its retry key."""
        try:
            to, messages = entry.get("to"), entry.get("messages")
        except ValueError:
            raise DeliveryError("malformed push", permanent=True) from None
        if not isinstance(to, str) or not to or not isinstance(messages, list) or not messages:
            raise DeliveryError("malformed push", permanent=True)
        self._line_push(to, messages, retry_key(entry.id), "user")
        return "line"

    def _line_push(self, to: str, messages: list[dict[str, Any]], key: str, counted_as: str) -> None:
        try:
            self.line.push(to, messages, retry_key=key)
        except LineApiError as exc:
            if exc.status == 409:  # LINE already accepted this retry key: delivered before a crash
                log.info("line_push_already_accepted")
                return
            raise DeliveryError(f"line {exc.status or exc.__cause__.__class__.__name__}") from None
        self._count_push(counted_as)

    def _count_push(self, to: str) -> None:
        """Count a push LINE accepted against this month (Japan time); a Redis error only loses the count."""
        try:
            self.service.pushes.count(f"{self.service.clock.now().astimezone(JST):%Y-%m}", to)
        except StoreError as exc:
            log.warning("push_count_failed error=%s", exc.__class__.__name__)

    def _notice(self, entry: Entry) -> str:
        """A staff notice to the office's channels (Slack webhook and/or LINE group).

        A notice made before the user chose an office (`office: ""`) goes to every channel the
        offices configure, each Slack webhook URL and LINE group once.
        """
        offices = self.service.offices
        office = entry.raw.get("office", "")
        profile: OfficeProfile | None = None
        if office:
            try:
                profile = offices[office]
            except UnknownOfficeError:
                raise DeliveryError("unknown office", permanent=True) from None
        profiles = [profile] if profile is not None else list(offices.values())
        base = self.settings.public_url
        if profile is None and not base:  # one console serves every office: any office's link to it
            base = next((p.staff.console_url for p in profiles if p.staff.console_url), None)
        try:
            notice = {**entry.raw, "fields": entry.get("fields") or {}}
            message = compose(notice, profile, base)
        except (ValueError, TypeError, AttributeError):
            raise DeliveryError("malformed notice", permanent=True) from None
        channels = self._channels(entry, profiles, shared=profile is None)
        if not channels:
            if entry.kind not in self._nowhere_logged:
                self._nowhere_logged.add(entry.kind)
                log.warning("notice_no_channel kind=%s office=%s", entry.kind, office or "(none)")
            return "nowhere"
        # With two channels, one that went out is not sent again when the other one is retried.
        done = self.outbox.delivered([done_key(entry.id, name) for name, _ in channels]) if len(channels) > 1 else set()
        for name, send in channels:
            if done_key(entry.id, name) in done:
                continue
            send(message)
            if len(channels) > 1:
                self.outbox.mark_channel(entry, name)
        return "+".join(dict.fromkeys(name.split(":")[0] for name, _ in channels))

    def _channels(self, entry: Entry, profiles: list[OfficeProfile],
                  *, shared: bool) -> list[tuple[str, Callable[[StaffMessage], None]]]:
        """(name, send) of each distinct channel of `profiles`: a Slack URL or a LINE group once.

        One office's channels are named `slack` and `line`; the shared ones add a digest of their
        target (the URL is a secret), so each has its own delivered marker and LINE retry key.
        """
        channels: list[tuple[str, Callable[[StaffMessage], None]]] = []
        seen: set[str] = set()
        for profile in profiles:
            notify = profile.staff.notify
            url = self.settings.secret_from(notify.slack_webhook_env) if notify.slack_webhook_env else None
            if url and url not in seen:
                seen.add(url)
                channels.append((_channel("slack", url, shared), lambda m, url=url: self.slack.send(url, m)))
            group = notify.line_group_id
            if group and group not in seen:
                seen.add(group)
                name = _channel("line", group, shared)
                key = retry_key(entry.id, name)
                channels.append((name, lambda m, group=group, key=key: self._line_push(group, line_messages(m), key, "group")))
        return channels


def _channel(kind: str, target: str, shared: bool) -> str:
    return f"{kind}:{hashlib.sha256(target.encode()).hexdigest()[:12]}" if shared else kind


def start_thread(worker: Worker) -> tuple[threading.Thread, threading.Event]:
    """Run `worker` in a daemon thread (the simulator's `hwbot serve`); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="hwbot-worker", daemon=True)
    thread.start()
    return thread, stop

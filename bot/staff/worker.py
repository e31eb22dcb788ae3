"""`hwbot worker`: delivers the outbox (staff notices to Slack and LINE groups, pushes to users).

Each cycle runs the scheduled tasks (reminders, re-consent, retention: supplied by their owners),
then takes what is due: on the first cycle this consumer's own pending entries (what it was sending
when it stopped), entries a dead worker left pending longer than the lease, retries whose backoff has
passed, and new entries. A delivered entry gets a marker and is acknowledged in one step; a marker
found before delivering means "already sent", so nothing is sent twice after a crash between the
delivery and the acknowledgement. LINE pushes carry `X-Line-Retry-Key`, so even a crash between
LINE's acceptance and the marker sends once (LINE answers 409). Slack webhooks have no such key: only
a crash between Slack's 200 and the marker can repeat a Slack notice.

Answers to webhook events (`reply` entries, `bot.channels.line.replies`) go out the same way, with
the event's reply token while it is fresh (else as a push). Entries are sent by a pool of threads
(`HWBOT_WORKER_THREADS`), one lane per recipient: a user's answers and pushes (or an office's staff
notices) go out one after another, in stream order, while different users' go out at the same time, so that LINE's answer time (~150 ms
from afar) does not queue everybody behind everybody. A reply names the user's previous reply
(`after`); one taken by another worker process waits (a bounded time) until that one is sent, so that
two quick taps are answered in order even with several workers. `run` keeps reading while the lanes
send; `run_once` waits for what it dispatched.

The outbox is split into shards (`bot.store.shards`); every worker reads every shard (0 .. the highest
shard count any process noted), and a user's entries are all in the user's shard, in order.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bot import i18n
from bot.channels.line import replies
from bot.channels.line.api import LineApiError, LineMessaging
from bot.channels.line.later import Later
from bot.channels.line.render import to_messages
from bot.clock import JST
from bot.errors import DeliveryError, StoreError, UnknownOfficeError
from bot.profiles import OfficeProfile
from bot.service import BotService
from bot.settings import Settings
from bot.staff.notify import SlackSender, StaffMessage, compose, line_messages
from bot.store.conversations import LAST_REPLY_TTL_SECONDS
from bot.store.outbox import DONE_TTL_SECONDS, Entry, done_key

log = logging.getLogger("hwbot.worker")

Task = Callable[[datetime], None]
BLOCK_MS = 1000  # the blocking read of `run`: how long a stop request may wait
BATCH = 100
# `run` looks for retries and for entries of dead workers at most this often (a pipeline over the shards).
MAINTENANCE_EVERY_S = 0.5
# `run` reads the highest shard count any process noted this often (a process with more shards started).
SHARDS_EVERY_S = 10.0
# A reply whose previous reply (`after`) another worker is still sending waits at most this long.
AFTER_WAIT_S = 2.0
AFTER_POLL_S = 0.02
# Ids of recently sent entries this process remembers (a reply's `after` found here needs no Redis check).
RECENT = 10_000
# Kinds whose entries are a user's messages: deleted from the stream once sent.
USER_KINDS = ("push", replies.KIND)
# One delayed-call thread per process for every worker's loading animations (started at the first).
_LATER = Later()
STOP_WAIT_S = 3.0  # at a stop, how long sends under way may take to end
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


class Lanes:
    """Jobs on a pool of threads, one lane per key: a key's jobs run one after another, in submission
    order; different keys' jobs run at the same time. Lanes with work take turns: a thread runs one job
    of a lane, then the lane goes to the back of the ready queue, so that a user who keeps writing
    cannot keep a thread from the users waiting behind."""

    def __init__(self, threads: int):
        self.threads = threads
        self._queues: dict[str, deque[Callable[[], None]]] = {}
        self._ready: deque[str] = deque()  # lanes with a job to run and no thread on them
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # a lane became ready: wakes one thread
        self._changed = threading.Condition(lock)  # a job ended: wakes those waiting in `wait`
        self._started: list[threading.Thread] = []
        self._closed = False
        self._running = 0  # threads running a job
        self.busy = 0  # jobs queued or running

    def submit(self, key: str, job: Callable[[], None]) -> None:
        with self._changed:
            self.busy += 1
            queue = self._queues.get(key)
            if queue is not None:
                queue.append(job)  # the lane runs it after the jobs before it
                return
            self._queues[key] = deque([job])
            self._ready.append(key)
            if len(self._started) < self.threads and len(self._ready) > self._idle_threads():
                thread = threading.Thread(target=self._run, name=f"hwbot-send-{len(self._started)}", daemon=True)
                self._started.append(thread)
                thread.start()
            self._work.notify()

    def _idle_threads(self) -> int:
        return len(self._started) - self._running

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._ready and not self._closed:
                    self._work.wait()
                if not self._ready:
                    return  # closed and nothing left
                key = self._ready.popleft()
                self._running += 1
                queue = self._queues[key]
                job = queue[0]  # stays queued while it runs, so that a new job of the key waits behind it
            try:
                job()
            except Exception:  # a job logs its own failures; this only keeps the lane going
                log.exception("worker_job_failed")
            finally:
                with self._changed:
                    self._running -= 1
                    queue.popleft()
                    self.busy -= 1
                    if queue:
                        self._ready.append(key)  # its next job waits its turn behind the other lanes
                        self._work.notify()
                    else:
                        del self._queues[key]
                    self._changed.notify_all()

    def wait(self, below: int = 1, timeout: float | None = None) -> bool:
        """Wait until fewer than `below` jobs are queued or running; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.busy < below, timeout)

    def shutdown(self) -> None:
        """Let the threads end once nothing is left to run."""
        with self._work:
            self._closed = True
            self._work.notify_all()


class _Stats:
    """Counts kept by the sending threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.counts[name] += 1


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
        self.line = line or LineMessaging(settings.line_api_host, settings.line_channel_access_token or "",
                                          pool_size=settings.worker_threads)
        self.slack = slack or SlackSender()
        self.lanes = Lanes(settings.worker_threads)
        self.later = _LATER  # the loading animation for an answer that waits for a free sender
        self._started = False
        self._cursors: dict[int, str] = {}  # per shard: where the next XAUTOCLAIM looks
        self._nowhere_logged: set[str] = set()
        self._in_flight: set[str] = set()  # entries (`Entry.label`) dispatched and not finished
        self._recent: OrderedDict[str, None] = OrderedDict()  # ids of entries sent by this process
        self._lock = threading.Lock()

    def run_once(self, now: datetime, *, block_ms: int | None = None,
                 stop: threading.Event | None = None) -> dict[str, int]:
        """Do what is due at `now`, wait until it is sent, and return counts (delivered, failed, dead,
        skipped, nowhere, handed_back; for answers to events also replied and pushed_instead).

        Waits up to `block_ms` for a new entry only when nothing else was due. Once `stop` is set, the
        entries not yet sent are handed back: they stay pending for this consumer, which takes them back
        at its next start (another worker takes them after the lease).
        """
        stats = _Stats()
        self._run_tasks(now)
        self._dispatch(self._collect(now, BATCH, block_ms, maintenance=True), now, stop, stats)
        self.lanes.wait()
        return dict(stats.counts)

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set: keep reading while the lanes send, at most
        `HWBOT_WORKER_THREADS` * 4 entries dispatched at a time. A failed cycle (Redis away) is logged
        and tried again a second later. At the stop, what was not sent yet is handed back."""
        log.info("worker_started consumer=%s threads=%d", self.consumer, self.settings.worker_threads)
        stats = _Stats()
        limit = self.settings.worker_threads * 4
        tasks_at = maintenance_at = shards_at = float("-inf")
        while not stop.is_set():
            try:
                if not self.lanes.wait(below=limit, timeout=BLOCK_MS / 1000):
                    continue  # every sender busy and the queue full: read nothing more yet
                now = self.service.clock.now()
                tick = time.monotonic()
                if tick - tasks_at >= 1.0:
                    tasks_at = tick
                    self._run_tasks(now)
                maintenance = tick - maintenance_at >= MAINTENANCE_EVERY_S
                if maintenance:
                    maintenance_at = tick
                if self._started and tick - shards_at >= SHARDS_EVERY_S:
                    shards_at = tick
                    self._refresh_shards()
                # At most `room` entries in all, spread over the shards (a busy shard is read again at once).
                room = max(1, -(-min(BATCH, limit - self.lanes.busy) // len(self.outbox.read_shards())))
                self._dispatch(self._collect(now, room, BLOCK_MS, maintenance=maintenance), now, stop, stats)
            except Exception as exc:  # keep delivering whatever went wrong in one cycle
                log.error("worker_cycle_failed error=%s", exc.__class__.__name__)
                stop.wait(1.0)
        self.lanes.wait(timeout=STOP_WAIT_S)  # queued entries are handed back; sends under way end
        log.info("worker_stopped consumer=%s", self.consumer)

    def _refresh_shards(self) -> None:
        """Read every shard another process noted too (one configured with more shards started): their
        consumer groups are made before the first read."""
        known = len(self.outbox.read_shards())
        if len(self.outbox.refresh_shards()) != known:
            log.info("worker_shards shards=%d", len(self.outbox.read_shards()))
            self.outbox.ensure_group()

    def _collect(self, now: datetime, count: int, block_ms: int | None, *,
                 maintenance: bool) -> list[tuple[Entry, bool]]:
        """(entry, first attempt?) of what is due, from every shard: at the first call this consumer's own
        pending entries, then (with `maintenance`) those of dead workers and retries whose time has come,
        then new ones (at most `count` per shard)."""
        taken: list[Entry] = []
        if not self._started:
            self.outbox.ensure_group()
            taken += self.outbox.own_pending(self.consumer)
            self._started = True
        if maintenance:
            lease_ms = self.settings.worker_lease_seconds * 1000
            self._cursors, stale = self.outbox.claim_stale(self.consumer, lease_ms, self._cursors, BATCH)
            taken += stale
            taken += self.outbox.claim_due(self.consumer, now.timestamp(), BATCH)
        new = self.outbox.read_new(self.consumer, max(count, 1), None if taken else block_ms)
        return [(entry, False) for entry in taken] + [(entry, True) for entry in new]

    def _dispatch(self, entries: list[tuple[Entry, bool]], now: datetime, stop: threading.Event | None,
                  stats: _Stats) -> None:
        """Hand each entry to its recipient's lane (skipping what another thread of ours is sending)."""
        with self._lock:
            unique = {entry.label: (entry, first) for entry, first in entries
                      if entry.label not in self._in_flight}
        # A new answer's id is a fresh uuid4: it cannot have been delivered already (no Redis check).
        done = self.outbox.delivered([entry.done_key() for entry, first in unique.values()
                                      if not (first and entry.kind == replies.KIND)])
        for entry, first in unique.values():
            if stop is not None and stop.is_set():
                stats.add("handed_back")
            elif not entry.raw:  # trimmed from the stream before anyone delivered it
                self.outbox.ack(entry)
                stats.add("skipped")
            elif entry.done_key() in done:
                log.info("outbox_already_delivered entry=%s kind=%s", entry.label, entry.kind)
                self.outbox.ack(entry)
                stats.add("skipped")
            else:
                with self._lock:
                    self._in_flight.add(entry.label)
                lane = _lane(entry)
                loading = self._loading_later(entry) if first else None
                self.lanes.submit(lane, lambda e=entry, f=first, c=loading: self._job(e, f, now, stop, stats, c))

    def _job(self, entry: Entry, first: bool, now: datetime, stop: threading.Event | None, stats: _Stats,
             cancel_loading: Callable[[], None] | None) -> None:
        try:
            if cancel_loading is not None:
                cancel_loading()
            if stop is not None and stop.is_set():
                stats.add("handed_back")  # still pending for this consumer: sent at its next start
                return
            if entry.kind == replies.KIND and first:
                self._wait_for_previous(entry)
            stats.add(*self._deliver(entry, now, first))
        except Exception as exc:  # Redis away mid-send: the entry stays pending and is taken again
            log.error("worker_send_failed entry=%s error=%s", entry.label, exc.__class__.__name__)
            stats.add("error")
        finally:
            with self._lock:
                self._in_flight.discard(entry.label)

    def _loading_later(self, entry: Entry) -> Callable[[], None] | None:
        """Show LINE's loading animation if a user's answer is still waiting for a sender when it is due."""
        to = entry.raw.get("to", "")
        if entry.kind != replies.KIND or not to.startswith("U"):
            return None
        delay = replies.LOADING_AFTER_S - replies.age_seconds(entry.raw.get("received"))
        return self.later.call(delay, replies.show_loading, self.line, to) if delay > 0 else None

    def _wait_for_previous(self, entry: Entry) -> None:
        """A user's reply goes after their previous one (`after`): wait, a bounded time, until it is sent."""
        after = entry.raw.get("after")
        if not after:
            return
        deadline = time.monotonic() + AFTER_WAIT_S
        while True:
            with self._lock:
                if after in self._recent:
                    return
            # The previous answer is the same user's: in the same shard.
            if self.outbox.delivered([done_key(entry.shard, after)]) or time.monotonic() >= deadline:
                return
            time.sleep(AFTER_POLL_S)  # another worker is sending it right now

    def _sent(self, entry: Entry) -> None:
        with self._lock:
            self._recent[entry.id] = None
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def _run_tasks(self, now: datetime) -> None:
        for task in self.tasks:
            try:
                task(now)
            except Exception as exc:  # one task's failure must not stop deliveries or the other tasks
                name = getattr(task, "__name__", task.__class__.__name__)
                log.error("worker_task_failed task=%s error=%s", name, exc.__class__.__name__)

    def _deliver(self, entry: Entry, now: datetime, first: bool = False) -> tuple[str, ...]:
        """Send one entry; ('delivered' | 'nowhere' | 'failed' | 'dead', and for an answer to an event
        'replied' or 'pushed_instead' once it went out)."""
        try:
            if entry.kind == replies.KIND:
                outcome = self._answer(entry, first)
            elif entry.kind == "push":
                outcome = self._push(entry)
            else:
                outcome = self._notice(entry)
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
                log.error("outbox_dead entry=%s kind=%s attempts=%d error=%s",
                          entry.label, entry.kind, failure.attempts, exc)
                return ("dead",)
            log.warning("outbox_retry entry=%s kind=%s attempts=%d error=%s next_in=%.0fs",
                        entry.label, entry.kind, failure.attempts, exc, (failure.next_at or 0) - now.timestamp())
            return ("failed",)
        answer = entry.kind == replies.KIND
        self.outbox.ack(entry, first=first, drop=entry.kind in USER_KINDS,
                        done_seconds=LAST_REPLY_TTL_SECONDS if answer else DONE_TTL_SECONDS)
        self._sent(entry)
        if answer:  # one line per event would be most of the worker's log: the counts say it
            return ("delivered", "replied" if outcome == "reply" else "pushed_instead")
        log.info("outbox_delivered entry=%s kind=%s to=%s", entry.label, entry.kind, outcome)
        return ("nowhere",) if outcome == "nowhere" else ("delivered",)

    def _answer(self, entry: Entry, first: bool) -> str:
        """An answer to a webhook event: 'reply' with its token when fresh on a first attempt, else 'push'."""
        to, messages = self._recipient(entry, "malformed reply")
        if first and entry.raw.get("profile") == "1":
            messages = self._in_profile_language(to, messages, entry.raw.get("base") or "")
        token = entry.raw.get("token", "")
        fresh = first and replies.age_seconds(entry.raw.get("received")) < replies.REPLY_WINDOW_S
        if fresh and replies.try_reply(self.line, token, messages):
            return "reply"
        # Expired, refused, or a retry (the reply may have been tried): the same messages, pushed once.
        self._line_push(to, messages, retry_key(entry.id), "user" if to.startswith("U") else "group")
        return "push"

    def _in_profile_language(self, to: str, messages: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
        """A first greeting (issue 14): ask LINE for the user's profile language, once and briefly; where it
        is another language than the greeting's, the greeting again in that language replaces it (a turn
        through the service, so the conversation keeps the language). LINE silent or refusing: the
        greeting as it is (the profile is not asked again). The turn is best effort too: when the user's own
        next events keep changing the conversation meanwhile (they already answered the greeting) or
        Redis cannot take it, the greeting goes out as it is, rather than staying unsent for the lease."""
        try:
            tag = self.line.profile_language(to)
        except LineApiError:
            return messages
        try:
            outcome = self.service.profile_turn(to, tag)
        except StoreError as exc:
            log.warning("greeting_profile_turn_skipped error=%s", exc.__class__.__name__)
            return messages
        if outcome is None:
            return messages
        with i18n.using(outcome.conversation.lang):
            again = to_messages(outcome.replies, base_url=base_url or self.settings.public_url or "")
        log.info("greeting_in_profile_language lang=%s", outcome.conversation.lang)
        return again or messages

    def _push(self, entry: Entry) -> str:
        """A LINE push to a user (`to`, `messages`) with the entry id as its retry key."""
        to, messages = self._recipient(entry, "malformed push")
        self._line_push(to, messages, retry_key(entry.id), "user")
        return "line"

    @staticmethod
    def _recipient(entry: Entry, malformed: str) -> tuple[str, list[dict[str, Any]]]:
        try:
            to, messages = entry.get("to"), entry.get("messages")
        except ValueError:
            raise DeliveryError(malformed, permanent=True) from None
        if not isinstance(to, str) or not to or not isinstance(messages, list) or not messages:
            raise DeliveryError(malformed, permanent=True)
        return to, messages

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
        done = self.outbox.delivered([entry.done_key(name) for name, _ in channels]) if len(channels) > 1 else set()
        for name, send in channels:
            if entry.done_key(name) in done:
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


def _lane(entry: Entry) -> str:
    """Entries of one lane go out one after another: a user's answers and pushes (in the order the user
    should read them), and an office's staff notices (in order, and one at a time, so that a crash
    can repeat at most one Slack notice, which has no retry key)."""
    to = entry.raw.get("to")
    return f"to:{to}" if to else f"office:{entry.raw.get('office', '')}"


def _channel(kind: str, target: str, shared: bool) -> str:
    return f"{kind}:{hashlib.sha256(target.encode()).hexdigest()[:12]}" if shared else kind


def start_thread(worker: Worker) -> tuple[threading.Thread, threading.Event]:
    """Run `worker` in a daemon thread (the simulator's `hwbot serve`); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="hwbot-worker", daemon=True)
    thread.start()
    return thread, stop

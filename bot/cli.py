"""The `hwbot` command line (contracts: docs/architecture.md)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import click

from bot import calendar
from bot.clock import Clock, parse_instant
from bot.errors import HwbotError
from bot.profiles import check_profiles, load_offices
from bot.settings import Settings, load_settings


def _instant(value: str | None, option: str = "--now") -> datetime | None:
    """Parse an ISO instant given on the command line; a bad one is a one-line error."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise click.ClickException(
            f"{option}: {value!r} is not an ISO date-time such as 2026-11-30T09:00+09:00"
        ) from None


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None


def _redis_settings(redis_url: str | None) -> Settings:
    """The settings, with `--redis-url` (when given) in place of REDIS_URL."""
    if redis_url is None:
        return _settings()
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise click.ClickException("--redis-url: must start with redis://, rediss:// or unix://")
    return _settings(redis_url=redis_url)
def _require_current_layout(client: Any) -> None:
    """Refuse to start on data of an older key layout (the error names `hwbot store migrate`)."""
    from bot.store.migrate import require_current_layout

    try:
        require_current_layout(client)
    except HwbotError:
        _close([client])
        raise


def _clock(settings: Settings, now: datetime | None) -> Clock:
    """`--now` wins over HWBOT_NOW; both fix the instant for one-shot commands."""
    instant = now or settings.now
    return Clock.at(instant) if instant else Clock()


@click.group()
def main() -> None:
    """Book Hello Work online job consultations over LINE."""


@main.group()
def profiles() -> None:
    """Office profiles."""


@profiles.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Fail on warnings too (for production).")
def profiles_check(directory: Path | None, strict: bool) -> None:
    """Validate office profiles; errors name the file and the field."""
    directory = directory or _settings().profiles_dir
    report = check_profiles(directory)
    for line in report.errors:
        click.echo(f"error: {line}", err=True)
    for line in report.warnings:
        click.echo(f"{'error' if strict else 'warning'}: {line}", err=True)
    summary = (
        f"{len(report.offices)} office profile(s) in {directory}: "
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    if not report.ok(strict):
        raise click.ClickException(summary)
    click.echo(f"ok: {summary} ({', '.join(report.offices)})")


@main.command()
@click.argument("office_id", metavar="ID")
@click.option("--now", metavar="ISO", help="Run as if it were this instant (default: HWBOT_NOW or now).")
@click.option("--days", type=click.IntRange(min=1), help="Only the next N calendar days, today included.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (the contract in docs/architecture.md).")
def slots(office_id: str, now: str | None, days: int | None, as_json: bool) -> None:
    """Print the bookable slots of office ID, earliest first."""
    from bot.store import SlotStore, connect

    settings = _settings()
    instant_arg = _instant(now)
    try:
        offices = load_offices(settings.profiles_dir)
        profile = offices[office_id]
        instant = _clock(settings, instant_arg).now()
        grid = [
            calendar.slot_key(start)
            for day in calendar.candidate_days(profile, instant, days)
            for start, _ in calendar.day_grid(profile, day)
        ]
        booked = SlotStore(connect(settings)).booked_counts(profile.id, grid)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    found = calendar.bookable_slots(profile, instant, booked, days=days)
    if as_json:
        click.echo(json.dumps([slot.to_json() for slot in found], ensure_ascii=False, indent=2))
        return
    last = calendar.window_end(profile, instant)
    click.echo(f"{profile.name}: {len(found)} bookable slot(s) at {instant:%Y-%m-%d %H:%M} JST (window to {last})")
    for day, day_slots in groupby(found, key=lambda slot: slot.start.date()):
        cells = []
        for slot in day_slots:
            extra = f" (残り{slot.remaining})" if slot.capacity > 1 else ""
            cells.append(f"{slot.start:%H:%M}〜{slot.end:%H:%M}{extra}")
        click.echo(f"  {calendar.format_day(day)}  " + "  ".join(cells))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--now", metavar="ISO", help="Run as if it were this instant (time then runs on).")
def serve(host: str, port: int, now: str | None) -> None:
    """The web app on the development server until SIGTERM or Ctrl-C (production: gunicorn, see the Procfile)."""
    from werkzeug.serving import make_server

    from bot.staff.worker import start_thread
    from bot.web import create_app

    overrides = {"now": _instant(now)} if now else {}
    with _stop_signals() as stopping:  # a stop during start-up is honoured once it is done
        try:
            settings = load_settings(**overrides)
            app = create_app(settings)
        except HwbotError as exc:
            raise click.ClickException(str(exc)) from None
        clients = [app.extensions["hwbot"].client]
        try:
            requests = _InFlight(app)
            try:
                server = make_server(host, port, requests, threaded=True)
            except OSError as exc:
                raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            mode = "simulator (no LINE credentials)" if settings.simulator_mode else "LINE channel"
            redis_where = "REDIS_URL" if settings.redis_url else f"embedded Redis under {settings.var_dir}/"
            click.echo(f"hwbot: {mode}, {redis_where}")
            loops = []  # (thread, stop event) of the outbox worker in simulator mode
            if settings.simulator_mode:
                runner = _serve_worker(settings, app, host, port)
                clients.append(runner.service.client)
                loops.append(start_thread(runner))
                click.echo("hwbot: outbox worker running in this process (simulator mode)")
            click.echo(f"hwbot: open http://{host}:{port}/ in a browser")
            if settings.simulator_mode:
                from bot.staff.identity import SIMULATOR_ACCOUNT, SIMULATOR_PASSWORD

                click.echo(f"hwbot: staff console http://{host}:{port}/staff (account: {SIMULATOR_ACCOUNT}, "
                           f"password: {SIMULATOR_PASSWORD}; simulator mode only)")
            serving = threading.Thread(target=server.serve_forever, name="hwbot-http", daemon=True)
            serving.start()
            _wait(stopping, serving.is_alive)
            click.echo(f"hwbot: {stopping[0] if stopping else 'server ended'}: stopping")
            for _, stop in loops:
                stop.set()  # it ends its cycle while the requests under way finish
            server.shutdown()
            server.server_close()
            if not requests.wait_idle(DRAIN_S):
                click.echo("hwbot: requests still under way were cut off (LINE redelivers webhooks)", err=True)
            for thread, _ in loops:
                thread.join(DRAIN_S)
        finally:
            _close(clients)
    click.echo("hwbot: stopped")


# How long a stop waits for requests under way and for the outbox worker's cycle (all within 5 s).
DRAIN_S = 2.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def _stop_signals() -> Iterator[list[str]]:
    """Record SIGTERM and SIGINT (how Procfile runners, systemd, containers and Ctrl-C stop us).

    The handler only appends the signal's name to the yielded list (it takes no lock, so it cannot
    deadlock whatever the main thread is doing); the previous handlers come back at the end.
    """
    received: list[str] = []
    previous = {sig: signal.signal(sig, lambda number, _: received.append(signal.Signals(number).name))
                for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(stopping: list[str], running: Callable[[], bool]) -> None:
    """Keep the main thread until a stop signal arrives (or the work in `running` ends by itself)."""
    while not stopping and running():
        time.sleep(0.1)  # the handler runs at once (it interrupts the sleep); the loop sees it next


def _close(clients: list) -> None:
    """Close Redis clients; an embedded server is let go of (the last process out stops it)."""
    for client in clients:
        try:
            client.close()
        except Exception as exc:  # closing the others matters more than this one's trouble
            click.echo(f"hwbot: closing Redis failed: {exc.__class__.__name__}", err=True)


class _InFlight:
    """WSGI middleware that counts the requests being answered, so that a stop can let them finish."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app
        self.count = 0
        self.idle = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wsgi import ClosingIterator

        with self.idle:
            self.count += 1
        try:
            return ClosingIterator(self.app(environ, start_response), self._done)
        except BaseException:
            self._done()
            raise

    def _done(self) -> None:
        with self.idle:
            self.count -= 1
            self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.count == 0, timeout)


def _worker(settings: Settings, consumer: str | None, clock: Clock | None = None, service=None, line_host: str | None = None):
    """A Worker on its own Redis client (its blocking read outlasts the web's short socket timeout)."""
    from bot.channels.line.api import LineMessaging
    from bot.service import BotService
    from bot.staff.aftercare import scheduled_tasks
    from bot.staff.worker import Worker
    from bot.store import connect

    client = connect(settings, socket_timeout=5.0)
    if service is None:  # `hwbot serve` checked its own
        _require_current_layout(client)
    service = BotService(
        settings,
        client=client,
        offices=service.offices if service else None,
        clock=clock or (service.clock if service else None),
    )
    line = None
    if settings.simulator_mode:
        from bot.simulator import SIMULATOR_TOKEN  # in simulator mode the app's stand-in LINE API expects it

        line = LineMessaging(line_host or settings.line_api_host, SIMULATOR_TOKEN)
    # Reminders, terms re-consent and retention run in every worker cycle (each throttles itself).
    return Worker(service, settings, tasks=scheduled_tasks(service), consumer=consumer, line=line)


def _serve_worker(settings: Settings, app, host: str, port: int):
    """Simulator mode: the outbox worker of the app's process, pushing to its own stand-in LINE API."""
    from bot.settings import DEFAULT_LINE_HOST

    line_host = settings.line_api_host
    if line_host == DEFAULT_LINE_HOST:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        line_host = f"http://{shown}:{port}/sim/line"
    return _worker(settings, None, service=app.extensions["hwbot"], line_host=line_host)


@main.command()
@click.option("--now", metavar="ISO", help="Run as if it were this instant (time then runs on).")
@click.option("--once", is_flag=True, help="Deliver what is due now, print the counts and exit.")
@click.option("--consumer", metavar="NAME", help="Consumer name in the outbox group (default: the host name).")
def worker(now: str | None, once: bool, consumer: str | None) -> None:
    """Deliver the outbox (staff notices, pushes) until SIGTERM or Ctrl-C."""
    from bot.logs import configure_logging
    from bot.staff.worker import start_thread

    settings = _settings()
    instant = _instant(now) or settings.now
    configure_logging()
    with _stop_signals() as stopping:  # a stop during start-up is honoured once it is done
        try:
            runner = _worker(settings, consumer, Clock(instant) if instant else Clock())
        except HwbotError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            if once:
                try:
                    stats = runner.run_once(runner.service.clock.now())
                except HwbotError as exc:
                    raise click.ClickException(str(exc)) from None
                click.echo(json.dumps(stats, sort_keys=True))
                return
            # The loop runs in a thread; the main thread only waits for a stop signal, then lets the
            # loop end its cycle (what is not sent by then stays pending for this consumer).
            loop, stop = start_thread(runner)
            _wait(stopping, loop.is_alive)
            stop.set()
            loop.join(DRAIN_S)
        finally:
            _close([runner.service.client])


@main.group()
def store() -> None:
    """The stored data (README, "Upgrading stored data")."""


@store.command("migrate")
@click.option("--dry-run", is_flag=True, help="Only count what would move.")
def store_migrate(dry_run: bool) -> None:
    """Move keys of an older layout (and conversations after a change of HWBOT_OUTBOX_SHARDS) to the
    current one; running it again does nothing. Stop every hwbot process first."""
    from bot.store import connect
    from bot.store.migrate import migrate

    settings = _settings()
    try:
        client = connect(settings)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        report = migrate(client, shards=settings.outbox_shards, dry=dry_run)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        _close([client])
    verb = "would move" if dry_run else "moved"
    for name in dict.fromkeys([*report.moved, *report.dropped, *report.left]):
        parts = [f"{report.moved[name]} {verb}" if name in report.moved else "",
                 f"{report.dropped[name]} dropped" if name in report.dropped else "",
                 f"{len(report.left[name])} left (the new name is taken)" if name in report.left else ""]
        click.echo(f"{name}: {', '.join(part for part in parts if part)}")
        for key in report.left.get(name, []):
            click.echo(f"  left: {key}")
    if not (report.moved or report.dropped or report.left):
        click.echo("nothing to migrate")
    if not report.done:
        raise click.ClickException("some keys were left where they are: look at them, then run it again")


@store.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def store_status(as_json: bool) -> None:
    """What to watch on the Redis of REDIS_URL (README, "Running on Redis Cluster"): each master's
    cluster state and replicas (lag), the outbox shards' backlog and dead letters, the booking steps
    waiting for their after-effects. Exit 1 when a master is not ok or has fewer replicas online than
    HWBOT_REDIS_MIN_REPLICAS (its bookings would fail)."""
    from bot.store import connect
    from bot.store.bookings import BookingStore
    from bot.store.nodes import replication
    from bot.store.outbox import Outbox

    settings = _settings()
    try:
        offices = load_offices(settings.profiles_dir)
        client = connect(settings)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        masters = replication(client)
        shards = Outbox(client, shards=settings.outbox_shards).backlog()
        bookings = BookingStore(client)
        intents = {office: len(bookings.pending(office, float("inf"))) for office in offices}
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        _close([client])
    problems = [f"{master['address']}: cluster_state {master['cluster_state']}" for master in masters
                if master.get("cluster_state", "ok") != "ok"]
    problems += [f"{master['address']}: {online} replica(s) online, HWBOT_REDIS_MIN_REPLICAS is {settings.redis_min_replicas}"
                 for master in masters
                 for online in [sum(replica["state"] == "online" for replica in master["replicas"])]
                 if online < settings.redis_min_replicas]
    if as_json:
        click.echo(json.dumps({"masters": masters, "outbox": shards, "intents": intents, "problems": problems},
                              ensure_ascii=False))
    else:
        kind = "cluster" if any("cluster_state" in master for master in masters) else "single server"
        click.echo(f"redis: {kind}, {len(masters)} master(s)")
        for master in masters:
            replicas = ", ".join(f"{r['address']} {r['state']} lag {r['lag_s']} s, {r['behind_bytes']} bytes behind"
                                 for r in master["replicas"]) or "none"
            state = f" cluster_state {master['cluster_state']}" if "cluster_state" in master else ""
            click.echo(f"  {master['address']}{state}; replicas: {replicas}")
        totals = {name: sum(row[name] or 0 for row in shards) for name in ("unread", "pending", "retries", "dead")}
        click.echo(f"outbox, {len(shards)} shard(s): " + ", ".join(f"{value} {name}" for name, value in totals.items()))
        for row in shards:
            if row["unread"] or row["pending"] or row["retries"] or row["dead"]:
                click.echo(f"  shard {row['shard']}: {row['unread']} unread, {row['pending']} pending, "
                           f"{row['retries']} retries, {row['dead']} dead ({row['length']} in the stream)")
        waiting = {office: count for office, count in intents.items() if count}
        click.echo("booking steps waiting for their after-effects: "
                   + (", ".join(f"{office} {count}" for office, count in waiting.items()) or "none"))
        for problem in problems:
            click.echo(f"problem: {problem}")
    if problems:
        raise SystemExit(1)


@main.group()
def i18n() -> None:
    """The message catalogues (bot/locale): the template and the languages' .po files."""


@i18n.command("extract")
@click.option("--check", is_flag=True, help="Write nothing; fail when the template is not up to date.")
def i18n_extract(check: bool) -> None:
    """Write bot/locale/hwbot.pot from bot/dialog/texts.py (every key, its Japanese text, label limits)."""
    from bot import i18n as catalogues
    from bot.dialog import texts

    pot = catalogues.template(texts.keys(), texts.notes())
    path = catalogues.template_path()
    stored = catalogues.read_catalogue(path) if path.is_file() else None
    have = [(m.context, m.id, tuple(m.auto_comments)) for m in stored if m.id] if stored is not None else []
    want = [(m.context, m.id, tuple(m.auto_comments)) for m in pot if m.id]
    if have == want:
        click.echo(f"{path}: up to date ({len(want)} entries)")
        return
    if check:
        changed = sorted({entry[0] for entry in set(have) ^ set(want)})
        raise click.ClickException(f"{path} is not up to date ({len(changed)} keys differ, e.g. {changed[0]}): "
                                   "run `hwbot i18n extract`")
    catalogues.write_catalogue(pot, path)
    click.echo(f"{path}: {len(want)} entries written")


@i18n.command("update")
def i18n_update() -> None:
    """Merge the template into each language's .po (new keys empty, changed ones fuzzy), as msgmerge does."""
    from bot import i18n as catalogues

    path = catalogues.template_path()
    if not path.is_file():
        raise click.ClickException(f"{path}: no template: run `hwbot i18n extract` first")
    pot = catalogues.read_catalogue(path)
    for lang in catalogues.LANGUAGES:
        if lang == catalogues.SOURCE:
            continue
        counts = catalogues.update_catalogue(lang, pot)
        click.echo(f"{catalogues.catalogue_path(lang)}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))


@main.group()
def richmenu() -> None:
    """The LINE rich menu (予約する / 予約の確認・キャンセル / ヘルプ)."""


@richmenu.command("install")
def richmenu_install() -> None:
    """Create the rich menu on the channel, upload its image and make it the default."""
    from bot.channels.line.richmenu import install

    settings = _settings()
    if not settings.line_channel_access_token:
        raise click.ClickException("LINE_CHANNEL_ACCESS_TOKEN is not set: cannot install the rich menu")
    try:
        menu_id = install(settings.line_api_host, settings.line_channel_access_token)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rich menu installed and set as default: {menu_id}")


@main.group()
def staff() -> None:
    """Staff accounts of the console and the API (README, "Staff accounts")."""


@contextmanager
def _identity() -> Iterator[Any]:
    """The staff accounts on the configured Redis (REDIS_URL, or the embedded one under HWBOT_VAR_DIR)."""
    from bot.service import BotService
    from bot.staff.identity import Identity

    settings = _settings()
    try:
        service = BotService(settings)
        _require_current_layout(service.client)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield Identity(service)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        _close([service.client])


def _audit(identity: Any, action: str, account_id: str, detail: str = "ok") -> None:
    """An account change in the audit trail: made by the command line (`cli`) on the account `account_id`."""
    identity.service.audit.record("cli", action, ref=account_id, client="cli", detail=detail)


def _link(identity: Any, token: str) -> str:
    base = identity.settings.public_url or "http://127.0.0.1:8000"
    return f"{base}/staff/password?token={token}"


VALID_HOURS = click.option("--valid-hours", default=24, show_default=True, type=click.IntRange(1, 72),
                           help="How long the set-password link works (it works once).")


@staff.command("add")
@click.argument("name")
@click.option("--office", "offices", multiple=True, metavar="ID", help="An office the account serves (repeatable).")
@click.option("--admin", is_flag=True, help="An administrator: every office, and a second factor (TOTP) at login.")
@click.option("--id", "account_id", metavar="ID", help="The account id (default: a random one such as s-k7m2qa).")
@VALID_HOURS
def staff_add(name: str, offices: tuple[str, ...], admin: bool, account_id: str | None, valid_hours: int) -> None:
    """Create an account; print its id and a one-time link to set its password."""
    with _identity() as identity:
        account = identity.create(name, offices, admin=admin, account_id=account_id)
        token = identity.set_link(account.id, valid_hours)
        _audit(identity, "account_add", account.id, account.role)
        click.echo(f"created {account.role} {account.id} ({account.name}): "
                   f"{'every office' if account.admin else ', '.join(account.offices)}")
        click.echo(f"id: {account.id}")
        click.echo(f"set-password link (valid {valid_hours} h, once): {_link(identity, token)}")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def staff_list(as_json: bool) -> None:
    """The accounts: id, name, role, offices, state, second factor, API tokens."""
    from bot.staff.identity import describe

    with _identity() as identity:
        accounts = identity.accounts()
        rows = [{**describe(a), "tokens": sorted(identity.tokens(a.id))} for a in accounts]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no staff accounts (hwbot staff add NAME --office ID, or --admin for the first admin)")
    for row in rows:
        state = f"disabled {row['disabled_at'][:16]}" if row["disabled_at"] else "active"
        offices = "every office" if row["role"] == "admin" else ",".join(row["offices"])
        tokens = ",".join(row["tokens"]) or "-"
        click.echo(f"{row['id']}\t{row['name']}\t{row['role']}\t{offices}\t{state}\t"
                   f"totp={'yes' if row['totp'] else 'no'}\ttokens={tokens}")


@staff.command("disable")
@click.argument("account_id", metavar="ID")
def staff_disable(account_id: str) -> None:
    """Disable an account: its sessions end now; its API tokens and feed URLs stop working."""
    with _identity() as identity:
        account = identity.disable(account_id)
        _audit(identity, "account_disable", account.id)
    click.echo(f"disabled {account.id} ({account.name}) at {account.disabled_at}")


@staff.command("reset")
@click.argument("account_id", metavar="ID")
@VALID_HOURS
def staff_reset(account_id: str, valid_hours: int) -> None:
    """Lost password or phone: clear the password and TOTP, end every session, print a new link."""
    with _identity() as identity:
        token = identity.reset(account_id, valid_hours)
        _audit(identity, "account_reset", account_id)
        click.echo(f"reset {account_id}: password and second factor cleared, sessions ended, feed URLs changed")
        click.echo(f"set-password link (valid {valid_hours} h, once): {_link(identity, token)}")


@staff.command("token")
@click.argument("account_id", metavar="ID")
def staff_token(account_id: str) -> None:
    """Issue an API token for the account; printed once, alone on the last line (kept only hashed)."""
    with _identity() as identity:
        token_id, token = identity.issue_token(account_id)
        _audit(identity, "token_issue", account_id, token_id)
    click.echo(f"API token {token_id} for {account_id} (shown once; revoke: hwbot staff revoke-token {account_id} {token_id}):")
    click.echo(token)


@staff.command("tokens")
@click.argument("account_id", metavar="ID")
def staff_tokens(account_id: str) -> None:
    """The account's API tokens: id and when it was issued."""
    with _identity() as identity:
        tokens = identity.tokens(account_id)
    for token_id, created in tokens.items():
        click.echo(f"{token_id}\t{created}")
    if not tokens:
        click.echo(f"{account_id} has no API token")


@staff.command("revoke-token")
@click.argument("account_id", metavar="ID")
@click.argument("token_id", metavar="TOKEN_ID")
def staff_revoke_token(account_id: str, token_id: str) -> None:
    """Revoke one of the account's API tokens (it stops working at once)."""
    with _identity() as identity:
        identity.revoke_token(account_id, token_id)
        _audit(identity, "token_revoke", account_id, token_id)
    click.echo(f"revoked token {token_id} of {account_id}")


def _scratch_service_factory(settings: Settings, redis_url: str | None = None):
    """Services on a private embedded Redis, emptied for each script (never the REDIS_URL data); with
    `redis_url` (`--redis-url`) on that Redis instead, a single server or a cluster, which must be empty
    (the scripts empty it between them, and at the end)."""
    import tempfile

    from bot.service import BotService
    from bot.store import connect, embedded_redis
    from bot.store.nodes import flush, key_count

    offices = load_offices(settings.profiles_dir)
    if redis_url:
        client = connect(settings)
        keys = key_count(client)
        if keys:
            client.close()
            raise click.ClickException(f"--redis-url: the database holds {keys} key(s); scripted dialogs run only "
                                       "on an empty one (they empty it between scripts)")
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="hwbot-dialogs-")
        client = embedded_redis(Path(tmp.name), scratch=True)

    def make(clock):
        flush(client)
        return BotService(settings, client=client, offices=offices, clock=clock)

    def close() -> None:
        if tmp is None:
            flush(client)
        client.close()  # the embedded one stops: nobody else knows its directory
        if tmp is not None:
            tmp.cleanup()

    return make, close


@main.group()
def dialogs() -> None:
    """Scripted dialogs (dialogs/*.yaml)."""


@dialogs.command("run")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--now", metavar="ISO", help="Run every script as if it were this instant.")
@click.option("--quiet", "-q", is_flag=True, help="Only PASS/FAIL lines and failures.")
@click.option("--redis-url", metavar="URL",
              help="Run on this empty Redis (a single server or any node of a Redis Cluster) instead of a "
                   "private embedded one; it is emptied between scripts.")
def dialogs_run(paths: tuple[Path, ...], now: str | None, quiet: bool, redis_url: str | None) -> None:
    """Run scripted dialogs, print each transcript and PASS/FAIL; exit 1 on a failure."""
    from bot.testing.scripts import run_script, script_paths

    settings = _redis_settings(redis_url)
    instant = _instant(now)
    files = script_paths(list(paths) or [Path("dialogs")])
    if not files:
        raise click.ClickException("no scripted dialog found (dialogs/*.yaml)")
    try:
        make, close = _scratch_service_factory(settings, redis_url)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    failed = 0
    try:
        for path in files:
            result = run_script(path, make, now=instant)
            if not quiet:
                click.echo(f"=== {path}: {result.title}")
                click.echo(result.transcript)
            click.echo(f"{'PASS' if result.passed else 'FAIL'} {path} — {result.title}")
            for failure in result.failures:
                click.echo(f"  {failure}")
            failed += not result.passed
    finally:
        close()
    click.echo(f"{len(files) - failed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)


@main.command()
@click.option("--office", "office_id", help="Only this office (skips the office choice).")
@click.option("--now", metavar="ISO", help="Run as if it were this instant (time then runs on).")
@click.option("--user", default="U-console", show_default=True, help="The user id of this chat.")
def chat(office_id: str | None, now: str | None, user: str) -> None:
    """The whole booking conversation in the terminal (embedded Redis unless REDIS_URL is set)."""
    from bot.channels.console import chat_loop
    from bot.channels.session import ChatSession
    from bot.profiles import Offices
    from bot.service import BotService

    settings = _settings()
    instant = _instant(now) or settings.now
    try:
        offices = load_offices(settings.profiles_dir)
        if office_id:
            profile = offices[office_id]
            offices = Offices({profile.id: profile}, {profile.id: offices.terms_text(profile.id)})
        service = BotService(settings, offices=offices, clock=Clock(instant) if instant else Clock())
        _require_current_layout(service.client)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None

    def read() -> str | None:
        try:
            return input("you> ")
        except EOFError:
            return None

    chat_loop(ChatSession(service, user=user), read, click.echo)


@main.command()
@click.option("--users", default=1000, show_default=True, type=click.IntRange(min=1), help="Users who each book.")
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(min=1), help="Open-loop events/s.")
@click.option("--seconds", type=click.FloatRange(min=0.5), help="Length of the open-loop run (default 12).")
@click.option("--line-latency-ms", default=150.0, show_default=True, type=click.FloatRange(min=0),
              help="Production-shaped run: the stand-in LINE answers each call after this long.")
@click.option("--in-flight", default=64, show_default=True, type=click.IntRange(min=1),
              help="Production-shaped run: users chatting at once.")
@click.option("--latency-seconds", type=click.FloatRange(min=0.5),
              help="Length of each production-shaped run (default 12).")
@click.option("--redis-url", metavar="URL",
              help="An empty Redis to run on (a single server or any node of a Redis Cluster; default: "
                   "REDIS_URL, else a fresh embedded Redis). What the bench writes is deleted at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def bench(users: int, rate: float, seconds: float | None, line_latency_ms: float, in_flight: int,
          latency_seconds: float | None, redis_url: str | None, as_json: bool) -> None:
    """Benchmark the app under gunicorn against a minimal baseline, and as the Procfile runs it with a
    slow LINE (all on this machine)."""
    from bot.bench import report_text, run_bench

    settings = _redis_settings(redis_url)
    progress = (lambda line: None) if as_json else (lambda line: click.echo(f"... {line}", err=True))
    try:
        report = run_bench(users, rate, seconds, settings=settings, line_latency_ms=line_latency_ms,
                           in_flight=in_flight, latency_seconds=latency_seconds, progress=progress)
    except HwbotError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_json(), ensure_ascii=False) if as_json else report_text(report))


if __name__ == "__main__":  # pragma: no cover
    main()

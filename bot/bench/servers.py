"""The bench's servers: the app and the baseline under gunicorn, the Procfile's processes, and the Redis they share."""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from bot.errors import BenchError
from bot.settings import Settings

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A gunicorn we started: its URL and the CPU its workers used (Linux /proc)."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU of the workers so far: a figure other load on the machine hardly moves."""
        import os

        total = 0.0
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            for child in children:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")  # not Linux, or a worker restarted: the figure is left out
        return total


@contextmanager
def gunicorns(apps: dict[str, str], env: dict[str, str], workdir: Path) -> Iterator[dict[str, Server]]:
    """`gunicorn --workers 2 APP` (with the Procfile's config) for each name -> APP, on loopback ports,
    started (and stopped) together."""
    processes: dict[str, tuple[subprocess.Popen, str, Path]] = {}
    try:
        for name, app in apps.items():
            port, logfile = _free_port(), workdir / f"{name}.log"
            command = [
                sys.executable, "-m", "gunicorn", "-c", "python:bot.gunicorn_conf", "--workers", "2", "--timeout", "30",
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app,
            ]
            with open(logfile, "wb") as out:
                process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
            processes[name] = (process, f"http://127.0.0.1:{port}", logfile)
        for name, (process, url, logfile) in processes.items():
            _wait_healthy(url, process, logfile, name)
        yield {name: Server(url, process.pid) for name, (process, url, _) in processes.items()}
    finally:
        for process, _, _ in processes.values():
            process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown (TERM waits for workers' timers)
        for process, _, _ in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def gunicorn(app: str, env: dict[str, str], workdir: Path, name: str) -> Iterator[Server]:
    """One `gunicorn --workers 2 APP`; yields it, stops it on exit."""
    with gunicorns({name: app}, env, workdir) as servers:
        yield servers[name]


def _wait_healthy(url: str, process: subprocess.Popen, logfile: Path, name: str) -> None:
    """Poll /healthz until it answers 200 (bounded); a server that exits or never answers is an error."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise BenchError(f"{name} server exited at start-up (status {process.returncode}):\n{tail}")
        conn = http.client.HTTPConnection(host, int(port), timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)  # a poll interval, bounded by the deadline above
    raise BenchError(f"{name} server did not answer /healthz within {START_TIMEOUT_S:.0f} s")


@contextmanager
def bench_redis(settings: Settings, workdir: Path) -> Iterator[tuple[Any, str]]:
    """(client, url for the servers): REDIS_URL (or `hwbot bench --redis-url`) when set and empty,
    a single server or any node of a Redis Cluster; else a fresh embedded Redis."""
    from bot.errors import StoreError
    from bot.store import connect, embedded_redis, stop_embedded
    from bot.store.nodes import key_count

    if settings.redis_url:
        try:
            client = connect(settings)
            keys = key_count(client)  # every master of a cluster
        except StoreError as exc:
            raise BenchError(f"REDIS_URL: cannot reach the server ({exc})") from None
        if keys:
            raise BenchError(
                f"REDIS_URL: the database holds {keys} key(s); the benchmark only runs on an empty "
                "database (it never flushes data); unset REDIS_URL for an embedded Redis"
            )
        try:
            yield client, settings.redis_url
        finally:
            clear_bench_keys(client)
        return
    client = embedded_redis(workdir / "redis", scratch=True)
    try:
        yield client, f"unix://{client.socket_file}"
    finally:
        stop_embedded(client)


def redis_env(settings: Settings) -> dict[str, str]:
    """The Redis variables the bench's servers need beside REDIS_URL: the mode and the TLS files."""
    env = {"HWBOT_REDIS_MODE": settings.redis_mode} if settings.redis_url else {}
    for variable, path in (("HWBOT_REDIS_CA_FILE", settings.redis_ca_file),
                           ("HWBOT_REDIS_CERT_FILE", settings.redis_cert_file),
                           ("HWBOT_REDIS_KEY_FILE", settings.redis_key_file)):
        if path is not None:
            env[variable] = str(path)
    return env


def clear_bench_keys(client: Any) -> None:
    """Delete what the benchmark wrote (`hwbot:*`, `bench:*`; the database was empty when it began).

    On a cluster the keys are found on every master and each batch's UNLINK is split by slot."""
    from bot.store.nodes import scan

    for pattern in ("hwbot:*", "bench:*"):
        for batch in _batches(scan(client, pattern), 500):
            client.unlink(*batch)


def procfile_commands(procfile: Path) -> dict[str, list[str]]:
    """name -> argv of each `name: command` line of a Procfile (comments and blank lines skipped)."""
    try:
        text = procfile.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"{procfile}: cannot read it ({exc.strerror})") from None
    commands: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise BenchError(f"{procfile}:{number}: {exc}") from None
        if not sep or not name.strip() or not argv:
            raise BenchError(f"{procfile}:{number}: not a `name: command` line")
        commands[name.strip()] = argv
    return commands


@dataclass
class ProcfileRun:
    """The Procfile's web and worker processes as the bench started them, and how they ended."""

    url: str
    commands: dict[str, list[str]]  # web, worker: the argv run
    processes: dict[str, subprocess.Popen] = field(repr=False)
    logs: dict[str, Path] = field(repr=False)
    exits: dict[str, int | None] = field(default_factory=dict)  # after the stop
    killed: list[str] = field(default_factory=list)  # those that ignored their stop signal

    def check_running(self) -> None:
        """Raise BenchError (with the log's tail) when one of them has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.logs[name].read_text(errors="replace")[-2000:]
                raise BenchError(f"Procfile `{name}` exited under load (status {process.returncode}):\n{tail}")

    def log_tails(self) -> str:
        return "\n".join(f"--- {name}\n{path.read_text(errors='replace')[-1500:]}" for name, path in self.logs.items())

    def summary(self) -> dict[str, Any]:
        return {
            name: {"command": shlex.join(argv), "exit": self.exits.get(name), "killed": name in self.killed}
            for name, argv in self.commands.items()
        }


@contextmanager
def procfile_processes(procfile: Path, env: dict[str, str], workdir: Path, name: str,
                       roles: tuple[str, ...] = ("web", "worker")) -> Iterator[ProcfileRun]:
    """The Procfile's `web:` and `worker:` commands (or only those in `roles`), run as they are written
    (found on a PATH of the bench's own environment's bin directory and the system's default), the web
    one bound to a loopback port (`--bind`, `$PORT`) with `--log-level warning`. At the end gunicorn gets
    SIGINT (its quick shutdown, as the bench's other gunicorns) and the worker SIGTERM (as a Procfile
    runner stops it); one still running after STOP_TIMEOUT_S is killed (`ProcfileRun.killed`)."""
    commands = procfile_commands(procfile)
    for needed in roles:
        if needed not in commands:
            raise BenchError(f"{procfile}: no `{needed}:` line")
    port = _free_port()
    path = os.pathsep.join([str(Path(sys.executable).parent), os.defpath])  # this environment's gunicorn, hwbot
    env = {**env, "PORT": str(port), "PATH": path}
    web = [string.Template(arg).safe_substitute(env) for arg in commands["web"]]
    if Path(web[0]).name != "gunicorn":
        raise BenchError(f"{procfile}: the `web:` command is not gunicorn; the bench binds gunicorn only")
    web += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]  # the last --bind wins
    worker = [string.Template(arg).safe_substitute(env) for arg in commands["worker"]]
    wanted = {"web": web, "worker": worker}
    run = ProcfileRun(f"http://127.0.0.1:{port}" if "web" in roles else "", {r: wanted[r] for r in roles}, {}, {})
    try:
        for role, argv in run.commands.items():
            run.logs[role] = workdir / f"{name}-{role}.log"
            with open(run.logs[role], "wb") as out:
                try:
                    run.processes[role] = subprocess.Popen(
                        argv, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
                except OSError as exc:
                    raise BenchError(f"{procfile}: cannot run `{role}:` {shlex.join(argv)} ({exc.strerror})") from None
        if "web" in roles:
            _wait_healthy(run.url, run.processes["web"], run.logs["web"], f"Procfile web ({name})")
        run.check_running()
        yield run
    finally:
        stops = {"web": signal.SIGINT, "worker": signal.SIGTERM}
        for role, process in run.processes.items():
            if process.poll() is None:
                process.send_signal(stops[role])
        for role, process in run.processes.items():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                run.killed.append(role)
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
            run.exits[role] = process.returncode


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

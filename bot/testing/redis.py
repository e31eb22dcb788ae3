"""A Redis for tests: the server in REDIS_URL when set, otherwise one embedded server per session.

Each test gets the database flushed: point REDIS_URL at a scratch database (e.g. redis://127.0.0.1:6379/15).
`redis_servers` finds redis-server processes (Linux /proc), so tests can check that none is left.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import redis

from bot.settings import Settings
from bot.store import connect, embedded_redis
from bot.store.nodes import flush

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


class TestRedis:
    """Owns the Redis the suite talks to; `fresh()` returns a client on an emptied database."""

    __test__ = False  # not a pytest test class

    def __init__(self, settings: Settings):
        self.url = settings.redis_url
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.url:
            self.client = connect(settings)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="hwbot-redis-")
            self.client = embedded_redis(Path(self._tmp.name), scratch=True)

    def fresh(self) -> redis.Redis:
        flush(self.client)  # every master, should REDIS_URL name a cluster
        return self.client

    def close(self) -> None:
        """Stop the embedded server (before its directory goes) or close the REDIS_URL client."""
        self.client.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def _processes() -> dict[int, tuple[str, str, int]]:
    """pid -> (name, state, parent pid) of every process (Linux /proc; empty elsewhere)."""
    table = {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        table[int(entry)] = (stat[stat.index("(") + 1: stat.rindex(")")], state, int(parent))
    return table


def redis_servers(*, cwd: Path | None = None, descendants_of: int | None = None) -> dict[int, str]:
    """Running redis-server processes, pid -> command line (Linux; empty elsewhere).

    `cwd`: only servers working in that directory (a server's `dir`, e.g. an embedded server's var
    dir). `descendants_of`: only children, grandchildren… of that process.
    """
    table = _processes()
    if descendants_of is not None:
        family, grew = {descendants_of}, True
        while grew:
            more = {pid for pid, (_, _, parent) in table.items() if parent in family} - family
            family |= more
            grew = bool(more)
        table = {pid: row for pid, row in table.items() if pid in family and pid != descendants_of}
    found = {}
    wanted = str(Path(cwd).resolve()) if cwd is not None else None
    for pid, (name, state, _) in table.items():
        if name != "redis-server" or state in ("Z", "X"):
            continue
        try:
            if wanted is not None and os.readlink(f"/proc/{pid}/cwd") != wanted:
                continue
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return found


def reap_exited_servers() -> None:
    """Collect this process's exited redis-server children (adopted orphans), so none shows as defunct."""
    for pid, (name, state, parent) in _processes().items():
        if name == "redis-server" and state == "Z" and parent == os.getpid():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def adopt_orphans() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`).

    A daemonized redis-server leaves its parent; with this it stays our descendant, so that
    `redis_servers(descendants_of=os.getpid())` finds every server a test or a child process started.
    False where the system has no such call.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False

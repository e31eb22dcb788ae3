"""A real Redis Cluster for tests, started from the machine's `redis-server` and `redis-cli`.

`LocalCluster(root).start()` runs 3 masters and 3 replicas on free loopback ports, each with its own
directory under `root` (no persistence), with a small `cluster-node-timeout` so that a failover takes
a couple of seconds; `redis-cli --cluster create ... --cluster-replicas 1` joins them, and `start`
returns once every node says `cluster_state:ok` and every replica is in sync with its master.
`kill(node)` SIGKILLs one, `wait_failover(node)` waits until its replica has taken over its slots,
`revive(node)` starts it again (it rejoins as a replica of the new master); `stop()` kills them all
and waits for each process to end, so nothing outlives the test run. With `TlsFiles` every node
speaks TLS only (clients, replication and the cluster bus), for `rediss://`.

The binaries are the Debian package's (`redis-server`, which brings `redis-cli`; `.ci/run`
installs it); `missing()` says what is absent so that tests can skip with the reason.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.settings import real_clock_environment
from bot.store.nodes import cluster_info

START_TIMEOUT_S = 30.0  # processes up, the cluster created, every replica in sync
FAILOVER_TIMEOUT_S = 30.0  # node timeout + election on a loaded machine
POLL_S = 0.02  # how often a bounded wait looks again
ATTEMPTS = 3  # a free port probed and then taken by someone else: start again on new ports


def binaries() -> tuple[str | None, str | None]:
    """(redis-server, redis-cli) on PATH, or None each."""
    return shutil.which("redis-server"), shutil.which("redis-cli")


def missing() -> str | None:
    """Why a cluster cannot be started here (None when it can)."""
    server, cli = binaries()
    absent = [name for name, path in (("redis-server", server), ("redis-cli", cli)) if path is None]
    if absent:
        return f"{' and '.join(absent)} not installed (Debian: apt-get install redis-server)"
    return None


def launch(args: list[str], cwd: Path | None = None, server: str | None = None) -> subprocess.Popen:
    """Start the machine's `redis-server` (or `server`) with `args`, output discarded, on the real clock
    (`bot.settings.real_clock_environment`: a faked-date run of the suite must not reach it)."""
    server = server or binaries()[0]
    if server is None:
        raise RuntimeError(missing() or "redis-server not found")
    return subprocess.Popen([server, *args], cwd=cwd, env=real_clock_environment(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free at this moment."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass  # a node still starting or just killed: look again
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis cluster: {what} within {timeout:.0f} s")
        time.sleep(POLL_S)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, and the certificate and key every node (and a client, if asked) presents."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class Node:
    """One redis-server of the cluster."""

    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen | None = None
    id: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """3 masters + 3 replicas (by default) on loopback ports, under `root`; see the module doc."""

    root: Path
    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1000
    tls: TlsFiles | None = None
    nodes: list[Node] = field(default_factory=list)

    # -- start and stop --------------------------------------------------------------------------

    def start(self) -> "LocalCluster":
        reason = missing()
        if reason:
            raise RuntimeError(reason)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._start_once(attempt)
                return self
            except Exception:
                self.stop()
                if attempt == ATTEMPTS:
                    raise
        return self

    def _start_once(self, attempt: int) -> None:
        count = self.masters * (1 + self.replicas)
        ports = free_ports(2 * count)
        self.nodes = [
            Node(ports[i], ports[count + i], self.root / f"try{attempt}" / f"node-{ports[i]}") for i in range(count)
        ]
        for node in self.nodes:
            node.directory.mkdir(parents=True)
            (node.directory / "redis.conf").write_text(self._config(node), encoding="utf-8")
            self._launch(node)
        for node in self.nodes:
            wait_for(lambda node=node: self._up(node) and bool(self.admin(node).ping()), START_TIMEOUT_S,
                     f"{node.address} did not start ({self._log_tail(node)})")
        self._create()
        self.wait_ready()
        for node in self.nodes:
            node.id = self.admin(node).execute_command("CLUSTER MYID")

    def _config(self, node: Node) -> str:
        lines = [
            "bind 127.0.0.1",
            f"cluster-port {node.bus_port}",
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {self.node_timeout_ms}",
            "cluster-replica-validity-factor 0",  # a replica may always take over (its link was down too)
            "cluster-allow-replica-migration no",  # keep the shape the tests made
            f"dir {node.directory}",
            "logfile redis.log",
            "daemonize no",
            'save ""',
            "appendonly no",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",  # a replica syncs at once (Redis 7 waits 5 s by default)
        ]
        if self.tls is None:
            lines.append(f"port {node.port}")
        else:
            lines += [
                "port 0",
                f"tls-port {node.port}",
                f"tls-cert-file {self.tls.cert}",
                f"tls-key-file {self.tls.key}",
                f"tls-ca-cert-file {self.tls.ca}",
                "tls-cluster yes",
                "tls-replication yes",
                "tls-auth-clients optional",
            ]
        return "\n".join(lines) + "\n"

    def _launch(self, node: Node) -> None:
        node.process = launch([str(node.directory / "redis.conf")], cwd=node.directory)

    def _up(self, node: Node) -> bool:
        if not node.alive:
            raise RuntimeError(f"redis cluster: {node.address} exited ({self._log_tail(node)})")
        return True

    def _create(self) -> None:
        _, cli = binaries()
        assert cli is not None
        command = [cli, *self._cli_tls(), "--cluster", "create", *(node.address for node in self.nodes),
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(command, env=real_clock_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_TIMEOUT_S)
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"redis-cli --cluster create failed: {(done.stdout + done.stderr)[-600:]}")

    def _cli_tls(self) -> list[str]:
        if self.tls is None:
            return []
        return ["--tls", "--cacert", str(self.tls.ca), "--cert", str(self.tls.cert), "--key", str(self.tls.key)]

    def stop(self) -> None:
        """Kill every node and wait for each process to end (nothing is kept: no persistence)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGKILL)
        for node in self.nodes:
            if node.process is not None:
                node.process.wait(timeout=10)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading it ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """REDIS_URL naming the first node (any node would do)."""
        return self.url_of(self.nodes[0])

    def url_of(self, node: Node) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{node.address}/0"

    def admin(self, node: Node, timeout: float = 1.0) -> redis.Redis:
        """A client of one node only (no cluster routing, no retries): for looking and flushing."""
        options = {}
        if self.tls is not None:
            options = {"ssl": True, "ssl_ca_certs": str(self.tls.ca), "ssl_certfile": str(self.tls.cert),
                       "ssl_keyfile": str(self.tls.key)}
        return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=timeout, socket_connect_timeout=timeout,
                           retry=Retry(NoBackoff(), 0), decode_responses=True, **options)

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.alive]

    def role(self, node: Node) -> str:
        """`master` or `slave`, as the node itself says."""
        return self.admin(node).info("replication")["role"]

    def primaries(self) -> list[Node]:
        """The live nodes that are masters now."""
        return [node for node in self.live() if self.role(node) == "master"]

    def replicas_of(self, master: Node) -> list[Node]:
        """The live nodes replicating `master` (by its node id)."""
        found = []
        for node in self.live():
            info = self.admin(node).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master.port:
                found.append(node)
        return found

    def node_of_key(self, key: str) -> Node:
        """The live master holding `key`'s slot."""
        admin = self.admin(self.live()[0])
        slot = int(admin.execute_command("CLUSTER KEYSLOT", key))
        for start, end, master, *_ in admin.execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                return next(node for node in self.nodes if node.port == int(master[1]))
        raise RuntimeError(f"redis cluster: no master serves slot {slot}")

    def ready(self, nodes: Iterable[Node] | None = None) -> bool:
        """Every live node says `cluster_state:ok` and knows every slot; every replica is in sync."""
        for node in nodes if nodes is not None else self.live():
            admin = self.admin(node)
            info = cluster_info(admin)
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
            replication = admin.info("replication")
            if replication["role"] == "slave" and (
                replication.get("master_link_status") != "up" or int(replication.get("master_sync_in_progress", 0))
            ):
                return False
        return True

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        wait_for(self.ready, timeout, "not every node is ok with its replicas in sync")

    # -- breaking it -----------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL one node (what a crashed machine looks like to the others) and wait until it is gone."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def wait_failover(self, dead: Node, replica: Node, timeout: float = FAILOVER_TIMEOUT_S) -> None:
        """Wait until `replica` has taken over the slots of `dead` and every live node is ok again."""
        wait_for(lambda: self.role(replica) == "master" and self.ready(), timeout,
                 f"{replica.address} did not take over from {dead.address}")

    def revive(self, node: Node, timeout: float = START_TIMEOUT_S) -> None:
        """Start a killed node again: it rejoins (as a replica of whoever took its slots) and syncs."""
        self._launch(node)
        wait_for(lambda: self._up(node) and bool(self.admin(node).ping()), timeout, f"{node.address} did not restart")
        self.wait_ready(timeout)

    def restore(self, timeout: float = START_TIMEOUT_S) -> None:
        """Every node running again (a killed one revived as a replica) and the cluster ready."""
        for node in self.nodes:
            if not node.alive:
                self._launch(node)
        self.wait_ready(timeout)
        wait_for(lambda: all(node.alive for node in self.nodes) and len(self.primaries()) == self.masters, timeout,
                 "not every node rejoined")

    def flush(self) -> None:
        """Empty every master (their replicas follow)."""
        for node in self.primaries():
            self.admin(node).flushall()

    def _log_tail(self, node: Node) -> str:
        try:
            lines = (node.directory / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "empty log"


@dataclass
class LocalServer:
    """One plain redis-server (no cluster) on a free loopback port, optionally TLS-only; `tls_clients`
    is its `tls-auth-clients` (`yes`: a client must present a certificate the CA signed)."""

    root: Path
    tls: TlsFiles | None = None
    tls_clients: str = "no"
    node: Node | None = None

    def start(self) -> "LocalServer":
        reason = missing()
        if reason:
            raise RuntimeError(reason)
        port, = free_ports(1)
        node = self.node = Node(port, 0, self.root / f"server-{port}")
        node.directory.mkdir(parents=True)
        lines = ["bind 127.0.0.1", f"dir {node.directory}", "logfile redis.log", 'save ""', "appendonly no"]
        if self.tls is None:
            lines.append(f"port {port}")
        else:
            lines += ["port 0", f"tls-port {port}", f"tls-cert-file {self.tls.cert}", f"tls-key-file {self.tls.key}",
                      f"tls-ca-cert-file {self.tls.ca}", f"tls-auth-clients {self.tls_clients}"]
        (node.directory / "redis.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        node.process = launch([str(node.directory / "redis.conf")], cwd=node.directory)
        try:
            wait_for(lambda: node.alive and (node.directory / "redis.log").exists()
                     and "Ready to accept connections" in (node.directory / "redis.log").read_text(errors="replace"),
                     START_TIMEOUT_S, f"redis-server on {node.address} did not start")
        except Exception:
            self.stop()  # never leave a server that did not come up running
            raise
        return self

    @property
    def url(self) -> str:
        assert self.node is not None
        return f"{'rediss' if self.tls else 'redis'}://{self.node.address}/0"

    def stop(self) -> None:
        if self.node is not None and self.node.process is not None:
            if self.node.process.poll() is None:
                self.node.process.send_signal(signal.SIGKILL)
            self.node.process.wait(timeout=10)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a certificate it signed for 127.0.0.1 and localhost (server and client use),
    written as PEM files under `directory` (trustme, a dev dependency)."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    return files

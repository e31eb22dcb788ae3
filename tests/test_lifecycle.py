"""Start and stop: one embedded Redis per var dir, clean stops on SIGTERM/SIGINT, nothing left running.

Real processes (`hwbot serve`, `hwbot worker`, small Python processes) on a tmp `HWBOT_VAR_DIR`; the
redis-server processes of that directory are counted before, during and after. Waiting for a process
to be ready or to exit is bounded; no assertion depends on the clock.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.channels.line.api import LineMessaging
from bot.cli import main
from bot.clock import parse_instant
from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.staff.worker import Worker
from bot.store import embedded_redis
from bot.store.connection import DB_FILE, socket_path
from bot.store.outbox import GROUP
from bot.store.shards import outbox_key
from bot.testing.driver import ManualClock
from bot.testing.line_standin import LineStandIn
from bot.testing.redis import redis_servers

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="counts processes through /proc")

STOP_WITHIN_S = 5.0  # SIGTERM/SIGINT to exit, everything closed
START_WITHIN_S = 60.0  # a bound for a process to come up on a busy machine
NOW = parse_instant("2026-11-20T10:00:00+09:00")


def wait_for(condition, what: str, timeout: float = START_WITHIN_S) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.05)


def free_ports(count: int) -> list[int]:
    """Free loopback ports in this suite's range (7400-7499)."""
    found = []
    for port in range(7410, 7500):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.skip("no free ports in 7410-7499")


def hwbot_env(var: Path) -> dict[str, str]:
    """The environment of `hwbot` processes on `var` in simulator mode with an embedded Redis."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "HWBOT_STAFF_TOKEN")}
    return {**env, "HWBOT_VAR_DIR": str(var), "HWBOT_PROFILES_DIR": str(REPO_ROOT / "office_profiles")}


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=log.parent, env=env,
                                stdout=output, stderr=subprocess.STDOUT)


def answers(url: str) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(log: Path, *signalled: tuple[subprocess.Popen, signal.Signals]) -> None:
    """Signal the processes together; each must exit 0 within STOP_WITHIN_S."""
    for process, sig in signalled:
        process.send_signal(sig)
    for process, sig in signalled:
        try:
            code = process.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"still running {STOP_WITHIN_S:.0f} s after {sig.name}:\n{log.read_text(errors='replace')}")
        assert code == 0, log.read_text(errors="replace")


def test_serve_and_worker_started_together_share_one_server_and_the_last_one_out_stops_it(tmp_path):
    var, ports = tmp_path / "var", free_ports(2)
    env, log = hwbot_env(var), tmp_path / "hwbot.log"
    assert redis_servers(cwd=var) == {}
    processes = {  # started at the same moment, as a Procfile runner starts `web` and `worker`
        "serve 1": start(["serve", "--port", str(ports[0])], env, log),
        "serve 2": start(["serve", "--port", str(ports[1])], env, log),
        "worker 1": start(["worker", "--consumer", "lifecycle-1"], env, log),
        "worker 2": start(["worker", "--consumer", "lifecycle-2"], env, log),
    }
    healthz = [f"http://127.0.0.1:{port}/healthz" for port in ports]
    try:
        for url in healthz:
            wait_for(lambda: answers(url) or any(p.poll() is not None for p in processes.values()), "hwbot serve")
        for name in ("lifecycle-1", "lifecycle-2"):
            wait_for(lambda: f"worker_started consumer={name}" in log.read_text(errors="replace"), "hwbot worker")
        assert all(p.poll() is None for p in processes.values()), log.read_text(errors="replace")

        [server] = redis_servers(cwd=var)  # one redis-server for the directory
        with embedded_redis(var) as client:  # joins that server (and lets go of it at the end)
            def consumers() -> set[str]:
                try:
                    return {row["name"] for row in client.xinfo_consumers(outbox_key(0), GROUP)}
                except Exception:  # the group appears with the first worker cycle
                    return set()

            # All of them read the outbox of that one server (both serves' threads as the host name).
            wait_for(lambda: {"lifecycle-1", "lifecycle-2"} < consumers(), "the outbox consumers")
            client.set("lifecycle:kept", "yes")

        # Each command, each signal; the server stays while a process still uses it.
        stop(log, (processes["worker 1"], signal.SIGTERM), (processes["serve 1"], signal.SIGINT))
        assert list(redis_servers(cwd=var)) == [server] and answers(healthz[1])
        stop(log, (processes["worker 2"], signal.SIGINT))
        assert list(redis_servers(cwd=var)) == [server] and answers(healthz[1])
        stop(log, (processes["serve 2"], signal.SIGTERM))
        assert redis_servers(cwd=var) == {}, "the last one out stops it"
        assert (var / DB_FILE).exists()
        assert log.read_text(errors="replace").count("hwbot: stopped") == 2  # the serves said so
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    with embedded_redis(var) as client:  # it saved before stopping: the data is back
        assert client.get("lifecycle:kept") == "yes"
    assert redis_servers(cwd=var) == {}


def test_a_stopping_server_lets_the_request_under_way_finish():
    from werkzeug.serving import make_server

    from bot.cli import _InFlight

    release = threading.Event()

    def slow(environ, start_response):
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    requests = _InFlight(slow)
    [port] = free_ports(1)
    server = make_server("127.0.0.1", port, requests, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answer: list[bytes] = []
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    client = threading.Thread(target=lambda: answer.append(opener.open(f"http://127.0.0.1:{port}/", timeout=30).read()))
    client.start()
    wait_for(lambda: requests.count == 1, "the request to arrive")
    server.shutdown()  # what `hwbot serve` does on SIGTERM: no new requests…
    server.server_close()
    assert not requests.wait_idle(0)  # …the one under way is still being answered
    release.set()
    assert requests.wait_idle(STOP_WITHIN_S)
    client.join(STOP_WITHIN_S)
    assert answer == [b"done"]


JOIN = """
import sys
from pathlib import Path
from bot.store import embedded_redis

client = embedded_redis(Path(sys.argv[1]))
client.incr("joined")
print("ready", flush=True)
sys.stdin.readline()
client.close()
"""


def test_processes_started_and_stopped_together_use_one_server_and_leave_none(tmp_path):
    var = tmp_path / "var"
    processes = [
        subprocess.Popen([sys.executable, "-c", JOIN, str(var)], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(5)
    ]
    try:
        outputs = [process.stdout.readline() for process in processes]  # each prints "ready" once it joined
        assert outputs == ["ready\n"] * 5, outputs
        assert len(redis_servers(cwd=var)) == 1
        with embedded_redis(var) as client:
            assert client.get("joined") == "5"  # all five on that one server

        processes[0].kill()  # a process that dies holds nothing: the kernel drops its locks
        processes[0].wait(timeout=10)
        for process in processes[1:]:  # the others leave at the same moment
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes[1:]:
            assert process.wait(timeout=STOP_WITHIN_S) == 0, process.stdout.read()
        assert redis_servers(cwd=var) == {}
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            process.stdin.close()
            process.stdout.close()


def test_clients_in_one_process_share_the_server_until_the_last_one_closes(tmp_path):
    var = tmp_path / "var"
    first, second = embedded_redis(var), embedded_redis(var)
    [server] = redis_servers(cwd=var)
    first.set("kept", "1")
    first.close()
    assert list(redis_servers(cwd=var)) == [server] and second.get("kept") == "1"
    second.close()
    assert redis_servers(cwd=var) == {}
    assert (var / DB_FILE).exists() and not socket_path(var).exists()


def test_a_long_directory_gets_its_socket_in_the_temp_dir(tmp_path):
    var = tmp_path / ("v" * 110)  # longer than a unix socket path may be
    with embedded_redis(var) as client, embedded_redis(var) as again:
        assert client.socket_file == again.socket_file and not client.socket_file.startswith(str(var))
        assert client.ping() and len(redis_servers(cwd=var)) == 1
    assert redis_servers(cwd=var) == {}


def test_a_scratch_server_keeps_nothing(tmp_path):
    var = tmp_path / "var"
    with embedded_redis(var, scratch=True) as client:
        client.set("thrown", "away")
        assert len(redis_servers(cwd=var)) == 1
    assert redis_servers(cwd=var) == {}
    assert not (var / DB_FILE).exists()


def test_a_server_whose_directory_was_removed_still_stops(tmp_path):
    var = tmp_path / "var"
    client = embedded_redis(var)
    [pid] = redis_servers(cwd=var)
    for path in var.iterdir():
        path.unlink()
    var.rmdir()
    client.close()
    assert pid not in redis_servers()


def test_dialogs_run_leaves_no_server(redis_client):
    before = redis_servers(descendants_of=os.getpid())
    script = sorted((REPO_ROOT / "dialogs").glob("*.yaml"))[0]
    result = CliRunner().invoke(main, ["dialogs", "run", "-q", str(script)])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert redis_servers(descendants_of=os.getpid()) == before


def test_a_stopped_worker_hands_back_what_it_has_not_sent(redis_client, offices):
    with LineStandIn() as line:
        settings = load_settings(line_channel_secret="s", line_channel_access_token="t", line_api_host=line.url)
        service = BotService(settings, client=redis_client, offices=offices, clock=ManualClock(NOW))
        for number in range(3):
            service.queue_push("U" + "b" * 32, [{"type": "text", "text": f"{number}"}], retry_key=str(uuid.uuid4()))
        stopping = threading.Event()

        class StopAfterOnePush(LineMessaging):  # SIGTERM arrives while the first push is under way
            def push(self, *args, **kwargs):
                super().push(*args, **kwargs)
                stopping.set()

        worker = Worker(service, settings, consumer="w1", line=StopAfterOnePush(line.url, "t"))
        assert worker.run_once(NOW, stop=stopping) == {"delivered": 1, "handed_back": 2}
        shard = service.outbox.shard("U" + "b" * 32)  # the user's entries are all in the user's shard
        assert redis_client.xpending(outbox_key(shard), GROUP)["pending"] == 2  # still this consumer's

        restarted = Worker(service, settings, consumer="w1", line=LineMessaging(line.url, "t"))
        assert restarted.run_once(NOW) == {"delivered": 2}
        pushed = [request.body["messages"][0]["text"] for request in line.sent("/v2/bot/message/push")]
        assert pushed == ["0", "1", "2"]


def test_the_procfile_web_command_stops_cleanly_and_leaves_no_server(tmp_path):
    # `web:` of the Procfile, as a Procfile runner starts it; gunicorn's master forwards SIGTERM.
    [command] = [line.split(":", 1)[1].split() for line in (REPO_ROOT / "Procfile").read_text().splitlines()
                 if line.startswith("web:")]
    assert command[0] == "gunicorn"
    var, [port] = tmp_path / "var", free_ports(1)
    env, log = hwbot_env(var), tmp_path / "gunicorn.log"
    args = [arg.strip("'") for arg in command[1:]]
    with log.open("ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args],
                                   cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_for(lambda: answers(url) or process.poll() is not None, "gunicorn")
        assert answers(url), log.read_text(errors="replace")
        assert len(redis_servers(cwd=var)) == 1  # both workers on one embedded server
        stop(log, (process, signal.SIGTERM))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert "Logging error" not in text and "Traceback" not in text, text  # gunicorn's own lines intact
    assert redis_servers(cwd=var) == {}


def test_a_test_run_stopped_with_sigterm_stops_its_redis(tmp_path):
    # A child pytest with this suite's conftest (as a plugin) and one test that holds the embedded
    # Redis until it is signalled, as `timeout make test` or a CI runner giving up would stop it.
    ready = tmp_path / "ready"
    (tmp_path / "test_probe.py").write_text(
        "import threading\n"
        "def test_hold(redis_client):\n"
        "    redis_client.set('probe', '1')\n"
        f"    open({str(ready)!r}, 'w').close()\n"
        "    threading.Event().wait(120)\n",
        encoding="utf-8",
    )
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "tests"), env.get("PYTHONPATH")]))
    log = tmp_path / "child.log"
    with log.open("ab") as output:
        child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                                  "test_probe.py"], cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ready.exists() or child.poll() is not None, "the probe test")
        servers = redis_servers(descendants_of=child.pid)
        assert len(servers) == 1, log.read_text(errors="replace")
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=STOP_WITHIN_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert "KeyboardInterrupt: stopped by SIGTERM" in log.read_text(errors="replace")
    assert not set(servers) & set(redis_servers()), "the run's redis-server outlived it"

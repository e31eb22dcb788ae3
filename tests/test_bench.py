"""`hwbot bench` smoke test: a small run end to end (gunicorn, stand-in LINE, embedded Redis, baseline)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.bench import run_bench
from bot.bench.load import AnsweredResult, BenchEvent
from bot.bench.script import Script, bench_user
from bot.bench.servers import procfile_commands
from bot.channels.line.api import LineApiError, LineMessaging
from bot.cli import main
from bot.errors import BenchError
from bot.settings import REPO_ROOT, load_settings
from bot.testing.line_standin import LineStandIn

SUMMARY = re.compile(
    r"^bench: events_per_s=[\d.]+ p99_ms=[\d.]+ ratio_vs_baseline=[\d.]+ "
    r"redis_cmds_per_event=[\d.]+ bytes_per_conversation=\d+ "
    r"latency_events_per_s=[\d.]+ latency_webhook_p99_ms=[\d.]+ latency_answer_p99_ms=[\d.]+ latency_ratio=[\d.]+$"
)


def _our_processes(*words: str) -> list[str]:
    """Live descendants of this process whose command line holds one of `words` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            state, parent = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if state not in ("Z", "X"):
            children.setdefault(int(parent), []).append(int(entry))
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(word in command for word in words):
            found.append(command)
    return found


def test_small_run_books_every_user_and_reports_every_figure(tmp_path):
    report = run_bench(users=20, rate=100, seconds=1, settings=load_settings(var_dir=tmp_path, redis_url=None),
                       line_latency_ms=50, in_flight=4, latency_seconds=1.5)
    assert report.bookings == 20
    closed = report.app_closed
    assert closed["events"] == 20 * 15 and closed["errors"] == 0 and closed["users_done"] == 20
    assert report.baseline_closed["events"] == 20 * 15 and report.baseline_closed["errors"] == 0
    assert report.app_open["events"] > 0 and report.app_open["errors"] == 0
    assert closed["events_per_s"] > 0 and 0 < closed["p50_ms"] <= closed["p95_ms"] <= closed["p99_ms"]
    assert report.ratio_vs_baseline > 0
    assert 1 <= report.round_trips_per_event <= 4  # the target: at most 4 on average
    assert report.redis_cmds_per_event >= report.round_trips_per_event
    assert 1.9 <= report.baseline_redis_cmds_per_event <= 2.1  # GET + SET: the counting is right
    assert 0 < report.bytes_per_conversation <= 2048
    assert report.bytes_per_booking > 0
    # Production-shaped: the Procfile's web and worker ran, every event was answered at LINE once.
    procfile = procfile_commands(REPO_ROOT / "Procfile")
    for run, latency in ((report.shaped_latency, 50), (report.shaped_no_latency, 0)):
        assert run["latency_ms"] == latency and run["in_flight"] == 4
        processes = run["processes"]
        assert processes["web"]["command"].startswith(" ".join(procfile["web"][:3]))
        assert "--bind 127.0.0.1:" in processes["web"]["command"]
        assert processes["worker"]["command"] == " ".join(procfile["worker"])
        assert {name: (p["exit"], p["killed"]) for name, p in processes.items()} == {
            "web": (0, False), "worker": (0, False)}  # stopped by their signals, not killed
        assert run["events"] > 0 and run["answered"] == run["events"] and run["errors"] == 0
        assert run["lost"] == 0 and run["sent_twice"] == 0
        assert isinstance(run["pushes_instead"], int) and run["pushes_instead"] >= 0
        assert run["users_started"] >= 4 and run["events_per_s"] > 0
        assert 0 < run["webhook_p50_ms"] <= run["webhook_p95_ms"] <= run["webhook_p99_ms"]
        assert 0 < run["answer_p50_ms"] <= run["answer_p95_ms"] <= run["answer_p99_ms"]
    assert report.shaped_latency["answer_p50_ms"] >= 50  # each answer waited for LINE's 50 ms
    assert report.latency_ratio > 0
    assert _our_processes("gunicorn", "hwbot worker") == []  # nothing left running (conftest checks redis-server)
    lines = report.lines() + [report.summary_line()]
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert json.loads(json.dumps(report.to_json()))["summary"] == lines[-1]
    assert report.to_json()["latency_ratio"] == round(report.latency_ratio, 3)


def test_standin_line_answers_after_its_latency_overlapping_and_books_every_reply_and_push():
    with LineStandIn(keep_alive=True, record=False, latency_s=1.0) as line:
        api = LineMessaging(line.url, "token")
        first_arrived = line.arrivals.expect("token-1", "U1")
        first_done = threading.Event()
        took: list[float] = []

        def first() -> None:
            started = time.monotonic()
            api.reply("token-1", [{"type": "text", "text": "a"}])
            took.append(time.monotonic() - started)
            first_done.set()

        thread = threading.Thread(target=first)
        thread.start()
        assert first_arrived.wait(10)
        second_arrived = line.arrivals.expect("token-2", "U2")
        threading.Thread(target=api.push, args=("U2", [{"type": "text", "text": "b"}]), daemon=True).start()
        assert second_arrived.wait(10)
        assert not first_done.is_set()  # the push arrived while the reply was still held: calls overlap
        thread.join(10)
        assert took[0] >= 1.0  # answered after the latency
        line.latency_s = 0.0
        api.reply("token-1", [{"type": "text", "text": "again"}])  # the same token replied twice
        line.failing["/v2/bot/message/reply"] = 400
        with pytest.raises(LineApiError):
            api.reply("token-3", [{"type": "text", "text": "refused"}])
    arrivals = line.arrivals
    assert line.requests == []  # record=False: no bodies kept, the arrivals are
    assert arrivals.reply_count("token-1") == 2 and arrivals.reply_count("token-3") == 0  # a refused reply is not one
    assert arrivals.push_count("U2") == 1 and arrivals.push_count("U1") == 0
    first_reply = arrivals.replies["token-1"][0]
    assert arrivals.first_after("token-1", "U1", 0.0) == ("reply", first_reply)
    assert arrivals.first_after("token-9", "U2", 0.0) == ("push", arrivals.pushes["U2"][0])
    assert arrivals.first_after("token-9", "U9", 0.0) is None


def test_settle_counts_doubles_and_pushes_instead_of_replies():
    class Seen:  # what reached LINE: u1 replied twice to t1; u2's t3 unreplied and pushed twice
        replies = {"t1": 2, "t2": 1, "t4": 1}
        pushes = {"u2": 2}

        def reply_count(self, token):
            return self.replies.get(token, 0)

        def push_count(self, to):
            return self.pushes.get(to, 0)

    result = AnsweredResult()
    for user, token in (("u1", "t1"), ("u1", "t2"), ("u2", "t3"), ("u2", "t4")):
        result.record(BenchEvent(b"", "", user, token), 200, 1.0, 0.5, 0.0)
    result.settle(Seen())
    assert (result.sent_twice, result.pushes_instead) == (2, 1)  # t1's second reply, u2's second push
    assert result.summary()["answer_p99_ms"] == 500.0 and result.summary()["answered"] == 4


def test_procfile_lines_are_read_as_written(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\n\nweb: gunicorn -k gthread 'bot.web:create_app()'\nworker: hwbot worker\n")
    assert procfile_commands(procfile) == {
        "web": ["gunicorn", "-k", "gthread", "bot.web:create_app()"], "worker": ["hwbot", "worker"]}
    procfile.write_text("web gunicorn\n")
    with pytest.raises(BenchError, match="Procfile:1: not a `name: command` line"):
        procfile_commands(procfile)


def test_script_spreads_users_over_the_slots():
    script = Script([("say", "a"), ("tap", "slot"), ("tap", "book")], 1, ["s1", "s2"])
    assert [script.events_for(i)[1] for i in range(3)] == [("tap", "s1"), ("tap", "s2"), ("tap", "s1")]
    assert script.capacity == 200
    assert bench_user(1, "x") != bench_user(2, "x") and re.fullmatch(r"U[0-9a-f]{32}", bench_user(1, "x"))


def test_refuses_a_redis_url_database_that_holds_data(redis_client):
    url = load_settings().redis_url or f"unix://{redis_client.socket_file}"
    redis_client.set("someone:else", "1")
    with pytest.raises(BenchError, match="holds 1 key"):
        run_bench(users=1, settings=load_settings(redis_url=url))
    assert redis_client.keys("*") == ["someone:else"]  # refused before anything was written


def test_bad_arguments_are_one_line_errors():
    result = CliRunner().invoke(main, ["bench", "--users", "0"])
    assert result.exit_code == 2 and "--users" in result.output
    result = CliRunner().invoke(main, ["bench", "--in-flight", "0"])
    assert result.exit_code == 2 and "--in-flight" in result.output
    result = CliRunner().invoke(main, ["bench", "--line-latency-ms", "-1"])
    assert result.exit_code == 2 and "--line-latency-ms" in result.output

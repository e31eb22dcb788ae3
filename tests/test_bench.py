"""`hwbot bench` smoke test: a small run end to end (gunicorn, stand-in LINE, embedded Redis, baseline)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from bot.bench import run_bench
from bot.bench.script import Script, bench_user
from bot.cli import main
from bot.errors import BenchError
from bot.settings import load_settings

SUMMARY = re.compile(
    r"^bench: events_per_s=[\d.]+ p99_ms=[\d.]+ ratio_vs_baseline=[\d.]+ "
    r"redis_cmds_per_event=[\d.]+ bytes_per_conversation=\d+$"
)


def test_small_run_books_every_user_and_reports_every_figure(tmp_path):
    report = run_bench(users=20, rate=100, seconds=1, settings=load_settings(var_dir=tmp_path, redis_url=None))
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
    lines = report.lines() + [report.summary_line()]
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert json.loads(json.dumps(report.to_json()))["summary"] == lines[-1]


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

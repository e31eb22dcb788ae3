"""`hwbot slots`: the JSON contract of docs/architecture.md, live capacity from Redis, one-line errors."""

from __future__ import annotations

import json

import pytest
from freezegun import freeze_time

from bot import calendar
from bot.clock import parse_instant
from bot.store import slot_redis_key


@pytest.fixture
def run(cli):
    return cli


@pytest.mark.parametrize("office", ["noto", "hamamatsu", "izumo", "toyooka", "sakata"])
def test_json_is_every_bookable_slot(run, offices, office):
    result = run("slots", office, "--now", "2026-11-22T10:00:00+09:00", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = calendar.bookable_slots(offices[office], parse_instant("2026-11-22T10:00:00+09:00"))
    assert data == [slot.to_json() for slot in expected]
    assert data, "every office has slots within a month"
    assert set(data[0]) == {"office", "start", "end", "remaining"}
    assert [item["start"] for item in data] == sorted(item["start"] for item in data)


def test_booked_slot_disappears(run, redis_client):
    before = json.loads(run("slots", "noto", "--now", "2026-11-22T10:00", "--days", "5", "--json").output)
    assert before[0]["start"] == "2026-11-26T10:00:00+09:00"
    redis_client.sadd(slot_redis_key("noto", "2026-11-26T10:00"), "booking-1")
    after = json.loads(run("slots", "noto", "--now", "2026-11-22T10:00", "--days", "5", "--json").output)
    assert [item["start"] for item in after] == [item["start"] for item in before[1:]]


def test_days_option_and_human_output(run):
    result = run("slots", "toyooka", "--now", "2026-11-24T08:00", "--days", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "14 bookable slot(s)" in lines[0]
    assert lines[1].strip().startswith("11月25日(水)  09:30〜10:00")
    assert lines[2].strip().startswith("11月26日(木)")
    assert len(lines) == 3


@freeze_time("2026-11-20T08:14:00Z")
def test_default_now_is_the_clock(run):
    data = json.loads(run("slots", "noto", "--json").output)
    assert data[0]["start"] == "2026-11-25T10:00:00+09:00"


def test_hwbot_now_variable(run, monkeypatch):
    monkeypatch.setenv("HWBOT_NOW", "2026-11-20T17:16:00+09:00")
    data = json.loads(run("slots", "noto", "--json").output)
    assert data[0]["start"] == "2026-11-26T10:00:00+09:00"


@pytest.mark.parametrize(
    "args, message",
    [
        (["slots", "kyoto", "--now", "2026-11-22T10:00"], "Error: unknown office 'kyoto'"),
        (["slots", "noto", "--now", "2026-13-40"], "Error: --now: '2026-13-40' is not an ISO date-time"),
        (["slots", "noto", "--now", "tomorrow"], "Error: --now: 'tomorrow' is not an ISO date-time"),
    ],
)
def test_errors_are_one_line(run, args, message):
    result = run(*args)
    assert result.exit_code != 0
    assert result.output.strip().startswith(message)
    assert len(result.output.strip().splitlines()) == 1


def test_bad_environment_names_the_variable(run, monkeypatch):
    monkeypatch.setenv("HWBOT_NOW", "yesterday-ish")
    result = run("slots", "noto", "--json")
    assert result.exit_code == 1
    assert "HWBOT_NOW" in result.output

"""Every scripted dialog in dialogs/ is a test."""

from __future__ import annotations

import pytest

from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.testing.scripts import run_script, script_paths

SCRIPTS = script_paths([REPO_ROOT / "dialogs"])


def _maker(redis_client, offices):
    settings = load_settings()

    def make(clock):
        redis_client.flushdb()
        return BotService(settings, client=redis_client, offices=offices, clock=clock)

    return make


@pytest.mark.parametrize("path", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_scripted_dialog(path, redis_client, offices):
    result = run_script(path, _maker(redis_client, offices))
    assert result.passed, f"{path.name}: " + "; ".join(result.failures) + "\n" + result.transcript


def test_there_are_scripts_for_every_office():
    names = " ".join(path.stem for path in SCRIPTS)
    for office in ("noto", "hamamatsu", "izumo", "toyooka", "sakata"):
        assert office in names


REQUEST_SCRIPTS = ("request_confirm", "request_decline", "request_propose_accept", "request_propose_decline",
                   "request_propose_lapse")


def test_every_office_that_confirms_its_requests_has_the_request_scripts(offices):
    """Issue 11: request → confirm, decline, propose → accept, decline, lapse, per office where it applies."""
    names = {path.stem for path in SCRIPTS}
    confirming = [office for office in offices if offices[office].after_booking.confirmed_by_office]
    assert confirming
    missing = [f"{office}_{kind}" for office in confirming for kind in REQUEST_SCRIPTS
               if f"{office}_{kind}" not in names]
    assert missing == []


BOOK_AT_NOTO = """
title: 能登で予約（Wed 11/25 10:00）
now: 2026-11-20T10:00:00+09:00
steps:
  - say: こんにちは
  - tap: ハローワーク能登
  - say: 山田 花子
  - say: 12345-12345678
  - say: hanako@example.jp
  - say: 090-1234-5678
  - tap: 職業相談
  - tap: 同席しない
  - tap: 登録済み
  - tap: はい
  - tap: 用意できる
  - tap: はい
  - tap: 11月25日(水) 10:00〜10:30
  - tap: 同意する
  - tap: この内容で予約する
"""


def test_worker_runs_sends_the_day_before_reminder_once_as_the_steps_answer(tmp_path, redis_client, offices):
    """`worker_runs` runs the reminders too (as the worker does): due at 17:00 the day before, pushed once."""
    reminder = "明日はオンライン職業相談の日です。"
    script = tmp_path / "reminder.yaml"
    script.write_text(BOOK_AT_NOTO + f"""
  - wait: 4d  # Tuesday 11/24 10:00: not yet (the office's reminder time is 17:00)
  - worker_runs: true
    expect_not: [{reminder}]
  - wait: 7h
  - worker_runs: true
    expect: [{reminder}, "ハローワーク能登 11月25日(水) 10:00〜10:30", 【ご準備】, 予約の確認]
  - wait: 1m
  - worker_runs: true
    expect_not: [{reminder}]
""", encoding="utf-8")
    result = run_script(script, _maker(redis_client, offices))
    assert result.passed, result.failures
    assert result.transcript.count(reminder) == 1
    # The same expectation one step early fails: the step's answer is what the worker pushed at that time.
    early = tmp_path / "early.yaml"
    early.write_text(BOOK_AT_NOTO + f"""
  - wait: 4d
  - worker_runs: true
    expect: [{reminder}]
""", encoding="utf-8")
    failed = run_script(early, _maker(redis_client, offices))
    assert not failed.passed and failed.failures == [f"step 17: expected {reminder!r} in the reply"]

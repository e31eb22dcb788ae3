"""Every scripted dialog in dialogs/ is a test."""

from __future__ import annotations

import pytest

from bot.service import BotService
from bot.settings import REPO_ROOT, load_settings
from bot.testing.scripts import run_script, script_paths

SCRIPTS = script_paths([REPO_ROOT / "dialogs"])


@pytest.mark.parametrize("path", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_scripted_dialog(path, redis_client, offices):
    settings = load_settings()

    def make(clock):
        redis_client.flushdb()
        return BotService(settings, client=redis_client, offices=offices, clock=clock)

    result = run_script(path, make)
    assert result.passed, f"{path.name}: " + "; ".join(result.failures) + "\n" + result.transcript


def test_there_are_scripts_for_every_office():
    names = " ".join(path.stem for path in SCRIPTS)
    for office in ("noto", "hamamatsu", "izumo", "toyooka", "sakata"):
        assert office in names

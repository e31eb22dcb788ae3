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

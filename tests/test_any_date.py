"""The suite passes on any date of 2026-2028, not just the days it was written on.

Every test injects or freezes the app's clock, but Redis counts TTLs down by the machine's real clock
and some code paths read the real time (the simulator, `Clock()`). A test that mixed the two passed on
the day it was written and failed weeks later (a booking's EXPIREAT from a fixed appointment date).
Here the modules that touch both clocks run again in a child pytest whose whole process tree (Python
and the embedded redis-server alike) sees another date through libfaketime (Debian's `faketime`).

The rest of the suite was run the same way by hand (`README.md`, "Tests"); the browser tests are left
out here because Chromium stalls under libfaketime (its pages take their time from the app's clock).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from bot.settings import REPO_ROOT
from bot.testing.debian import apt_install

# Real clock dates (UTC) the child runs start at: early 2026 (before every fixture's date), a year
# ahead, and a leap day's evening in 2028 (already the next day in Japan).
DATES = ("2026-01-05 09:00:00", "2027-12-01 13:00:00", "2028-02-29 23:30:00")
MODULES = (
    "tests/test_aftercare.py",  # retention, reminders, re-consent: TTLs on Redis's clock
    "tests/test_store.py",  # conversation, booking and event-marker TTLs
    "tests/test_dialogs.py",  # every scripted dialog (each with its own `now`)
    "tests/test_conversation.py",  # the slot picker over the booking window, expiry of a conversation
    "tests/test_webhook.py",  # event ids remembered for two days, redelivery
    "tests/test_console.py",  # the staff console's "today" and its day views
    "tests/test_slots_cli.py",  # `hwbot slots` with and without --now
    "tests/test_staff_accounts.py",  # sessions, one-time links, TOTP and the login backoff: app clock vs Redis TTLs
)
SHIM = REPO_ROOT / "tests" / "anydate"  # sitecustomize working around libfaketime's time.sleep bug


def _libfaketime() -> str:
    """The preload library of Debian's libfaketime (installed with `faketime` when missing).

    It is preloaded directly rather than through the `faketime` wrapper, whose shared-memory semaphore
    collides with another run's now and then ("sem_open: File exists").
    """
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found and apt_install("faketime"):
        found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip("Debian's libfaketime is not installed and could not be (apt-get install faketime)")
    return found[0]


@pytest.mark.skipif("faketime" in os.environ.get("LD_PRELOAD", ""), reason="already under libfaketime")
@pytest.mark.parametrize("when", DATES)
def test_the_date_sensitive_modules_pass_on_another_day(when):
    env = {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME": f"@{when}",  # starts at that instant, and runs on
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # a faked monotonic clock makes timed waits hang
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SHIM), os.environ.get("PYTHONPATH")])),
    }
    env.pop("REDIS_URL", None)  # the child starts its own embedded Redis, under the same fake clock
    # The child's clock really is on that day (libfaketime loaded, the shim working).
    seen = subprocess.run([sys.executable, "-c", "import datetime, time; time.sleep(0.01); print(datetime.date.today())"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert seen.stdout.strip() == when[:10], seen.stderr
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
    assert done.returncode == 0, f"the suite fails when the machine's date is {when} (UTC):\n{tail}"
    assert " passed" in tail and " failed" not in tail and " skipped" not in tail

"""Loaded (through PYTHONPATH) only by tests/test_any_date.py's runs under libfaketime.

libfaketime 0.9.10 (Debian 12) with FAKETIME_DONT_FAKE_MONOTONIC=1 fails CPython 3.11's `time.sleep`
with EINVAL (it shifts clock_nanosleep's absolute CLOCK_MONOTONIC deadline by the fake offset), and
faking the monotonic clock instead makes timed waits hang. `select` with a timeout is unaffected, so
sleeping goes through it here. Nothing of the project is changed: this file is never on the path of
the app or of the ordinary test run.
"""

import os
import select
import time

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    _real_sleep = time.sleep

    def _sleep(seconds: float) -> None:
        if seconds > 0:
            select.select([], [], [], seconds)
        else:
            _real_sleep(0)

    time.sleep = _sleep

"""Headless Chromium for the browser tests (the simulator page, the staff console).

`ensure_chromium()` installs Debian's chromium and chromium-driver when they are missing (as root, with
apt-get) and says why not where that is impossible; `headless_chromium()` starts one with a throwaway
profile. No browser is downloaded by selenium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.testing.debian import apt_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15


def _has_japanese_font() -> bool:
    try:
        listed = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: do not install anything for it
    return bool(listed.stdout.strip())


def ensure_chromium() -> str | None:
    """None when chromium and its driver are there (installed now if need be), else why not."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if not shutil.which("apt-get"):
        return "no apt-get to install Debian's chromium and chromium-driver"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root: run `apt-get install chromium chromium-driver` to enable this test"
    apt_install("chromium", "chromium-driver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "apt-get could not install chromium and chromium-driver"
    if not _has_japanese_font():  # only for a readable screenshot; the tests do not depend on it
        apt_install("fonts-noto-cjk")
    return None


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A selenium Chrome driver on Debian's chromium, quit and its profile removed at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.TemporaryDirectory(prefix="hwbot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=ja-JP", f"--user-data-dir={profile.name}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()

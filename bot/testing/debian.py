"""Debian packages the tests need beyond Python (chromium, faketime), installed as root with apt-get."""

from __future__ import annotations

import os
import shutil
import subprocess


def _apt(*args: str, timeout: int) -> bool:
    command = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def apt_install(*packages: str) -> bool:
    """Install `packages` (refreshing the package lists once if the first try fails); False when impossible."""
    if not shutil.which("apt-get") or (hasattr(os, "geteuid") and os.geteuid() != 0):
        return False
    if _apt("install", "-y", "-q", *packages, timeout=300):
        return True
    _apt("update", "-q", timeout=180)
    return _apt("install", "-y", "-q", *packages, timeout=300)

"""A wheel of the project carries every file the app reads at run time (templates, the simulator page)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_SUFFIXES = {".html", ".css", ".js", ".json", ".png", ".svg", ".po", ".pot", ".yaml"}


def test_every_data_file_under_bot_is_declared_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [path for path in (ROOT / "bot").rglob("*") if path.suffix in DATA_SUFFIXES]
    assert files, "the app has templates and static files"
    missing = []
    for path in files:
        relative = path.relative_to(ROOT)
        covered = any(
            relative.is_relative_to(Path(*package.split(".")))
            and any(fnmatch.fnmatch(str(relative.relative_to(Path(*package.split(".")))), pattern) for pattern in patterns)
            for package, patterns in declared.items()
        )
        if not covered:
            missing.append(str(relative))
    assert not missing, f"not in [tool.setuptools.package-data] of pyproject.toml: {missing}"

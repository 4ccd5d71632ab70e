"""Where the repository's deploy/ files are, and the real tools that check them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GUIDE = REPO / "docs" / "operator-guide.md"


def require_tool(name: str, installer: str) -> str:
    """The tool's path; a failure (not a skip) naming the project script that installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run {installer} (make test does)")
    return path

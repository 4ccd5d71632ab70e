"""The real tools the deploy/ files are checked with."""

from __future__ import annotations

import pytest
from deploy_paths import require_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "scripts/ensure-prometheus.sh")


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return require_tool("systemd-analyze", "apt-get install systemd")

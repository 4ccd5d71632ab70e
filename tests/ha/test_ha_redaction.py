"""`ha-db status` as a real process never prints a duty-store password, however the URL is written."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import pytest

ENTRY = [sys.executable, "-m", "ha_sequencer.cli", "ha-db"]
SECRET = "Sekr1tSekr1t"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.postgres
# libpq takes the credentials up to the first "/" or "@": either in the password makes it misread the host.
@pytest.mark.parametrize(("delimiter", "connects"), [("#", True), ("?", True), ("@", False), ("/", False)])
def test_status_hides_a_password_with_url_delimiters(pg_url: str, delimiter: str, connects: bool) -> None:
    # The test server trusts local connections, so any password connects, as libpq parses it.
    parts = urlsplit(pg_url)
    password = f"{SECRET[:6]}{delimiter}{SECRET[6:]}"
    where = f"{parts.hostname}:{parts.port}{parts.path}"
    url = f"{parts.scheme}://{parts.username or 'postgres'}:{password}@{where}"
    migrated = _cli("migrate", "--db", url)
    status = _cli("status", "--db", url)
    assert (migrated.returncode, status.returncode) == ((0, 0) if connects else (1, 1)), migrated.stderr
    shown = migrated.stdout + migrated.stderr + status.stdout + status.stderr
    assert f"{parts.hostname}:{parts.port}{parts.path}" in shown
    assert "Traceback" not in shown
    for piece in (password, SECRET[:6], SECRET[6:]):
        assert piece not in shown


def test_status_refuses_an_unparsable_url_with_exit_2() -> None:
    proc = _cli("status", "--db", f"postgresql://u:{SECRET}@[::1/x")
    assert proc.returncode == 2, proc.stderr
    assert "not a valid PostgreSQL URL" in proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stderr + proc.stdout

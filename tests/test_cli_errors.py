"""Every command's errors end in one scrubbed line: exit 1 or 2, no traceback unless --debug, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ha_sequencer.l1.anvil import free_port

ENTRY = [sys.executable, "-m", "ha_sequencer.cli"]
KEY = "abcdefghijklmnopqrstuvwxyz0123"
PASSWORD = "hunter2#hunter2"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENTRY, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "deployer.key"
    path.write_text("0x" + "11" * 32 + "\n")
    path.chmod(0o600)
    return path


def _assert_scrubbed(proc: subprocess.CompletedProcess[str]) -> None:
    shown = proc.stdout + proc.stderr
    for secret in (KEY, PASSWORD, "hunter2"):
        assert secret not in shown, shown


@pytest.mark.parametrize(
    "rpc_url",
    [
        f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/v3/{KEY}",  # nothing listens there
        f"http://127.0.0.1:{free_port()}/v3/{KEY}?apikey={KEY}",
        f"http://u:{PASSWORD}@[::1/v3/{KEY}",  # the HTTP library cannot parse it
    ],
)
def test_l1_deploy_to_an_unreachable_rpc_is_one_scrubbed_line(key_file: Path, rpc_url: str) -> None:
    proc = _cli("l1", "deploy", "--rpc-url", rpc_url, "--private-key-file", str(key_file))
    assert proc.returncode in (1, 2), proc.stderr
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_scrubbed(proc)


def test_the_url_from_the_environment_is_scrubbed_too(key_file: Path) -> None:
    url = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/v3/{KEY}"
    proc = _cli("l1", "deploy", "--private-key-file", str(key_file), env={"HA_SEQUENCER_L1_RPC_URL": url})
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    _assert_scrubbed(proc)


def test_debug_shows_the_traceback_still_scrubbed(key_file: Path) -> None:
    url = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/v3/{KEY}"
    proc = _cli("--debug", "l1", "deploy", "--rpc-url", url, "--private-key-file", str(key_file))
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error:")
    _assert_scrubbed(proc)


def test_usage_errors_keep_exit_2() -> None:
    proc = _cli("l1", "deploy", "--rpc-url", f"http://u:{PASSWORD}@h/v3/{KEY}", "--no-such-flag")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    _assert_scrubbed(proc)

"""deploy/systemd: the unit passes `systemd-analyze verify` without a warning, and says what the issue asks:
restart policy, SIGTERM with a stop timeout longer than the node's shutdown grace, hardening with only the
data directory writable, the keystore password as a credential the node reads, an EnvironmentFile per node
whose variables are all real `node start` flags."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer.main
from deploy_paths import DEPLOY

from ha_sequencer.cli import app
from ha_sequencer.node.app import SHUTDOWN_GRACE_S

UNIT = DEPLOY / "systemd" / "ha-sequencer@.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "node1.env.example"
INSTALLED_BINARY = "/opt/ha-sequencer/bin/ha-sequencer"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify(systemd_analyze: str, unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of instance node1, the ExecStart binary pointed at this checkout's CLI."""
    cli = str(Path(sys.executable).parent / "ha-sequencer")  # the entry point installed beside python
    (directory / "ha-sequencer@.service").write_text(unit_text.replace(INSTALLED_BINARY, cli))
    return subprocess.run(
        [systemd_analyze, "verify", str(directory / "ha-sequencer@node1.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_unit_passes_systemd_analyze_verify_without_a_warning(
    systemd_analyze: str, tmp_path: Path
) -> None:
    result = _verify(systemd_analyze, UNIT.read_text(), tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_verify_catches_a_broken_unit(systemd_analyze: str, tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps")
    result = _verify(systemd_analyze, broken, tmp_path)
    assert "NoNewPrivileges" in result.stderr or "perhaps" in result.stderr


def test_restart_stop_and_hardening() -> None:
    unit = _directives(UNIT.read_text())
    assert unit["Restart"] == ["on-failure"]
    assert unit["KillSignal"] == ["SIGTERM"]
    stop = int(unit["TimeoutStopSec"][0].removesuffix("s"))
    assert stop > 2 * SHUTDOWN_GRACE_S  # the duty in hand finishes within the grace, then a clean exit
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/ha-sequencer/%i"]  # the data directory, nothing else
    assert unit["EnvironmentFile"] == ["/etc/ha-sequencer/%i.env"]


def test_the_keystore_password_is_a_credential_the_node_reads() -> None:
    unit = _directives(UNIT.read_text())
    (credential,) = unit["LoadCredential"]
    name, _, source = credential.partition(":")
    assert source == f"/etc/ha-sequencer/%i/{name}"
    assert f"--keystore-password-file %d/{name}" in unit["ExecStart"][0]
    assert "PASSWORD" not in ENV_EXAMPLE.read_text().replace("KEYSTORE_PASSWORD_FILE", "")


def test_the_environment_file_example_sets_real_node_start_flags() -> None:
    command = typer.main.get_command(app)
    node_start = command.commands["node"].commands["start"]  # type: ignore[attr-defined]
    envvars = {p.envvar for p in node_start.params if p.envvar}
    variables = re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert variables and set(variables) <= envvars, set(variables) - envvars
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    assert example["HA_SEQUENCER_DATA_DIR"] == "/var/lib/ha-sequencer/node1"  # = ReadWritePaths for node1
    assert example["HA_SEQUENCER_KEYSTORE"].startswith("/etc/ha-sequencer/node1/")

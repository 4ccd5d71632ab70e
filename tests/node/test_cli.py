"""`node start` as a real process: refuses a group-readable keystore; --help lists every env var."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ha_sequencer.localnet.nodes import generate_validators, keystore_document, write_keystore

ENTRY = [sys.executable, "-m", "ha_sequencer.cli", "node"]


def test_refuses_group_readable_keystore(tmp_path: Path) -> None:
    ks = write_keystore(tmp_path / "keystore.json", keystore_document([(generate_validators(1)[0], [0])]))
    os.chmod(ks, 0o644)
    proc = subprocess.run(
        [*ENTRY, "start", "--keystore", str(ks), "--l1-rpc-urls", "http://127.0.0.1:9",
         "--rollup", "0x" + "11" * 20, "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "chmod 600" in proc.stderr and "keystore.json" in proc.stderr


def test_help_names_env_vars() -> None:
    out = subprocess.run(
        [*ENTRY, "start", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    for var in (
        "KEYSTORE",
        "L1_RPC_URLS",
        "ROLLUP",
        "DATA_DIR",
        "PORT",
        "P2P_PORT",
        "BOOTSTRAP_NODES",
        "HA_DB",
        "NODE_ID",
        "NETWORK",
    ):
        assert f"HA_SEQUENCER_{var}" in out, var


def test_busy_http_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    ks = write_keystore(tmp_path / "keystore.json", keystore_document([(generate_validators(1)[0], [0])]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [*ENTRY, "start", "--keystore", str(ks), "--l1-rpc-urls", "http://127.0.0.1:9",
             "--rollup", "0x" + "11" * 20, "--data-dir", str(tmp_path / "data"), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr


def test_the_duty_store_url_reaches_a_node_through_its_environment_not_argv(
    tmp_path: Path, monkeypatch
) -> None:
    import typer.main

    from ha_sequencer.localnet.nodes import HA_DB_ENV, NodeProcess
    from ha_sequencer.node.commands import app

    url = "postgresql://hasq:s3cret-pw@db.internal:5432/duties"
    node = NodeProcess("n0", tmp_path, tmp_path / "keystore.json", 8080, 9000, "peer", ha_db=url)
    argv = node.command(["http://127.0.0.1:8545"], "0x" + "11" * 20, [])
    assert not any("s3cret" in arg for arg in argv)  # argv is world-readable (`ps`, /proc/PID/cmdline)
    assert node.environment()[HA_DB_ENV] == url
    # and `node start --ha-db` reads exactly that variable
    start = typer.main.get_command(app).commands["start"]
    assert next(p for p in start.params if p.name == "ha_db").envvar == HA_DB_ENV
    # a node without a shared store does not inherit one from the parent's environment
    monkeypatch.setenv(HA_DB_ENV, url)
    assert HA_DB_ENV not in NodeProcess("n1", tmp_path, tmp_path / "k.json", 1, 2, "p").environment()


def test_fault_injection_needs_the_explicit_flag(tmp_path: Path) -> None:
    """HA_GUARD_FAULTS on a node without --allow-fault-injection: refuse to start (exit 2), name both."""
    ks = write_keystore(tmp_path / "keystore.json", keystore_document([(generate_validators(1)[0], [0])]))
    args = [*ENTRY, "start", "--keystore", str(ks), "--l1-rpc-urls", "http://127.0.0.1:9",
            "--rollup", "0x" + "11" * 20, "--data-dir", str(tmp_path / "data")]  # fmt: skip
    env = {**os.environ, "HA_GUARD_FAULTS": "after_sign:kill@5"}
    env.pop("HA_SEQUENCER_ALLOW_FAULT_INJECTION", None)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "HA_GUARD_FAULTS" in proc.stderr and "--allow-fault-injection" in proc.stderr
    assert "Traceback" not in proc.stderr
    # with the flag, a malformed spec is still a usage error naming the variable
    bad = {**env, "HA_GUARD_FAULTS": "during_lunch:kill"}
    args.append("--allow-fault-injection")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=bad)
    assert proc.returncode == 2, proc.stderr
    assert "HA_GUARD_FAULTS" in proc.stderr and "during_lunch" in proc.stderr

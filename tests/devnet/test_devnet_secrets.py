"""A devnet hands each process exactly the secrets it needs: the duty store password reaches the HA nodes
alone (not the supervisor, anvil, Prometheus or the other nodes), and no log, argv, /status or /metrics of a
running devnet shows it."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from ha_sequencer.devnet.orchestrator import SUPERVISOR_HA_DB_ENV, drop_inherited_secrets, node_env
from ha_sequencer.devnet.state import HA_DB_URL_FILENAME, NodeEntry, load_state
from ha_sequencer.localnet.nodes import HA_DB_ENV

PASSWORD = "devnet#S3cret?pw"


def _entry(name: str, ha: bool) -> NodeEntry:
    return NodeEntry(
        name=name, validator="0x" + "11" * 20, ha=ha, pid=None, http_port=1, p2p_port=2, peer_id="p",
        data_dir="d", keystore="k", log="l", publisher="0x" + "22" * 20, argv=[],
    )  # fmt: skip


def test_only_ha_nodes_get_the_duty_store_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://u:{PASSWORD}@db/duties"
    monkeypatch.setenv(SUPERVISOR_HA_DB_ENV, url)
    monkeypatch.setenv(HA_DB_ENV, url)
    assert not any(PASSWORD in v for v in node_env(_entry("v1", ha=False), url).values())
    assert node_env(_entry("ha1", ha=True), url)[HA_DB_ENV] == url
    assert SUPERVISOR_HA_DB_ENV not in node_env(_entry("ha1", ha=True), url)
    drop_inherited_secrets()
    assert SUPERVISOR_HA_DB_ENV not in os.environ and HA_DB_ENV not in os.environ
    child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout  # what anvil would see
    assert PASSWORD not in child


def _cli(
    *args: object, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def duty_store_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database, its URL with a password holding URL delimiters (the test server trusts localhost)."""
    name = f"ha_secrets_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(pg_admin_url)
    where = f"{parts.hostname}:{parts.port or 5432}/{name}"
    yield f"postgresql://{parts.username or 'postgres'}:{PASSWORD}@{where}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# 32-byte values in key files (private keys, BLS secrets); fee recipients are public: 12 zero bytes + address
_HEX32 = re.compile(rb"(?:0x)?([0-9a-fA-F]{64})")


def _key_secrets(directory: Path) -> set[bytes]:
    """Every 32-byte secret of the devnet's key files, in the forms a leak would take: hex (any case, with
    or without 0x), base64 and decimal."""
    found: set[bytes] = set()
    for path in [*directory.glob("keys/**/*.json"), *directory.glob("nodes/**/*keystore*.json")]:
        for match in _HEX32.finditer(path.read_bytes()):
            raw = bytes.fromhex(match.group(1).decode())
            if raw[:12] == bytes(12) or raw == bytes(32):
                continue
            found |= {raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw).rstrip(b"="),
                      str(int.from_bytes(raw, "big")).encode()}  # fmt: skip
    return found


def _processes_holding(secret: bytes) -> dict[int, list[str]]:
    """pid -> where (argv, environ) `secret` shows in a running process on this machine."""
    found: dict[int, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                if secret in (proc / part).read_bytes():
                    found.setdefault(int(proc.name), []).append(part)
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.postgres
def test_devnet_gives_the_duty_store_password_to_the_ha_nodes_alone(duty_store_url: str) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hasq-devnet-secrets-"))
    keys: set[bytes] = set()
    up = _cli(
        "devnet", "up", "--detach", "--dir", directory, "--validators", 3, "--ha-nodes", 2,
        "--slot-duration", 4, "--no-watcher", "--users", 1,
        env={SUPERVISOR_HA_DB_ENV: duty_store_url},  # as an operator exports it
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = load_state(directory)
        ha_pids = {n.pid for n in state.nodes if n.ha}
        holders = _processes_holding(PASSWORD.encode())
        # the HA nodes need it (in their environment, never argv); nothing else has it
        assert set(holders) == ha_pids, (holders, state.supervisor_pid, state.anvil_pid)
        assert all(where == ["environ"] for where in holders.values()), holders
        for node in state.nodes:
            for path in ("/status", "/metrics"):
                assert PASSWORD not in httpx.get(f"{node.url}{path}", timeout=5).text
        status = _cli("devnet", "status", "--dir", directory, "--json")
        assert status.returncode == 0 and PASSWORD not in status.stdout + status.stderr
        # every key of the devnet, in any encoding, in nothing a node or the CLI shows, nor any process
        keys = _key_secrets(directory)
        assert len(keys) >= 4 * 3, len(keys)  # the validators' attester and publisher keys at least
        shown = [status.stdout.encode(), status.stderr.encode(), up.stdout.encode(), up.stderr.encode()]
        for node in state.nodes:
            for path in ("/status", "/metrics"):
                shown.append(httpx.get(f"{node.url}{path}", timeout=5).content)
            call = {"jsonrpc": "2.0", "id": 1, "method": "node_getStatus", "params": []}
            shown.append(httpx.post(node.url, json=call, timeout=5).content)
        for key in keys:
            assert not any(key in text for text in shown), key[:8]
            assert not _processes_holding(key), key[:8]
    finally:
        _cli("devnet", "down", "--dir", directory, timeout=120)
    try:
        for path in directory.rglob("*"):
            if path.is_file() and path.name != HA_DB_URL_FILENAME:
                assert PASSWORD.encode() not in path.read_bytes(), path
        for log in directory.rglob("*.log"):
            text = log.read_bytes()
            assert not any(key in text for key in keys), log
        assert (directory / HA_DB_URL_FILENAME).stat().st_mode & 0o077 == 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)

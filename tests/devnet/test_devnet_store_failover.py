"""`failover-test --store-failover --start` end to end, as an operator runs it: a devnet whose HA nodes
share a Patroni + etcd store cluster (`devnet up --store-cluster`), the primary killed (kill -9 of its Patroni
and its PostgreSQL) mid-run: a new primary takes over, the identity signs again on it, 0 equivocations, every
HA node resumed without a restart; and afterwards nothing of the devnet or its cluster (etcd, Patroni,
PostgreSQL) is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SLOT = 4  # the devnet default
SLOTS_PER_PHASE = 2
VALIDATORS = 3  # the HA identity on 3 nodes + 2 single-node validators: quorum without the HA identity


def _processes_naming(*paths: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] != os.getpid() and any(p in line for p in paths):
            found.append(f"{proc.info['pid']}: {line[:160]}")
    return found


def test_store_failover_start_kills_the_primary_with_no_equivocation_and_no_restart() -> None:
    # not under pytest's basetemp: concurrent pytest sessions on this machine prune each other's old basetemps
    directory = Path(tempfile.mkdtemp(prefix="hasq-devnet-storefail-"))
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ha_sequencer.cli",
                "failover-test",
                "--store-failover",
                "--start",
                "--json",
                "--dir",
                str(directory),
                "--slots",
                str(SLOTS_PER_PHASE),
                "--slot-duration",
                str(SLOT),
                "--validators",
                str(VALIDATORS),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        assert run.stdout.strip(), run.stderr[-4000:]
        report = json.loads(run.stdout)
        assert report["equivocations"] == 0, report["failures"]
        assert report["newPrimary"] not in (None, report["killedPrimary"]), report
        assert report["firstSignature"] is not None, report["failures"]
        assert report["killToFirstSignatureS"] >= report["killToNewPrimaryS"] > 0
        assert report["nodesResumedWithoutRestart"], report["nodes"]
        assert [n["node"] for n in report["nodes"]] == ["ha1", "ha2", "ha3"]
        assert all(n["sameProcess"] and n["signedAtEnd"] > n["signedAtFailover"] for n in report["nodes"])
        assert [p["phase"] for p in report["phases"]] == ["before", "failover", "after"]
        assert report["ok"] and run.returncode == 0, (report["failures"], run.stderr[-3000:])
        # the devnet stopped with the run: no node, anvil, etcd, Patroni or PostgreSQL left
        cluster = directory / "store-cluster"
        data = os.readlink(cluster) if cluster.is_symlink() else str(cluster)
        deadline = time.monotonic() + 10
        while _processes_naming(str(directory), data) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_naming(str(directory), data) == []
        assert not (directory / "devnet.json").exists()
    finally:
        subprocess.run(
            [sys.executable, "-m", "ha_sequencer.cli", "devnet", "down", "--dir", str(directory)],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)

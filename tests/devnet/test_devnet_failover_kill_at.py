"""`failover-test --start --kill-at after_claim` end to end: the HA node's own guard kills it right after it
claimed a duty (the claim held, nothing signed), and the run proves from the duty store's rows that a twin
adopted that claim (or the duty landed on L1 anyway), with every duty on L1, 0 equivocations, the node back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SLOTS_PER_PHASE = 2


def test_a_node_killed_holding_a_claim_has_it_adopted_by_a_twin() -> None:
    # not under pytest's basetemp: concurrent pytest sessions on this machine prune each other's old basetemps
    directory = Path(tempfile.mkdtemp(prefix="hasq-devnet-killat-"))
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ha_sequencer.cli",
                "failover-test",
                "--start",
                "--json",
                "--dir",
                str(directory),
                "--slots",
                str(SLOTS_PER_PHASE),
                "--kill-at",
                "after_claim",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode in (0, 1), run.stdout + run.stderr[-3000:]
        report = json.loads(run.stdout)
        print(json.dumps(report, indent=2))
        assert report["mode"] == "kill" and report["killAt"] == "after_claim"
        assert report["killPointReached"], report["phases"][1]["notes"]
        held = report["heldByStopped"]
        assert held, "the killed node held no claim"
        # the claim it died holding: adopted by a twin (never by itself) or fulfilled on L1
        assert all(h["ok"] for h in held), held
        assert all(h["adoptedBy"] != report["target"] for h in held)
        assert any(h["adoptedBy"] for h in held) or all(h["fulfilled"] for h in held)
        assert not [e for p in report["phases"] for e in p["equivocations"]]
        assert not [s for p in report["phases"] for s in p["slashed"]]
        assert not [m for p in report["phases"] for m in p["missed"]], report["failures"]
        assert report["rejoin"]["ok"] and report["watcher"]["fullCoverage"]
        assert run.returncode == 0 and report["ok"], report["failures"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)

"""`monitor --follow` as a real process: new slots appear as L1 advances; Ctrl-C prints the totals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.protocol.committee import quorum


def test_follow_reports_new_slots_and_totals_on_interrupt(module_anvil) -> None:
    r = deploy_local_rollup(module_anvil, validators=4, committee_size=4, slot_duration=60, epoch_length=4)
    watched = r.validators[0].address  # committee of 4 out of 4: due in every slot
    r.warp_to_slot(2)
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "ha_sequencer.cli",
            "monitor",
            "--attester",
            watched,
            "--rpc-url",
            r.rpc_url,
            "--rollup",
            r.address,
            "--slots",
            "2",
            "--follow",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline:  # slots 0 and 1: no blocks
            time.sleep(0.05)
        assert [(x["slot"], x["attested"]) for x in lines] == [(0, False), (1, False)]
        committee = r.committee(0)
        r.warp_to_slot(2)
        r.propose(r.sign_block(2, attesters=[watched, *[a for a in committee if a != watched]][: quorum(4)]))
        r.warp_to_slot(3)
        r.propose(r.sign_block(3, attesters=[a for a in committee if a != watched][: quorum(4)]))
        r.warp_to_slot(4)
        while len(lines) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(x["slot"], x["block"], x["attested"]) for x in lines[2:]] == [
            (2, True, True),
            (3, True, False),
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("monitor --follow did not stop on SIGINT")
    reader.join(timeout=5)
    assert proc.returncode == 0, proc.stderr.read()
    totals = lines[-1]["totals"]
    assert (totals["slots"], totals["attestationDuties"], totals["attested"]) == (4, 4, 1)
    assert totals["proposerDuties"] == sum(r.proposer(s) == watched for s in range(4))

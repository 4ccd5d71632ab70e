"""Positive control of the equivocation audit: a real double-signature is seen, reported and slashed on L1.

A validator key signs two different attestations for one slot outside any guard; a gossip peer in its own OS
process publishes both. The independent watcher must record the equivocation before any deduplication and
its reporter must submit the proof to `slashDuplicateAttestation`, so `Slashed` fires for that attester: the
`Slashed == []` checks of the system tests and the chaos audit can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ha_sequencer.devnet.slasher import SlashingReporter, devnet_reporter_account
from ha_sequencer.devnet.watcher import ATTESTATION, Watcher, slashed_events
from ha_sequencer.l1.anvil import free_port
from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC
from ha_sequencer.protocol.messages import Attestation, attestation_digest, sign_digest
from ha_sequencer.protocol.wire import SignedAttestation, encode_attestation

pytestmark = pytest.mark.slow

FOREIGN_SIGNER = Path(__file__).parent.parent / "node" / "foreign_signer.py"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_equivocation_is_reported_and_slashed(anvil, tmp_path: Path) -> None:
    rollup = deploy_local_rollup(anvil, validators=4, committee_size=4, slot_duration=60, epoch_length=4)
    rollup.warp_to_slot(1)
    culprit = rollup.validators[2]
    key = tmp_path / "p2p-key"
    peer_id = peer_id_of(load_or_create_peer_key(key))
    port = free_port()
    signer = subprocess.Popen(
        [sys.executable, str(FOREIGN_SIGNER), "--key", str(key), "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    reporter = SlashingReporter(rollup.client, devnet_reporter_account())
    peer = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}"
    watcher = Watcher(rollup.params, [peer], key_dir=tmp_path, on_equivocation=reporter)
    try:
        watcher.start()
        assert signer.stdout is not None and signer.stdin is not None
        assert signer.stdout.readline().strip() == "ready"
        slot = 3
        for archive in (b"\xaa" * 32, b"\xbb" * 32):  # two digests for one duty: the offence
            signature = sign_digest(culprit, attestation_digest(rollup.params, Attestation(slot, archive)))
            data = encode_attestation(SignedAttestation(slot, archive, signature))
            signer.stdin.write(f"{ATTESTATION_TOPIC} {data.hex()}\n")
            signer.stdin.flush()
            assert signer.stdout.readline().startswith("published")
        [found] = _wait(lambda: watcher.ledger.equivocations(), 20, "the watcher to see the equivocation")
        assert (found.attester, found.slot, found.duty) == (culprit.address, slot, ATTESTATION)
        assert reporter.drain(30)
        [sent] = reporter.submissions
        assert sent.error is None and sent.function == "slashDuplicateAttestation", sent
        [slashed] = slashed_events(anvil.rpc_url, rollup.address)
        assert (slashed.attester, slashed.slot) == (culprit.address, slot)
        assert slashed.reporter == devnet_reporter_account().address
    finally:
        watcher.stop()
        assert signer.stdin is not None
        signer.stdin.close()
        signer.terminate()
        signer.wait(10)

"""`ha-db import --from-aztec`: Aztec's own HA signer (@aztec/validator-ha-signer 4.1.2, run by node against
a real PostgreSQL database) signs duties; the import puts them into our store; our guard then refuses a
different digest at those slots and answers the same digest with the same signature — the one our key makes.

The digests Aztec signs here are our own EIP-712 digests (a Proposal and Attestations of this rollup): "the
same digest" means the same 32 bytes handed to the key, whichever system computed them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import BelowWatermark, DutyType, NewSignature, Refused, SameData
from ha_sequencer.protocol.messages import (
    Attestation,
    Proposal,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from params_fixtures import PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
ROLLUP = PARAMS.rollup.lower()


@pytest.fixture(scope="module")
def aztec_modules() -> Path:
    result = subprocess.run(
        [str(REPO / "scripts" / "ensure-aztec.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1]) / "node_modules"


def aztec_sign(modules: Path, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Run Aztec's signer over `request` (stdin: it holds a key and the database URL); its per-duty lines."""
    result = subprocess.run(
        ["node", str(REPO / "tests" / "aztec" / "sign_duties.mjs"), str(modules)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def cli(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def _proposal(slot: int, archive: bytes) -> bytes:
    return proposal_digest(PARAMS, Proposal(slot, b"\x01" * 32, archive, b"\x02" * 32, b"\x03" * 32))


def _attestation(slot: int, archive: bytes) -> bytes:
    return attestation_digest(PARAMS, Attestation(slot, archive))


def test_aztec_history_closes_its_slots_in_our_guard(
    aztec_modules: Path, pg_url: str, store_url: str
) -> None:
    attester = Account.create()
    key = "0x" + bytes(attester.key).hex()
    proposal_10 = _proposal(10, b"\xaa" * 32)
    attest_11 = attestation_digest(PARAMS, Attestation(11, b"\xbb" * 32))
    attest_12 = attestation_digest(PARAMS, Attestation(12, b"\xcc" * 32))
    base = {"databaseUrl": pg_url, "rollup": ROLLUP, "nodeId": "aztec-node-1", "attesterKey": key}
    signed = aztec_sign(
        aztec_modules,
        {
            **base,
            "duties": [
                {"slot": 10, "dutyType": "CHECKPOINT_PROPOSAL", "messageHash": "0x" + proposal_10.hex()},
                {"slot": 10, "dutyType": "BLOCK_PROPOSAL", "messageHash": "0x" + "d1" * 32},
                {
                    "slot": 10,
                    "dutyType": "BLOCK_PROPOSAL",
                    "messageHash": "0x" + "d2" * 32,
                    "blockIndexWithinCheckpoint": 1,
                },
                {"slot": 11, "dutyType": "ATTESTATION", "messageHash": "0x" + attest_11.hex()},
                {"slot": 12, "dutyType": "ATTESTATION", "messageHash": "0x" + attest_12.hex()},
                {"slot": 12, "dutyType": "GOVERNANCE_VOTE", "messageHash": "0x" + "e1" * 32},
                {"slot": 14, "dutyType": "BLOCK_PROPOSAL", "messageHash": "0x" + "d3" * 32},
                # Aztec's own protection: a second node asked for a different proposal at slot 10 is refused
                {"slot": 10, "dutyType": "CHECKPOINT_PROPOSAL", "messageHash": "0x" + "ee" * 32},
            ],
        },  # fmt: skip
    )
    assert [s.get("error") for s in signed] == [None] * 7 + ["SlashingProtectionError"]
    # a node that dies inside the signing callback: its row stays `signing`
    crashed = aztec_sign(
        aztec_modules,
        {**base, "nodeId": "aztec-node-2",
         "duties": [{"slot": 16, "dutyType": "ATTESTATION", "messageHash": "0x" + "f1" * 32, "crash": True}]},
    )  # fmt: skip
    assert crashed == [{"slot": 16, "dutyType": "ATTESTATION", "crashed": True}]
    aztec_signature = {(s["slot"], s["dutyType"]): bytes.fromhex(s["signature"][2:]) for s in signed[:7]}

    store = open_store(store_url, migrate=True)
    store.close()
    result = cli("ha-db", "import", "--db", store_url, env={"HA_SEQUENCER_AZTEC_DB": pg_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported 3 of 3 signed duties" in result.stdout
    assert "GOVERNANCE_VOTE row(s) not imported" in result.stdout
    assert "slot 16 ATTESTATION is still 'signing'" in result.stderr

    store = open_store(store_url)
    try:
        guard = DutyGuard(store, node_id="ours-1", rollup=ROLLUP)
        ours = attester.address

        def ask(slot: int, duty: DutyType, digest: bytes) -> Any:
            return guard.sign_duty(ours, slot, duty, digest, b"payload", lambda d: sign_digest(attester, d))

        # a different digest at a slot Aztec signed: refused
        assert isinstance(ask(10, DutyType.BLOCK_PROPOSAL, _proposal(10, b"\x99" * 32)), Refused)
        assert isinstance(ask(11, DutyType.ATTESTATION, _attestation(11, b"\x98" * 32)), Refused)
        # the same digest: Aztec's signature, which is exactly what our key makes of those 32 bytes
        same = ask(10, DutyType.BLOCK_PROPOSAL, proposal_10)
        assert isinstance(same, SameData)
        assert (
            same.signature == aztec_signature[10, "CHECKPOINT_PROPOSAL"] == sign_digest(attester, proposal_10)
        )
        same = ask(12, DutyType.ATTESTATION, attest_12)
        assert isinstance(same, SameData) and same.signature == sign_digest(attester, attest_12)
        # slots Aztec touched without a duty of ours to answer with: closed by the watermarks
        assert isinstance(ask(14, DutyType.BLOCK_PROPOSAL, _proposal(14, b"\x97" * 32)), BelowWatermark)
        assert isinstance(ask(16, DutyType.ATTESTATION, _attestation(16, b"\x96" * 32)), BelowWatermark)
        assert isinstance(ask(13, DutyType.ATTESTATION, b"\x95" * 32), BelowWatermark)  # below the mark too
        # after Aztec's last slot the identity signs as usual
        assert isinstance(ask(17, DutyType.ATTESTATION, _attestation(17, b"\x94" * 32)), NewSignature)
    finally:
        store.close()

    # importing again changes nothing
    again = cli("ha-db", "import", "--db", store_url, "--from-aztec", pg_url, env={})
    assert again.returncode == 0 and "imported 0 of 3" in again.stdout, again.stdout + again.stderr

"""The detector in a node: real gossip validators, a real duty store, and the evidence it writes checked
against the real Rollup on anvil (submitting it slashes the attester: exactly what could be used against us).

- a second, different message of our attester seen on gossip (which gossip itself then ignores) halts it, with
  both messages in the form the L1 slashing functions take;
- our own messages, forged ones (a signature that is not our key's) and old replays halt nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from eth_account import Account
from web3.logs import DISCARD

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.killswitch import JUDGE_BEHIND, KillSwitch
from ha_sequencer.ha.outcomes import DutyType, NewSignature
from ha_sequencer.localnet.rollup import LocalRollup, deploy_local_rollup
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.detector import Detector
from ha_sequencer.node.gossip_checks import GossipChecks
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.messages import (
    Attestation,
    Proposal,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    attestation_payload,
    encode_attestation,
    encode_block,
    encode_signed_block,
)

SLOT = 40


@pytest.fixture
def rollup(anvil) -> LocalRollup:
    r = deploy_local_rollup(anvil, validators=4, committee_size=4, slot_duration=60, epoch_length=4)
    r.warp_to_slot(SLOT)
    return r


class Node:
    """What a node wires around its detector: store, guard, kill switch, gossip validators."""

    def __init__(self, rollup: LocalRollup, tmp_path: Path, attester) -> None:
        self.params = rollup.params
        self.attester = attester
        self.store = open_store(f"sqlite:///{tmp_path / 'duties.sqlite'}", migrate=True)
        self.guard = DutyGuard(self.store, node_id="ha1", rollup=rollup.address)
        self.metrics = NodeMetrics()
        self.detector = Detector(
            params=self.params,
            killswitch=KillSwitch(self.store, rollup=rollup.address, node_id="ha1"),
            attesters=[attester.address],
            current_slot=lambda: SLOT,
            metrics=self.metrics,
        )
        self.checks = GossipChecks(
            self.params, CommitteeCache(self.params), lambda: SLOT, sightings=self.detector
        )

    def sign_attestation(self, slot: int, archive: bytes) -> bytes:
        digest = attestation_digest(self.params, Attestation(slot, archive))
        out = self.guard.sign_duty(
            self.attester.address,
            slot,
            DutyType.ATTESTATION,
            digest,
            attestation_payload(slot, archive),
            lambda dg: sign_digest(self.attester, dg),
        )
        assert isinstance(out, NewSignature)
        return encode_attestation(SignedAttestation(slot, archive, out.signature))

    def run(self, gossip: list[bytes], *, judged: int, topic: str = "attestation") -> None:
        """Feed messages to the validators; return once the detector judged `judged` of them."""
        check = self.checks.check_attestation if topic == "attestation" else self.checks.check_proposal

        async def scenario() -> None:
            async with trio.open_nursery() as n:
                await n.start(self.detector.run)
                for data in gossip:
                    check(data, "peer-x")
                with trio.fail_after(10):
                    while sum(self.verdicts().values()) < judged:
                        await trio.sleep(0.01)
                await trio.sleep(0.1)  # nothing else arrives
                n.cancel_scope.cancel()

        trio.run(scenario)

    def verdicts(self) -> dict[str, float]:
        return {
            s.labels["verdict"]: s.value
            for m in self.metrics.detector.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }


def test_a_second_attestation_of_ours_halts_and_its_evidence_slashes_on_l1(rollup, tmp_path) -> None:
    attester = rollup.validators[0]
    node = Node(rollup, tmp_path, attester)
    ours = node.sign_attestation(SLOT, b"\xaa" * 32)
    foreign_sig = sign_digest(attester, attestation_digest(rollup.params, Attestation(SLOT, b"\xbb" * 32)))
    foreign = encode_attestation(SignedAttestation(SLOT, b"\xbb" * 32, foreign_sig))
    node.run([ours, foreign], judged=2)

    assert node.verdicts() == {"ours": 1.0, "foreign": 1.0}
    [halt] = node.store.active_halts(rollup.address.lower(), [attester.address.lower()])
    assert f"foreign signature for slot {SLOT} (attestation) by {attester.address}" in halt.reason
    assert "seen on gossip (peer-x)" in halt.reason
    evidence = json.loads(halt.evidence)
    assert evidence["foreign"]["message"] == {"slot": SLOT, "archive": "0x" + "bb" * 32}
    assert evidence["ours"]["message"] == {"slot": SLOT, "archive": "0x" + "aa" * 32}
    assert evidence["slashing"]["function"] == "slashDuplicateAttestation"

    # the evidence is exactly what L1 takes: submitting it slashes the identity
    a, sig_a, b, sig_b = evidence["slashing"]["args"]
    reporter = rollup.anvil.accounts[5]
    tx = rollup.client.slash_duplicate_attestation(
        reporter,
        Attestation(a["slot"], bytes.fromhex(a["archive"][2:])),
        bytes.fromhex(sig_a[2:]),
        Attestation(b["slot"], bytes.fromhex(b["archive"][2:])),
        bytes.fromhex(sig_b[2:]),
    )
    receipt = rollup.client.wait_receipt(tx, 30)
    [log] = rollup.client.contract.events.Slashed().process_receipt(receipt, errors=DISCARD)
    assert log["args"]["attester"] == attester.address

    # every twin's guard now refuses this attester
    out = node.guard.sign_duty(
        attester.address, SLOT + 1, DutyType.ATTESTATION, b"\x01" * 32, b"", lambda d: b""
    )
    assert type(out).__name__ == "Halted"


def test_a_foreign_proposal_before_ours_halts_with_only_its_own_message(rollup, tmp_path) -> None:
    attester = rollup.validators[1]
    node = Node(rollup, tmp_path, attester)
    block = Block(SLOT, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"")
    signature = sign_digest(attester, proposal_digest(rollup.params, block.proposal))
    node.run([encode_signed_block(SignedBlock(block, signature))], judged=1, topic="proposal")
    [halt] = node.store.active_halts(rollup.address.lower(), [])
    evidence = json.loads(halt.evidence)
    assert evidence["kind"] == "block_proposal" and evidence["ours"] is None and evidence["slashing"] is None
    assert evidence["foreign"]["message"]["feeRecipient"] == "0x" + "03" * 32
    # the fleet's own proposal for that slot is now refused: the halt came first
    digest = proposal_digest(
        rollup.params, Proposal(SLOT, b"\x01" * 32, b"\x09" * 32, b"\x03" * 32, b"\x03" * 32)
    )
    out = node.guard.sign_duty(
        attester.address, SLOT, DutyType.BLOCK_PROPOSAL, digest, encode_block(block), lambda d: b""
    )
    assert type(out).__name__ == "Halted"


def test_our_own_messages_forgeries_and_old_replays_halt_nothing(rollup, tmp_path) -> None:
    attester = rollup.validators[2]
    node = Node(rollup, tmp_path, attester)
    ours = node.sign_attestation(SLOT, b"\xaa" * 32)
    # a copy re-gossiped by a twin, byte for byte, and a "forgery": another key's signature over a message
    # that differs from ours — it recovers to that key, not to our attester, so it is nobody's business here
    impostor = Account.create()
    forged_sig = sign_digest(impostor, attestation_digest(rollup.params, Attestation(SLOT, b"\xcc" * 32)))
    forged = encode_attestation(SignedAttestation(SLOT, b"\xcc" * 32, forged_sig))
    garbage = encode_attestation(SignedAttestation(SLOT, b"\xcc" * 32, b"\x01" * 65))  # rejected on decode
    # a real old message of ours for a slot far behind: outside the horizon, never judged
    old_slot = SLOT - JUDGE_BEHIND - 1
    old_sig = sign_digest(attester, attestation_digest(rollup.params, Attestation(old_slot, b"\xdd" * 32)))
    old = encode_attestation(SignedAttestation(old_slot, b"\xdd" * 32, old_sig))
    node.run([ours, ours, forged, garbage, old], judged=2)
    assert node.verdicts() == {"ours": 1.0, "not_judged": 1.0}
    assert node.store.halts() == []

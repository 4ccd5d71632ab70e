"""Rollup.propose against a real anvil: the valid path, and every revert decoded by name."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.l1 import errors as E
from ha_sequencer.localnet.rollup import LocalRollup, deploy_local_rollup
from ha_sequencer.protocol.committee import quorum
from ha_sequencer.protocol.messages import PROPOSAL_TYPEHASH, Proposal, proposal_digest, sign_digest

SLOT = 60  # long slots: "current slot" stays put while a test runs


@pytest.fixture
def rollup(module_anvil) -> LocalRollup:
    r = deploy_local_rollup(module_anvil, validators=6, committee_size=4, slot_duration=SLOT, epoch_length=4)
    r.warp_to_slot(1)
    return r


def outsider(r: LocalRollup, epoch: int) -> str:
    return next(v.address for v in r.validators if v.address not in r.committee(epoch))


def test_valid_propose_lands_and_emits_event(rollup: LocalRollup) -> None:
    genesis = rollup.client.tips()
    assert genesis.block_number == 0 and genesis.last_slot == 0
    block = rollup.sign_block(1, txs=b"\x01\x02tx-bytes", fee_recipient=b"\x11" * 32)
    publisher = rollup.anvil.accounts[3]  # any funded account may publish
    receipt = rollup.propose(block, publisher=publisher)
    assert receipt["status"] == 1
    tips = rollup.client.tips()
    assert tips == (1, block.proposal.archive, 1)
    assert rollup.client.get_block(1) == (block.proposal.archive, 1, rollup.proposer(1))
    [event] = rollup.client.block_proposed_events(receipt["blockNumber"], receipt["blockNumber"])
    assert event.slot == 1 and event.block_number == 1 and event.archive == block.proposal.archive
    assert event.proposer == rollup.proposer(1) and event.publisher == publisher.address
    committee = rollup.committee(0)
    assert list(event.attesters) == committee[: quorum(len(committee))]
    assert event.txs == b"\x01\x02tx-bytes" and event.proposal.fee_recipient == b"\x11" * 32
    assert event.proposal == block.proposal


def test_second_proposal_in_slot_reverts_with_slot_already_in_chain(rollup: LocalRollup) -> None:
    rollup.propose(rollup.sign_block(1))
    other = rollup.sign_block(1, parent_archive=rollup.client.get_block(0).archive, archive=b"\x22" * 32)
    with pytest.raises(E.SlotAlreadyInChain) as info:
        rollup.propose(other)
    assert (info.value.last_slot, info.value.slot) == (1, 1)
    assert info.value.solidity_name == "Rollup__SlotAlreadyInChain"


def test_lost_race_mined_tx_is_decoded_from_the_receipt(rollup: LocalRollup) -> None:
    """Two publishers send the same slot without simulation; the loser's mined revert is decoded by name."""
    block = rollup.sign_block(1)
    c = rollup.client
    args = (block.proposal, block.proposer_signature, block.attestations, block.txs)
    first = c.propose(rollup.anvil.accounts[1], *args, gas=1_000_000)
    second = c.propose(rollup.anvil.accounts[2], *args, gas=1_000_000)
    assert c.wait_receipt(first, 10)["status"] == 1
    with pytest.raises(E.SlotAlreadyInChain):
        c.wait_receipt(second, 10)
    assert c.wait_receipt(second, 10, raise_on_revert=False)["status"] == 0


def test_wrong_proposer(rollup: LocalRollup) -> None:
    block = rollup.sign_block(1)
    not_proposer = next(a for a in rollup.committee(0) if a != rollup.proposer(1))
    sig = sign_digest(rollup.key_of(not_proposer), proposal_digest(rollup.params, block.proposal))
    with pytest.raises(E.InvalidProposer) as info:
        rollup.propose(dataclasses.replace(block, proposer_signature=sig))
    assert info.value.expected == rollup.proposer(1) and info.value.signer == not_proposer


def test_a_gossiped_quorum_resubmitted_with_another_fee_recipient_reverts(rollup: LocalRollup) -> None:
    """Front-running: the proposer's signed block and its quorum, resent paying someone else, cannot land."""
    block = rollup.sign_block(1, txs=b"fees", fee_recipient=b"\x11" * 32)
    stolen = dataclasses.replace(block.proposal, fee_recipient=b"\x66" * 32)
    # the proposer signature no longer recovers to the proposer (the revert names whom it recovers to)
    with pytest.raises(E.InvalidProposer) as info:
        rollup.propose(dataclasses.replace(block, proposal=stolen))
    assert info.value.expected == rollup.proposer(1) and info.value.signer != rollup.proposer(1)
    assert rollup.client.tips().block_number == 0
    receipt = rollup.propose(block)  # the genuine one still lands
    [event] = rollup.client.block_proposed_events(receipt["blockNumber"], receipt["blockNumber"])
    assert event.proposal.fee_recipient == b"\x11" * 32


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:64] + bytes([29]),  # v not 27/28
        lambda s: s[:64],  # too short
        lambda s: bytes(32) + s[32:],  # r = 0
        lambda s: (
            s[:32]
            + (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140).to_bytes(32, "big")
            + s[64:]
        ),  # high s
    ],
    ids=["bad-v", "short", "zero-r", "high-s"],
)
def test_bad_proposer_signature(rollup: LocalRollup, mangle) -> None:
    block = rollup.sign_block(1)
    with pytest.raises(E.InvalidProposerSignature):
        rollup.propose(dataclasses.replace(block, proposer_signature=mangle(block.proposer_signature)))


def test_too_few_attestations(rollup: LocalRollup) -> None:
    committee = rollup.committee(0)
    block = rollup.sign_block(1, attesters=committee[: quorum(len(committee)) - 1])
    with pytest.raises(E.InsufficientAttestations) as info:
        rollup.propose(block)
    assert (info.value.required, info.value.given) == (quorum(4), quorum(4) - 1)


def test_attester_outside_committee(rollup: LocalRollup) -> None:
    committee = rollup.committee(0)
    stranger = outsider(rollup, 0)
    block = rollup.sign_block(1, attesters=[*committee[: quorum(4) - 1], stranger])
    with pytest.raises(E.NotCommitteeMember) as info:
        rollup.propose(block)
    assert info.value.attester == stranger


def test_unregistered_signer_is_not_a_committee_member(rollup: LocalRollup) -> None:
    block = rollup.sign_block(1)
    from ha_sequencer.protocol.messages import Attestation, attestation_digest

    digest = attestation_digest(rollup.params, Attestation(1, block.proposal.archive))
    nobody = Account.from_key(keccak(b"nobody"))
    with pytest.raises(E.NotCommitteeMember):
        rollup.propose(
            dataclasses.replace(block, attestations=[*block.attestations, sign_digest(nobody, digest)])
        )


def test_duplicated_attester(rollup: LocalRollup) -> None:
    committee = rollup.committee(0)
    block = rollup.sign_block(1, attesters=[*committee[: quorum(4) - 1], committee[0]])
    with pytest.raises(E.DuplicateAttester) as info:
        rollup.propose(block)
    assert info.value.attester == committee[0]


def test_malformed_attestation(rollup: LocalRollup) -> None:
    block = rollup.sign_block(1)
    bad = [*block.attestations[:-1], block.attestations[-1][:64] + b"\x05"]
    with pytest.raises(E.InvalidAttestationSignature) as info:
        rollup.propose(dataclasses.replace(block, attestations=bad))
    assert info.value.index == len(bad) - 1


def test_wrong_parent(rollup: LocalRollup) -> None:
    block = rollup.sign_block(1, parent_archive=b"\x33" * 32)
    with pytest.raises(E.InvalidParentArchive) as info:
        rollup.propose(block)
    assert info.value.expected == rollup.client.tips().archive and info.value.given == b"\x33" * 32


def test_txs_hash_mismatch(rollup: LocalRollup) -> None:
    block = rollup.sign_block(1, txs=b"signed txs")
    with pytest.raises(E.TxsHashMismatch) as info:
        rollup.propose(dataclasses.replace(block, txs=b"other txs"))
    assert info.value.expected == keccak(b"signed txs") and info.value.actual == keccak(b"other txs")


def test_past_slot(rollup: LocalRollup) -> None:
    rollup.warp_to_slot(3)
    block = rollup.sign_block(2)  # after the tip (slot 0), before the current slot 3
    with pytest.raises(E.NotCurrentSlot) as info:
        rollup.propose(block)
    assert (info.value.current_slot, info.value.slot) == (3, 2)


def test_future_slot(rollup: LocalRollup) -> None:
    block = rollup.sign_block(2)
    with pytest.raises(E.NotCurrentSlot) as info:
        rollup.propose(block)
    assert (info.value.current_slot, info.value.slot) == (1, 2)


def test_chain_of_blocks_across_epochs(rollup: LocalRollup) -> None:
    """Blocks extend the tip slot by slot, also across an epoch boundary (new committee, new proposer)."""
    for slot in (1, 2, 5, 9):
        rollup.warp_to_slot(slot)
        rollup.propose(rollup.sign_block(slot, txs=bytes([slot])))
    assert rollup.client.tips().block_number == 4
    events = rollup.client.block_proposed_events(0)
    assert [e.slot for e in events] == [1, 2, 5, 9]
    assert [e.proposer for e in events] == [rollup.proposer(s) for s in (1, 2, 5, 9)]
    parents = [e.proposal.parent_archive for e in events]
    assert parents[1:] == [e.archive for e in events[:-1]]


def test_contract_digests_match_python(rollup: LocalRollup) -> None:
    from ha_sequencer.protocol.messages import Attestation, attestation_digest

    p = Proposal(7, b"\x01" * 32, b"\x02" * 32, txs_hash=b"\x03" * 32, fee_recipient=b"\x04" * 32)
    other_recipient = dataclasses.replace(p, fee_recipient=b"\x05" * 32)
    a = Attestation(slot=7, archive=b"\x02" * 32)
    view = rollup.client._call(
        "digests",
        lambda w3, c: (
            c.functions.hashProposal(p.as_abi()).call(),
            c.functions.hashProposal(other_recipient.as_abi()).call(),
            c.functions.hashAttestation(a.as_abi()).call(),
            c.functions.PROPOSAL_TYPEHASH().call(),
        ),
    )
    assert bytes(view[0]) == proposal_digest(rollup.params, p)
    assert bytes(view[1]) == proposal_digest(rollup.params, other_recipient) != bytes(view[0])
    assert bytes(view[2]) == attestation_digest(rollup.params, a)
    assert bytes(view[3]) == PROPOSAL_TYPEHASH


def test_before_genesis_is_a_named_error(module_anvil) -> None:
    future = module_anvil.latest_timestamp() + 10_000
    r = deploy_local_rollup(module_anvil, validators=4, slot_duration=SLOT, genesis_time=future)
    with pytest.raises(E.BeforeGenesis):
        r.client.current_slot()


def test_wrong_committee_calldata(rollup: LocalRollup) -> None:
    """The committee passed as calldata must hash to the epoch's commitment, before and after it is stored."""
    block = rollup.sign_block(1)
    c = rollup.client
    right = rollup.committee(0)
    wrong = [*right[:-1], outsider(rollup, 0)]
    args = (block.proposal, block.proposer_signature, block.attestations, block.txs)
    with pytest.raises(E.InvalidCommittee) as info:
        c.propose(rollup.deployer, *args, committee=wrong)
    assert info.value.epoch == 0
    assert c._call("commitment", lambda w3, k: k.functions.getCommitteeCommitment(0).call()) == bytes(32)
    c.wait_receipt(c.propose(rollup.deployer, *args, committee=right), 10)
    assert c._call("commitment", lambda w3, k: k.functions.getCommitteeCommitment(0).call()) != bytes(32)
    rollup.warp_to_slot(2)
    second = rollup.sign_block(2)
    args = (second.proposal, second.proposer_signature, second.attestations, second.txs)
    with pytest.raises(E.InvalidCommittee):
        c.propose(rollup.deployer, *args, committee=list(reversed(right)))
    c.wait_receipt(c.propose(rollup.deployer, *args), 10)


def test_empty_committee(module_anvil) -> None:
    r = deploy_local_rollup(module_anvil, validators=0, slot_duration=SLOT)
    r.warp_to_slot(1)
    p = Proposal(1, r.client.tips().archive, b"\x01" * 32, txs_hash=keccak(b""), fee_recipient=bytes(32))
    sig = sign_digest(r.anvil.accounts[1], proposal_digest(r.params, p))
    with pytest.raises(E.EmptyCommittee):
        r.client.propose(r.deployer, p, sig, [], b"")

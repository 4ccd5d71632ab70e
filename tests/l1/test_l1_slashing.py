"""Slashing on a real anvil: real double-signing is punished, everything else reverts by name."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from ha_sequencer.l1 import errors as E
from ha_sequencer.localnet.rollup import LocalRollup, deploy_local_rollup
from ha_sequencer.protocol.constants import BPS, SLASH_REPORTER_SHARE_BPS
from ha_sequencer.protocol.messages import (
    Attestation,
    Proposal,
    attestation_digest,
    proposal_digest,
    sign_digest,
)

MIN_STAKE = 10**18
SLASH = 4 * 10**17


@pytest.fixture
def rollup(module_anvil) -> LocalRollup:
    r = deploy_local_rollup(
        module_anvil,
        validators=4,
        committee_size=4,
        slot_duration=60,
        epoch_length=4,
        min_stake=MIN_STAKE,
        slash_amount=SLASH,
    )
    r.warp_to_slot(1)
    return r


def proposal(slot: int, archive: bytes, fee_recipient: bytes = b"\x0e" * 32) -> Proposal:
    return Proposal(
        slot=slot,
        parent_archive=b"\x00" * 32,
        archive=archive,
        txs_hash=b"\x0f" * 32,
        fee_recipient=fee_recipient,
    )


def signed_proposal(r: LocalRollup, signer, p: Proposal) -> bytes:
    return sign_digest(signer, proposal_digest(r.params, p))


def signed_attestation(r: LocalRollup, signer, a: Attestation) -> bytes:
    return sign_digest(signer, attestation_digest(r.params, a))


def test_duplicate_proposal_slashes_and_pays_reporter(rollup: LocalRollup) -> None:
    c = rollup.client
    culprit = rollup.validators[1]
    reporter = rollup.anvil.accounts[5]
    a, b = proposal(3, b"\xaa" * 32), proposal(3, b"\xbb" * 32)
    before = c.balance(reporter.address)
    tx = c.slash_duplicate_proposal(
        reporter, a, signed_proposal(rollup, culprit, a), b, signed_proposal(rollup, culprit, b)
    )
    receipt = c.wait_receipt(tx, 10)
    reward = SLASH * SLASH_REPORTER_SHARE_BPS // BPS
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert c.balance(reporter.address) == before - gas_cost + reward
    assert c.validator(culprit.address).stake == MIN_STAKE - SLASH
    contract = c.contract
    [log] = contract.events.Slashed().process_receipt(receipt, errors=DISCARD)
    assert log["args"]["attester"] == culprit.address and log["args"]["offense"] == 0
    assert log["args"]["slot"] == 3 and log["args"]["reporter"] == reporter.address
    # The same offence cannot be paid twice.
    with pytest.raises(E.AlreadySlashed):
        c.slash_duplicate_proposal(
            reporter, b, signed_proposal(rollup, culprit, b), a, signed_proposal(rollup, culprit, a)
        )


def test_two_proposals_that_differ_only_in_fee_recipient_are_an_equivocation(rollup: LocalRollup) -> None:
    # the fee recipient is signed: one block paying two recipients is two messages for one slot
    culprit = rollup.validators[3]
    a, b = proposal(4, b"\xaa" * 32, b"\x01" * 32), proposal(4, b"\xaa" * 32, b"\x02" * 32)
    tx = rollup.client.slash_duplicate_proposal(
        rollup.deployer, a, signed_proposal(rollup, culprit, a), b, signed_proposal(rollup, culprit, b)
    )
    assert rollup.client.wait_receipt(tx, 10)["status"] == 1
    assert rollup.client.validator(culprit.address).stake == MIN_STAKE - SLASH


def test_duplicate_attestation_slashes_and_schedules_exit_below_min_stake(rollup: LocalRollup) -> None:
    c = rollup.client
    culprit = rollup.validators[2]
    reporter = rollup.anvil.accounts[6]
    a, b = Attestation(5, b"\x01" * 32), Attestation(5, b"\x02" * 32)
    tx = c.slash_duplicate_attestation(
        reporter, a, signed_attestation(rollup, culprit, a), b, signed_attestation(rollup, culprit, b)
    )
    receipt = c.wait_receipt(tx, 10)
    contract = c.contract
    [log] = contract.events.Slashed().process_receipt(receipt, errors=DISCARD)
    assert log["args"]["offense"] == 1 and log["args"]["reward"] == SLASH * SLASH_REPORTER_SHARE_BPS // BPS
    info = c.validator(culprit.address)
    assert info.stake == MIN_STAKE - SLASH
    assert info.exit_epoch == c.current_epoch() + 2  # below the minimum stake: leaves the set two epochs on
    assert culprit.address in c.active_attesters(info.exit_epoch - 1)
    assert culprit.address not in c.active_attesters(info.exit_epoch)


def test_identical_messages_revert(rollup: LocalRollup) -> None:
    v = rollup.validators[0]
    a = proposal(3, b"\xaa" * 32)
    sig = signed_proposal(rollup, v, a)
    with pytest.raises(E.IdenticalMessages):
        rollup.client.slash_duplicate_proposal(rollup.deployer, a, sig, a, sig)
    att = Attestation(3, b"\xaa" * 32)
    asig = signed_attestation(rollup, v, att)
    with pytest.raises(E.IdenticalMessages):
        rollup.client.slash_duplicate_attestation(rollup.deployer, att, asig, att, asig)


def test_different_slots_revert(rollup: LocalRollup) -> None:
    v = rollup.validators[0]
    a, b = proposal(3, b"\xaa" * 32), proposal(4, b"\xbb" * 32)
    with pytest.raises(E.DifferentSlots) as info:
        rollup.client.slash_duplicate_proposal(
            rollup.deployer, a, signed_proposal(rollup, v, a), b, signed_proposal(rollup, v, b)
        )
    assert (info.value.slot_a, info.value.slot_b) == (3, 4)
    x, y = Attestation(3, b"\x01" * 32), Attestation(4, b"\x01" * 32)
    with pytest.raises(E.DifferentSlots):
        rollup.client.slash_duplicate_attestation(
            rollup.deployer, x, signed_attestation(rollup, v, x), y, signed_attestation(rollup, v, y)
        )


def test_different_signers_revert(rollup: LocalRollup) -> None:
    v0, v1 = rollup.validators[0], rollup.validators[1]
    a, b = proposal(3, b"\xaa" * 32), proposal(3, b"\xbb" * 32)
    with pytest.raises(E.DifferentSigners) as info:
        rollup.client.slash_duplicate_proposal(
            rollup.deployer, a, signed_proposal(rollup, v0, a), b, signed_proposal(rollup, v1, b)
        )
    assert (info.value.signer_a, info.value.signer_b) == (v0.address, v1.address)
    x, y = Attestation(3, b"\x01" * 32), Attestation(3, b"\x02" * 32)
    with pytest.raises(E.DifferentSigners):
        rollup.client.slash_duplicate_attestation(
            rollup.deployer, x, signed_attestation(rollup, v0, x), y, signed_attestation(rollup, v1, y)
        )
    assert rollup.client.validator(v0.address).stake == MIN_STAKE  # nothing slashed


def test_equivocation_by_a_non_validator_has_nothing_to_slash(rollup: LocalRollup) -> None:
    stranger = rollup.anvil.accounts[7]
    a, b = proposal(3, b"\xaa" * 32), proposal(3, b"\xbb" * 32)
    with pytest.raises(E.NothingToSlash):
        rollup.client.slash_duplicate_proposal(
            rollup.deployer, a, signed_proposal(rollup, stranger, a), b, signed_proposal(rollup, stranger, b)
        )

"""Python and Solidity agree on committees and proposers; the active set changes two epochs ahead."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.l1 import errors as E
from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.protocol.committee import committee_for, proposer_for
from ha_sequencer.protocol.messages import Attestation, attestation_digest, sign_digest

EPOCHS = 50
EPOCH_LENGTH = 2


@pytest.mark.parametrize(("validators", "committee_size"), [(4, 48), (10, 48), (10, 4), (100, 48), (200, 48)])
def test_committee_and_proposer_parity(module_anvil, validators: int, committee_size: int) -> None:
    r = deploy_local_rollup(
        module_anvil,
        validators=validators,
        committee_size=committee_size,
        epoch_length=EPOCH_LENGTH,
        genesis_seed=keccak(f"parity {validators}".encode()),
    )
    active = [v.address for v in r.validators]
    assert r.client.active_attesters(0) == active
    seen_members: set[str] = set()
    for epoch in range(EPOCHS):
        expected = committee_for(epoch, active, committee_size, r.params.genesis_seed)
        assert len(expected) == min(validators, committee_size) == len(set(expected))
        assert r.client.epoch_committee(epoch) == expected, f"epoch {epoch}"
        seen_members.update(expected)
        for slot in range(epoch * EPOCH_LENGTH, (epoch + 1) * EPOCH_LENGTH):
            assert r.client.proposer(slot) == proposer_for(
                slot, EPOCH_LENGTH, expected, r.params.genesis_seed
            )
    if committee_size < validators:
        assert seen_members == set(active)  # sampling reaches everyone over 50 epochs


def test_deposit_and_exit_take_effect_two_epochs_later(module_anvil) -> None:
    r = deploy_local_rollup(module_anvil, validators=4, committee_size=3, slot_duration=60, epoch_length=4)
    c = r.client
    r.warp_to_slot(4 * 3 + 1)  # epoch 3
    newcomer = Account.from_key(keccak(b"newcomer"))
    funder = r.anvil.accounts[4]
    c.wait_receipt(c.deposit(funder, newcomer.address, funder.address, b"\x07" * 32, 10**18), 10)
    info = c.validator(newcomer.address)
    assert info.activation_epoch == 5 and info.stake == 10**18 and info.bls_public == b"\x07" * 32
    genesis = [v.address for v in r.validators]
    assert c.active_attesters(4) == genesis
    assert c.active_attesters(5) == [*genesis, newcomer.address]
    for epoch in (3, 4, 5, 6):
        expected = committee_for(epoch, c.registry(), 3, r.params.genesis_seed)
        assert c.epoch_committee(epoch) == expected
        assert set(expected) <= set(c.active_attesters(epoch))

    leaver = r.validators[1].address
    c.wait_receipt(c.initiate_exit(r.deployer, leaver), 10)  # the deployer is the genesis withdrawer
    assert c.validator(leaver).exit_epoch == 5
    assert leaver in c.active_attesters(4) and leaver not in c.active_attesters(5)
    registry = c.registry()
    for epoch in range(3, 40):  # an exited and a not-yet-active entry are drawn and skipped, never seated
        expected = committee_for(epoch, registry, 3, r.params.genesis_seed)
        assert c.epoch_committee(epoch) == expected
        assert set(expected) <= set(c.active_attesters(epoch)) and len(expected) == 3
    with pytest.raises(E.AlreadyExiting):
        c.initiate_exit(r.deployer, leaver)
    with pytest.raises(E.WithdrawalNotReady) as info:
        c.withdraw(r.deployer, leaver)
    assert info.value.withdrawable_epoch == 7
    r.warp_to_slot(6 * 4)  # epoch 6: out of the set, still slashable
    with pytest.raises(E.WithdrawalNotReady):
        c.withdraw(r.deployer, leaver)
    x, y = Attestation(5, b"\x01" * 32), Attestation(5, b"\x02" * 32)
    key = r.key_of(leaver)
    sig_x = sign_digest(key, attestation_digest(r.params, x))
    sig_y = sign_digest(key, attestation_digest(r.params, y))
    c.wait_receipt(c.slash_duplicate_attestation(funder, x, sig_x, y, sig_y), 10)
    assert c.validator(leaver).stake == 10**18 - r.params.slash_amount
    r.warp_to_slot(7 * 4)
    before = c.balance(r.deployer.address)
    receipt = c.wait_receipt(c.withdraw(r.deployer, leaver), 10)
    assert (
        c.balance(r.deployer.address)
        == before + 10**18 - r.params.slash_amount - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    )
    with pytest.raises(E.NothingToWithdraw):
        c.withdraw(r.deployer, leaver)


def test_registry_reverts_by_name(module_anvil) -> None:
    r = deploy_local_rollup(module_anvil, validators=2, slot_duration=60)
    c = r.client
    funder = r.anvil.accounts[4]
    with pytest.raises(E.AlreadyRegistered):
        c.deposit(funder, r.validators[0].address, funder.address, b"", 10**18)
    with pytest.raises(E.InsufficientStake) as info:
        c.deposit(funder, Account.from_key(keccak(b"x")).address, funder.address, b"", 10**17)
    assert (info.value.required, info.value.given) == (10**18, 10**17)
    with pytest.raises(E.NotWithdrawer):
        c.initiate_exit(funder, r.validators[0].address)
    with pytest.raises(E.NotExiting):
        c.withdraw(r.deployer, r.validators[0].address)
    with pytest.raises(E.NotRegistered):
        c.validator(funder.address)
    with pytest.raises(E.BlockNotFound):
        c.get_block(5)

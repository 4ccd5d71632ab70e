"""A Rollup on a local anvil with a known validator set: shared by tests, benchmarks and the devnet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ha_sequencer.l1.anvil import Anvil
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.deploy import GenesisValidator, deploy_rollup
from ha_sequencer.protocol.committee import committee_for, proposer_for, quorum
from ha_sequencer.protocol.constants import (
    DEVNET_COMMITTEE_SIZE,
    DEVNET_EPOCH_LENGTH,
    DEVNET_MIN_STAKE,
    DEVNET_SLASH_AMOUNT,
    DEVNET_SLOT_DURATION,
    NetworkParams,
)
from ha_sequencer.protocol.messages import (
    Attestation,
    Proposal,
    attestation_digest,
    proposal_digest,
    sign_digest,
)


def local_validator_keys(count: int, *, label: str = "ha-sequencer test validator") -> list[LocalAccount]:
    """Deterministic throwaway attester keys for local networks (never use on a real network)."""
    return [Account.from_key(keccak(f"{label} {i}".encode())) for i in range(count)]


@dataclass
class SignedBlock:
    """Everything `RollupClient.propose` needs for one block."""

    proposal: Proposal
    proposer: LocalAccount = field(repr=False)
    proposer_signature: bytes
    attestations: list[bytes]
    txs: bytes


@dataclass
class LocalRollup:
    """A deployed Rollup on an anvil with genesis validators whose keys we hold."""

    anvil: Anvil
    address: str
    params: NetworkParams
    validators: list[LocalAccount] = field(repr=False)
    deployer: LocalAccount = field(repr=False)
    client: RollupClient
    genesis_allocation: list[tuple[str, int]]

    @property
    def rpc_url(self) -> str:
        """The anvil's RPC URL."""
        return self.anvil.rpc_url

    def key_of(self, attester: str) -> LocalAccount:
        """The key of a genesis validator."""
        for v in self.validators:
            if v.address == attester:
                return v
        raise KeyError(attester)

    def committee(self, epoch: int) -> list[str]:
        """Committee of `epoch`, computed in Python from the genesis validators (no later deposits)."""
        active = [v.address for v in self.validators]
        return committee_for(epoch, active, self.params.committee_size, self.params.genesis_seed)

    def proposer(self, slot: int) -> str:
        """Proposer of `slot`, computed in Python."""
        committee = self.committee(self.params.epoch_of(slot))
        return proposer_for(slot, self.params.epoch_length, committee, self.params.genesis_seed)

    def warp_to_slot(self, slot: int, offset: int = 1) -> None:
        """Mine a block `offset` seconds into `slot`; later blocks follow the wall clock from there."""
        self.anvil.mine(self.params.slot_start(slot) + offset)

    def sign_block(
        self,
        slot: int,
        *,
        archive: bytes | None = None,
        parent_archive: bytes | None = None,
        txs: bytes = b"",
        fee_recipient: bytes = bytes(32),
        attesters: Sequence[str] | None = None,
    ) -> SignedBlock:
        """A block for `slot` signed by its proposer and attested by a quorum (or by `attesters`)."""
        if parent_archive is None:
            parent_archive = self.client.tips().archive
        if archive is None:
            archive = keccak(parent_archive + slot.to_bytes(32, "big") + txs)
        proposal = Proposal(
            slot=slot,
            parent_archive=parent_archive,
            archive=archive,
            txs_hash=keccak(txs),
            fee_recipient=fee_recipient,
        )
        proposer = self.key_of(self.proposer(slot))
        committee = self.committee(self.params.epoch_of(slot))
        chosen = list(attesters) if attesters is not None else committee[: quorum(len(committee))]
        att_digest = attestation_digest(self.params, Attestation(slot=slot, archive=archive))
        return SignedBlock(
            proposal=proposal,
            proposer=proposer,
            proposer_signature=sign_digest(proposer, proposal_digest(self.params, proposal)),
            attestations=[sign_digest(self.key_of(a), att_digest) for a in chosen],
            txs=txs,
        )

    def propose(self, block: SignedBlock, publisher: LocalAccount | None = None) -> dict:
        """Publish `block` and wait for the receipt."""
        tx_hash = self.client.propose(
            publisher or self.deployer,
            block.proposal,
            block.proposer_signature,
            block.attestations,
            block.txs,
        )
        return self.client.wait_receipt(tx_hash, 30)


def deploy_local_rollup(
    anvil: Anvil,
    *,
    validators: int | Sequence[LocalAccount] = 4,
    slot_duration: int = DEVNET_SLOT_DURATION,
    epoch_length: int = DEVNET_EPOCH_LENGTH,
    committee_size: int = DEVNET_COMMITTEE_SIZE,
    min_stake: int = DEVNET_MIN_STAKE,
    slash_amount: int = DEVNET_SLASH_AMOUNT,
    genesis_time: int | None = None,
    genesis_seed: bytes | None = None,
    genesis_allocation: Sequence[tuple[str, int]] = (),
    deployer: LocalAccount | None = None,
) -> LocalRollup:
    """Deploy a Rollup on `anvil` with `validators` (count or keys) active from epoch 0."""
    keys = local_validator_keys(validators) if isinstance(validators, int) else list(validators)
    deployer = deployer or anvil.accounts[0]
    address = deploy_rollup(
        anvil.rpc_url,
        deployer,
        slot_duration=slot_duration,
        epoch_length=epoch_length,
        committee_size=committee_size,
        min_stake=min_stake,
        slash_amount=slash_amount,
        genesis_time=genesis_time,
        genesis_seed=genesis_seed if genesis_seed is not None else keccak(b"ha-sequencer local seed"),
        genesis_allocation=genesis_allocation,
        genesis_validators=[GenesisValidator(k.address, deployer.address) for k in keys],
    )
    client = RollupClient([anvil.rpc_url], address)
    return LocalRollup(
        anvil=anvil,
        address=address,
        params=client.params(),
        validators=keys,
        deployer=deployer,
        client=client,
        genesis_allocation=client.genesis_allocation(),
    )

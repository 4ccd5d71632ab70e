"""Deploy the Rollup contract and register validators."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from ha_sequencer.l1.build import load_artifact
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import ReceiptTimeout, TransactionFailed
from ha_sequencer.protocol.block import genesis_archive as compute_genesis_archive
from ha_sequencer.protocol.constants import (
    DEVNET_COMMITTEE_SIZE,
    DEVNET_EPOCH_LENGTH,
    DEVNET_MIN_STAKE,
    DEVNET_SLASH_AMOUNT,
    DEVNET_SLOT_DURATION,
)

DEPLOY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class GenesisValidator:
    """A validator active from epoch 0, staked by the deployer at deployment."""

    attester: str
    withdrawer: str
    bls_public: bytes = bytes(32)

    def as_abi(self) -> tuple[str, str, bytes]:
        """The Solidity `GenesisValidator` tuple."""
        return (
            to_checksum_address(self.attester),
            to_checksum_address(self.withdrawer),
            bytes(self.bls_public).rjust(32, b"\0"),
        )


def _account(key: LocalAccount | bytes | str) -> LocalAccount:
    return key if isinstance(key, LocalAccount) else Account.from_key(key)


def deploy_rollup(
    rpc_url: str,
    deployer_key: LocalAccount | bytes | str,
    *,
    slot_duration: int = DEVNET_SLOT_DURATION,
    epoch_length: int = DEVNET_EPOCH_LENGTH,
    committee_size: int = DEVNET_COMMITTEE_SIZE,
    min_stake: int = DEVNET_MIN_STAKE,
    slash_amount: int = DEVNET_SLASH_AMOUNT,
    genesis_time: int | None = None,
    genesis_seed: bytes | None = None,
    genesis_allocation: Sequence[tuple[str, int]] = (),
    genesis_archive: bytes | None = None,
    genesis_validators: Sequence[GenesisValidator] = (),
    timeout: float = DEPLOY_TIMEOUT_S,
) -> str:
    """Deploy a Rollup; returns its checksummed address.

    `genesis_time` None = the deployment block's timestamp; `genesis_seed` None = 32 random bytes;
    `genesis_archive` None = `protocol.block.genesis_archive(genesis_allocation)`. The deployer pays
    `min_stake` per genesis validator.
    """
    deployer = _account(deployer_key)
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    artifact = load_artifact("Rollup")
    seed = os.urandom(32) if genesis_seed is None else bytes(genesis_seed)
    allocation = [(to_checksum_address(a), int(v)) for a, v in genesis_allocation]
    archive = compute_genesis_archive(allocation) if genesis_archive is None else bytes(genesis_archive)
    config = (
        genesis_time or 0,
        slot_duration,
        epoch_length,
        committee_size,
        seed,
        min_stake,
        slash_amount,
        archive,
    )
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    ctor = factory.constructor(
        config,
        [v.as_abi() for v in genesis_validators],
        [a for a, _ in allocation],
        [v for _, v in allocation],
    )
    value = min_stake * len(genesis_validators)
    tx = ctor.build_transaction(
        {
            "from": deployer.address,
            "value": value,
            "nonce": w3.eth.get_transaction_count(deployer.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
    )
    signed = deployer.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = _wait(w3, tx_hash, timeout)
    if receipt["status"] != 1 or not receipt.get("contractAddress"):
        raise TransactionFailed(f"Rollup deployment tx {tx_hash.hex()} reverted")
    return to_checksum_address(receipt["contractAddress"])


def _wait(w3: Web3, tx_hash: bytes, timeout: float) -> dict:
    try:
        return dict(
            w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=timeout, poll_latency=0.05)
        )
    except Exception as exc:
        raise ReceiptTimeout(f"tx 0x{bytes(tx_hash).hex()} not mined within {timeout:.0f} s: {exc}") from exc


def register_validator(
    rpc_url: str | Sequence[str],
    funder_key: LocalAccount | bytes | str,
    attester: str,
    withdrawer: str,
    bls_public: bytes,
    stake: int,
    *,
    rollup: str,
    timeout: float = DEPLOY_TIMEOUT_S,
) -> bytes:
    """Deposit `stake` wei for `attester` (active two epochs after the current one); returns the tx hash."""
    client = RollupClient(rpc_url, rollup)
    tx_hash = client.deposit(_account(funder_key), attester, withdrawer, bls_public, stake)
    client.wait_receipt(tx_hash, timeout)
    return tx_hash

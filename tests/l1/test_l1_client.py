"""RollupClient: RPC failover and recovery, nonce resync, receipt deadlines, reads."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3 import Web3

from ha_sequencer.l1.anvil import Anvil, free_port
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import ReceiptTimeout, RpcUnavailable
from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.protocol.block import genesis_archive


@pytest.fixture
def rollup(module_anvil):
    allocation = [(module_anvil.accounts[8].address, 10**21), (module_anvil.accounts[9].address, 5)]
    return deploy_local_rollup(
        module_anvil, validators=4, committee_size=4, slot_duration=60, genesis_allocation=allocation
    )


def test_failover_when_first_endpoint_is_dead(rollup) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = RollupClient([dead, rollup.rpc_url], rollup.address, timeout=1.0, retries=0)
    assert client.params() == rollup.params
    assert client.tips().block_number == 0
    status = client.endpoints
    assert not status[0].healthy and status[0].failures >= 1 and "Error" in status[0].last_error
    assert status[1].healthy
    assert client.healthy
    # Writes fail over too: a real propose goes through the second endpoint.
    rollup.warp_to_slot(1)
    block = rollup.sign_block(1)
    tx = client.propose(
        rollup.deployer,
        block.proposal,
        block.proposer_signature,
        block.attestations,
        block.txs,
    )
    assert client.wait_receipt(tx, 10)["status"] == 1
    assert [e.slot for e in client.block_proposed_events(0)] == [1]


def test_all_endpoints_dead_raises_rpc_unavailable(rollup) -> None:
    client = RollupClient([f"http://127.0.0.1:{free_port()}"], rollup.address, timeout=0.5, retries=1)
    with pytest.raises(RpcUnavailable, match="no L1 RPC endpoint answered"):
        client.l1_block_number()
    assert not client.healthy


def test_unhealthy_endpoint_is_retried_and_recovers() -> None:
    port = free_port()
    with Anvil() as second:
        client = RollupClient(
            [f"http://127.0.0.1:{port}", second.rpc_url],
            "0x" + "00" * 20,
            timeout=1.0,
            retries=0,
            recheck_s=0.0,
        )
        assert client.l1_block_number() == 0
        assert not client.endpoints[0].healthy
        with Anvil(port=port) as first:  # the endpoint comes back
            first.mine()
            first.mine()
            assert client.l1_block_number() == 2  # answered by the first endpoint again
            assert client.endpoints[0].healthy and client.endpoints[0].failures == 0


def test_nonce_too_low_is_resynced(rollup) -> None:
    client = rollup.client
    sender = rollup.anvil.accounts[2]
    funder = rollup.anvil.accounts[2]
    target = "0x" + keccak(b"t")[:20].hex()
    client.wait_receipt(
        client.deposit(funder, Web3.to_checksum_address(target), funder.address, b"", 10**18), 10
    )
    # Another program sends from the same key behind the client's back: the tracked nonce is now stale.
    w3 = Web3(Web3.HTTPProvider(rollup.rpc_url))
    tx = {
        "to": funder.address,
        "value": 1,
        "gas": 21000,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": 31337,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
    }
    w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    other = Web3.to_checksum_address("0x" + keccak(b"u")[:20].hex())
    receipt = client.wait_receipt(client.deposit(sender, other, sender.address, b"", 10**18), 10)
    assert receipt["status"] == 1
    assert client.validator(other).stake == 10**18


def test_receipt_deadline() -> None:
    with Anvil(extra_args=["--no-mining"]) as node:
        client = RollupClient([node.rpc_url], "0x" + "11" * 20)  # wait_receipt does not touch the contract
        acct = node.accounts[1]
        tx = {
            "to": acct.address,
            "value": 1,
            "gas": 21000,
            "nonce": 0,
            "chainId": 31337,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
        }
        tx_hash = bytes(
            Web3(Web3.HTTPProvider(node.rpc_url)).eth.send_raw_transaction(
                acct.sign_transaction(tx).raw_transaction
            )
        )
        with pytest.raises(ReceiptTimeout, match="not mined within"):
            client.wait_receipt(tx_hash, 0.3)
        node.mine()
        assert client.wait_receipt(tx_hash, 5)["status"] == 1


def test_reads(rollup) -> None:
    client = rollup.client
    assert client.balance(rollup.anvil.accounts[1].address) > 0
    assert client.genesis_allocation() == [
        (rollup.anvil.accounts[8].address, 10**21),
        (rollup.anvil.accounts[9].address, 5),
    ]
    assert client.get_block(0).archive == genesis_archive(client.genesis_allocation())
    assert client.tips() == (0, genesis_archive(client.genesis_allocation()), 0)
    assert client.chain_id() == 31337
    assert client.epoch_committee(0) == rollup.committee(0)
    assert repr(client).startswith("RollupClient(")

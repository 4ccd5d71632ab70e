"""L1Transport, the one way to L1 of the Rollup client and the wallet: failover, nonces, receipts."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.l1.anvil import free_port
from ha_sequencer.l1.errors import L1Error
from ha_sequencer.l1.fees import TRANSFER_GAS
from ha_sequencer.l1.transport import L1Transport


def test_sends_fail_over_and_nonces_are_tracked(module_anvil) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    transport = L1Transport([dead, module_anvil.rpc_url], timeout=1.0, retries=0)
    sender = module_anvil.accounts[3]
    target = Account.from_key(keccak(b"transport target")).address
    before = transport.balance(target)
    hashes = [transport.send(sender, to=target, gas=TRANSFER_GAS, value=v) for v in (1, 2)]
    receipts = [transport.wait_receipt(h, 10) for h in hashes]
    assert [r["status"] for r in receipts] == [1, 1]
    first_nonce, second_nonce = (transport.transaction(h)["nonce"] for h in hashes)
    assert second_nonce == first_nonce + 1
    assert transport.balance(target) == before + 3
    first, second = transport.endpoints
    assert not first.healthy and first.failures >= 1 and second.healthy


def test_an_answered_error_keeps_the_endpoint_healthy(module_anvil) -> None:
    transport = L1Transport(module_anvil.rpc_url, retries=0)
    assert not transport.transaction_known(keccak(b"no such transaction"))
    assert transport.receipt_or_none(keccak(b"no such transaction")) is None
    assert transport.healthy and transport.endpoints[0].failures == 0


def test_a_rejected_transaction_is_an_l1_error_naming_the_sender(module_anvil) -> None:
    transport = L1Transport(module_anvil.rpc_url, retries=0)
    broke = Account.from_key(keccak(b"transport broke sender"))
    with pytest.raises(L1Error, match=f"transfer from {broke.address}: L1 rejected the transaction"):
        transport.send(broke, to=broke.address, gas=TRANSFER_GAS, value=10**18, what="transfer")

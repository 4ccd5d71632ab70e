"""Plain L1 JSON-RPC for monitoring: balances, fee caps, block timestamps and ETH transfers (no Rollup ABI).

The Rollup client (`ha_sequencer.l1.client.RollupClient`) needs a rollup address; `ha-sequencer balance` does
not, and top-ups are plain ETH transfers that the client does not send. Endpoints are tried in the configured
order, like the client's failover, without health bookkeeping: these calls are rare.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3RPCError

from ha_sequencer.l1.errors import L1Error, ReceiptTimeout, RpcUnavailable
from ha_sequencer.l1.fees import TRANSFER_GAS, next_fees

T = TypeVar("T")

_TRANSPORT_ERRORS = (requests.exceptions.RequestException, OSError, TimeoutError)


class L1Wallet:
    """Balances, fee caps and ETH transfers over one or more RPC URLs (blocking)."""

    def __init__(self, rpc_urls: Sequence[str] | str, *, timeout: float = 5.0) -> None:
        urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
        if not urls:
            raise L1Error("L1Wallet needs at least one RPC URL")
        self._urls = urls
        self._w3 = [
            Web3(
                Web3.HTTPProvider(u, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
            )
            for u in urls
        ]

    def __repr__(self) -> str:
        return f"L1Wallet(endpoints={len(self._urls)})"  # URLs may carry API keys

    def _call(self, what: str, fn: Callable[[Web3], T]) -> T:
        errors = []
        for i, w3 in enumerate(self._w3):
            try:
                return fn(w3)
            except _TRANSPORT_ERRORS as exc:
                errors.append(f"endpoint #{i + 1}: {type(exc).__name__}")
        raise RpcUnavailable(f"{what}: no L1 RPC endpoint answered ({'; '.join(errors)})")

    def chain_id(self) -> int:
        """L1 chain id."""
        return self._call("eth_chainId", lambda w3: w3.eth.chain_id)

    def balance(self, address: str) -> int:
        """ETH balance of `address` in wei at the latest block (what `cast balance` prints)."""
        return self._call("eth_getBalance", lambda w3: w3.eth.get_balance(to_checksum_address(address)))

    def block_number(self) -> int:
        """Latest L1 block number."""
        return self._call("eth_blockNumber", lambda w3: w3.eth.block_number)

    def block_timestamp(self, number: int | str = "latest") -> int:
        """Timestamp of L1 block `number`."""
        return self._call("eth_getBlockByNumber", lambda w3: int(w3.eth.get_block(number)["timestamp"]))

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) as the L1 client computes them for its next transaction."""
        return self._call("fees", next_fees)

    def max_fee_per_gas(self) -> int:
        """The maxFeePerGas of the next transaction."""
        return self.fees()[0]

    def send_eth(self, sender: LocalAccount, to: str, wei: int) -> bytes:
        """Sign and send an EIP-1559 transfer of `wei` from `sender` to `to`; returns the tx hash."""
        max_fee, priority = self.fees()
        nonce = self._call(
            "eth_getTransactionCount", lambda w3: w3.eth.get_transaction_count(sender.address, "pending")
        )
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id(),
            "to": to_checksum_address(to),
            "value": int(wei),
            "gas": TRANSFER_GAS,
            "nonce": nonce,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority,
        }
        signed = sender.sign_transaction(tx)
        try:
            return bytes(
                self._call(
                    "eth_sendRawTransaction", lambda w3: w3.eth.send_raw_transaction(signed.raw_transaction)
                )
            )
        except Web3RPCError as exc:
            raise L1Error(f"transfer from {sender.address} to {to}: L1 rejected it: {exc}") from None

    def wait_receipt(self, tx_hash: bytes, deadline_s: float, *, poll_s: float = 0.05) -> dict[str, Any]:
        """The receipt of `tx_hash`, waiting up to `deadline_s`; a reverted transfer raises L1Error."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                receipt = self._call(
                    "eth_getTransactionReceipt", lambda w3: w3.eth.get_transaction_receipt(tx_hash)
                )
                break
            except (TransactionNotFound, TimeExhausted):
                pass
            if time.monotonic() >= deadline:
                raise ReceiptTimeout(f"tx 0x{bytes(tx_hash).hex()} not mined within {deadline_s:.1f} s")
            time.sleep(poll_s)
        if receipt["status"] != 1:
            raise L1Error(f"tx 0x{bytes(tx_hash).hex()} reverted in L1 block {receipt['blockNumber']}")
        return dict(receipt)

    def receipt_or_none(self, tx_hash: bytes | str) -> dict[str, Any] | None:
        """The receipt of a mined transaction, None while it is not mined."""
        try:
            return dict(
                self._call("eth_getTransactionReceipt", lambda w3: w3.eth.get_transaction_receipt(tx_hash))
            )
        except (TransactionNotFound, TimeExhausted):
            return None

    def transaction_known(self, tx_hash: bytes | str) -> bool:
        """True while the node knows the transaction (pending or mined); False once it is dropped."""
        try:
            self._call("eth_getTransactionByHash", lambda w3: w3.eth.get_transaction(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def first_block_at_or_after(self, timestamp: int) -> int:
        """The lowest L1 block number whose timestamp is ≥ `timestamp` (binary search; latest + 1 if none)."""
        lo, hi = 0, self.block_number()
        if self.block_timestamp(hi) < timestamp:
            return hi + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.block_timestamp(mid) < timestamp:
                lo = mid + 1
            else:
                hi = mid
        return lo

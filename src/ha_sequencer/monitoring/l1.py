"""L1 for monitoring: balances, fee caps, block timestamps and ETH transfers (no Rollup ABI).

The Rollup client (`ha_sequencer.l1.client.RollupClient`) needs a rollup address; `ha-sequencer balance` does
not, and top-ups are plain ETH transfers that the client does not send. Both go through one
`ha_sequencer.l1.transport.L1Transport`: the same failover, fee formula, nonce tracking and receipt wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.types import BlockIdentifier

from ha_sequencer.l1.errors import TransactionFailed
from ha_sequencer.l1.fees import TRANSFER_GAS
from ha_sequencer.l1.transport import DEFAULT_TIMEOUT_S, RECEIPT_POLL_S, L1Transport, tx_hex


class L1Wallet:
    """Balances, fee caps and ETH transfers over one or more RPC URLs (blocking)."""

    def __init__(self, rpc_urls: Sequence[str] | str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        # one pass over the endpoints per call: these calls are rare, and the node's own L1 health is the
        # Rollup client's to report
        self.transport = L1Transport(rpc_urls, timeout=timeout, retries=0)

    def __repr__(self) -> str:
        return f"L1Wallet(endpoints={[e.url for e in self.transport.endpoints]})"

    def chain_id(self) -> int:
        """L1 chain id."""
        return self.transport.chain_id()

    def balance(self, address: str) -> int:
        """ETH balance of `address` in wei at the latest block (what `cast balance` prints)."""
        return self.transport.balance(address)

    def block_number(self) -> int:
        """Latest L1 block number."""
        return self.transport.block_number()

    def block_timestamp(self, number: BlockIdentifier = "latest") -> int:
        """Timestamp of L1 block `number`."""
        return self.transport.block_timestamp(number)

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) as the L1 client computes them for its next transaction."""
        return self.transport.fees()

    def max_fee_per_gas(self) -> int:
        """The maxFeePerGas of the next transaction."""
        return self.transport.max_fee_per_gas()

    def send_eth(self, sender: LocalAccount, to: str, wei: int) -> bytes:
        """Sign and send an EIP-1559 transfer of `wei` from `sender` to `to`; returns the tx hash."""
        return self.transport.send(sender, to=to, gas=TRANSFER_GAS, value=wei, what=f"transfer to {to}")

    def wait_receipt(
        self, tx_hash: bytes, deadline_s: float, *, poll_s: float = RECEIPT_POLL_S
    ) -> dict[str, Any]:
        """The receipt of `tx_hash`, waiting up to `deadline_s`; a reverted one raises TransactionFailed."""
        receipt = self.transport.wait_receipt(tx_hash, deadline_s, poll_s=poll_s)
        if receipt["status"] != 1:
            raise TransactionFailed(f"tx {tx_hex(tx_hash)} reverted in L1 block {receipt['blockNumber']}")
        return receipt

    def receipt_or_none(self, tx_hash: bytes | str) -> dict[str, Any] | None:
        """The receipt of a mined transaction, None while it is not mined."""
        return self.transport.receipt_or_none(tx_hash)

    def transaction_known(self, tx_hash: bytes | str) -> bool:
        """True while the node knows the transaction (pending or mined); False once it is dropped."""
        return self.transport.transaction_known(tx_hash)

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

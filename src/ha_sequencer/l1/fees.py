"""EIP-1559 gas and fees of the transactions this project sends (https://eips.ethereum.org/EIPS/eip-1559).

One formula for the Rollup client, monitoring top-ups and the funds guard, so the guard checks what will be
sent. No web3 at import: the funds module reads these constants at CLI start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from web3 import Web3

TRANSFER_GAS = 21_000  # a plain ETH transfer to an externally owned account
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000  # 1 gwei, when the node cannot suggest one


def max_fee_per_gas(base_fee_per_gas: int, priority_fee_per_gas: int) -> int:
    """The maxFeePerGas we set: twice the base fee plus the tip (survives several base fee increases)."""
    return 2 * base_fee_per_gas + priority_fee_per_gas


def latest_base_fee(w3: Web3) -> int:
    """The base fee of the latest L1 block (EIP-1559; a chain without it is not one we can price for)."""
    base = w3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:
        raise ValueError("the L1 block has no baseFeePerGas: EIP-1559 (London) is required")
    return int(base)


def next_fees(w3: Web3) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) for the next transaction: latest base fee, the node's tip."""
    from web3.exceptions import Web3RPCError  # on use, see the module docstring

    base = latest_base_fee(w3)
    try:
        priority = int(w3.eth.max_priority_fee)
    except Web3RPCError:
        priority = DEFAULT_PRIORITY_FEE_WEI
    return max_fee_per_gas(base, priority), priority

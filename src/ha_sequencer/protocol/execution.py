"""Building and re-executing an L2 block on its parent state (DESIGN.md: The network, "L2 state").

A block is valid on a parent state when its txs decode canonically, apply in order (`state.apply_block`,
fees to the block's fee recipient) and `compute_archive(parentArchive, slot, stateRoot, txsHash)` equals the
archive the block claims. Pure: whoever holds the parent state (the node's chain, a test, a benchmark) gets
the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError
from ha_sequencer.protocol.block import (
    InvalidTxs,
    SignedTx,
    compute_archive,
    decode_txs,
    encode_txs,
    txs_hash,
)
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.state import InvalidBlock, L2State, apply_block
from ha_sequencer.protocol.wire import Block


class ExecutionError(HASequencerError):
    """A block whose txs do not apply or whose re-execution disagrees with its archive (names the slot)."""

    exit_code = EXIT_FAILURE_FOUND


@dataclass(frozen=True)
class Execution:
    """The result of executing a block on its parent state."""

    block: Block
    txs: tuple[SignedTx, ...]
    state: L2State
    state_root: bytes


def execute_block(params: NetworkParams, parent_state: L2State, block: Block) -> Execution:
    """Re-execute `block` on `parent_state`; raises ExecutionError unless the archive matches."""
    try:
        txs = decode_txs(block.txs)
        state, root = apply_block(parent_state, txs, params=params, fee_recipient=block.fee_recipient)
    except (InvalidTxs, InvalidBlock) as exc:
        raise ExecutionError(
            f"slot {block.slot}: block 0x{block.archive.hex()[:12]}… is invalid: {exc}"
        ) from exc
    archive = compute_archive(block.parent_archive, block.slot, root, block.txs_hash)
    if archive != block.archive:
        raise ExecutionError(
            f"slot {block.slot}: re-execution gives archive 0x{archive.hex()[:12]}…, "
            f"the block claims 0x{block.archive.hex()[:12]}…"
        )
    return Execution(block, tuple(txs), state, root)


def build_block(
    params: NetworkParams,
    parent_state: L2State,
    *,
    slot: int,
    parent_archive: bytes,
    txs: Sequence[SignedTx],
    fee_recipient: bytes,
) -> Execution:
    """Build a block from selected txs: apply them, compute the archive (ExecutionError on an invalid tx)."""
    txs_bytes = encode_txs(txs)
    try:
        state, root = apply_block(parent_state, txs, params=params, fee_recipient=fee_recipient)
    except InvalidBlock as exc:
        raise ExecutionError(f"slot {slot}: building a block failed: {exc}") from exc
    archive = compute_archive(parent_archive, slot, root, txs_hash(txs_bytes))
    block = Block(slot, parent_archive, archive, fee_recipient, txs_bytes)
    return Execution(block, tuple(txs), state, root)

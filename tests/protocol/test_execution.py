"""Building and re-executing a block on its parent state: the archive commits to every effect."""

from __future__ import annotations

import pytest
from eth_account import Account

from ha_sequencer.protocol.block import genesis_archive
from ha_sequencer.protocol.execution import ExecutionError, build_block, execute_block
from ha_sequencer.protocol.state import genesis_state
from ha_sequencer.protocol.wire import Block
from params_fixtures import PARAMS, signed

ALICE, BOB = Account.from_key(b"\x01" * 32), Account.from_key(b"\x02" * 32)
FEE_TO = b"\x00" * 12 + b"\x99" * 20
ALLOCATION = [(ALICE.address, 1_000)]


def _built(fee: int = 3):
    return build_block(
        PARAMS,
        genesis_state(ALLOCATION),
        slot=5,
        parent_archive=genesis_archive(ALLOCATION),
        txs=[signed(ALICE, BOB.address, 100, fee, 0)],
        fee_recipient=FEE_TO,
    )


def test_a_built_block_re_executes_to_the_same_result() -> None:
    built = _built()
    again = execute_block(PARAMS, genesis_state(ALLOCATION), built.block)
    assert again == built
    assert again.state.balance(BOB.address) == 100 and again.state.balance(FEE_TO) == 3


def test_re_execution_refuses_what_the_archive_does_not_commit_to() -> None:
    b = _built().block
    parent = genesis_state(ALLOCATION)
    with pytest.raises(ExecutionError, match="slot 5: re-execution gives archive"):
        execute_block(PARAMS, parent, Block(b.slot, b.parent_archive, b"\x01" * 32, b.fee_recipient, b.txs))
    # with fees in the block, the fee recipient is committed to through the state root
    with pytest.raises(ExecutionError, match="slot 5: re-execution"):
        execute_block(PARAMS, parent, Block(b.slot, b.parent_archive, b.archive, bytes(32), b.txs))
    with pytest.raises(ExecutionError, match="slot 6: re-execution"):
        execute_block(PARAMS, parent, Block(6, b.parent_archive, b.archive, b.fee_recipient, b.txs))
    with pytest.raises(ExecutionError, match="invalid"):
        execute_block(PARAMS, parent, Block(b.slot, b.parent_archive, b.archive, b.fee_recipient, b.txs[:-1]))


def test_building_with_an_invalid_tx_fails_naming_the_slot() -> None:
    overdraft = signed(BOB, ALICE.address, 1, 0, 0)
    with pytest.raises(ExecutionError, match="slot 6: building a block failed"):
        build_block(
            PARAMS,
            genesis_state(ALLOCATION),
            slot=6,
            parent_archive=genesis_archive(ALLOCATION),
            txs=[overdraft],
            fee_recipient=FEE_TO,
        )

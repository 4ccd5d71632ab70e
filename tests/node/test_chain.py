"""The node's L2 chain: re-execute on the tip, append; mismatches are refused with the slot named."""

from __future__ import annotations

import pytest
from eth_account import Account

from ha_sequencer.localnet.nodes import signed_transfer
from ha_sequencer.node.chain import Chain, ChainError
from ha_sequencer.protocol.execution import build_block
from ha_sequencer.protocol.wire import Block
from params_fixtures import PARAMS

ALICE, BOB = Account.from_key(b"\x01" * 32), Account.from_key(b"\x02" * 32)
FEE_TO = b"\x00" * 12 + b"\x99" * 20


def test_build_execute_append() -> None:
    chain = Chain(PARAMS, [(ALICE.address, 1_000)])
    tx = signed_transfer(PARAMS, ALICE, BOB.address, amount=100, fee=3, nonce=0)
    built = build_block(
        PARAMS, chain.state, slot=5, parent_archive=chain.tip.archive, txs=[tx], fee_recipient=FEE_TO
    )
    # an independent node re-executes the same bytes to the same archive
    other = Chain(PARAMS, [(ALICE.address, 1_000)])
    assert other.execute(built.block).state_root == built.state_root
    applied = other.append(built.block, number=1, proposer=ALICE.address)
    assert other.tip is applied and other.height == 1 and other.by_archive(applied.archive) is applied
    assert other.state.balance(BOB.address) == 100 and other.state.balance(ALICE.address) == 897
    assert other.state.balance(FEE_TO) == 3
    assert applied.to_json()["txs"][0]["amount"] == "100"


def test_refuses_bad_blocks() -> None:
    chain = Chain(PARAMS, [(ALICE.address, 1_000)])
    tx = signed_transfer(PARAMS, ALICE, BOB.address, amount=100, fee=3, nonce=0)
    built = build_block(
        PARAMS, chain.state, slot=5, parent_archive=chain.tip.archive, txs=[tx], fee_recipient=FEE_TO
    )
    b = built.block
    with pytest.raises(ChainError, match="slot 5: re-execution gives archive"):
        chain.execute(Block(b.slot, b.parent_archive, b"\x01" * 32, b.fee_recipient, b.txs))
    with pytest.raises(ChainError, match="not the local tip"):
        chain.execute(Block(b.slot, b"\x05" * 32, b.archive, b.fee_recipient, b.txs))
    with pytest.raises(ChainError, match="invalid"):
        chain.execute(Block(b.slot, b.parent_archive, b.archive, b.fee_recipient, b.txs[:-1]))
    with pytest.raises(ChainError, match="expected 1"):
        chain.append(b, number=2)


def test_cached_execution_does_not_skip_the_tip_check() -> None:
    # a proposal built (and cached) on the old tip must not pass as extending the new one
    chain = Chain(PARAMS, [(ALICE.address, 1_000)])
    first = build_block(
        PARAMS, chain.state, slot=5, parent_archive=chain.tip.archive, txs=[], fee_recipient=FEE_TO
    )
    stale = build_block(
        PARAMS, chain.state, slot=6, parent_archive=chain.tip.archive, txs=[], fee_recipient=FEE_TO
    )
    chain.remember(stale)
    chain.append(first.block, number=1)
    with pytest.raises(ChainError, match="slot 6: parent .* is not the local tip"):
        chain.execute(stale.block)
    with pytest.raises(ChainError, match="slot 5: not after the tip's slot 5"):
        chain.execute(Block(5, chain.tip.archive, first.block.archive, FEE_TO, b""))

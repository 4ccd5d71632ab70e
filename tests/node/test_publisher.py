"""The publisher with real anvil, the real Rollup and a real SQLite duty store shared by HA twins.

Each twin pays with a one-account pool: the funds service of a node whose keystore names one publisher.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from web3 import Web3

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.monitoring.service import FundsService
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.publisher import Publisher
from ha_sequencer.protocol.wire import Block, SignedBlock

SLOT_S = 4


@pytest.fixture
def rollup(rollup_factory):
    return rollup_factory(validators=4, slot_duration=SLOT_S, epoch_length=8, committee_size=4)


def _twin(rollup, store_url: str, node_id: str, publisher_index: int, proposer: str):
    store = open_store(store_url, migrate=True)
    guard = DutyGuard(store, node_id=node_id, rollup=rollup.address)
    metrics = NodeMetrics()
    clock = SlotClock(SlotTiming(rollup.params.genesis_time, rollup.params.slot_duration))
    account = rollup.anvil.accounts[2 + publisher_index]
    funds = FundsService(
        wallet=L1Wallet(rollup.rpc_url), publishers={proposer: [account]}, registry=None, node_id=node_id
    )
    return (
        Publisher(client=rollup.client, guard=guard, clock=clock, metrics=metrics, funds=funds),
        account,
        metrics,
    )


def _fresh_slot(rollup) -> int:
    """The current slot if at least half of it is left, else the next one (waits for its start)."""
    params = rollup.params
    now = time.time()
    slot = params.slot_at(now)
    if slot < 1 or now - params.slot_start(slot) > SLOT_S / 2:  # slot 0 is genesis: never a block
        slot = max(slot + 1, 1)
        time.sleep(max(0.0, params.slot_start(slot) - time.time()) + 0.05)
    return slot


def _signed(rollup, slot: int) -> tuple[str, SignedBlock, list[bytes]]:
    b = rollup.sign_block(slot)
    block = Block(slot, b.proposal.parent_archive, b.proposal.archive, b.proposal.fee_recipient, b.txs)
    return rollup.proposer(slot), SignedBlock(block, b.proposer_signature), b.attestations


def _count(metrics: NodeMetrics, result: str) -> float:
    return metrics.l1_submissions.labels(result=result)._value.get()


def test_twins_publish_once_and_never_resubmit(rollup, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'duties.sqlite'}"
    slot = _fresh_slot(rollup)
    proposer, signed, attestations = _signed(rollup, slot)
    (a, acct_a, m_a), (b, acct_b, m_b) = (
        _twin(rollup, url, "twin-a", 0, proposer),
        _twin(rollup, url, "twin-b", 1, proposer),
    )
    w3 = Web3(Web3.HTTPProvider(rollup.rpc_url))
    nonces = {x.address: w3.eth.get_transaction_count(x.address) for x in (acct_a, acct_b)}

    async def both() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(a.publish, slot, proposer, signed, attestations, None)
            n.start_soon(b.publish, slot, proposer, signed, attestations, None)

    trio.run(both)
    tips = rollup.client.tips()
    assert tips.last_slot == slot and tips.archive == signed.block.archive
    # exactly one twin paid gas; the other saw the block on chain (or the store's record) and stood down
    sent = [
        x.address for x in (acct_a, acct_b) if w3.eth.get_transaction_count(x.address) > nonces[x.address]
    ]
    assert len(sent) == 1
    assert _count(m_a, "mined") + _count(m_b, "mined") == 1
    # publishing again (a late twin, a restart): the chain already has it, nothing is sent
    trio.run(a.publish, slot, proposer, signed, attestations, None)
    assert _count(m_a, "already_on_chain") >= 1
    assert w3.eth.get_transaction_count(sent[0]) == nonces[sent[0]] + 1


def test_twin_takes_over_when_the_first_publisher_goes_silent(rollup, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'duties.sqlite'}"
    silent = DutyGuard(open_store(url, migrate=True), node_id="twin-a", rollup=rollup.address)
    slot = _fresh_slot(rollup)
    proposer, signed, attestations = _signed(rollup, slot)
    (b, _acct_b, m_b) = _twin(rollup, url, "twin-b", 1, proposer)
    # twin A claims the publication, then dies before sending anything
    turn = silent.claim_publish(proposer, slot, deadline_s=0.5)
    assert type(turn).__name__ == "PublishYours"
    trio.run(b.publish, slot, proposer, signed, attestations, None)
    tips = rollup.client.tips()
    assert tips.last_slot == slot and tips.archive == signed.block.archive
    assert _count(m_b, "mined") == 1
    record = silent.publish_record(proposer, slot)
    assert record.node_id == "twin-b" and record.attempt >= 2 and record.mined


def test_publishes_when_the_duty_store_is_down(rollup, tmp_path: Path) -> None:
    # the proposal is signed already: a store outage costs coordination (maybe gas), never the slot
    slot = _fresh_slot(rollup)
    proposer, signed, attestations = _signed(rollup, slot)
    (a, _acct_a, m_a) = _twin(rollup, f"sqlite:///{tmp_path / 'duties.sqlite'}", "twin-a", 0, proposer)
    a.guard.store.close()  # every publish-record call now raises StoreUnreachable
    trio.run(a.publish, slot, proposer, signed, attestations, None)
    tips = rollup.client.tips()
    assert tips.last_slot == slot and tips.archive == signed.block.archive
    assert _count(m_a, "mined") == 1

"""The publisher's closed results, step by step and end to end, over fakes of L1, the duty store and funds.

Real anvil runs are in test_publisher.py; here each result is forced, and what the publisher does with it
(metrics label, alerts, publisher account released or kept busy, publish record) is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.ha.errors import StoreUnreachable
from ha_sequencer.ha.outcomes import PublishDone, PublishRecord, PublishTheirs, PublishTurn, PublishYours
from ha_sequencer.l1.client import Tips
from ha_sequencer.l1.errors import (
    InvalidProposerSignature,
    ReceiptTimeout,
    RpcUnavailable,
    SlotAlreadyInChain,
    TransactionFailed,
)
from ha_sequencer.monitoring.funds import FundsError
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.publisher import (
    Chosen,
    EarlierSubmissionPending,
    FeeCapUnknown,
    Mined,
    NoPublisher,
    NotMinedYet,
    Publisher,
    Reverted,
    SendFailed,
    Sent,
    SlotTaken,
)
from ha_sequencer.node.scheduler import SlotRecord
from ha_sequencer.protocol.wire import Block, SignedBlock

GENESIS, SLOT_S, SLOT = 1_000, 4, 10
ATTESTER = Account.from_key(keccak(b"results attester")).address
PUBLISHER = Account.from_key(keccak(b"results publisher"))
TX = keccak(b"a propose transaction")
BLOCK = Block(SLOT, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"")
SIGNED = SignedBlock(BLOCK, b"\x04" * 65)


@dataclass
class FakeL1:
    """Tips, propose and receipts as told: each is a value to return or an exception to raise."""

    tips_are: Tips = Tips(0, b"\x00" * 32, 0)
    propose_does: Any = TX
    receipt_does: Any = field(default_factory=lambda: {"status": 1})
    proposed: list[str] = field(default_factory=list)

    def tips(self) -> Tips:
        return self.tips_are

    def propose(self, publisher, proposal, proposer_signature, attestations, txs, *, gas=None):
        self.proposed.append(publisher.address)
        if isinstance(self.propose_does, Exception):
            raise self.propose_does
        return self.propose_does

    def wait_receipt(self, tx_hash: bytes, deadline_s: float) -> dict[str, Any]:
        if isinstance(self.receipt_does, Exception):
            raise self.receipt_does
        return self.receipt_does


@dataclass
class FakeRecords:
    """The duty store's publish record: hands out `turns` in order (the last one repeats)."""

    turns: list[PublishTurn] = field(default_factory=lambda: [PublishYours(1)])
    recorded: list[tuple[int, str]] = field(default_factory=list)
    marked: list[int] = field(default_factory=list)
    down: bool = False

    def claim_publish(self, attester: str, slot: int, *, deadline_s: float) -> PublishTurn:
        if self.down:
            raise StoreUnreachable("store down")
        return self.turns.pop(0) if len(self.turns) > 1 else self.turns[0]

    def record_publish(self, attester, slot, attempt, tx_hash, *, deadline_s) -> bool:
        if self.down:
            raise StoreUnreachable("store down")
        self.recorded.append((attempt, tx_hash))
        return True

    def mark_published(self, attester: str, slot: int) -> None:
        if self.down:
            raise StoreUnreachable("store down")
        self.marked.append(slot)


@dataclass
class FakeAccounts:
    """A one-account pool that tells what it was asked; `select_does` is an account or an exception."""

    select_does: Any = PUBLISHER
    pending: dict[str, int] = field(default_factory=dict)  # address → slot of its pending tx
    calls: list[tuple] = field(default_factory=list)

    def select(self, attester: str, gas_limit: int, *, slot: int | None = None):
        self.calls.append(("select", gas_limit))
        if isinstance(self.select_does, Exception):
            raise self.select_does
        if self.select_does.address in self.pending:
            raise FundsError("no publisher available among 1: 1 with a pending transaction")
        self.pending[self.select_does.address] = slot
        return self.select_does

    def sent(self, address: str, tx_hash: bytes, *, slot: int | None = None) -> None:
        self.calls.append(("sent", address, tx_hash))

    def release(self, address: str, tx_hash: bytes | None = None) -> None:
        self.calls.append(("release", address, tx_hash))
        self.pending.pop(address, None)

    def in_flight(self, attester: str, slot: int) -> list[str]:
        return [a for a, s in self.pending.items() if s == slot]

    def duty_done(self, attester: str, slot: int, duty: str) -> None:
        self.calls.append(("duty_done", slot, duty))

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> None:
        self.calls.append(("duty_missed", slot, duty, why))

    def named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


def _publisher(
    l1: FakeL1 | None = None,
    records: FakeRecords | None = None,
    accounts: FakeAccounts | None = None,
    into_slot: float = 0.1,
) -> tuple[Publisher, FakeL1, FakeRecords, FakeAccounts, NodeMetrics]:
    """A publisher `into_slot` seconds into SLOT by its own clock (the submit deadline is at 3.4 s)."""
    l1, records, accounts = l1 or FakeL1(), records or FakeRecords(), accounts or FakeAccounts()
    metrics = NodeMetrics()
    clock = SlotClock(SlotTiming(GENESIS, SLOT_S), now=lambda: GENESIS + SLOT * SLOT_S + into_slot)
    publisher = Publisher(client=l1, guard=records, clock=clock, metrics=metrics, funds=accounts)
    return publisher, l1, records, accounts, metrics


def _results(metrics: NodeMetrics) -> dict[str, float]:
    out = {}
    for sample in metrics.registry.collect():
        for s in sample.samples:
            if s.name.endswith("l1_submissions_total") and s.value:
                out[s.labels["result"]] = s.value
    return out


# --- each step's results ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("select_does", "pending", "expected"),
    [
        (PUBLISHER, {}, Chosen(PUBLISHER)),
        (FundsError("none can pay"), {PUBLISHER.address: SLOT}, EarlierSubmissionPending()),
        (FundsError("none can pay"), {PUBLISHER.address: SLOT - 1}, NoPublisher("none can pay")),
        (FundsError("none can pay"), {}, NoPublisher("none can pay")),
    ],
)
def test_choosing_a_publisher(select_does, pending, expected) -> None:
    publisher, *_ = _publisher(accounts=FakeAccounts(select_does=select_does, pending=dict(pending)))
    assert trio.run(publisher._choose, ATTESTER, SLOT, 1_500_000) == expected


def test_an_unreadable_fee_cap_chooses_nobody() -> None:
    down = RpcUnavailable("fees: no L1 RPC endpoint answered")
    publisher, *_ = _publisher(accounts=FakeAccounts(select_does=down))
    assert trio.run(publisher._choose, ATTESTER, SLOT, 1_500_000) == FeeCapUnknown(down)


@pytest.mark.parametrize(
    ("propose_does", "expected", "released"),
    [
        (TX, Sent(TX), False),
        (SlotAlreadyInChain(SLOT, SLOT), SlotTaken, True),
        (InvalidProposerSignature(), Reverted, True),
        (RpcUnavailable("eth_sendRawTransaction: no L1 RPC endpoint answered"), SendFailed, True),
    ],
)
def test_sending_the_transaction(propose_does, expected, released) -> None:
    publisher, l1, _records, accounts, _metrics = _publisher(l1=FakeL1(propose_does=propose_does))
    result = trio.run(publisher._send, PUBLISHER, SLOT, SIGNED, [], 1_500_000)
    if isinstance(expected, type):
        assert type(result) is expected and result.error is propose_does
    else:
        assert result == expected
    assert l1.proposed == [PUBLISHER.address]
    # sent: busy until the receipt says otherwise; not sent: idle again at once
    assert accounts.named("sent") == ([] if released else [("sent", PUBLISHER.address, TX)])
    assert accounts.named("release") == ([("release", PUBLISHER.address, None)] if released else [])


@pytest.mark.parametrize(
    ("receipt_does", "expected"),
    [
        ({"status": 1}, Mined),
        (InvalidProposerSignature(), Reverted),
        (TransactionFailed("tx 0x… reverted in L1 block 7"), Reverted),
        (ReceiptTimeout("tx 0x… not mined within 1.0 s"), NotMinedYet),
        (RpcUnavailable("eth_getTransactionReceipt: no L1 RPC endpoint answered"), NotMinedYet),
    ],
)
def test_awaiting_the_receipt(receipt_does, expected) -> None:
    publisher, *_ = _publisher(l1=FakeL1(receipt_does=receipt_does))
    result = trio.run(publisher._await_receipt, TX, 1.0)
    assert type(result) is expected
    if expected is not Mined:
        assert result.error is receipt_does


# --- what publish() does with them ------------------------------------------------------------------------


def test_mined_releases_the_publisher_records_and_recovers_the_duty() -> None:
    publisher, l1, records, accounts, metrics = _publisher()
    record = SlotRecord(SLOT)
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [b"\x05" * 65], record)
    assert _results(metrics) == {"mined": 1}
    assert records.recorded == [(1, "0x" + TX.hex())] and records.marked == [SLOT]
    assert accounts.named("release") == [("release", PUBLISHER.address, TX)]
    assert accounts.named("duty_done") == [("duty_done", SLOT, "block_proposal")]
    assert record.l1_submitted == pytest.approx(0.1) and record.l1_mined == pytest.approx(0.1)
    gas = [c[1] for c in accounts.named("select")]
    assert gas == [1_500_000 + 15_000]  # one attestation, no txs


def test_no_publisher_that_can_pay_misses_the_duty_and_sends_nothing() -> None:
    accounts = FakeAccounts(select_does=FundsError("1 cannot pay the maximum cost 0.3 ETH"))
    publisher, l1, records, _accounts, metrics = _publisher(accounts=accounts)
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"no_publisher": 1}
    assert l1.proposed == [] and records.recorded == []
    assert accounts.named("duty_missed") == [
        ("duty_missed", SLOT, "block_proposal", "no publisher can pay for it")
    ]


def test_a_reverted_receipt_releases_the_publisher_and_settles_the_slot() -> None:
    publisher, l1, records, accounts, metrics = _publisher(l1=FakeL1(receipt_does=InvalidProposerSignature()))
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"reverted": 1}
    assert l1.proposed == [PUBLISHER.address] and records.marked == []
    assert accounts.named("release") == [("release", PUBLISHER.address, TX)]


def test_a_slot_taken_at_send_settles_without_alerting() -> None:
    publisher, _l1, records, accounts, metrics = _publisher(
        l1=FakeL1(propose_does=SlotAlreadyInChain(SLOT, SLOT))
    )
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"reverted": 1}
    assert records.recorded == [] and accounts.named("duty_missed") == []


@pytest.mark.parametrize(
    ("tip_archive", "result", "done"),
    [(BLOCK.archive, "already_on_chain", True), (b"\x09" * 32, "slot_taken", False)],
)
def test_what_l1_already_holds_is_not_sent_again(tip_archive, result, done) -> None:
    l1 = FakeL1(tips_are=Tips(5, tip_archive, SLOT))
    publisher, _l1, records, accounts, metrics = _publisher(l1=l1)
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {result: 1}
    assert l1.proposed == [] and accounts.named("select") == []
    assert accounts.named("duty_done") == ([("duty_done", SLOT, "block_proposal")] if done else [])


def test_a_twin_publishing_then_done_yields() -> None:
    record = PublishRecord(ATTESTER, SLOT, "twin", 1, 0.0, 1.0, None, None, False)
    records = FakeRecords(turns=[PublishTheirs(record), PublishTheirs(record), PublishDone(record)])
    publisher, l1, _records, _accounts, metrics = _publisher(records=records)
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"yielded": 1} and l1.proposed == []


def test_a_store_outage_publishes_uncoordinated() -> None:
    publisher, l1, _records, _accounts, metrics = _publisher(records=FakeRecords(down=True))
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"mined": 1} and l1.proposed == [PUBLISHER.address]


def test_not_mined_by_the_deadline_keeps_the_publisher_busy_and_misses_the_duty() -> None:
    l1 = FakeL1(receipt_does=ReceiptTimeout("tx not mined within 1.0 s"))
    publisher, l1, records, accounts, metrics = _publisher(l1=l1, into_slot=3.2)  # 0.2 s before the deadline
    trio.run(publisher.publish, SLOT, ATTESTER, SIGNED, [], None)
    assert _results(metrics) == {"missed": 1}
    assert l1.proposed == [PUBLISHER.address]  # the pending tx blocks a second one from the same account
    assert accounts.named("release") == [] and PUBLISHER.address in accounts.pending
    assert accounts.named("duty_missed") == [
        ("duty_missed", SLOT, "block_proposal", "not on L1 by the submit deadline")
    ]
    assert records.recorded == [(1, "0x" + TX.hex())]

"""The scheduler's handling of guard outcomes, with a real SQLite duty store shared by two HA twins."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.faults import parse_faults
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import DutyType, StoreUnavailable, signature_of
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.monitoring.alerts import NullAlerter
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.mempool import Mempool
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.scheduler import Identity, Scheduler, SlotRecord
from ha_sequencer.node.sync import Sync
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.execution import build_block
from ha_sequencer.protocol.messages import (
    Attestation,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    ProposalMessage,
    SignedBlock,
    attestation_payload,
    encode_block,
    encode_signed_block,
    parse_attestation,
    parse_proposal,
)
from params_fixtures import PARAMS

ATTESTER = Account.from_key(keccak(b"scheduler test attester"))
SLOT = 7


def _scheduler(guard: DutyGuard, gossiped: list[tuple[str, bytes]], **parts) -> Scheduler:
    """A scheduler over a real guard whose gossip lands in `gossiped`; `parts` replace the defaults."""

    async def publish(topic: str, data: bytes) -> None:
        gossiped.append((topic, data))

    kwargs = {
        "params": PARAMS,
        "clock": SlotClock(SlotTiming(PARAMS.genesis_time, PARAMS.slot_duration)),
        "chain": Chain(PARAMS, []),
        "sync": None,
        "committees": None,
        "mempool": None,
        "guard": guard,
        "publisher": None,
        "metrics": NodeMetrics(),
        "identities": [Identity.from_account(ATTESTER, bytes(32))],
        "publish_gossip": publish,
        "alerts": NullAlerter(),
    }
    return Scheduler(**{**kwargs, **parts})


def test_an_adopted_attestation_carries_the_dead_twins_archive_not_ours(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'duties.sqlite'}"
    theirs, ours = b"\xaa" * 32, b"\xbb" * 32
    # twin A claims the duty (its archive stored) and dies before signing: its lease runs out
    dead = DutyGuard(
        open_store(url, migrate=True),
        node_id="twin-a",
        rollup=PARAMS.rollup,
        lease_s=0.05,
        fault_hook=parse_faults("after_claim:raise"),
    )
    digest_theirs = attestation_digest(PARAMS, Attestation(SLOT, theirs))
    outcome = dead.sign_duty(
        ATTESTER.address,
        SLOT,
        DutyType.ATTESTATION,
        digest_theirs,
        attestation_payload(SLOT, theirs),
        lambda d: b"",
    )
    assert isinstance(outcome, StoreUnavailable)
    # twin B saw a different block for the slot; the guard hands it A's duty, and only A's archive may go out
    gossiped: list[tuple[str, bytes]] = []
    survivor = DutyGuard(open_store(url, migrate=True), node_id="twin-b", rollup=PARAMS.rollup)
    # SLOT is the current slot of a 60 s clock: far from its attestation deadline whatever the machine's load
    clock = SlotClock(SlotTiming(int(time.time()) - SLOT * 60, 60))
    scheduler = _scheduler(survivor, gossiped, clock=clock)
    identity = scheduler.identities[ATTESTER.address]
    digest_ours = attestation_digest(PARAMS, Attestation(SLOT, ours))
    trio.run(scheduler._attest_one, identity, SLOT, digest_ours, attestation_payload(SLOT, ours))

    assert [topic for topic, _ in gossiped] == [ATTESTATION_TOPIC]
    msg = parse_attestation(PARAMS, gossiped[0][1])
    assert msg.attestation.archive == theirs and msg.attester == ATTESTER.address
    assert msg.digest == digest_theirs
    assert scheduler.pool.votes(SLOT, theirs) == {ATTESTER.address: msg.attestation.signature}
    assert scheduler.pool.votes(SLOT, ours) == {}


def _live_params(slot_duration: int = 60) -> NetworkParams:
    # the current slot started a moment ago: far from the attestation deadline whatever the machine's load
    return dataclasses.replace(
        PARAMS, genesis_time=int(time.time()) - 10 * slot_duration, slot_duration=slot_duration
    )


def _proposal(params: NetworkParams, chain: Chain, slot: int, signer) -> ProposalMessage:
    execution = build_block(
        params, chain.state, slot=slot, parent_archive=chain.tip.archive, txs=[], fee_recipient=bytes(32)
    )
    b = execution.block
    digest = proposal_digest(params, b.proposal)
    return parse_proposal(params, encode_signed_block(SignedBlock(b, sign_digest(signer, digest))))


def test_attests_only_a_validated_proposal_of_the_slots_proposer_while_synced(tmp_path: Path) -> None:
    params = _live_params()
    clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
    slot = clock.current_slot()
    committees = CommitteeCache(params)
    committees.put(params.epoch_of(slot), [ATTESTER.address])  # proposer and sole committee member
    gossiped: list[tuple[str, bytes]] = []
    chain = Chain(params, [])
    guard = DutyGuard(
        open_store(f"sqlite:///{tmp_path / 'd.sqlite'}", migrate=True), node_id="n", rollup=params.rollup
    )
    # L1 unreachable: the node cannot know it is synced
    sync = Sync(RollupClient("http://127.0.0.1:9", params.rollup, timeout=1.0), chain, NodeMetrics())
    scheduler = _scheduler(
        guard, gossiped, params=params, clock=clock, chain=chain, sync=sync, committees=committees
    )
    good = _proposal(params, chain, slot, ATTESTER)
    impostor = _proposal(params, chain, slot, Account.from_key(keccak(b"not the proposer")))

    def not_synced() -> float:
        return scheduler.metrics.duties.labels(duty="attestation", outcome="not_synced")._value.get()

    trio.run(scheduler._attest, good)
    assert gossiped == [] and not_synced() == 1
    sync.status.synced = True  # as after a poll that found the local tip equal to L1's
    trio.run(scheduler._attest, impostor)
    assert gossiped == []  # not the slot's proposer: nothing signed, though the block itself is valid
    trio.run(scheduler._attest, good)
    assert [topic for topic, _ in gossiped] == [ATTESTATION_TOPIC]
    msg = parse_attestation(params, gossiped[0][1])
    assert msg.attester == ATTESTER.address and msg.attestation.archive == good.signed.block.archive


def test_a_proposal_from_a_clock_slightly_ahead_is_attested_once_its_slot_begins(tmp_path: Path) -> None:
    params = _live_params(slot_duration=3)
    clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
    early = clock.current_slot() + 1
    committees = CommitteeCache(params)
    for epoch in {params.epoch_of(early - 1), params.epoch_of(early)}:
        committees.put(epoch, [ATTESTER.address])
    chain = Chain(params, [])
    sync = Sync(RollupClient("http://127.0.0.1:9", params.rollup, timeout=1.0), chain, NodeMetrics())
    sync.status.synced = True
    guard = DutyGuard(
        open_store(f"sqlite:///{tmp_path / 'd.sqlite'}", migrate=True), node_id="n", rollup=params.rollup
    )
    gossiped: list[tuple[str, bytes]] = []
    scheduler = _scheduler(
        guard, gossiped, params=params, clock=clock, chain=chain, sync=sync, committees=committees
    )
    trio.run(scheduler._attest, _proposal(params, chain, early, ATTESTER))
    assert [topic for topic, _ in gossiped] == [ATTESTATION_TOPIC]
    assert parse_attestation(params, gossiped[0][1]).attestation.slot == early


def test_a_proposal_that_fails_re_execution_does_not_shadow_the_genuine_one(tmp_path: Path) -> None:
    params = _live_params()
    clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
    slot = clock.current_slot()
    committees = CommitteeCache(params)
    committees.put(params.epoch_of(slot), [ATTESTER.address])  # proposer and sole committee member
    chain = Chain(params, [])
    sync = Sync(RollupClient("http://127.0.0.1:9", params.rollup, timeout=1.0), chain, NodeMetrics())
    sync.status.synced = True
    guard = DutyGuard(
        open_store(f"sqlite:///{tmp_path / 'd.sqlite'}", migrate=True), node_id="n", rollup=params.rollup
    )
    gossiped: list[tuple[str, bytes]] = []
    scheduler = _scheduler(
        guard, gossiped, params=params, clock=clock, chain=chain, sync=sync, committees=committees
    )
    genuine = _proposal(params, chain, slot, ATTESTER)
    # signed by the slot's proposer, but its archive is not what its txs give on the parent
    b = genuine.signed.block
    bad = dataclasses.replace(b, archive=b"\x66" * 32)
    bad_digest = proposal_digest(params, bad.proposal)
    invalid = parse_proposal(params, encode_signed_block(SignedBlock(bad, sign_digest(ATTESTER, bad_digest))))
    assert invalid.proposer == genuine.proposer == ATTESTER.address

    impostor = _proposal(params, chain, slot, Account.from_key(keccak(b"not the proposer")))

    async def deliver() -> None:
        async with trio.open_nursery() as duties:
            scheduler._duties = duties
            scheduler.on_proposal_nowait(impostor)  # takes no place: not the slot's proposer
            scheduler.on_proposal_nowait(invalid)  # arrives first
            scheduler.on_proposal_nowait(genuine)
            scheduler.on_proposal_nowait(invalid)  # a duplicate of a known proposal is not re-executed
        assert list(scheduler.proposals[slot].values()) == [invalid, genuine]

    trio.run(deliver)
    assert [topic for topic, _ in gossiped] == [ATTESTATION_TOPIC]
    msg = parse_attestation(params, gossiped[0][1])
    assert msg.attester == ATTESTER.address and msg.attestation.archive == genuine.signed.block.archive
    invalid = scheduler.metrics.duties.labels(duty="attestation", outcome="invalid_proposal")
    assert invalid._value.get() == 1


def test_a_twins_recorded_proposal_that_never_reached_gossip_is_sent_from_the_store(tmp_path: Path) -> None:
    """Twin A records the slot's proposal and dies before gossiping it (`after_record`); twin B built another
    block, is refused, sees no proposal on gossip and sends A's stored signed block: the bytes A recorded,
    nothing signed by B (before this, the slot was lost)."""
    params = _live_params(slot_duration=12)
    clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
    slot = clock.current_slot()
    committees = CommitteeCache(params)
    committees.put(params.epoch_of(slot), [ATTESTER.address])  # proposer and sole committee member
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    twin_a = DutyGuard(
        open_store(url, migrate=True),
        node_id="twin-a",
        rollup=params.rollup,
        fault_hook=parse_faults("after_record:raise"),
    )
    chain_a = Chain(params, [])
    block_a = build_block(
        params,
        chain_a.state,
        slot=slot,
        parent_archive=chain_a.tip.archive,
        txs=[],
        fee_recipient=b"\x11" * 32,
    ).block
    digest_a = proposal_digest(params, block_a.proposal)
    # recorded, then the fault point fails the call: the signature never leaves A (as if it died there)
    outcome = twin_a.sign_duty(
        ATTESTER.address,
        slot,
        DutyType.BLOCK_PROPOSAL,
        digest_a,
        encode_block(block_a),
        lambda d: sign_digest(ATTESTER, d),
    )
    assert isinstance(outcome, StoreUnavailable) and signature_of(outcome) is None
    stored = twin_a.recorded(ATTESTER.address, slot, DutyType.BLOCK_PROPOSAL)
    assert stored is not None and stored.digest == digest_a

    signed_by_b: list[bytes] = []

    def sign_b(digest: bytes) -> bytes:
        signed_by_b.append(digest)
        return sign_digest(ATTESTER, digest)

    twin_b = DutyGuard(open_store(url, migrate=True), node_id="twin-b", rollup=params.rollup)
    gossiped: list[tuple[str, bytes]] = []
    scheduler = _scheduler(
        twin_b,
        gossiped,
        params=params,
        clock=clock,
        chain=Chain(params, []),
        committees=committees,
        mempool=Mempool(params, 8),
        identities=[Identity(ATTESTER.address, bytes(32), sign_b)],  # B's fee recipient: another block
    )
    identity = scheduler.identities[ATTESTER.address]

    async def propose_until_gossiped() -> None:
        with trio.move_on_after(params.slot_duration):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scheduler._propose, slot, identity, SlotRecord(slot))
                while not gossiped:
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()  # the rest is collecting votes: not this test's

    trio.run(propose_until_gossiped)
    assert [topic for topic, _ in gossiped] == [PROPOSAL_TOPIC]
    sent = parse_proposal(params, gossiped[0][1])
    assert sent.digest == digest_a and sent.signed.block == block_a
    assert sent.signed.signature == stored.signature
    assert signed_by_b == []  # B's key signed nothing: the refused block was never signed
    assert scheduler.proposals[slot] == {digest_a: sent}
    assert scheduler.metrics.proposals_resent._value.get() == 1

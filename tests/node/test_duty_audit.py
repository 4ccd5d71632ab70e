"""An identity's duties judged from L1: proposals done or missed; attestations done, missed or blockless."""

from __future__ import annotations

from ha_sequencer.ha.outcomes import DutyType
from ha_sequencer.node.chain import ChainBlock
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.duty_audit import DutyAudit, DutyResult
from ha_sequencer.node.metrics import NodeMetrics
from params_fixtures import PARAMS

OURS = "0x00000000000000000000000000000000000000A1"
COMMITTEE = [OURS, "0x00000000000000000000000000000000000000B2", "0x00000000000000000000000000000000000000C3"]


def _audit() -> tuple[DutyAudit, CommitteeCache, NodeMetrics]:
    committees = CommitteeCache(PARAMS)
    for epoch in range(4):
        committees.put(epoch, COMMITTEE)
    metrics = NodeMetrics()
    audit = DutyAudit(
        clock=SlotClock(SlotTiming(PARAMS.genesis_time, PARAMS.slot_duration)),
        committees=committees,
        synced=lambda: True,
        healthy=lambda: True,
        attesters=[OURS],
        metrics=metrics,
    )
    return audit, committees, metrics


def _block(slot: int, proposer: str, attesters: list[str]) -> ChainBlock:
    return ChainBlock(
        slot, slot, bytes(32), bytes(32), bytes(32), bytes(32), (), proposer, None, tuple(attesters)
    )


def _count(metrics: NodeMetrics, duty: str, result: str) -> float | None:
    return metrics.registry.get_sample_value(
        "hasq_identity_duties_total", {"attester": OURS, "duty": duty, "result": result}
    )


def _streak(metrics: NodeMetrics, duty: str) -> float | None:
    return metrics.registry.get_sample_value(
        "hasq_identity_missed_duties_streak", {"attester": OURS, "duty": duty}
    )


def test_series_exist_at_zero_before_any_slot_is_judged() -> None:
    _audit_, _c, metrics = _audit()
    for result in ("done", "missed"):
        assert _count(metrics, "block_proposal", result) == 0
    for result in ("done", "missed", "no_block"):
        assert _count(metrics, "attestation", result) == 0


def test_attestations_done_missed_and_without_block() -> None:
    audit, committees, metrics = _audit()
    others = [s for s in range(1, 40) if committees.proposer(s) != OURS][:4]
    other = next(a for a in COMMITTEE if a != OURS)
    audit.on_block(_block(others[0], committees.proposer(others[0]) or other, [OURS, other]))
    audit.on_block(_block(others[1], committees.proposer(others[1]) or other, [other]))
    audit.on_block(_block(others[2], committees.proposer(others[2]) or other, [other]))
    assert audit.judge(others[0]) == {(OURS, DutyType.ATTESTATION): DutyResult.DONE}
    assert audit.judge(others[1]) == {(OURS, DutyType.ATTESTATION): DutyResult.MISSED}
    assert audit.judge(others[3]) == {(OURS, DutyType.ATTESTATION): DutyResult.NO_BLOCK}
    assert _streak(metrics, "attestation") == 1  # a slot without a block neither adds nor resets
    assert audit.judge(others[2]) == {(OURS, DutyType.ATTESTATION): DutyResult.MISSED}
    assert _streak(metrics, "attestation") == 2
    assert (_count(metrics, "attestation", "done"), _count(metrics, "attestation", "missed")) == (1, 2)
    assert _count(metrics, "attestation", "no_block") == 1


def test_a_proposal_is_done_only_when_l1_has_the_attesters_block_for_the_slot() -> None:
    audit, committees, metrics = _audit()
    mine = [s for s in range(1, 60) if committees.proposer(s) == OURS][:2]
    assert len(mine) == 2
    other = next(a for a in COMMITTEE if a != OURS)
    results = audit.judge(mine[0])  # no block at all
    assert results[OURS, DutyType.BLOCK_PROPOSAL] == DutyResult.MISSED
    assert _streak(metrics, "block_proposal") == 1
    audit.on_block(_block(mine[1], OURS, [OURS, other]))
    results = audit.judge(mine[1])
    assert results[OURS, DutyType.BLOCK_PROPOSAL] == DutyResult.DONE
    assert results[OURS, DutyType.ATTESTATION] == DutyResult.DONE
    assert _streak(metrics, "block_proposal") == 0
    assert (_count(metrics, "block_proposal", "done"), _count(metrics, "block_proposal", "missed")) == (1, 1)


def test_a_slot_whose_committee_is_unknown_is_not_judged() -> None:
    audit, _c, metrics = _audit()
    far = PARAMS.epoch_length * 10
    assert audit.judge(far) == {}
    assert _count(metrics, "attestation", "missed") == 0

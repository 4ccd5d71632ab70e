"""The duties of this node's attesters, judged from L1 once a slot is final: done, missed, or no block.

This is the identity's record, not this node's: every twin reads the same L1, so every twin exports the same
counts, and a rule takes `max by (attester, duty)` over them. A proposal is done when L1 holds a block for the
slot proposed by the attester; an attestation is done when the attester is among the slot's block attesters,
and `no_block` when the slot has no block (an attestation reaches L1 only inside one: the proposer missed).
A slot is judged once the chain has synced past its end: L1 accepts a proposal only within its own slot.
Judging starts with the first slot after the node first turned healthy: what an identity misses while its
nodes start is what the down/unhealthy alerts are for, and a devnet whose nodes all start at once would
otherwise open with proposals "missed" before the peers had connected.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import assert_never

import trio

from ha_sequencer.ha.outcomes import DutyType
from ha_sequencer.node.chain import ChainBlock
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.metrics import NodeMetrics

log = logging.getLogger(__name__)

FINAL_AFTER_SLOTS = 2  # slot s is judged at the start of s + 2: its block, if any, was mined in s
_BLOCKS_KEPT = 256  # recent blocks by slot; judging lags the tip by two slots


class DutyResult(StrEnum):
    """One duty of one attester in one slot, as L1 shows it."""

    DONE = "done"
    MISSED = "missed"
    NO_BLOCK = "no_block"


_RESULTS = {
    DutyType.BLOCK_PROPOSAL: (DutyResult.DONE, DutyResult.MISSED),
    DutyType.ATTESTATION: (DutyResult.DONE, DutyResult.MISSED, DutyResult.NO_BLOCK),
}


class DutyAudit:
    """Counts each attester's proposals and attestations as L1 shows them (`hasq_identity_*` series)."""

    def __init__(
        self,
        *,
        clock: SlotClock,
        committees: CommitteeCache,
        synced: Callable[[], bool],
        healthy: Callable[[], bool],
        attesters: Sequence[str],
        metrics: NodeMetrics,
    ) -> None:
        self._clock = clock
        self._committees = committees
        self._synced = synced
        self._healthy = healthy
        self._attesters = list(attesters)
        self._metrics = metrics
        self._blocks: OrderedDict[int, ChainBlock] = OrderedDict()
        for attester in self._attesters:
            for duty in DutyType:
                # every series exists from the start: `increase()` cannot see a counter's first sample
                for result in _RESULTS[duty]:
                    metrics.identity_duties.labels(attester, duty.value, result.value).inc(0)
                metrics.identity_missed_streak.labels(attester, duty.value).set(0)

    def on_block(self, block: ChainBlock) -> None:
        """A block applied from L1 (the sync's callback)."""
        self._blocks[block.slot] = block
        while len(self._blocks) > _BLOCKS_KEPT:
            self._blocks.popitem(last=False)

    def judge(self, slot: int) -> dict[tuple[str, DutyType], DutyResult]:
        """Count the duties of final `slot`; returns them (nothing while its committee is unknown)."""
        committee = self._committees.committee_at(slot)
        proposer = self._committees.proposer(slot)
        if committee is None:
            log.debug("slot %d: committee unknown, duties not judged", slot)
            return {}
        block = self._blocks.get(slot)
        results: dict[tuple[str, DutyType], DutyResult] = {}
        for attester in self._attesters:
            if attester == proposer:
                done = block is not None and block.proposer == attester
                results[attester, DutyType.BLOCK_PROPOSAL] = DutyResult.DONE if done else DutyResult.MISSED
            if attester in committee:
                if block is None:
                    results[attester, DutyType.ATTESTATION] = DutyResult.NO_BLOCK
                elif attester in block.attesters:
                    results[attester, DutyType.ATTESTATION] = DutyResult.DONE
                else:
                    results[attester, DutyType.ATTESTATION] = DutyResult.MISSED
        for (attester, duty), result in results.items():
            self._count(slot, attester, duty, result)
        return results

    def _count(self, slot: int, attester: str, duty: DutyType, result: DutyResult) -> None:
        self._metrics.identity_duties.labels(attester, duty.value, result.value).inc()
        streak = self._metrics.identity_missed_streak.labels(attester, duty.value)
        match result:
            case DutyResult.DONE:
                streak.set(0)
            case DutyResult.MISSED:
                streak.inc()
                log.warning("slot %d: attester %s: %s not on L1", slot, attester, duty.value)
            case DutyResult.NO_BLOCK:
                pass  # the proposer's miss, counted against the proposer
            case _:
                assert_never(result)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Judge every slot from the first after the node turned healthy, each once final and synced past."""
        task_status.started()
        poll_s = self._clock.timing.slot_duration / 4
        while not self._healthy():
            await trio.sleep(poll_s)
        slot = self._clock.current_slot() + 1
        while True:
            await self._clock.wait_for_slot(slot + FINAL_AFTER_SLOTS)
            # the chain must have seen L1 after the slot ended, else a landed block would count as missed
            while not self._synced():
                await trio.sleep(poll_s)
            current = self._clock.current_slot()
            # a node paused for many slots judges only what its committee cache still holds
            for judged in range(slot, current - FINAL_AFTER_SLOTS + 1):
                self.judge(judged)
            slot = max(slot + 1, current - FINAL_AFTER_SLOTS + 1)

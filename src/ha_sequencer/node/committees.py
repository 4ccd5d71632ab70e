"""Committees by epoch, read from L1 ahead of time: gossip validation never waits on I/O."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import trio

from ha_sequencer.l1.errors import L1_ERRORS
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.protocol.committee import proposer_for, quorum
from ha_sequencer.protocol.constants import NetworkParams

log = logging.getLogger(__name__)

# epochs kept behind the current one (late attestations of the previous epoch still validate)
_KEEP_BEHIND = 2


class CommitteeCache:
    """epoch → committee (checksummed addresses, L1 order); proposer and quorum derived locally."""

    def __init__(self, params: NetworkParams, fetch: Callable[[int], list[str]] | None = None) -> None:
        self.params = params
        self._fetch = fetch  # epoch → committee from L1 (`run` keeps the cache filled with it)
        self._committees: dict[int, tuple[str, ...]] = {}
        self._members: dict[int, frozenset[str]] = {}

    def put(self, epoch: int, committee: list[str]) -> None:
        """Record the committee of `epoch` and forget epochs long past."""
        self._committees[epoch] = tuple(committee)
        self._members[epoch] = frozenset(committee)
        for old in [e for e in self._committees if e < epoch - _KEEP_BEHIND - 2]:
            del self._committees[old]
            del self._members[old]

    def has(self, epoch: int) -> bool:
        """Whether the committee of `epoch` is known."""
        return epoch in self._committees

    def committee(self, epoch: int) -> tuple[str, ...] | None:
        """The committee of `epoch`, or None if not fetched yet."""
        return self._committees.get(epoch)

    def committee_at(self, slot: int) -> tuple[str, ...] | None:
        """The committee of the epoch containing `slot`."""
        return self._committees.get(self.params.epoch_of(slot))

    def is_member(self, slot: int, attester: str) -> bool | None:
        """Whether `attester` sits on the committee of `slot`'s epoch (None if unknown yet)."""
        members = self._members.get(self.params.epoch_of(slot))
        return None if members is None else attester in members

    def proposer(self, slot: int) -> str | None:
        """The proposer of `slot` (None if its committee is unknown or empty)."""
        committee = self.committee_at(slot)
        if not committee:
            return None
        return proposer_for(slot, self.params.epoch_length, committee, self.params.genesis_seed)

    def quorum(self, slot: int) -> int | None:
        """Attestations needed for a block at `slot`."""
        committee = self.committee_at(slot)
        return None if committee is None else quorum(len(committee))

    async def run(
        self,
        clock: SlotClock,
        ours: Collection[str],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the current and next epoch cached (fixed two epochs ahead); logs which of `ours` sit on them.

        While L1 is down the fetch is retried every half slot; gossip of unknown epochs is ignored meanwhile.
        """
        if self._fetch is None:
            raise RuntimeError("CommitteeCache.run needs a fetch function")
        fetch = self._fetch
        task_status.started()
        while True:
            epoch = self.params.epoch_of(max(0, clock.current_slot()))
            for e in (epoch, epoch + 1):
                if self.has(e):
                    continue
                try:
                    committee = await trio.to_thread.run_sync(fetch, e)
                except L1_ERRORS as exc:
                    log.warning("epoch %d: committee not available: %s", e, exc)
                    break
                self.put(e, committee)
                if e == epoch:
                    mine = [a for a in ours if a in committee]
                    log.info(
                        "epoch %d: committee of %d, ours: %s", e, len(committee), ", ".join(mine) or "none"
                    )
            await trio.sleep(min(1.0, self.params.slot_duration / 2))

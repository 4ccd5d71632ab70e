"""What L1 says about each slot: committee, proposer and the block proposed (if any) — read incrementally.

Shared by the live view and `failover-test`; committees are computed with `protocol.committee` from the
contract's epoch committee (fixed two epochs ahead), blocks come from `BlockProposed` events with calldata.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ha_sequencer.l1.client import BlockProposedEvent, RollupClient
from ha_sequencer.protocol.block import decode_txs
from ha_sequencer.protocol.committee import proposer_for
from ha_sequencer.protocol.constants import NetworkParams

COMMITTEE_CACHE_EPOCHS = 64


def current_slot(params: NetworkParams) -> int:
    """The slot the wall clock is in."""
    return params.slot_at(time.time())


def wait_slot_start(params: NetworkParams, slot: int) -> None:
    """Sleep until `slot` begins (at once if it has)."""
    delay = params.slot_start(slot) - time.time()
    if delay > 0:
        time.sleep(delay)


@dataclass(frozen=True)
class SlotFacts:
    """One slot as L1 records it."""

    slot: int
    proposer: str
    committee: tuple[str, ...]
    block: BlockProposedEvent | None

    @property
    def tx_count(self) -> int:
        """L2 txs in the slot's block (0 without a block)."""
        if self.block is None or not self.block.txs:
            return 0
        try:
            return len(decode_txs(self.block.txs))
        except Exception:  # undecodable calldata is the node's bug, not the view's
            return -1


class SlotBook:
    """Incremental reader of committees and `BlockProposed` events; thread-safe."""

    def __init__(self, client: RollupClient, params: NetworkParams) -> None:
        self.client = client
        self.params = params
        self._committees: dict[int, tuple[str, ...]] = {}
        self._blocks: dict[int, BlockProposedEvent] = {}
        self._next_l1_block = 0
        self._lock = threading.Lock()

    def committee(self, epoch: int) -> tuple[str, ...]:
        """The committee of `epoch` (cached)."""
        with self._lock:
            cached = self._committees.get(epoch)
        if cached is None:
            cached = tuple(self.client.epoch_committee(epoch))
            with self._lock:
                self._committees[epoch] = cached
                for old in sorted(self._committees)[:-COMMITTEE_CACHE_EPOCHS]:
                    del self._committees[old]
        return cached

    def proposer(self, slot: int) -> str:
        """The proposer of `slot`."""
        committee = self.committee(self.params.epoch_of(slot))
        return proposer_for(slot, self.params.epoch_length, committee, self.params.genesis_seed)

    def refresh(self) -> int:
        """Read new `BlockProposed` events up to L1's latest block; returns how many arrived."""
        latest = self.client.l1_block_number()
        with self._lock:
            start = self._next_l1_block
        if latest < start:
            return 0
        events = self.client.block_proposed_events(start, latest)
        with self._lock:
            for e in events:
                self._blocks[e.slot] = e
            self._next_l1_block = latest + 1
        return len(events)

    def block(self, slot: int) -> BlockProposedEvent | None:
        """The block of `slot` on L1, if any (as of the last refresh)."""
        with self._lock:
            return self._blocks.get(slot)

    def facts(self, slot: int) -> SlotFacts:
        """Committee, proposer and block of `slot`."""
        committee = self.committee(self.params.epoch_of(slot))
        proposer = proposer_for(slot, self.params.epoch_length, committee, self.params.genesis_seed)
        return SlotFacts(slot, proposer, committee, self.block(slot))

    def current_slot(self) -> int:
        """The slot by this host's clock (what the nodes use)."""
        return self.params.slot_at(time.time())

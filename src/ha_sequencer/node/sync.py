"""Sync: rebuild the L2 chain from L1 `BlockProposed` events and their calldata, at start and continuously.

L1 is the data-availability layer, so a node that was down, or started late, replays every block from L1 and
re-executes it; a block whose re-execution disagrees with the archive on L1 stops the node (it cannot follow
the chain). Until the local tip equals the L1 tip the node is not synced and signs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ha_sequencer.l1.client import BlockProposedEvent, RollupClient
from ha_sequencer.l1.errors import L1_ERRORS
from ha_sequencer.node.chain import Chain, ChainBlock, ChainError
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.wire import Block

log = logging.getLogger(__name__)

# L1 blocks scanned per event query (keeps each eth_getLogs call small)
SCAN_CHUNK = 2_000


@dataclass
class SyncStatus:
    """What /status reports about sync."""

    synced: bool = False
    local_height: int = 0
    l1_height: int | None = None
    l1_archive: bytes | None = None
    scanned_l1_block: int = -1
    last_error: str | None = None
    last_success: float | None = None


class Sync:
    """Follows the Rollup on L1 and appends its blocks to the local chain."""

    def __init__(
        self,
        client: RollupClient,
        chain: Chain,
        metrics: NodeMetrics,
        *,
        from_l1_block: int = 0,
        scrub: Callable[[str], str] = lambda text: text,
        on_block: Callable[[ChainBlock], None] = lambda block: None,
        on_event: Callable[[BlockProposedEvent], None] = lambda event: None,
    ) -> None:
        self.client = client
        self.chain = chain
        self.metrics = metrics
        self.status = SyncStatus()
        self._next_l1_block = from_l1_block
        self._scrub = scrub
        self._on_block = on_block  # called after each block is applied, with the chain's state at it
        self._on_event = on_event  # every BlockProposed as read from L1 (the detector's view of L1)
        self._lock = trio.Lock()

    @property
    def synced(self) -> bool:
        """True when the local tip equals the L1 tip (as of the last successful poll)."""
        return self.status.synced

    async def catch_up(self) -> bool:
        """Poll L1 once and apply any new blocks; returns whether we are synced. L1 errors → not synced."""
        async with self._lock:
            try:
                await self._step()
            except L1_ERRORS as exc:  # L1 unreachable or erroring: report, retry on the next poll
                first = self.status.last_error is None
                self.status.synced = False
                self.status.last_error = self._scrub(f"{type(exc).__name__}: {exc}")
                self.metrics.synced.set(0)
                if first:
                    log.warning("sync: L1 poll failed: %s", self.status.last_error)
            return self.status.synced

    async def _step(self) -> None:
        height, archive, _slot = await trio.to_thread.run_sync(self.client.tips)
        self.status.l1_height, self.status.l1_archive = height, archive
        self.metrics.l1_tip_height.set(height)
        if height > self.chain.height:
            head = await trio.to_thread.run_sync(self.client.l1_block_number)
            while self._next_l1_block <= head and self.chain.height < height:
                to_block = min(head, self._next_l1_block + SCAN_CHUNK - 1)
                events = await trio.to_thread.run_sync(
                    self.client.block_proposed_events, self._next_l1_block, to_block
                )
                for event in sorted(events, key=lambda e: e.block_number):
                    if event.block_number <= self.chain.height:
                        continue  # already applied
                    self._apply(event)
                self._next_l1_block = to_block + 1
                self.status.scanned_l1_block = to_block
        elif height < self.chain.height:
            raise ChainError(f"L1 tip is block {height}, below the local tip {self.chain.height}: L1 reorg?")
        tip = self.chain.tip
        if height == tip.number and archive != tip.archive:
            raise ChainError(
                f"block {height}: local archive 0x{tip.archive.hex()[:12]}… "
                f"differs from L1 0x{archive.hex()[:12]}…"
            )
        if self.status.last_error is not None:
            log.info("sync: L1 answers again")
        self.status.synced = height == tip.number
        self.status.local_height = tip.number
        self.status.last_error = None
        self.status.last_success = time.time()
        self.metrics.sync_height.set(tip.number)
        self.metrics.synced.set(1 if self.status.synced else 0)

    def _apply(self, event: BlockProposedEvent) -> None:
        self._on_event(event)
        block = Block(
            slot=event.slot,
            parent_archive=event.proposal.parent_archive,
            archive=event.archive,
            fee_recipient=event.proposal.fee_recipient,
            txs=event.txs,
        )
        applied = self.chain.append(
            block,
            number=event.block_number,
            proposer=event.proposer,
            publisher=event.publisher,
            attesters=event.attesters,
            l1_block=event.l1_block_number,
            l1_tx="0x" + event.l1_tx_hash.hex(),
        )
        log.info(
            "sync: block %d slot %d archive 0x%s… (%d txs, %d attesters)",
            applied.number,
            applied.slot,
            applied.archive.hex()[:12],
            len(applied.txs),
            len(applied.attesters),
        )
        self._on_block(applied)

    async def run(
        self, poll_s: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll L1 every `poll_s` until cancelled; task_status fires after the first poll attempt."""
        await self.catch_up()
        task_status.started()
        while True:
            await trio.sleep(poll_s)
            await self.catch_up()

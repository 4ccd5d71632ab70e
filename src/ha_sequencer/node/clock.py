"""The slot clock: wall time → slot; trio sleeps until slot boundaries without drift (DESIGN.md: network)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class SlotTiming:
    """The two numbers that define slot time (from `NetworkParams`)."""

    genesis_time: int
    slot_duration: int

    def slot_at(self, timestamp: float) -> int:
        """The slot containing `timestamp` (slot 0 starts at genesis; earlier times clamp to 0)."""
        if timestamp < self.genesis_time:
            return 0
        return int((timestamp - self.genesis_time) // self.slot_duration)

    def slot_start(self, slot: int) -> float:
        """The wall-clock time at which `slot` begins."""
        return float(self.genesis_time + slot * self.slot_duration)


class SlotClock:
    """Maps wall-clock time to slots; each wait is recomputed from the wall clock, so errors never add up."""

    def __init__(self, timing: SlotTiming, *, now: Callable[[], float] = time.time) -> None:
        self.timing = timing
        self._now = now

    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        return self._now()

    def current_slot(self) -> int:
        """The slot at the current wall-clock time."""
        return self.timing.slot_at(self._now())

    def slot_start(self, slot: int) -> float:
        """Wall-clock start of `slot`."""
        return self.timing.slot_start(slot)

    def since_slot_start(self, slot: int) -> float:
        """Seconds elapsed since `slot` began (negative before it)."""
        return self._now() - self.timing.slot_start(slot)

    def trio_deadline(self, wall_time: float) -> float:
        """The trio clock value corresponding to a wall-clock time (for cancel scopes)."""
        return trio.current_time() + (wall_time - self._now())

    def slot_deadline(self, slot: int, fraction: float) -> float:
        """The trio deadline `fraction` of the way through `slot`."""
        return self.trio_deadline(self.timing.slot_start(slot) + fraction * self.timing.slot_duration)

    async def sleep_until(self, wall_time: float) -> None:
        """Sleep until a wall-clock time; re-reads the clock after waking, so a jump never makes us early."""
        while True:
            remaining = wall_time - self._now()
            if remaining <= 0:
                return
            await trio.sleep(remaining)

    async def wait_for_slot(self, slot: int) -> None:
        """Sleep until `slot` begins (returns at once if it already has)."""
        await self.sleep_until(self.timing.slot_start(slot))

    async def slots(self) -> AsyncIterator[int]:
        """Yield each slot as it begins, starting with the next boundary; skipped slots are not replayed."""
        slot = self.current_slot() + 1
        while True:
            await self.wait_for_slot(slot)
            current = self.current_slot()
            # if the process stalled past several boundaries, act on the slot we are in, not stale ones
            slot = max(slot, current)
            yield slot
            slot += 1

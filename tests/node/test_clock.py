"""The slot clock: slot arithmetic and boundary waits computed from the wall clock."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from ha_sequencer.node.clock import SlotClock, SlotTiming


def test_slot_arithmetic() -> None:
    timing = SlotTiming(genesis_time=1_000, slot_duration=4)
    assert timing.slot_at(999) == 0 and timing.slot_at(1_000) == 0 and timing.slot_at(1_003.99) == 0
    assert timing.slot_at(1_004) == 1 and timing.slot_start(10) == 1_040
    clock = SlotClock(timing, now=lambda: 1_041.5)
    assert clock.current_slot() == 10 and clock.since_slot_start(10) == 1.5


def test_slots_start_at_boundaries_without_drift() -> None:
    # trio's virtual clock drives "wall" time: boundaries are exact and work inside a slot does not shift them
    base = 1_000_000.25
    timing = SlotTiming(genesis_time=999_990, slot_duration=4)
    seen: list[tuple[int, float]] = []

    async def main() -> None:
        clock = SlotClock(timing, now=lambda: base + trio.current_time())
        async for slot in clock.slots():
            seen.append((slot, clock.since_slot_start(slot)))
            await trio.sleep(1.7)
            if len(seen) == 5:
                return

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert [s for s, _ in seen] == [3, 4, 5, 6, 7]
    assert all(lag == 0 for _, lag in seen), seen


def test_stalled_process_acts_on_the_current_slot() -> None:
    timing = SlotTiming(genesis_time=0, slot_duration=2)
    seen: list[int] = []

    async def main() -> None:
        clock = SlotClock(timing, now=trio.current_time)
        async for slot in clock.slots():
            seen.append(slot)
            if len(seen) == 1:
                await trio.sleep(7)  # a stall across several boundaries: stale slots are skipped
            if len(seen) == 3:
                return

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert seen == [1, 4, 5]

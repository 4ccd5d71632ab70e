"""The fault schedule: pure and seeded (same seed and inputs, same schedule), no I/O.

A fault starts at a slot and an offset into it and holds for a random time; node faults hit one HA node.
The planner keeps at least one HA node free of node faults at every moment (unless total outages are
allowed), counting a restarted node as down until `recovery_s` after its restart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ha_sequencer.errors import InputError
from ha_sequencer.ha.faults import KILL_POINTS

FAULT_CLASSES = ("kill", "term", "pause", "store", "l1", "partition", "skew")
NODE_FAULTS = ("kill", "term", "pause", "l1", "partition", "skew")  # one HA node impaired while it holds
L1_SLOW_FRACTION = 0.5  # of l1 faults: slow rather than down
MID_DUTY_FRACTION = 0.5  # of kill faults: inside a duty, at one of the guard's fault points
DEFAULT_FAULT_RATE = 0.15  # chance per slot that a new fault starts
RECOVERY_S = 12.0  # a restarted node's start-up and sync, counted as down when planning
# a healed node and its peers redial with a backoff of up to 5 s, jittered ×1.5 (p2p/gossip.py)
PARTITION_HEAL_S = 8.0
MAX_SKEW_SLOTS = 0.5  # a skewed clock is off by up to half a slot, either way
MIN_SKEW_SLOTS = 0.1  # and by at least this much (a skew of 0 tests nothing)


@dataclass(frozen=True)
class Fault:
    """One planned fault: `kind` on `node` (None: every HA node) from `at_slot` + `offset` of a slot."""

    index: int
    kind: str
    node: str | None
    at_slot: int  # relative to the run's first slot
    offset: float  # fraction of the slot, [0, 1)
    hold_s: float  # kill/term: until the restart; pause: SIGSTOP length; store, l1: outage length
    delay_s: float = 0.0  # l1: per-chunk delay of a slow L1 (0: down)
    point: str = (
        ""  # kill: the guard's fault point it dies at (a claim held, a signature unrecorded); "": any
    )
    skew_s: float = 0.0  # skew: the node's clock offset (libfaketime), negative: behind

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "index": self.index,
            "kind": self.kind,
            "node": self.node,
            "atSlot": self.at_slot,
            "offset": round(self.offset, 3),
            "holdS": round(self.hold_s, 2),
            "delayS": round(self.delay_s, 3),
            "point": self.point,
            "skewS": round(self.skew_s, 3),
        }


def parse_fault_list(spec: str) -> tuple[str, ...]:
    """`kill,pause` → ("kill", "pause"); `all` → every class (InputError naming the bad one)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise InputError("--faults: empty list (choose from " + ", ".join(FAULT_CLASSES) + ", or all)")
    if names == ["all"]:
        return FAULT_CLASSES
    for name in names:
        if name not in FAULT_CLASSES:
            raise InputError(f"--faults: unknown fault {name!r} (known: {', '.join(FAULT_CLASSES)}, all)")
    return tuple(dict.fromkeys(names))


def check_inputs(slots: int, rate: float, min_fulfilment: float) -> None:
    """Usage errors for the numeric options (exit 2)."""
    if slots < 1:
        raise InputError(f"--slots: at least 1, got {slots}")
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"--fault-rate: must be within [0, 1], got {rate}")
    if not 0.0 <= min_fulfilment <= 1.0:
        raise InputError(f"--min-fulfilment: must be within [0, 1] (0.995 = 99.5 %), got {min_fulfilment}")


def plan_faults(
    *,
    slots: int,
    seed: int,
    kinds: tuple[str, ...],
    rate: float,
    ha_nodes: tuple[str, ...],
    slot_duration: float,
    lease_s: float,
    allow_total_outage: bool = False,
    warmup_slots: int = 2,
    recovery_s: float = RECOVERY_S,
) -> list[Fault]:
    """The faults of a run of `slots` slots (none in the first `warmup_slots` nor the last two)."""
    rng = random.Random(seed)
    down_until = dict.fromkeys(ha_nodes, -1.0)  # seconds from the run's start
    store_until = -1.0
    faults: list[Fault] = []
    for slot in range(warmup_slots, max(warmup_slots, slots - 2)):
        if not kinds or rng.random() >= rate:
            continue
        kind = rng.choice(kinds)
        offset = rng.random()
        at = (slot + offset) * slot_duration
        if kind == "store":
            if at < store_until:
                continue
            hold = rng.uniform(1.0, 3.0) * slot_duration
            store_until = at + hold
            faults.append(Fault(len(faults), kind, None, slot, offset, hold))
            continue
        free = [n for n in ha_nodes if down_until[n] <= at]
        down = len(ha_nodes) - len(free)
        if not free or (not allow_total_outage and down + 1 >= len(ha_nodes)):
            continue
        node = rng.choice(free)
        delay = skew = 0.0
        point = ""
        match kind:
            case "kill" | "term":
                if kind == "kill" and rng.random() < MID_DUTY_FRACTION:
                    point = rng.choice(KILL_POINTS)
                hold = rng.uniform(0.0, 2.0) * slot_duration  # then restart
                busy = hold + recovery_s
            case "pause":
                hold = lease_s + rng.uniform(0.5, 2.0) * slot_duration  # longer than the lease
                busy = hold
            case "l1":
                hold = rng.uniform(1.0, 3.0) * slot_duration
                busy = hold
                if rng.random() < L1_SLOW_FRACTION:
                    delay = rng.uniform(0.2, 1.0) * slot_duration / 4
            case "partition":
                hold = rng.uniform(1.0, 3.0) * slot_duration  # cut off, then healed
                busy = hold + PARTITION_HEAL_S
            case "skew":
                # restarted under the skewed clock, which then runs 1-3 slots, then restarted without it
                hold = recovery_s + rng.uniform(1.0, 3.0) * slot_duration
                busy = hold + recovery_s
                skew = rng.choice((-1, 1)) * rng.uniform(MIN_SKEW_SLOTS, MAX_SKEW_SLOTS) * slot_duration
            case _:
                raise InputError(f"--faults: {kind!r} is not implemented")
        down_until[node] = at + busy
        faults.append(Fault(len(faults), kind, node, slot, offset, hold, delay, point, skew))
    return faults

"""Fault injection at the guard's critical points, for tests and chaos runs (never set in production)."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

FAULT_POINTS = ("before_claim", "after_claim", "after_sign", "before_record", "after_record")
MID_DUTY_POINTS = FAULT_POINTS[1:4]  # a claim is held: a peer must adopt
# Inside a duty: a claim held (a peer adopts it), or the signature recorded and never released or gossiped
# (a peer sends the stored message: the only one the duty may carry).
KILL_POINTS = FAULT_POINTS[1:]
FAULT_ENV = "HA_GUARD_FAULTS"

FaultHook = Callable[[str, int], None]


class InjectedFault(RuntimeError):
    """An exception raised on purpose by the fault hook."""


def parse_faults(spec: str, *, seed: int | None = None) -> FaultHook:
    """Build a hook from `point:action[:arg][@slot[+]|%prob|!PATH],…`; actions: kill, raise, delay:SECONDS.

    `!PATH`: only while the file PATH exists (`{pid}` in it is this process's id), so a chaos run can arm a
    fault point in one running node at a moment it picks: `after_sign:kill!/run/chaos/arm.{pid}`.

    Examples: `after_sign:kill@5` (SIGKILL ourselves at slot 5; `@5+`: at the first duty from slot 5 on
    that reaches the point), `before_record:delay:0.02%0.1`
    (10 % of duties sleep 20 ms), `before_record:raise%0.01`.
    """
    rng = random.Random(seed)
    rules: list[tuple[str, str, float, int | None, bool, float, str | None]] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        slot: int | None = None
        onward = False
        prob = 1.0
        armed_by: str | None = None
        if "!" in item:
            item, path = item.split("!", 1)
            if not path:
                raise ValueError(f"{FAULT_ENV}: bad fault {item!r}: `!` needs a file path")
            armed_by = path.replace("{pid}", str(os.getpid()))
        elif "@" in item:
            item, at = item.split("@", 1)
            onward = at.endswith("+")
            slot = int(at.rstrip("+"))
        elif "%" in item:
            item, p = item.split("%", 1)
            prob = float(p)
        point, action, *rest = item.split(":")
        if point not in FAULT_POINTS or action not in ("kill", "raise", "delay"):
            raise ValueError(
                f"{FAULT_ENV}: bad fault {item!r} (points {FAULT_POINTS}; actions kill, raise, delay)"
            )
        rules.append((point, action, float(rest[0]) if rest else 0.0, slot, onward, prob, armed_by))

    def hook(point: str, slot_now: int) -> None:
        for r_point, action, arg, r_slot, onward, prob, armed_by in rules:
            if r_point != point or rng.random() >= prob:
                continue
            if armed_by is not None and not os.path.exists(armed_by):
                continue
            if r_slot is not None and not (slot_now >= r_slot if onward else slot_now == r_slot):
                continue
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "raise":
                raise InjectedFault(f"injected fault at {point}, slot {slot_now}")
            else:
                time.sleep(arg)

    return hook


def faults_from_env(seed: int | None = None) -> FaultHook | None:
    """The hook described by `HA_GUARD_FAULTS`, or None when unset."""
    spec = os.environ.get(FAULT_ENV, "")
    return parse_faults(spec, seed=seed) if spec else None

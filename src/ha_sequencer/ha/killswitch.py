"""The kill switch: a signature of our attester that this duty store did not issue halts the attester.

The guard protects every signer that uses it; the classic slashing is a signer that does not (a replica on
another store, a restored backup, a copied keystore). A signature leaves a guard only after its digest is
recorded in the store, so every message our fleet ever released has a row with its digest. A message whose
digest the store does not hold for that duty was signed elsewhere: it is *foreign*, and a halt written into
the store makes every twin's guard answer `Halted` for that attester until an operator resumes it.

What is judged (the caller verified the signature: the signer is recovered from it, so a forged message
cannot name our attester):
- a row with the same digest → ours (whether `signed` or still `signing`: a guard releases a signature only
  after the record, and an identical digest from elsewhere is not slashable either; a false halt stops the
  fleet, so the benefit of the doubt goes to liveness here);
- a slot at or below the scope's watermark → not judged: its row was pruned, so a replay of our own old
  message cannot be told from a foreign one (gossip carries only the current slot ±1 and L1 takes a proposal
  only in its own slot, so an old foreign message can no longer be used to equivocate on L1 — it remains
  evidence an operator finds with `monitor` and `ha-db export`);
- a slot outside `[now - JUDGE_BEHIND, now + JUDGE_AHEAD]` → not judged (history replayed by sync; see above);
- otherwise (no row, or another digest) → foreign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from ha_sequencer.ha.outcomes import DutyType
from ha_sequencer.ha.store import DutyKey, DutyRow, DutyStore, Existing, Halt

JUDGE_BEHIND = 8  # slots: L1 sync lag plus gossip's one slot behind, with room to spare
JUDGE_AHEAD = 1  # gossip accepts one slot ahead (clock skew)


@dataclass(frozen=True, slots=True)
class Ours:
    """The store issued this digest for this duty."""


@dataclass(frozen=True, slots=True)
class Foreign:
    """Signed by our key, not issued by this store; `ours` is the store's row for the duty, if any."""

    ours: DutyRow | None


@dataclass(frozen=True, slots=True)
class NotJudged:
    """Outside what the store can vouch for (pruned, or too far from now)."""

    why: str


Judgement = Ours | Foreign | NotJudged


def judge(found: Existing, slot: int, digest: bytes) -> Judgement:
    """Whether a verified message of our attester for this duty was issued by the store (pure)."""
    row = found.row
    if row is not None and row.digest == digest:
        return Ours()
    if row is None and found.watermark is not None and slot <= found.watermark:
        return NotJudged(f"slot {slot} is at or below the pruned watermark {found.watermark}")
    return Foreign(row)


def in_horizon(slot: int, current_slot: int) -> bool:
    """Whether a message for `slot` is recent enough to judge (see the module docstring)."""
    return current_slot - JUDGE_BEHIND <= slot <= current_slot + JUDGE_AHEAD


class KillSwitch:
    """One node's view of the halts of one rollup: check messages, halt, list (blocking; thread-safe)."""

    def __init__(self, store: DutyStore, *, rollup: str, node_id: str) -> None:
        self.store = store
        self.rollup = rollup.lower()
        self.node_id = node_id

    def check(self, attester: str, slot: int, duty_type: DutyType, digest: bytes) -> Judgement:
        """Judge one verified message of `attester` against the store."""
        found = self.store.fetch(DutyKey(self.rollup, attester.lower(), int(slot), DutyType(duty_type).value))
        return judge(found, slot, digest)

    def halt(self, attester: str, slot: int, duty_type: DutyType, reason: str, evidence: str) -> bool:
        """Write the fleet-wide halt; False when the attester was halted already."""
        return self.store.halt(
            self.rollup,
            attester.lower(),
            int(slot),
            DutyType(duty_type).value,
            reason,
            evidence,
            self.node_id,
        )

    def active(self, attesters: list[str]) -> list[Halt]:
        """The active halts of these attesters."""
        return self.store.active_halts(self.rollup, [a.lower() for a in attesters])


def describe(judgement: Judgement) -> str:
    """One word for logs and metrics."""
    match judgement:
        case Ours():
            return "ours"
        case Foreign():
            return "foreign"
        case NotJudged():
            return "not_judged"
        case _:
            assert_never(judgement)

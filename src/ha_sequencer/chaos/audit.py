"""The audit: what each duty of the HA identity became, from sources independent of the nodes' own view.

Sources: L1 (`BlockProposed` with its calldata: the proposal the proposer signed and the attesters whose
signatures the contract verified; `Slashed` events), the gossip watcher (every signed message it saw, before
any deduplication), and the duty store's rows. Per (slot, duty): the distinct digests signed anywhere (more
than one = equivocation), whether it was fulfilled (proposal: its block on L1; attestation: in the L1 block
of the slot when there is one), and the faults in effect during the slot. A slot is *eligible* when the store
was up throughout and at least one HA node was up, connected and unimpaired throughout (a partitioned node is
up but not connected; a skewed one counts as impaired); the fulfilment target applies to eligible duties only,
the others are reported apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ha_sequencer.chaos.faults import Impairment
from ha_sequencer.devnet.slots import SlotBook
from ha_sequencer.devnet.store_rows import StoredDuty
from ha_sequencer.devnet.watcher import ATTESTATION, PROPOSAL, SignatureLedger, SlashedEvent
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import Attestation, attestation_digest, proposal_digest

STORE_DUTY = {PROPOSAL: "block_proposal", ATTESTATION: "attestation"}


@dataclass
class DutyVerdict:
    """One duty of the HA identity."""

    slot: int
    duty: str  # proposal | attestation
    digests: dict[str, list[str]]  # digest hex → the sources that saw it signed (l1, gossip, store)
    fulfilled: bool | None  # None: an attestation in a slot without an L1 block (nothing to be in)
    eligible: bool
    faults: list[str]  # "kind node" in effect during the slot

    @property
    def equivocated(self) -> bool:
        """More than one digest signed for this duty anywhere."""
        return len(self.digests) > 1

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "slot": self.slot,
            "duty": self.duty,
            "digests": self.digests,
            "fulfilled": self.fulfilled,
            "eligible": self.eligible,
            "equivocated": self.equivocated,
            "faults": self.faults,
        }


@dataclass
class AuditResult:
    """Every duty's verdict and the totals the exit code is decided on."""

    first_slot: int
    last_slot: int
    duties: list[DutyVerdict]
    slashed: list[SlashedEvent]
    ha: str
    blocks: int = 0
    eligible_slots: int = 0
    cost: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def equivocations(self) -> list[DutyVerdict]:
        """Duties with two or more digests."""
        return [d for d in self.duties if d.equivocated]

    @property
    def slashed_ha(self) -> list[SlashedEvent]:
        """`Slashed` events of the HA identity."""
        return [s for s in self.slashed if s.attester.lower() == self.ha.lower()]

    def judged(self, eligible: bool) -> list[DutyVerdict]:
        """Duties with a verdict (not attestations without a block), eligible or not."""
        return [d for d in self.duties if d.fulfilled is not None and d.eligible == eligible]

    @property
    def fulfilment(self) -> float:
        """Fulfilled share of the eligible duties (1.0 when there are none)."""
        judged = self.judged(True)
        return sum(1 for d in judged if d.fulfilled) / len(judged) if judged else 1.0

    def passed(self, min_fulfilment: float) -> bool:
        """The exit-0 condition."""
        return not self.equivocations and not self.slashed_ha and self.fulfilment >= min_fulfilment

    def to_json(self) -> dict[str, Any]:
        """JSON form (schema: docs/chaos.md)."""
        eligible, other = self.judged(True), self.judged(False)
        return {
            "firstSlot": self.first_slot,
            "lastSlot": self.last_slot,
            "blocksOnL1": self.blocks,
            "eligibleSlots": self.eligible_slots,
            "eligible": {
                "duties": len(eligible),
                "fulfilled": sum(1 for d in eligible if d.fulfilled),
                "fulfilment": round(self.fulfilment, 5),
                "missed": [d.to_json() for d in eligible if not d.fulfilled],
            },
            "ineligible": {
                "duties": len(other),
                "fulfilled": sum(1 for d in other if d.fulfilled),
                "missed": [d.to_json() for d in other if not d.fulfilled],
            },
            "attestationsWithoutBlock": sum(1 for d in self.duties if d.fulfilled is None),
            "equivocations": [d.to_json() for d in self.equivocations],
            "slashed": [s.to_json() for s in self.slashed],
            "slashedHA": len(self.slashed_ha),
            "costPerFault": self.cost,
            "duties": [d.to_json() for d in self.duties],
        }


def overlaps(imp: Impairment, start: float, end: float, now: float) -> bool:
    """Whether the impairment was in effect at any moment of [start, end)."""
    return imp.start < end and (imp.end if imp.end is not None else now) > start


def slot_eligible(active: list[Impairment], ha_nodes: tuple[str, ...]) -> bool:
    """Given the impairments in effect during a slot: the store up and one HA node free of every fault."""
    if any(i.node is None for i in active):
        return False
    impaired = {i.node for i in active}
    return any(n not in impaired for n in ha_nodes)


def audit_run(
    *,
    params: NetworkParams,
    book: SlotBook,
    ha: str,
    ha_nodes: tuple[str, ...],
    first_slot: int,
    last_slot: int,
    ledger: SignatureLedger,
    store_rows: list[StoredDuty],
    slashed: list[SlashedEvent],
    impairments: list[Impairment],
    fault_counts: dict[str, int],
    now: float,
) -> AuditResult:
    """Judge every duty of `ha` in [first_slot, last_slot] (definitions: module doc)."""
    stored: dict[tuple[int, str], list[StoredDuty]] = {}
    for r in store_rows:
        stored.setdefault((r.slot, r.duty_type), []).append(r)
    result = AuditResult(first_slot, last_slot, [], slashed, ha)
    missed_by_kind: Counter[str] = Counter()
    for slot in range(first_slot, last_slot + 1):
        start, end = params.slot_start(slot), params.slot_start(slot + 1)
        active = [i for i in impairments if overlaps(i, start, end, now)]
        eligible = slot_eligible(active, ha_nodes)
        result.eligible_slots += eligible
        faults = sorted({f"{i.kind} {i.node or 'store'}" for i in active})
        kinds = sorted({i.kind for i in active})
        facts = book.facts(slot)
        block = facts.block
        result.blocks += block is not None
        duties: list[tuple[str, bool | None, bytes | None]] = []
        if facts.proposer.lower() == ha.lower():
            on_l1 = block is not None and block.proposer.lower() == ha.lower()
            digest = proposal_digest(params, block.proposal) if on_l1 and block is not None else None
            duties.append((PROPOSAL, on_l1, digest))
        if ha in facts.committee or ha.lower() in (m.lower() for m in facts.committee):
            if block is None:
                duties.append((ATTESTATION, None, None))
            else:
                included = ha.lower() in (a.lower() for a in block.attesters)
                digest = attestation_digest(params, Attestation(slot, block.archive)) if included else None
                duties.append((ATTESTATION, included, digest))
        for duty, fulfilled, l1_digest in duties:
            seen: dict[str, list[str]] = {}
            if l1_digest is not None:
                seen.setdefault("0x" + l1_digest.hex(), []).append("l1")
            for s in ledger.sightings(ha, slot, duty):
                seen.setdefault("0x" + s.digest.hex(), []).append("gossip")
            for r in stored.get((slot, STORE_DUTY[duty]), []):
                if r.signature is not None:
                    seen.setdefault("0x" + r.digest.hex(), []).append("store")
            verdict = DutyVerdict(slot, duty, seen, fulfilled, eligible, faults)
            result.duties.append(verdict)
            if fulfilled is False:
                for kind in kinds or ["none"]:
                    missed_by_kind[kind] += 1
    result.cost = {
        kind: {
            "faults": fault_counts.get(kind, 0),
            "missedDuties": missed_by_kind.get(kind, 0),
            "missedPerFault": round(missed_by_kind.get(kind, 0) / fault_counts[kind], 3)
            if fault_counts.get(kind)
            else 0.0,
        }
        for kind in sorted(set(fault_counts) | set(missed_by_kind))
    }
    return result

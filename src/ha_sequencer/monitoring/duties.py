"""An attester's duties read back from L1 alone: per slot it was due, proposed or not, attested or not.

Due means: the proposer of the slot, or a member of the slot's epoch committee (committees from
`getEpochCommittee`, the proposer computed with `protocol.committee.proposer_for`, as the contract does).
Done means: a `BlockProposed` event for the slot whose `proposer` is the attester (proposed), or whose
`attesters[]` include it (attested). An attestation only reaches L1 inside a published block, so a slot with
no block counts as not attested; `slots_without_block` separates those from attestations left out of a block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from ha_sequencer.protocol.committee import proposer_for
from ha_sequencer.protocol.constants import NetworkParams


class ProposedBlock(Protocol):
    """The fields of `l1.client.BlockProposedEvent` this module reads."""

    slot: int
    proposer: str
    attesters: Sequence[str]
    l1_block_number: int


@dataclass(frozen=True)
class SlotDuty:
    """One slot the attester was due in."""

    slot: int
    epoch: int
    proposer: bool  # the attester was the slot's proposer
    committee: bool  # the attester was in the slot's epoch committee (expected to attest)
    block: bool  # L1 has a block for this slot
    proposed: bool | None  # None when not the proposer
    attested: bool | None  # None when not in the committee
    l1_block: int | None = None

    @property
    def missed(self) -> bool:
        """A duty of this slot did not make it to L1."""
        return self.proposed is False or self.attested is False

    def as_json(self) -> dict[str, Any]:
        """For --json."""
        return {
            "slot": self.slot,
            "epoch": self.epoch,
            "proposer": self.proposer,
            "committee": self.committee,
            "block": self.block,
            "proposed": self.proposed,
            "attested": self.attested,
            "l1Block": self.l1_block,
        }


def _rate(done: int, due: int) -> float | None:
    return done / due if due else None


@dataclass(frozen=True)
class DutyTotals:
    """Counts and rates over a window."""

    slots: int  # slots in the window
    proposer_duties: int
    proposed: int
    attestation_duties: int
    attested: int
    slots_without_block: int  # attestation duties in slots where no block reached L1

    @property
    def proposal_rate(self) -> float | None:
        """proposed / proposer duties (None without duties)."""
        return _rate(self.proposed, self.proposer_duties)

    @property
    def attestation_rate(self) -> float | None:
        """attested / attestation duties (None without duties)."""
        return _rate(self.attested, self.attestation_duties)

    @property
    def attestation_rate_in_blocks(self) -> float | None:
        """attested / attestation duties in slots that have a block (what the attester could control)."""
        return _rate(self.attested, self.attestation_duties - self.slots_without_block)

    @classmethod
    def of(cls, slots: int, duties: Iterable[SlotDuty]) -> DutyTotals:
        """Totals of `duties` in a window of `slots` slots."""
        duties = list(duties)
        return cls(
            slots=slots,
            proposer_duties=sum(d.proposer for d in duties),
            proposed=sum(bool(d.proposed) for d in duties),
            attestation_duties=sum(d.committee for d in duties),
            attested=sum(bool(d.attested) for d in duties),
            slots_without_block=sum(d.committee and not d.block for d in duties),
        )

    def __add__(self, other: DutyTotals) -> DutyTotals:
        return DutyTotals(
            self.slots + other.slots,
            self.proposer_duties + other.proposer_duties,
            self.proposed + other.proposed,
            self.attestation_duties + other.attestation_duties,
            self.attested + other.attested,
            self.slots_without_block + other.slots_without_block,
        )

    def as_json(self) -> dict[str, Any]:
        """For --json."""
        return {
            "slots": self.slots,
            "proposerDuties": self.proposer_duties,
            "proposed": self.proposed,
            "proposalRate": self.proposal_rate,
            "attestationDuties": self.attestation_duties,
            "attested": self.attested,
            "attestationRate": self.attestation_rate,
            "slotsWithoutBlock": self.slots_without_block,
            "attestationRateInBlocks": self.attestation_rate_in_blocks,
        }


@dataclass(frozen=True)
class DutyReport:
    """An attester's duties over slots `from_slot`..`to_slot` (inclusive)."""

    attester: str
    from_slot: int
    to_slot: int
    duties: list[SlotDuty]

    @property
    def totals(self) -> DutyTotals:
        """Counts and rates over the window."""
        return DutyTotals.of(max(0, self.to_slot - self.from_slot + 1), self.duties)

    def as_json(self) -> dict[str, Any]:
        """For --json."""
        return {
            "attester": self.attester,
            "fromSlot": self.from_slot,
            "toSlot": self.to_slot,
            "duties": [d.as_json() for d in self.duties],
            "totals": self.totals.as_json(),
        }


def attester_duties(
    params: NetworkParams,
    attester: str,
    from_slot: int,
    to_slot: int,
    committees: Mapping[int, Sequence[str]],
    events: Iterable[ProposedBlock],
) -> DutyReport:
    """Pure: the attester's duties in [from_slot, to_slot] given each epoch's committee and the L1 events."""
    attester = to_checksum_address(attester)
    by_slot: dict[int, ProposedBlock] = {}
    for event in events:
        by_slot.setdefault(event.slot, event)  # L1 accepts one block per slot
    duties = []
    for slot in range(max(0, from_slot), to_slot + 1):
        epoch = params.epoch_of(slot)
        committee = [to_checksum_address(a) for a in committees.get(epoch, ())]
        if not committee:
            continue
        is_proposer = proposer_for(slot, params.epoch_length, committee, params.genesis_seed) == attester
        in_committee = attester in committee
        if not (is_proposer or in_committee):
            continue
        event = by_slot.get(slot)
        attesters = {to_checksum_address(a) for a in event.attesters} if event else set()
        duties.append(
            SlotDuty(
                slot=slot,
                epoch=epoch,
                proposer=is_proposer,
                committee=in_committee,
                block=event is not None,
                proposed=(event is not None and to_checksum_address(event.proposer) == attester)
                if is_proposer
                else None,
                attested=(attester in attesters) if in_committee else None,
                l1_block=event.l1_block_number if event else None,
            )
        )
    return DutyReport(attester, from_slot, to_slot, duties)


class DutyMonitor:
    """Reads committees and `BlockProposed` events from L1 to build `DutyReport`s (blocking)."""

    def __init__(self, client: Any, wallet: Any) -> None:
        # client: ha_sequencer.l1.client.RollupClient; wallet: ha_sequencer.monitoring.l1.L1Wallet
        self.client = client
        self.wallet = wallet
        self.params: NetworkParams = client.params()
        self._committees: dict[int, list[str]] = {}

    def committee(self, epoch: int) -> list[str]:
        """The committee of `epoch` (cached: final once the epoch is at most current + 1)."""
        if epoch not in self._committees:
            self._committees[epoch] = list(self.client.epoch_committee(epoch))
        return self._committees[epoch]

    def current_slot(self) -> int:
        """The contract's current slot (from the latest L1 block)."""
        return int(self.client.current_slot())

    def report(self, attester: str, from_slot: int, to_slot: int) -> DutyReport:
        """Duties of `attester` in [from_slot, to_slot], from L1."""
        from_slot = max(0, from_slot)
        if to_slot < from_slot:
            return DutyReport(to_checksum_address(attester), from_slot, to_slot, [])
        p = self.params
        committees = {e: self.committee(e) for e in range(p.epoch_of(from_slot), p.epoch_of(to_slot) + 1)}
        first = self.wallet.first_block_at_or_after(p.slot_start(from_slot))
        last = self.wallet.first_block_at_or_after(p.slot_start(to_slot + 1)) - 1
        events = self.client.block_proposed_events(first, last) if last >= first else []
        window = [e for e in events if from_slot <= e.slot <= to_slot]
        return attester_duties(p, attester, from_slot, to_slot, committees, window)

    def last_slots(self, attester: str, slots: int) -> DutyReport:
        """Duties in the last `slots` finished slots (the current slot is still open)."""
        current = self.current_slot()
        return self.report(attester, current - slots, current - 1)

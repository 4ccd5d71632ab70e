"""Committees by epoch, read from L1 ahead of time: gossip validation never waits on I/O."""

from __future__ import annotations

from ha_sequencer.protocol.committee import proposer_for, quorum
from ha_sequencer.protocol.constants import NetworkParams

# epochs kept behind the current one (late attestations of the previous epoch still validate)
_KEEP_BEHIND = 2


class CommitteeCache:
    """epoch → committee (checksummed addresses, L1 order); proposer and quorum derived locally."""

    def __init__(self, params: NetworkParams) -> None:
        self.params = params
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

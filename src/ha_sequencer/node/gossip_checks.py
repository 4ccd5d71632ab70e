"""Protocol checks on every gossip message before relay: decoding, slot window, signer, duplicates.

Plugged into `p2p.validation` (which already enforces the size cap and drops byte-identical duplicates).
REJECT = provably invalid (garbage, bad signature, signer not entitled); IGNORE = not useful now (outside the
slot window, committee unknown yet, a second distinct message from the same signer for the same slot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.p2p.validation import Verdict
from ha_sequencer.protocol.block import TX_SIZE, InvalidTxs
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, NetworkParams
from ha_sequencer.protocol.messages import InvalidSignature
from ha_sequencer.protocol.wire import (
    AttestationMessage,
    ProposalMessage,
    WireError,
    parse_attestation,
    parse_proposal,
    parse_tx,
)

log = logging.getLogger(__name__)

# Slots accepted around the local slot: one behind (late delivery near a boundary), one ahead (clock skew).
SLOT_WINDOW_BEHIND = 1
SLOT_WINDOW_AHEAD = 1


class Sightings(Protocol):
    """Where verified proposals and attestations go before any window or duplicate check (the detector)."""

    def observe_proposal(self, msg: ProposalMessage, *, source: str, origin: str) -> None: ...
    def observe_attestation(self, msg: AttestationMessage, *, source: str, origin: str) -> None: ...


class NoSightings:
    """Sightings dropped (a node without a detector: tests, the devnet watcher)."""

    def observe_proposal(self, msg: ProposalMessage, *, source: str, origin: str) -> None:
        """Dropped."""

    def observe_attestation(self, msg: AttestationMessage, *, source: str, origin: str) -> None:
        """Dropped."""


class GossipChecks:
    """The three topic validators of one node; state: the slot clock, committees, first-seen signers."""

    def __init__(
        self,
        params: NetworkParams,
        committees: CommitteeCache,
        current_slot: Callable[[], int],
        sightings: Sightings | None = None,
        *,
        min_tx_fee: int = 0,
    ) -> None:
        self.params = params
        self.min_tx_fee = min_tx_fee
        self.committees = committees
        self.current_slot = current_slot
        # every signature-valid message, also a second different one of a signer that gossip then ignores:
        # the detector must see what deduplication would hide
        self.sightings: Sightings = sightings if sightings is not None else NoSightings()
        # (slot, signer) → digest of the first valid message: a second, different one is equivocation evidence
        self._proposals: dict[tuple[int, str], bytes] = {}
        self._attestations: dict[tuple[int, str], bytes] = {}
        self.equivocations: list[tuple[str, int, str]] = []

    def _in_window(self, slot: int) -> bool:
        now = self.current_slot()
        return now - SLOT_WINDOW_BEHIND <= slot <= now + SLOT_WINDOW_AHEAD

    def _prune(self) -> None:
        floor = self.current_slot() - SLOT_WINDOW_BEHIND - 1
        for seen in (self._proposals, self._attestations):
            for key in [k for k in seen if k[0] < floor]:
                del seen[key]

    def check_proposal(self, data: bytes, from_peer: str) -> Verdict:
        """Validator of `/hasq/1/proposal`."""
        try:
            msg = parse_proposal(self.params, data)
        except (WireError, InvalidSignature, ValueError) as exc:
            log.debug("proposal from %s rejected: %s", from_peer, exc)
            return Verdict.REJECT
        self.sightings.observe_proposal(msg, source="gossip", origin=from_peer)
        slot = msg.signed.block.slot
        if len(msg.signed.block.txs) > MAX_TXS_PER_BLOCK * TX_SIZE:
            return Verdict.REJECT
        if not self._in_window(slot):
            log.debug("proposal for slot %d outside the window (now %d): ignore", slot, self.current_slot())
            return Verdict.IGNORE
        proposer = self.committees.proposer(slot)
        if proposer is None:
            return Verdict.IGNORE
        if msg.proposer != proposer:
            # per message at DEBUG: a peer's rejections are summarised once a minute (p2p.validation)
            log.debug(
                "slot %d: proposal signed by %s, the proposer is %s: reject", slot, msg.proposer, proposer
            )
            return Verdict.REJECT
        return self._first_of(self._proposals, "proposal", slot, msg.proposer, msg.digest)

    def check_attestation(self, data: bytes, from_peer: str) -> Verdict:
        """Validator of `/hasq/1/attestation`."""
        try:
            msg = parse_attestation(self.params, data)
        except (WireError, InvalidSignature, ValueError) as exc:
            log.debug("attestation from %s rejected: %s", from_peer, exc)
            return Verdict.REJECT
        self.sightings.observe_attestation(msg, source="gossip", origin=from_peer)
        slot = msg.attestation.slot
        if not self._in_window(slot):
            return Verdict.IGNORE
        member = self.committees.is_member(slot, msg.attester)
        if member is None:
            return Verdict.IGNORE
        if not member:
            log.debug("slot %d: attestation by %s, not on the committee: reject", slot, msg.attester)
            return Verdict.REJECT
        return self._first_of(self._attestations, "attestation", slot, msg.attester, msg.digest)

    def check_tx(self, data: bytes, from_peer: str) -> Verdict:
        """Validator of `/hasq/1/tx`: well formed, signed by its sender, paying at least `min_tx_fee`
        (stateful checks — nonce, balance — happen in the mempool)."""
        try:
            stx = parse_tx(self.params, data)
        except (WireError, InvalidTxs, ValueError) as exc:
            log.debug("tx from %s rejected: %s", from_peer, exc)
            return Verdict.REJECT
        if stx.tx.fee < self.min_tx_fee:  # valid, but under our spam policy: not relayed, the peer not blamed
            return Verdict.IGNORE
        if not stx.is_signed_by_sender(self.params):
            return Verdict.REJECT
        return Verdict.ACCEPT

    def _first_of(
        self, seen: dict[tuple[int, str], bytes], kind: str, slot: int, signer: str, digest: bytes
    ) -> Verdict:
        self._prune()
        first = seen.setdefault((slot, signer), digest)
        if first != digest:
            # the same signer signed two different messages for one slot: keep the first, record the evidence
            log.warning(
                "slot %d: %s equivocated on %s (digests %s… and %s…)",
                slot,
                signer,
                kind,
                first.hex()[:12],
                digest.hex()[:12],
            )
            self.equivocations.append((kind, slot, signer))
            return Verdict.IGNORE
        return Verdict.ACCEPT

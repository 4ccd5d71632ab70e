"""The closed set of answers the duty guard gives (signed or not, and why)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DutyType(enum.StrEnum):
    """What an attester key signs; one duty per (rollup, attester, slot, duty type)."""

    BLOCK_PROPOSAL = "block_proposal"
    ATTESTATION = "attestation"


@dataclass(frozen=True, slots=True)
class NewSignature:
    """This node claimed the duty, signed it and recorded the signature."""

    signature: bytes


@dataclass(frozen=True, slots=True)
class SameData:
    """The duty was already signed with the same digest; the stored (identical) signature is returned."""

    signature: bytes


@dataclass(frozen=True, slots=True)
class Adopted:
    """A dead peer's duty (lease expired) was finished here: its stored digest signed, its payload returned.

    The caller must use `payload` (the peer's message), not its own: the only message this duty may carry.
    """

    signature: bytes
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Refused:
    """The duty is signed (or being signed) with a different digest: signing ours would equivocate."""

    existing_digest: bytes


@dataclass(frozen=True, slots=True)
class BelowWatermark:
    """The slot is at or below the duty's high-water slot (pruned or imported history): never signed again."""

    watermark: int


@dataclass(frozen=True, slots=True)
class Busy:
    """A live peer holds the duty and did not finish within the wait budget; nothing signed here."""

    holder: str


@dataclass(frozen=True, slots=True)
class LostClaim:
    """Our lock token was taken (a peer adopted the duty) before we recorded; our signature was discarded."""

    holder: str | None


@dataclass(frozen=True, slots=True)
class StoreUnavailable:
    """The store failed (unreachable, error, injected fault); fail closed: no signature left the guard."""

    reason: str


Signed = NewSignature | SameData | Adopted
NotSigned = Refused | BelowWatermark | Busy | LostClaim | StoreUnavailable
Outcome = Signed | NotSigned

SIGNED_TYPES: tuple[type, ...] = (NewSignature, SameData, Adopted)
OUTCOME_TYPES: tuple[type, ...] = SIGNED_TYPES + (Refused, BelowWatermark, Busy, LostClaim, StoreUnavailable)


def signature_of(outcome: Outcome) -> bytes | None:
    """The signature the caller may release, or None when the outcome did not sign."""
    return outcome.signature if isinstance(outcome, SIGNED_TYPES) else None


def outcome_label(outcome: Outcome) -> str:
    """The metrics label of an outcome (snake_case of its type)."""
    return _LABELS[type(outcome)]


_LABELS = {
    NewSignature: "new_signature",
    SameData: "same_data",
    Adopted: "adopted",
    Refused: "refused",
    BelowWatermark: "below_watermark",
    Busy: "busy",
    LostClaim: "lost_claim",
    StoreUnavailable: "store_unavailable",
}


# Publishing the L1 transaction of a slot: whose turn it is.
@dataclass(frozen=True, slots=True)
class PublishRecord:
    """Who submitted (or is submitting) the L1 transaction for a slot, and when."""

    attester: str
    slot: int
    node_id: str
    attempt: int
    claimed_at: float
    deadline_at: float
    tx_hash: str | None
    submitted_at: float | None
    mined: bool


@dataclass(frozen=True, slots=True)
class PublishYours:
    """This node publishes now (first, or taking over a submission not mined before its deadline)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class PublishTheirs:
    """A peer is publishing and its deadline has not passed: do not pay gas for the same proposal."""

    record: PublishRecord


@dataclass(frozen=True, slots=True)
class PublishDone:
    """The slot's transaction is known mined."""

    record: PublishRecord


PublishTurn = PublishYours | PublishTheirs | PublishDone

"""The closed set of answers the duty guard gives (signed or not, and why)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import assert_never, get_args


class DutyType(enum.StrEnum):
    """What an attester key signs; one duty per (rollup, attester, slot, duty type)."""

    BLOCK_PROPOSAL = "block_proposal"
    ATTESTATION = "attestation"


class DutyStatus(enum.StrEnum):
    """A stored duty's state: claimed (digest and payload stored, signature not yet recorded), or signed."""

    SIGNING = "signing"
    SIGNED = "signed"


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
class Halted:
    """The attester is halted fleet-wide (a signature the store did not issue was seen): nothing is signed
    for it until an operator runs `ha-db resume`."""

    reason: str


@dataclass(frozen=True, slots=True)
class StoreUnavailable:
    """The store failed (unreachable, error, injected fault); fail closed: no signature left the guard."""

    reason: str


@dataclass(frozen=True, slots=True)
class DeadlinePassed:
    """The duty's deadline in its slot (wall-clock `deadline`) passed before a signature could leave; nothing
    was released. A signature made and recorded just too late stays in the store, where it can only ever be
    answered again as `SameData` (never a second digest), and no later call for the slot releases it."""

    deadline: float


Signed = NewSignature | SameData | Adopted
NotSigned = Refused | BelowWatermark | Busy | LostClaim | Halted | StoreUnavailable | DeadlinePassed
Outcome = Signed | NotSigned

OUTCOME_TYPES: tuple[type[Outcome], ...] = get_args(Outcome)


def signature_of(outcome: Outcome) -> bytes | None:
    """The signature the caller may release, or None when the outcome did not sign."""
    match outcome:
        case NewSignature(signature) | SameData(signature) | Adopted(signature):
            return signature
        case Refused() | BelowWatermark() | Busy() | LostClaim() | Halted():
            return None
        case StoreUnavailable() | DeadlinePassed():
            return None
        case _:
            assert_never(outcome)


def outcome_label(outcome: Outcome) -> str:
    """The metrics label of an outcome (snake_case of its type)."""
    match outcome:
        case NewSignature():
            return "new_signature"
        case SameData():
            return "same_data"
        case Adopted():
            return "adopted"
        case Refused():
            return "refused"
        case BelowWatermark():
            return "below_watermark"
        case Busy():
            return "busy"
        case LostClaim():
            return "lost_claim"
        case Halted():
            return "halted"
        case StoreUnavailable():
            return "store_unavailable"
        case DeadlinePassed():
            return "deadline_passed"
        case _:
            assert_never(outcome)


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

"""The duty store: what the guard needs from a backend (`ha.backends.open_store(url)` opens one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypedDict

from ha_sequencer.ha.outcomes import DutyStatus, PublishRecord, PublishTurn

SCHEMA_VERSION = 2  # the schema this build reads and writes (ha/migrations/NNNN_*.sql)


@dataclass(frozen=True, slots=True)
class DutyKey:
    """The scope of one duty: at most one digest is ever signed per key."""

    rollup: str
    attester: str
    slot: int
    duty_type: str

    def params(self) -> dict[str, object]:
        """The key as SQL parameters."""
        return {
            "rollup": self.rollup,
            "attester": self.attester,
            "slot": self.slot,
            "duty_type": self.duty_type,
        }


@dataclass(frozen=True, slots=True)
class DutyRow:
    """A stored duty as the guard sees it (times from the store's clock)."""

    status: DutyStatus
    digest: bytes
    payload: bytes = field(repr=False)
    node_id: str = ""
    lock_token: str = field(default="", repr=False)
    signature: bytes | None = None
    lease_until: float = 0.0
    now: float = 0.0

    @property
    def lease_expired(self) -> bool:
        """True when a `signing` row's claimant is presumed dead."""
        return self.status is DutyStatus.SIGNING and self.lease_until < self.now


@dataclass(frozen=True, slots=True)
class Claimed:
    """The claim inserted a new `signing` row with our token."""


@dataclass(frozen=True, slots=True)
class Existing:
    """The duty already has a row (or none, and the watermark forbids it)."""

    row: DutyRow | None
    watermark: int | None
    halted: str | None = None  # the reason of the attester's active halt, if any


@dataclass(frozen=True, slots=True)
class DutyClaim:
    """One claim of a batch: the duty, what we would sign, and this call's fresh lock token."""

    key: DutyKey
    digest: bytes
    payload: bytes = field(repr=False)
    token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class DutyRecordRequest:
    """One record of a batch: our signature for a duty we claimed with `token`."""

    key: DutyKey
    token: str = field(repr=False)
    signature: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Halt:
    """A fleet-wide halt of one attester: written on a foreign signature, lifted only by an operator."""

    id: int
    rollup: str
    attester: str
    slot: int
    duty_type: str
    reason: str
    evidence: str = field(repr=False)  # JSON written by the detector (both messages, where and when seen)
    node_id: str = ""
    halted_at: float = 0.0
    resumed_at: float | None = None
    resumed_by: str | None = None
    resume_reason: str | None = None

    @property
    def active(self) -> bool:
        """Not resumed yet."""
        return self.resumed_at is None


ClaimResult = Claimed | Existing


class DutyRecord(TypedDict):
    """One duty as export and import carry it (docs/duty-store-format.md)."""

    rollup: str
    attester: str
    slot: int
    duty_type: str
    digest: bytes
    payload: bytes
    status: str
    node_id: str
    signature: bytes | None
    signed_at: float | None


class WatermarkRecord(TypedDict):
    """One scope's high-water slot as export and import carry it."""

    rollup: str
    attester: str
    duty_type: str
    slot: int


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What `prune` removed and the watermarks it left."""

    duties_deleted: int
    publishes_deleted: int
    watermarks: list[tuple[str, str, str, int]]


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """A summary for `ha-db status`."""

    url: str
    schema_version: int
    duties: int
    signing: int
    watermarks: int
    publishes: int
    nodes: list[tuple[str, str, float]]  # node_id, host, seconds since heartbeat
    halts: list[Halt]  # active halts


class DutyStore(Protocol):
    """A duty store backend; every method is blocking, thread-safe and raises `DutyStoreError` subclasses."""

    url: str

    def claim(
        self, key: DutyKey, digest: bytes, payload: bytes, node_id: str, token: str, lease_s: float
    ) -> ClaimResult: ...
    def fetch(self, key: DutyKey) -> Existing: ...
    def adopt(
        self, key: DutyKey, old_token: str, node_id: str, token: str, lease_s: float
    ) -> DutyRow | None: ...
    def record(self, key: DutyKey, token: str, signature: bytes) -> bool: ...
    def claim_many(self, claims: Sequence[DutyClaim], node_id: str, lease_s: float) -> list[ClaimResult]: ...
    def record_many(self, records: Sequence[DutyRecordRequest]) -> list[bool]: ...
    def holder(self, key: DutyKey) -> str | None: ...

    def claim_publish(
        self, rollup: str, attester: str, slot: int, node_id: str, deadline_s: float
    ) -> PublishTurn: ...
    def record_publish(
        self,
        rollup: str,
        attester: str,
        slot: int,
        node_id: str,
        attempt: int,
        tx_hash: str,
        deadline_s: float,
    ) -> bool: ...
    def mark_mined(self, rollup: str, attester: str, slot: int) -> None: ...
    def publish_record(self, rollup: str, attester: str, slot: int) -> PublishRecord | None: ...

    def halt(
        self,
        rollup: str,
        attester: str,
        slot: int,
        duty_type: str,
        reason: str,
        evidence: str,
        node_id: str,
    ) -> bool: ...
    def active_halts(self, rollup: str, attesters: Sequence[str]) -> list[Halt]: ...
    def halts(self, rollup: str | None = None) -> list[Halt]: ...
    def resume(self, rollup: str | None, attester: str, by: str, reason: str) -> int: ...

    def register_node(self, node_id: str, instance: str, host: str, pid: int, stale_s: float) -> bool: ...
    def heartbeat_node(self, node_id: str, instance: str) -> bool: ...
    def unregister_node(self, node_id: str, instance: str) -> None: ...

    def prune(self, below_or_at: int, rollup: str | None = None) -> PruneReport: ...
    def export_rows(self, rollup: str | None = None) -> tuple[list[DutyRecord], list[WatermarkRecord]]: ...
    def import_rows(
        self, duties: list[DutyRecord], watermarks: list[WatermarkRecord]
    ) -> tuple[int, list[DutyRecord]]: ...
    def status(self) -> StoreStatus: ...
    def schema_version(self) -> int: ...
    def migrate(self) -> list[int]: ...
    def check_schema(self) -> None: ...

    def ping(self) -> None: ...
    @property
    def healthy(self) -> bool: ...
    def close(self) -> None: ...

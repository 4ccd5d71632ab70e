"""Signing history from Aztec's HA signer into our duty store: an identity that moves from Aztec's nodes to
ours never reopens a duty Aztec already signed.

Aztec's `@aztec/validator-ha-signer` 4.1.2 keeps one table, `validator_duties` (its migration
`1_initial-schema`, schema version 1): rollup_address, validator_address, slot, block_number,
block_index_within_checkpoint, duty_type, status (`signing` / `signed`), message_hash, signature, node_id,
lock_token, started_at, completed_at, error_message. Each row maps as follows:

| Aztec duty type | our duty | imported as |
|---|---|---|
| CHECKPOINT_PROPOSAL (the slot's proposal that goes to L1) | block_proposal | a signed duty |
| ATTESTATION | attestation | a signed duty |
| BLOCK_PROPOSAL (one per block of the checkpoint: several digests per slot) | block_proposal | watermark |
| ATTESTATIONS_AND_SIGNERS (the proposer's signature over the attestations) | block_proposal | watermark |
| GOVERNANCE_VOTE, SLASHING_VOTE, AUTH_REQUEST, TXS | none | not imported (counted) |

"Same digest" across the two systems means the same 32 bytes signed: Aztec's `message_hash` is exactly what
its signer handed to the key (`signWithProtection(…, messageHash, …, signFn(messageHash))`), and our digest is
exactly what our guard hands to the key. So an imported duty keeps `message_hash` as its digest and Aztec's
signature: our guard asked for those 32 bytes at that slot answers with that signature (the one our key would
make too: both sign with deterministic RFC 6979 ECDSA, low s, v 27/28); any other digest is refused. Our
messages are EIP-712 hashes of our own types, so in practice no digest of ours equals an Aztec message hash
and every imported slot stays closed. Aztec stores no payload, so an imported duty has none.

Watermarks are per (rollup, attester, duty type) and close every slot at or below them, so after an import
nothing of ours signs at or below the highest slot Aztec touched for that duty, whatever the row. A row still
`signing` (a node claimed it and died, or is signing right now: a signature may exist that nobody recorded)
has no signature to give back: it raises the watermark only, and the importer warns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg

from ha_sequencer.ha.errors import InterchangeError, StoreUnreachable
from ha_sequencer.ha.outcomes import DutyType
from ha_sequencer.ha.store import DutyRecord, WatermarkRecord
from ha_sequencer.redact import redact_dsn

AZTEC_SCHEMA_VERSION = 1  # @aztec/validator-ha-signer 4.1.2, migration 1_initial-schema
CONNECT_TIMEOUT_S = 10
NODE_PREFIX = "aztec:"  # node_id of an imported duty: whose signer it was

# Aztec duty type → our duty type and whether a row of it can stand as one of our duties (else watermark only)
DUTY_MAP: dict[str, tuple[DutyType, bool]] = {
    "CHECKPOINT_PROPOSAL": (DutyType.BLOCK_PROPOSAL, True),
    "ATTESTATION": (DutyType.ATTESTATION, True),
    "BLOCK_PROPOSAL": (DutyType.BLOCK_PROPOSAL, False),
    "ATTESTATIONS_AND_SIGNERS": (DutyType.BLOCK_PROPOSAL, False),
}
UNMAPPED = ("GOVERNANCE_VOTE", "SLASHING_VOTE", "AUTH_REQUEST", "TXS")

_SELECT = """
SELECT rollup_address, validator_address, slot, duty_type, status, message_hash, signature, node_id,
       EXTRACT(EPOCH FROM completed_at)
FROM validator_duties
ORDER BY rollup_address, validator_address, slot, duty_type, block_index_within_checkpoint
"""


@dataclass(frozen=True)
class AztecDuty:
    """One row of Aztec's `validator_duties`."""

    rollup: str
    validator: str
    slot: int
    duty_type: str
    status: str
    message_hash: str
    signature: str | None
    node_id: str
    completed_at: float | None


@dataclass
class AztecImport:
    """What an import of Aztec's history puts into our store."""

    duties: list[DutyRecord] = field(default_factory=lambda: list[DutyRecord]())
    watermarks: list[WatermarkRecord] = field(default_factory=lambda: list[WatermarkRecord]())
    unfinished: list[AztecDuty] = field(default_factory=lambda: list[AztecDuty]())  # still `signing`
    watermark_only: Counter[str] = field(default_factory=lambda: Counter[str]())  # by Aztec duty type
    skipped: Counter[str] = field(default_factory=lambda: Counter[str]())  # no duty of ours: by type


def read_aztec_duties(url: str, rollup: str | None = None) -> list[AztecDuty]:
    """Every row of Aztec's `validator_duties` at `url` (of one rollup if given); read-only."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
            conn.read_only = True
            version = _schema_version(conn, url)
            if version != AZTEC_SCHEMA_VERSION:
                raise InterchangeError(
                    f"--from-aztec {redact_dsn(url)}: Aztec's HA signer schema version {version}; this build "
                    f"reads version {AZTEC_SCHEMA_VERSION} (@aztec/validator-ha-signer 4.1.2)"
                )
            rows = conn.execute(_SELECT).fetchall()
    except psycopg.OperationalError as exc:
        raise StoreUnreachable(f"--from-aztec {redact_dsn(url)}: {_first_line(exc, url)}") from None
    duties = [_duty(row) for row in rows]
    if rollup is not None:
        duties = [d for d in duties if d.rollup == rollup.lower()]
    return duties


def _schema_version(conn: psycopg.Connection[Any], url: str) -> int:
    try:
        row = conn.execute("SELECT version FROM schema_version ORDER BY version DESC LIMIT 1").fetchone()
        conn.execute("SELECT 1 FROM validator_duties LIMIT 0")
    except psycopg.errors.UndefinedTable:
        raise InterchangeError(
            f"--from-aztec {redact_dsn(url)}: no Aztec HA signer tables (schema_version, validator_duties) "
            "in this database"
        ) from None
    if row is None:
        raise InterchangeError(f"--from-aztec {redact_dsn(url)}: Aztec's schema_version table is empty")
    return int(row[0])


def _duty(row: Sequence[Any]) -> AztecDuty:
    rollup, validator, slot, duty_type, status, message_hash, signature, node_id, completed = row
    return AztecDuty(
        rollup=str(rollup).lower(),
        validator=str(validator).lower(),
        slot=int(slot),
        duty_type=str(duty_type),
        status=str(status),
        message_hash=str(message_hash),
        signature=str(signature) if signature is not None else None,
        node_id=str(node_id),
        completed_at=float(completed) if completed is not None else None,
    )


def plan_import(rows: Sequence[AztecDuty]) -> AztecImport:
    """Our duties and watermarks for Aztec's rows (see the module doc for the mapping)."""
    plan = AztecImport()
    marks: dict[tuple[str, str, str], int] = {}
    for row in rows:
        where = f"validator_duties {row.validator} slot {row.slot} {row.duty_type}"
        if row.duty_type not in DUTY_MAP:
            if row.duty_type not in UNMAPPED:
                raise InterchangeError(f"{where}: unknown Aztec duty type {row.duty_type!r}")
            plan.skipped[row.duty_type] += 1
            continue
        ours, as_duty = DUTY_MAP[row.duty_type]
        scope = (row.rollup, row.validator, ours.value)
        marks[scope] = max(marks.get(scope, -1), row.slot)
        if row.status == "signing":
            plan.unfinished.append(row)
        elif row.status != "signed":
            raise InterchangeError(f"{where}: unknown status {row.status!r}")
        elif not as_duty:
            plan.watermark_only[row.duty_type] += 1
        else:
            plan.duties.append(
                DutyRecord(
                    rollup=row.rollup,
                    attester=row.validator,
                    slot=row.slot,
                    duty_type=ours.value,
                    digest=_hex(row.message_hash, 32, f"{where}: message_hash"),
                    payload=b"",
                    status="signed",
                    node_id=NODE_PREFIX + row.node_id,
                    signature=_hex(row.signature, 65, f"{where}: signature"),
                    signed_at=row.completed_at,
                )
            )
    plan.watermarks = [
        WatermarkRecord(rollup=r, attester=a, duty_type=t, slot=s) for (r, a, t), s in sorted(marks.items())
    ]
    return plan


def _hex(value: str | None, size: int, what: str) -> bytes:
    if value is None or not value.startswith("0x"):
        raise InterchangeError(f"{what}: expected 0x-prefixed hex, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InterchangeError(f"{what}: not hex") from None
    if len(raw) != size:
        raise InterchangeError(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def _first_line(exc: BaseException, url: str) -> str:
    """The driver's first line, without the URL's password should the driver ever echo it."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text

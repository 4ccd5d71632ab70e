"""The duty store's rows read directly for audits (adoptions included, which the export format omits)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

_QUERY = (
    "SELECT slot, duty_type, digest, status, node_id, adopted_from, signature FROM duties "
    "WHERE rollup = {p} AND attester = {p} ORDER BY slot, duty_type"
)


@dataclass(frozen=True)
class StoredDuty:
    """One duty row of an attester."""

    slot: int
    duty_type: str
    digest: bytes
    status: str
    node_id: str
    adopted_from: str | None
    signature: bytes | None


def stored_duties(db_url: str, rollup: str, attester: str) -> list[StoredDuty]:
    """Every duty row of `attester` on `rollup` (SQLite or PostgreSQL URL)."""
    args = (rollup.lower(), attester.lower())
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=10) as db:
            rows = db.execute(_QUERY.format(p="?"), args).fetchall()
    else:
        import psycopg

        with psycopg.connect(db_url, connect_timeout=10) as conn:
            rows = conn.execute(_QUERY.format(p="%s"), args).fetchall()
    return [
        StoredDuty(
            int(r[0]),
            r[1],
            bytes(r[2]),
            r[3],
            r[4],
            r[5],
            None if r[6] is None else bytes(r[6]),
        )
        for r in rows
    ]

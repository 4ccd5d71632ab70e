"""`ha-sequencer ha-db …` (the duty store) and `ha-sequencer bench guard`."""

from __future__ import annotations

import getpass
import json
import logging
import re
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from ha_sequencer.cli_options import DutyStoreUrl, JsonObject, RollupFilter
from ha_sequencer.errors import InputError
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import ImportConflict, InterchangeError
from ha_sequencer.ha.pg_cluster import HostState
from ha_sequencer.ha.postgres_store import PostgresDutyStore
from ha_sequencer.ha.store import SCHEMA_VERSION, Halt
from ha_sequencer.redact import redact_dsn

_ENV = "HA_SEQUENCER_"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _quiet_pool() -> None:
    # The pool's reconnect warnings are for node logs; a one-shot command reports the failure once.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


app = typer.Typer(
    help="The duty store (slashing protection shared by the nodes of an identity).", no_args_is_help=True
)


@app.command("migrate")
def migrate(db: DutyStoreUrl) -> None:
    """Create or upgrade the duty store schema (safe to run again)."""
    _quiet_pool()
    store = open_store(db, migrate=True)
    try:
        version = store.schema_version()
        typer.echo(f"{redact_dsn(db)}: schema version {version} (this build: {SCHEMA_VERSION})")
    finally:
        store.close()


@app.command("status")
def status(db: DutyStoreUrl, as_json: JsonObject = False) -> None:
    """Schema version, duty and watermark counts, node heartbeats."""
    _quiet_pool()
    store = open_store(db, check=False)
    try:
        version = store.schema_version()
        if version != SCHEMA_VERSION:
            store.check_schema()  # raises with the command to run
        st = store.status()
        cluster = store.cluster() if isinstance(store, PostgresDutyStore) else None
    finally:
        store.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "url": st.url,
                    "schema_version": st.schema_version,
                    "duties": st.duties,
                    "signing": st.signing,
                    "watermarks": st.watermarks,
                    "publishes": st.publishes,
                    "nodes": [
                        {"node_id": n, "host": h, "heartbeat_age_s": round(a, 3)} for n, h, a in st.nodes
                    ],
                    "halts": [_halt_json(h, evidence=False) for h in st.halts],
                    **({} if cluster is None else {"cluster": [_host_json(h) for h in cluster]}),
                }
            )
        )
        return
    typer.echo(
        f"store:       {st.url}\nschema:      {st.schema_version}\nduties:      {st.duties} "
        f"({st.signing} signing)\nwatermarks:  {st.watermarks}\npublishes:   {st.publishes}"
    )
    for node_id, host, age in st.nodes:
        typer.echo(f"node:        {node_id} on {host}, heartbeat {age:.1f} s ago")
    for h in st.halts:
        typer.echo(f"HALTED:      {h.attester} since {_when(h.halted_at)}: {h.reason}")
    for host in cluster or []:
        typer.echo(f"member:      {host.host} {host.role}" + (f" ({host.error})" if host.error else ""))
        for name, sync_state, lag in host.standbys:
            shown = "?" if lag is None else f"{lag} bytes"
            typer.echo(f"  standby:   {name} {sync_state}, replay lag {shown}")


def _host_json(host: HostState) -> dict[str, Any]:
    return {
        "host": host.host,
        "role": host.role,
        "error": host.error,
        "standbys": [{"name": n, "sync_state": s, "lag_bytes": lag} for n, s, lag in host.standbys],
    }


@app.command("halts")
def halts(db: DutyStoreUrl, rollup: RollupFilter = None, as_json: JsonObject = False) -> None:
    """Every halt (active and resumed) with its evidence: both conflicting messages as L1 would take them."""
    _quiet_pool()
    store = open_store(db)
    try:
        found = store.halts(rollup.lower() if rollup else None)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([_halt_json(h, evidence=True) for h in found], indent=2))
        return
    if not found:
        typer.echo("no halts")
        return
    for h in found:
        state = (
            "ACTIVE" if h.active else f"resumed {_when(h.resumed_at)} by {h.resumed_by}: {h.resume_reason}"
        )
        typer.echo(f"#{h.id} {h.attester} halted {_when(h.halted_at)} by node {h.node_id} ({state})")
        typer.echo(f"    {h.reason}")


@app.command("resume")
def resume(
    db: DutyStoreUrl,
    attester: str = typer.Option(..., "--attester", help="The halted attester's address."),
    reason: str = typer.Option(
        ..., "--reason", help="Why it is safe to sign again (recorded with who and when)."
    ),
    rollup: RollupFilter = None,
) -> None:
    """Lift an attester's halt: its nodes sign again. Only after the foreign signer is found and stopped."""
    _quiet_pool()
    if not _ADDRESS.match(attester):
        raise InputError(f"--attester: not a 20-byte hex address: {attester!r}")
    if not reason.strip():
        raise InputError("--reason: say why it is safe to resume (it is recorded)")
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    store = open_store(db)
    try:
        lifted = store.resume(rollup.lower() if rollup else None, attester.lower(), by, reason.strip())
    finally:
        store.close()
    if not lifted:
        raise InputError(f"--attester {attester}: no active halt")
    typer.echo(f"resumed {attester} ({lifted} halt(s) lifted) by {by}: {reason.strip()}")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _halt_json(h: Halt, *, evidence: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": h.id,
        "rollup": h.rollup,
        "attester": h.attester,
        "slot": h.slot,
        "duty": h.duty_type,
        "reason": h.reason,
        "node": h.node_id,
        "haltedAt": h.halted_at,
        "active": h.active,
        "resumedAt": h.resumed_at,
        "resumedBy": h.resumed_by,
        "resumeReason": h.resume_reason,
    }
    if evidence:
        try:
            doc["evidence"] = json.loads(h.evidence)
        except json.JSONDecodeError:
            doc["evidence"] = h.evidence
    return doc


@app.command("prune")
def prune(
    db: DutyStoreUrl,
    before_slot: int = typer.Option(
        ...,
        "--up-to-slot",
        min=0,
        help="Delete duties and publish records at or below this slot; "
        "watermarks keep those slots closed forever.",
    ),
    rollup: RollupFilter = None,
) -> None:
    """Prune old duties, keeping per-duty watermarks."""
    _quiet_pool()
    store = open_store(db)
    try:
        report = store.prune(before_slot, rollup.lower() if rollup else None)
    finally:
        store.close()
    typer.echo(
        f"pruned {report.duties_deleted} duties and {report.publishes_deleted} publish records "
        f"at or below slot {before_slot}"
    )
    for r, attester, duty_type, slot in report.watermarks:
        typer.echo(f"watermark {r} {attester} {duty_type}: slot {slot}")


@app.command("export")
def export(
    db: DutyStoreUrl,
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
    rollup: RollupFilter = None,
) -> None:
    """Write the duty history and watermarks as interchange JSON (docs/duty-store-format.md)."""
    _quiet_pool()
    from ha_sequencer.ha.interchange import dumps, export_document

    store = open_store(db)
    try:
        text = dumps(export_document(store, rollup))
    finally:
        store.close()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)


@app.command("import")
def import_(
    db: DutyStoreUrl,
    file: Path | None = typer.Argument(None, help="Interchange JSON written by `ha-db export`."),
    from_aztec: str | None = typer.Option(
        None,
        "--from-aztec",
        envvar=f"{_ENV}AZTEC_DB",
        show_default=False,
        help="Instead of FILE: the postgresql:// URL of Aztec's HA signer database (its validator_duties "
        "table): what Aztec signed becomes signed duties and watermarks here (docs/duty-store-format.md).",
    ),
    rollup: RollupFilter = None,
) -> None:
    """Merge interchange JSON (or Aztec's signing history) into the store: duties added, watermarks raised."""
    _quiet_pool()
    if (file is None) == (from_aztec is None):
        raise InputError("ha-db import: give either FILE (interchange JSON) or --from-aztec URL")
    if from_aztec is not None:
        _import_from_aztec(db, from_aztec, rollup)
        return
    assert file is not None
    from ha_sequencer.ha.interchange import import_document

    try:
        doc = json.loads(file.read_text())
    except OSError as exc:
        raise InputError(f"{file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InterchangeError(f"{file}: line {exc.lineno} col {exc.colno}: {exc.msg}") from exc
    store = open_store(db)
    try:
        inserted, conflicts = import_document(store, doc, str(file))
    finally:
        store.close()
    typer.echo(f"imported {inserted} duties from {file}; watermarks merged")
    if conflicts:
        first = conflicts[0]
        raise ImportConflict(
            f"{file}: {len(conflicts)} duties signed with a different digest than the store "
            f"holds (first: {first['attester']} slot {first['slot']} {first['duty_type']}); "
            "the store kept its own rows"
        )


def _import_from_aztec(db: str, aztec_url: str, rollup: str | None) -> None:
    from ha_sequencer.ha.aztec_import import plan_import, read_aztec_duties

    if urlsplit(aztec_url).scheme not in ("postgresql", "postgres"):
        raise InputError(f"--from-aztec: expected a postgresql:// URL, got {redact_dsn(aztec_url)!r}")
    rows = read_aztec_duties(aztec_url, rollup)
    plan = plan_import(rows)
    store = open_store(db)
    try:
        inserted, conflicts = store.import_rows(plan.duties, plan.watermarks)
    finally:
        store.close()
    source = redact_dsn(aztec_url)
    typer.echo(
        f"read {len(rows)} rows of Aztec's validator_duties from {source}: imported {inserted} of "
        f"{len(plan.duties)} signed duties; {len(plan.watermarks)} watermark(s) raised"
    )
    for scope in plan.watermarks:
        typer.echo(f"watermark {scope['attester']} {scope['duty_type']}: slot {scope['slot']}")
    for duty_type, count in sorted(plan.watermark_only.items()):
        typer.echo(
            f"{count} signed {duty_type} row(s): our store keeps one digest per duty, so watermark only"
        )
    for duty_type, count in sorted(plan.skipped.items()):
        typer.echo(f"{count} {duty_type} row(s) not imported: no duty of ours signs them")
    for row in plan.unfinished:
        typer.echo(
            f"warning: {row.validator} slot {row.slot} {row.duty_type} is still 'signing' in Aztec's table "
            f"(node {row.node_id}): a signature may exist that was never recorded; imported as a watermark "
            "only, so that slot stays closed",
            err=True,
        )
    if conflicts:
        first = conflicts[0]
        raise ImportConflict(
            f"{source}: {len(conflicts)} duties signed by Aztec with another digest than this store holds "
            f"(first: {first['attester']} slot {first['slot']} {first['duty_type']}); the store kept its rows"
        )

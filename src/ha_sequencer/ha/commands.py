"""`ha-sequencer ha-db …` (the duty store) and `ha-sequencer bench guard`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from ha_sequencer.cli_options import DutyStoreUrl, JsonObject, RollupFilter
from ha_sequencer.errors import InputError
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import ImportConflict, InterchangeError
from ha_sequencer.ha.store import SCHEMA_VERSION
from ha_sequencer.redact import redact_dsn

_ENV = "HA_SEQUENCER_"


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
    db: DutyStoreUrl, file: Path = typer.Argument(..., help="Interchange JSON written by `ha-db export`.")
) -> None:
    """Merge interchange JSON into the store: new duties added, watermarks raised (never lowered)."""
    _quiet_pool()
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

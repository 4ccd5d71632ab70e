"""The duty-store interchange JSON (docs/duty-store-format.md): move an identity's protection elsewhere."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

from ha_sequencer.ha.errors import InterchangeError
from ha_sequencer.ha.outcomes import DutyType
from ha_sequencer.ha.store import SCHEMA_VERSION, DutyRecord, DutyStore, WatermarkRecord

FORMAT_NAME = "ha-sequencer-duty-store"
FORMAT_VERSION = 1


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + b.hex()


def export_document(store: DutyStore, rollup: str | None = None) -> dict[str, Any]:
    """The store's duties and watermarks (optionally of one rollup) as an interchange document."""
    duties, marks = store.export_rows(rollup.lower() if rollup else None)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duties": [
            {
                **d,
                "digest": _hex(d["digest"]),
                "payload": _hex(d["payload"]),
                "signature": _hex(d["signature"]),
            }
            for d in duties
        ],
        "watermarks": marks,
    }


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise InterchangeError(f"{where}.{name}: missing")
    value = obj[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InterchangeError(f"{where}.{name}: expected an integer, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise InterchangeError(f"{where}.{name}: expected a string, got {value!r}")
    return value


def _bytes(
    obj: dict[str, Any], name: str, where: str, *, optional: bool = False, size: int | None = None
) -> bytes | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InterchangeError(f"{where}.{name}: expected 0x-prefixed hex, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise InterchangeError(f"{where}.{name}: not hex ({exc})") from exc
    if size is not None and len(raw) != size:
        raise InterchangeError(f"{where}.{name}: expected {size} bytes, got {len(raw)}")
    return raw


def _objects(doc: dict[str, Any], name: str, source: str) -> list[dict[str, Any]]:
    """The list `name` of the document, each item checked to be a JSON object."""
    items: Any = doc.get(name, [])
    if not isinstance(items, list):
        raise InterchangeError(f"{source}: {name}: expected a list")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(cast(list[Any], items)):
        if not isinstance(item, dict):
            raise InterchangeError(f"{source}: {name}[{i}]: expected an object")
        out.append(cast(dict[str, Any], item))
    return out


def _required(value: bytes | None) -> bytes:
    assert value is not None  # _bytes without `optional` never returns None
    return value


def _duty_type(obj: dict[str, Any], where: str) -> str:
    value = _field(obj, "duty_type", str, where)
    try:
        return DutyType(value).value
    except ValueError as exc:
        raise InterchangeError(
            f"{where}.duty_type: unknown {value!r} (one of {', '.join(t.value for t in DutyType)})"
        ) from exc


def parse_document(doc: Any, source: str = "<input>") -> tuple[list[DutyRecord], list[WatermarkRecord]]:
    """Validate an interchange document; errors name the JSON path."""
    if not isinstance(doc, dict):
        raise InterchangeError(f"{source}: not a {FORMAT_NAME} document (field 'format')")
    body = cast(dict[str, Any], doc)
    if body.get("format") != FORMAT_NAME:
        raise InterchangeError(f"{source}: not a {FORMAT_NAME} document (field 'format')")
    if body.get("version") != FORMAT_VERSION:
        raise InterchangeError(
            f"{source}: version {body.get('version')!r} unsupported (this build reads {FORMAT_VERSION})"
        )
    duties: list[DutyRecord] = []
    marks: list[WatermarkRecord] = []
    for i, d in enumerate(_objects(body, "duties", source)):
        where = f"{source}: duties[{i}]"
        status = _field(d, "status", str, where)
        if status not in ("signing", "signed"):
            raise InterchangeError(f"{where}.status: expected 'signing' or 'signed', got {status!r}")
        signature = _bytes(d, "signature", where, optional=status == "signing", size=65)
        if status == "signed" and signature is None:
            raise InterchangeError(f"{where}.signature: required when status is 'signed'")
        signed_at = d.get("signed_at")
        duties.append(
            DutyRecord(
                rollup=_field(d, "rollup", str, where).lower(),
                attester=_field(d, "attester", str, where).lower(),
                slot=_field(d, "slot", int, where),
                duty_type=_duty_type(d, where),
                digest=_required(_bytes(d, "digest", where, size=32)),
                payload=_required(_bytes(d, "payload", where)),
                status=status,
                node_id=str(d.get("node_id") or "imported"),
                signature=signature,
                signed_at=float(signed_at) if isinstance(signed_at, int | float) else None,
            )
        )
    for i, w in enumerate(_objects(body, "watermarks", source)):
        where = f"{source}: watermarks[{i}]"
        marks.append(
            WatermarkRecord(
                rollup=_field(w, "rollup", str, where).lower(),
                attester=_field(w, "attester", str, where).lower(),
                duty_type=_duty_type(w, where),
                slot=_field(w, "slot", int, where),
            )
        )
    return duties, marks


def import_document(store: DutyStore, doc: Any, source: str = "<input>") -> tuple[int, list[DutyRecord]]:
    """Merge a document into the store (one transaction); returns (duties inserted, conflicting duties)."""
    duties, marks = parse_document(doc, source)
    return store.import_rows(duties, marks)


def dumps(doc: dict[str, Any]) -> str:
    """Stable JSON text of a document."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"

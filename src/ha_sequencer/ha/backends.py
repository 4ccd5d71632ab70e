"""`open_store(url)`: the duty store backend a URL names — SQLite (one host) or PostgreSQL (several hosts)."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ha_sequencer.ha.errors import StoreURLError
from ha_sequencer.ha.postgres_store import PostgresDutyStore
from ha_sequencer.ha.sqlite_store import SqliteDutyStore
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.redact import redact_dsn, scrub_dsn

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(
    url: str, *, migrate: bool = False, check: bool = True, require_sync: bool = False
) -> DutyStore:
    """Open `sqlite:///path` or `postgresql://…`; refuses an unmigrated or newer schema unless `migrate`.

    PostgreSQL: refuses a read-only server (a standby) and, with `require_sync`, a primary that has no
    synchronous standby (`pg_cluster.check_writable_primary`).
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    store: DutyStore
    if scheme == "sqlite":
        store = SqliteDutyStore(url)
    elif scheme in ("postgresql", "postgres"):
        _check_postgres_url(url)
        store = PostgresDutyStore(url)
    else:
        raise StoreURLError(
            f"--db {redact_dsn(url)!r}: unsupported scheme {scheme!r} "
            "(use sqlite:///path/to/file.db or postgresql://user@host:port/db)"
        )
    try:
        if isinstance(store, PostgresDutyStore):
            store.check_server(require_sync=require_sync)
        if migrate:
            store.migrate()
        if check:
            store.check_schema()
    except BaseException:
        store.close()
        raise
    return store


def _check_postgres_url(url: str) -> None:
    """Refuse, naming what is wrong (never the password), a URL libpq cannot parse."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = scrub_dsn(str(exc).strip().splitlines()[0], url)
        raise StoreURLError(f"--db {redact_dsn(url)!r}: not a valid PostgreSQL URL ({reason})") from None

"""`open_store(url)`: the duty store backend a URL names — SQLite (one host) or PostgreSQL (several hosts)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ha_sequencer.ha.errors import StoreURLError
from ha_sequencer.ha.postgres_store import PostgresDutyStore
from ha_sequencer.ha.sqlite_store import SqliteDutyStore
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.redact import redact_dsn


def open_store(
    url: str, *, migrate: bool = False, check: bool = True, require_sync: bool = False
) -> DutyStore:
    """Open `sqlite:///path` or `postgresql://…`; refuses an unmigrated or newer schema unless `migrate`.

    PostgreSQL: refuses a read-only server (a standby) and, with `require_sync`, a primary that has no
    synchronous standby (`pg_cluster.check_writable_primary`).
    """
    scheme = urlsplit(url).scheme
    store: DutyStore
    if scheme == "sqlite":
        store = SqliteDutyStore(url)
    elif scheme in ("postgresql", "postgres"):
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

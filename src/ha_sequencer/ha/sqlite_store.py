"""The embedded duty store: one SQLite file shared by the nodes (processes) of one host.

The store is the file a store object opened first, identified by (device, inode), not by its path. A file
replaced under running nodes (`os.replace` or `mv` of a fresh or an older copy over it) would otherwise split
the fleet: connections opened before keep writing to the old, now unlinked file while new ones use the new
file, and neither sees the other's claims. So every transaction checks, holding SQLite's write lock, that the
path still names the file it writes, and again after it commits; once the file has changed, the store answers
`StoreUnreachable` for good (the node fails closed until its operator restarts it). Writing another file's
bytes into the same inode (`cp` over it) is not a replacement but a corruption, which no check here can see.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ha_sequencer.ha.errors import DutyStoreError, StoreUnreachable, StoreURLError
from ha_sequencer.ha.sqlbase import Execute, Row, SqlDutyStore
from ha_sequencer.redact import redact_dsn

BUSY_TIMEOUT_MS = 5000  # writers queue behind BEGIN IMMEDIATE rather than failing at once
# A writer waiting for the lock looks again after 50 µs, backing off to 2 ms. SQLite's own busy handler sleeps
# 1, 2, 5, 10, 15, 20, 25 … 100 ms between tries: twins claiming a slot's duties together then waited tens of
# milliseconds (hundreds with 50 identities) for a lock held well under a millisecond.
LOCK_RETRY_START_S, LOCK_RETRY_MAX_S = 0.00005, 0.002

FileIdentity = tuple[int, int]  # (st_dev, st_ino): the file itself, whatever path names it


def sqlite_path(url: str) -> Path:
    """`sqlite:///abs/path.db` (also `sqlite:////abs/path.db`) or `sqlite:///./rel.db` → the file path."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or parts.path in ("", "/"):
        raise StoreURLError(f"--db {redact_dsn(url)!r}: expected sqlite:///path/to/file.db")
    path = parts.path
    if path.startswith(("//", "/./")):
        path = path[1:]
    return Path(path)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying: the switch takes an exclusive lock that SQLite does not queue behind
    the busy timeout, so nodes opening a fresh file together would otherwise fail with 'locked'."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def file_identity(path: Path) -> FileIdentity | None:
    """The (device, inode) the path names now; None when nothing does."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE (take the write lock), waiting up to `BUSY_TIMEOUT_MS` for another writer to finish.

    Only this wait bypasses SQLite's busy handler: every other statement keeps the connection's timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = LOCK_RETRY_START_S
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, LOCK_RETRY_MAX_S)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class SqliteDutyStore(SqlDutyStore):
    """WAL mode, a busy timeout, BEGIN IMMEDIATE for every write; one connection per thread."""

    dialect = "sqlite"
    words = {
        "now": "((julianday('now') - 2440587.5) * 86400.0)",
        "greatest": "MAX",
        "true": "1",
        "false": "0",
    }

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        if not self.path.parent.is_dir():
            raise StoreURLError(f"--db {redact_dsn(url)!r}: directory {self.path.parent} does not exist")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._identity: FileIdentity | None = None  # the file this store opened first; fixed for its life
        self._replaced: str | None = None  # set once the path named another file: every call fails after

    def _conn(self) -> sqlite3.Connection:
        if self._replaced is not None:
            raise StoreUnreachable(self._replaced)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnreachable(f"duty store {self.path} is closed")
            # sqlite3.connect opens the file by path: the same identity before and after means the connection
            # holds the file the path named (a file held open keeps its inode, so no other file can take it).
            before = file_identity(self.path)
            try:
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                _enable_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")  # a recorded signature must survive power loss
            except sqlite3.Error as exc:
                raise StoreUnreachable(f"duty store {self.path}: {exc}") from exc
            after = file_identity(self.path)
            with self._all_lock:
                if self._identity is None and after is not None and before in (None, after):
                    self._identity = after
                identity = self._identity
            if after is None or after != identity or before not in (None, after):
                conn.close()
                raise self._replaced_error()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _execute(self, sql: str, params: Mapping[str, Any], *, fetch: bool = True) -> list[Row]:
        with self._transaction() as execute:
            return execute(sql, params, fetch=fetch)

    @contextlib.contextmanager
    def _transaction(self) -> Generator[Execute]:
        conn = self._conn()
        try:
            _begin(conn)
        except sqlite3.Error as exc:
            raise StoreUnreachable(f"duty store {self.path}: {exc}") from exc
        if file_identity(self.path) != self._identity:  # checked holding the write lock, before any statement
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._replaced_error()

        def execute(sql: str, params: Mapping[str, Any], *, fetch: bool = True) -> list[Row]:
            cur = conn.execute(sql, params)
            return cur.fetchall() if fetch else []

        try:
            yield execute
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise DutyStoreError(f"duty store {self.path}: {exc}") from exc
            raise
        # Replaced between the check and the commit: what we wrote went to a file no peer opens any more (a
        # record there must not release its signature).
        if file_identity(self.path) != self._identity:
            raise self._replaced_error()

    def _replaced_error(self) -> StoreUnreachable:
        """Latch the replacement: the old file is gone for peers, the new one lacks what we wrote."""
        if self._replaced is None:
            self._replaced = (
                f"duty store {self.path} was replaced or removed while open (not the file this node opened): "
                "refusing to sign; restart the node to use the new file"
            )
        return StoreUnreachable(self._replaced)

    schema_table_exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ha_schema'"

    def ping(self) -> None:
        """Read the schema table through a fresh statement; fails if the file vanished or is unusable."""
        if not self.path.exists():
            raise StoreUnreachable(f"duty store {self.path} does not exist")
        try:
            self._conn().execute("SELECT 1 FROM ha_schema LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnreachable(f"duty store {self.path}: {exc}") from exc
        if file_identity(self.path) != self._identity:
            raise self._replaced_error()

    def close(self) -> None:
        """Close every thread's connection."""
        super().close()
        self._closed = True
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()

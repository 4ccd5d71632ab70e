"""The shared duty store for nodes on several hosts: PostgreSQL through a psycopg 3 pool."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any, LiteralString, cast

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from ha_sequencer.ha.errors import DutyStoreError, StoreUnreachable
from ha_sequencer.ha.pg_cluster import (
    HostState,
    PrimaryReplication,
    check_writable_primary,
    cluster_state,
    hosts_of,
    session_attrs,
)
from ha_sequencer.ha.sqlbase import CLAIM_OR_FETCH, Execute, Row, SqlDutyStore
from ha_sequencer.redact import redact_dsn

CONNECT_TIMEOUT_S = 2
POOL_WAIT_S = 1.0  # a claim waits this long for a pooled connection before failing closed
# psycopg_pool retries a lost server with exponential backoff (1, 2, 4 … s) for `reconnect_timeout`; giving up
# quickly makes the next claim start a fresh attempt, so work resumes within about a second of a restart.
RECONNECT_GIVE_UP_S = 1.5
STATEMENT_TIMEOUT_MS = 5000
TCP_USER_TIMEOUT_MS = 3000  # unacknowledged writes abort the connection (a partitioned store fails closed)
POOL_MIN, POOL_MAX = 1, 8
CLAIM_POOL_MAX = 4
Pool = psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]]
MIGRATION_LOCK_KEY = 0x6861_5F64_7574_79  # pg advisory lock id ("ha_duty"), held while migrating


def _query(sql: str) -> LiteralString:
    """A statement for psycopg: our statements are module constants with the dialect's words filled in, and
    every value is a bound parameter, never interpolated (what psycopg's LiteralString typing guards)."""
    return cast(LiteralString, sql)


def _drop(conn: psycopg.Connection[TupleRow]) -> None:
    """Close a connection to a server that turned read-only (a demoted primary): the pool replaces it, and
    `target_session_attrs` makes the new one find the writable server."""
    with contextlib.suppress(Exception):
        conn.close()


class PostgresDutyStore(SqlDutyStore):
    """Autocommit single statements (the claim: one `INSERT … ON CONFLICT … RETURNING`), prepared.

    Claims commit without waiting for the WAL flush (`synchronous_commit = off`, on their own connections);
    everything else, the record above all, waits for it. That is one fsync per duty instead of two, and it is
    safe: a signature leaves the guard only after its record committed durably, and that commit flushes the
    WAL up to itself, so the claim it updated (written earlier) is durable too. A crash can lose only claims
    no signature was released for; their claimants' records then fail and no signature leaves (fail closed).

    The URL may name every member of a replicated cluster; connections go to the one writable server
    (`target_session_attrs=read-write`) and, after a failover, to the new primary (docs/duty-store-ha.md).
    A record whose COMMIT loses its connection is in doubt: it raises, so no signature leaves, and the next
    attempt finds either the recorded row (the same signature) or the claim to adopt (the stored digest).
    """

    dialect = "postgres"
    words = {
        # One reading per statement, as SQLite's 'now': a record's `submitted_at` and `deadline_at` (or a
        # claim's `claimed_at` and `lease_until`) come from the same instant.
        "now": "EXTRACT(EPOCH FROM statement_timestamp())::float8",
        "greatest": "GREATEST",
        "true": "TRUE",
        "false": "FALSE",
    }

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._where = redact_dsn(url)
        timeout = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            # Never a standby: a replica can lag behind a claim, and writes to it fail anyway.
            "target_session_attrs": session_attrs(url, self._where),
            "connect_timeout": CONNECT_TIMEOUT_S,
            # Durable whatever the server's default: a server-wide `off` (a common tuning) would let a crash
            # forget a recorded signature and reopen its duty.
            "options": f"{timeout} -c synchronous_commit=on",
            "prepare_threshold": 1,
            # statement_timeout is enforced by the server; these bound a silent network (no RST) on our side.
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 1,
            "keepalives_count": 3,
        }
        self._pool = self._new_pool("ha-duty-store", POOL_MAX, self._kwargs)
        claim_kwargs = {**self._kwargs, "options": f"{timeout} -c synchronous_commit=off"}
        self._claim_pool = self._new_pool("ha-duty-claims", CLAIM_POOL_MAX, claim_kwargs)
        self._probe_conn: psycopg.Connection | None = None
        self._probe_lock = threading.Lock()
        self._checking = threading.Lock()

    def _new_pool(self, name: str, max_size: int, kwargs: dict[str, Any]) -> Pool:
        pool: Pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=POOL_MIN,
            max_size=max_size,
            kwargs=kwargs,
            timeout=POOL_WAIT_S,
            open=False,
            reconnect_timeout=RECONNECT_GIVE_UP_S,
            name=name,
        )
        pool.open(wait=False)
        return pool

    def _check_pool(self) -> None:
        try:
            for pool in (self._pool, self._claim_pool):
                with contextlib.suppress(Exception):
                    pool.check()
        finally:
            self._checking.release()

    def _fail(self, exc: Exception) -> DutyStoreError:
        if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
            # Dead connections go back to the pool broken and are replaced; check the idle ones now
            # (one checker at a time, so an outage does not spawn a thread per failed claim).
            if self._checking.acquire(blocking=False):
                threading.Thread(target=self._check_pool, daemon=True).start()
            if isinstance(exc, psycopg_pool.PoolTimeout):
                return StoreUnreachable(
                    f"duty store {self._where} unreachable: no connection within {POOL_WAIT_S:g} s"
                )
            return StoreUnreachable(f"duty store {self._where}: {type(exc).__name__}: {exc}".strip())
        return DutyStoreError(f"duty store {self._where}: {type(exc).__name__}: {exc}".strip())

    def _execute(
        self,
        sql: str,
        params: Mapping[str, Any],
        *,
        fetch: bool = True,
        pool: Pool | None = None,
    ) -> list[Row]:
        try:
            with (pool or self._pool).connection() as conn:
                try:
                    cur = conn.execute(_query(sql), params)
                except psycopg.errors.ReadOnlySqlTransaction:
                    _drop(conn)
                    raise
                return cur.fetchall() if fetch and cur.description is not None else []
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._fail(exc) from exc

    def _execute_claim(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        """Run a statement on the claim pool (commits without waiting for the WAL flush)."""
        return self._execute(sql, params, pool=self._claim_pool)

    def _claim_or_fetch(self, params: Mapping[str, Any]) -> Row:
        # One statement, one round trip: the loser of a contested duty gets the winner's row back at once.
        return self._execute_claim(self._native(CLAIM_OR_FETCH), params)[0]

    def _claim_in(self, execute: Execute, params: Mapping[str, Any]) -> Row:
        return execute(self._native(CLAIM_OR_FETCH), params)[0]

    def _claim_rows(self, params: Sequence[Mapping[str, Any]]) -> list[Row]:
        return [rows[0] for rows in self._pipelined(self._claim_pool, self._native(CLAIM_OR_FETCH), params)]

    def _each_in_one_transaction(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[list[Row]]:
        return self._pipelined(self._pool, sql, params)

    def _pipelined(self, pool: Pool, sql: str, params: Sequence[Mapping[str, Any]]) -> list[list[Row]]:
        """`sql` once per parameter set in one transaction, sent as one pipeline: a batch of K duties costs
        one round trip, not K: the same statements, in the same order, as one by one (psycopg pipelines)."""
        try:
            with pool.connection() as conn, conn.transaction():
                try:
                    with conn.pipeline():
                        cursors = [conn.execute(_query(sql), p) for p in params]
                except psycopg.errors.ReadOnlySqlTransaction:
                    _drop(conn)
                    raise
                return [cur.fetchall() if cur.description is not None else [] for cur in cursors]
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._fail(exc) from exc

    @contextlib.contextmanager
    def _claim_transaction(self) -> Generator[Execute]:
        with self._transaction(self._claim_pool) as execute:
            yield execute

    @contextlib.contextmanager
    def _transaction(self, pool: Pool | None = None) -> Generator[Execute]:
        try:
            with (pool or self._pool).connection() as conn, conn.transaction():

                def execute(sql: str, params: Mapping[str, Any], *, fetch: bool = True) -> list[Row]:
                    try:
                        cur = conn.execute(_query(sql), params)
                    except psycopg.errors.ReadOnlySqlTransaction:
                        _drop(conn)
                        raise
                    return cur.fetchall() if fetch and cur.description is not None else []

                yield execute
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._fail(exc) from exc

    def _lock_for_prune(self, execute: Execute) -> None:
        # Conflicts with the claims' ROW EXCLUSIVE lock: no claim can slip under a watermark being raised.
        execute("LOCK TABLE duties IN SHARE ROW EXCLUSIVE MODE", {}, fetch=False)

    schema_table_exists = "SELECT to_regclass('ha_schema') IS NOT NULL"

    def _lock_for_migration(self, execute: Execute) -> None:
        execute("SELECT pg_advisory_xact_lock(%(k)s)", {"k": MIGRATION_LOCK_KEY})

    def check_server(self, *, require_sync: bool) -> PrimaryReplication:
        """Refuse a read-only server (exit 2); with `require_sync`, a primary with no synchronous standby."""
        return check_writable_primary(self.url, self._kwargs, where=self._where, require_sync=require_sync)

    def cluster(self) -> list[HostState] | None:
        """Each host's role and replication state when the URL names several hosts, else None."""
        if len(hosts_of(self.url)) < 2:
            return None
        return cluster_state(self.url, {**self._kwargs, "connect_timeout": 2})

    def ping(self) -> None:
        """`SELECT 1` on a dedicated connection (never queued behind the pool), reconnecting as needed."""
        with self._probe_lock:
            try:
                if self._probe_conn is None or self._probe_conn.closed:
                    probe_kwargs: dict[str, Any] = {
                        **self._kwargs,
                        "connect_timeout": 1,
                        "options": "-c statement_timeout=1000",
                    }
                    self._probe_conn = psycopg.Connection.connect(self.url, **probe_kwargs)
                self._probe_conn.execute("SELECT 1").fetchall()
            except psycopg.Error as exc:
                if self._probe_conn is not None:
                    with contextlib.suppress(Exception):
                        self._probe_conn.close()
                self._probe_conn = None
                raise StoreUnreachable(f"duty store {self._where}: {exc}") from exc

    def close(self) -> None:
        """Close the pool and the probe connection."""
        super().close()
        for pool in (self._pool, self._claim_pool):
            with contextlib.suppress(Exception):
                pool.close(timeout=2)
        with self._probe_lock:
            if self._probe_conn is not None:
                with contextlib.suppress(Exception):
                    self._probe_conn.close()
                self._probe_conn = None

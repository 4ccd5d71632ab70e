"""The SQL both stores share: one statement text per operation, two dialects (SQLite, PostgreSQL)."""

# ruff: noqa: S608 -- statements are module constants; every value is a bound parameter, never interpolated.

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Generator, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

from ha_sequencer.ha.errors import SchemaMismatch
from ha_sequencer.ha.outcomes import (
    DutyStatus,
    PublishDone,
    PublishRecord,
    PublishTheirs,
    PublishTurn,
    PublishYours,
)
from ha_sequencer.ha.store import (
    SCHEMA_VERSION,
    Claimed,
    ClaimResult,
    DutyClaim,
    DutyKey,
    DutyRecord,
    DutyRecordRequest,
    DutyRow,
    Existing,
    Halt,
    PruneReport,
    StoreStatus,
    WatermarkRecord,
)
from ha_sequencer.redact import redact_dsn

# /status must say "store unhealthy" within 1 s of a hang (traffic frozen, no reset) and within 0.5 s of a
# refused connection: a hung ping leaves the last success older than HEALTH_STALE_S (0.8 s), a refused one
# fails the next ping (0.2 s); the node reads this state every 0.1 s (node/health.py STORE_HEALTH_S).
HEALTH_INTERVAL_S = 0.2  # how often the background probe pings the store
HEALTH_STALE_S = 0.8  # no successful ping for this long = unhealthy

_KEY = "rollup = %(rollup)s AND attester = %(attester)s AND slot = %(slot)s AND duty_type = %(duty_type)s"
_SCOPE = "rollup = %(rollup)s AND attester = %(attester)s AND duty_type = %(duty_type)s"
_PUB_KEY = "rollup = %(rollup)s AND attester = %(attester)s AND slot = %(slot)s"
_PUB_COLS = "attester, slot, node_id, attempt, claimed_at, deadline_at, tx_hash, submitted_at, mined"
# An attester under an active halt (a foreign signature was seen) gets no claim, adoption or record: whatever
# a guard call was doing when the halt committed, no signature for that attester leaves after it.
_ACTIVE_HALT = (
    "SELECT {sel} FROM halts WHERE rollup = %(rollup)s AND attester = %(attester)s AND resumed_at IS NULL"
)
_NOT_HALTED = f"NOT EXISTS ({_ACTIVE_HALT.format(sel='1')})"
_HALT_COLS = (
    "id, rollup, attester, slot, duty_type, reason, evidence, node_id, halted_at, resumed_at, resumed_by, "
    "resume_reason"
)

# The claim: one atomic statement. Inserts a `signing` row unless the duty exists or the watermark forbids it.
CLAIM = f"""
INSERT INTO duties (rollup, attester, slot, duty_type, digest, payload, status, node_id, lock_token,
                    claimed_at, lease_until)
SELECT %(rollup)s, %(attester)s, %(slot)s, %(duty_type)s, %(digest)s, %(payload)s, 'signing', %(node_id)s,
       %(token)s, {{now}}, {{now}} + %(lease_s)s
WHERE NOT EXISTS (SELECT 1 FROM watermarks WHERE {_SCOPE} AND slot >= %(slot)s) AND {_NOT_HALTED}
ON CONFLICT DO NOTHING
RETURNING lock_token
"""
FETCH = f"""
SELECT (SELECT slot FROM watermarks WHERE {_SCOPE}), ({_ACTIVE_HALT.format(sel="reason")}),
       d.status, d.digest, d.payload, d.node_id, d.lock_token, d.signature, d.lease_until, {{now}}
FROM (SELECT 1 AS one) AS x LEFT JOIN duties AS d ON d.{_KEY.replace(" AND ", " AND d.")}
"""
_ROW_COLS = "status, digest, payload, node_id, lock_token, signature, lease_until"
# The contested claim in one round trip (PostgreSQL): CLAIM's insert and gates, answering FETCH's columns.
# On a conflict the row is "updated" to itself: unlike DO NOTHING, DO UPDATE waits for a racing claimant's
# insert to commit and then returns that committed row, which a separate read in the same statement could
# not see (its snapshot predates the racer's commit). The no-op update changes no column and so cannot
# weaken the duty: it moves no token, lease or digest. With the watermark or halt gate closed, the SELECT
# yields no row and nothing is inserted or updated; the outer query then reads the row (a signed duty below
# the watermark still answers SameData or Refused) and reports the watermark and the halt, as FETCH does.
CLAIM_OR_FETCH = f"""
WITH claimed AS (
  INSERT INTO duties (rollup, attester, slot, duty_type, digest, payload, status, node_id, lock_token,
                      claimed_at, lease_until)
  SELECT %(rollup)s, %(attester)s, %(slot)s, %(duty_type)s, %(digest)s, %(payload)s, 'signing', %(node_id)s,
         %(token)s, {{now}}, {{now}} + %(lease_s)s
  WHERE NOT EXISTS (SELECT 1 FROM watermarks WHERE {_SCOPE} AND slot >= %(slot)s) AND {_NOT_HALTED}
  ON CONFLICT (rollup, attester, slot, duty_type) DO UPDATE SET lock_token = duties.lock_token
  RETURNING {_ROW_COLS}
)
SELECT (SELECT slot FROM watermarks WHERE {_SCOPE}), ({_ACTIVE_HALT.format(sel="reason")}),
       c.status, c.digest, c.payload, c.node_id, c.lock_token, c.signature, c.lease_until, {{now}}
FROM (SELECT 1 AS one) AS x LEFT JOIN (
  SELECT {_ROW_COLS} FROM claimed
  UNION ALL
  SELECT {_ROW_COLS} FROM duties WHERE {_KEY} AND NOT EXISTS (SELECT 1 FROM claimed)
) AS c ON TRUE
"""
# Adoption: exactly one node replaces an expired claimant's token; it may sign only the stored digest.
ADOPT = f"""
UPDATE duties SET node_id = %(node_id)s, lock_token = %(token)s, lease_until = {{now}} + %(lease_s)s,
                  adopted_from = node_id
WHERE {_KEY} AND status = 'signing' AND lock_token = %(old_token)s AND lease_until < {{now}} AND {_NOT_HALTED}
RETURNING status, digest, payload, node_id, lock_token, signature, lease_until, {{now}}
"""
# The record: succeeds only while we still hold the lock token.
RECORD = f"""
UPDATE duties SET status = 'signed', signature = %(signature)s, signed_at = {{now}}
WHERE {_KEY} AND lock_token = %(token)s AND status = 'signing' AND {_NOT_HALTED}
RETURNING slot
"""
HOLDER = f"SELECT node_id FROM duties WHERE {_KEY}"

CLAIM_PUBLISH = f"""
INSERT INTO publishes (rollup, attester, slot, node_id, attempt, claimed_at, deadline_at)
VALUES (%(rollup)s, %(attester)s, %(slot)s, %(node_id)s, 1, {{now}}, {{now}} + %(deadline_s)s)
ON CONFLICT (rollup, attester, slot) DO UPDATE
  SET node_id = excluded.node_id, attempt = publishes.attempt + 1, claimed_at = excluded.claimed_at,
      deadline_at = excluded.deadline_at, tx_hash = NULL, submitted_at = NULL
  WHERE publishes.mined = {{false}} AND publishes.deadline_at < {{now}}
RETURNING {_PUB_COLS}
"""
RECORD_PUBLISH = f"""
UPDATE publishes SET tx_hash = %(tx_hash)s, submitted_at = {{now}}, deadline_at = {{now}} + %(deadline_s)s
WHERE {_PUB_KEY} AND node_id = %(node_id)s AND attempt = %(attempt)s
RETURNING slot
"""
MARK_MINED = f"UPDATE publishes SET mined = {{true}} WHERE {_PUB_KEY}"
PUBLISH_RECORD = f"SELECT {_PUB_COLS} FROM publishes WHERE {_PUB_KEY}"

HALT = """
INSERT INTO halts (rollup, attester, slot, duty_type, reason, evidence, node_id, halted_at)
VALUES (%(rollup)s, %(attester)s, %(slot)s, %(duty_type)s, %(reason)s, %(evidence)s, %(node_id)s, {now})
ON CONFLICT DO NOTHING
RETURNING id
"""
ACTIVE_HALTS = f"SELECT {_HALT_COLS} FROM halts WHERE rollup = %(rollup)s AND resumed_at IS NULL ORDER BY id"
ALL_HALTS = f"""
SELECT {_HALT_COLS} FROM halts WHERE (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s) ORDER BY id
"""
RESUME = """
UPDATE halts SET resumed_at = {now}, resumed_by = %(by)s, resume_reason = %(reason)s
WHERE attester = %(attester)s AND resumed_at IS NULL
  AND (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s)
RETURNING id
"""

REGISTER_NODE = """
INSERT INTO nodes (node_id, instance, host, pid, started_at, heartbeat_at)
VALUES (%(node_id)s, %(instance)s, %(host)s, %(pid)s, {now}, {now})
ON CONFLICT (node_id) DO UPDATE
  SET instance = excluded.instance, host = excluded.host, pid = excluded.pid,
      started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
  WHERE nodes.heartbeat_at < {now} - %(stale_s)s
RETURNING instance
"""
HEARTBEAT_NODE = (
    "UPDATE nodes SET heartbeat_at = {now} "
    "WHERE node_id = %(node_id)s AND instance = %(instance)s RETURNING node_id"
)
UNREGISTER_NODE = "DELETE FROM nodes WHERE node_id = %(node_id)s AND instance = %(instance)s"

# Prune keeps the highest pruned slot of every scope as its watermark (never lowered).
PRUNE_WATERMARKS = """
INSERT INTO watermarks (rollup, attester, duty_type, slot, updated_at)
SELECT rollup, attester, duty_type, MAX(slot), {now} FROM duties
WHERE slot <= %(slot)s AND (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s)
GROUP BY rollup, attester, duty_type
ON CONFLICT (rollup, attester, duty_type) DO UPDATE
  SET slot = {greatest}(watermarks.slot, excluded.slot), updated_at = excluded.updated_at
"""
PRUNE_DUTIES = (
    "DELETE FROM duties WHERE slot <= %(slot)s AND (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s)"
)
PRUNE_PUBLISHES = (
    "DELETE FROM publishes WHERE slot <= %(slot)s "
    "AND (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s)"
)
MERGE_WATERMARK = """
INSERT INTO watermarks (rollup, attester, duty_type, slot, updated_at)
VALUES (%(rollup)s, %(attester)s, %(duty_type)s, %(slot)s, {now})
ON CONFLICT (rollup, attester, duty_type) DO UPDATE
  SET slot = {greatest}(watermarks.slot, excluded.slot), updated_at = excluded.updated_at
"""
# An imported duty never lands at or below the store's own watermark: the store pruned its row there and no
# longer knows which digest it signed, so an imported `signing` row with another digest could be adopted.
IMPORT_DUTY = f"""
INSERT INTO duties (rollup, attester, slot, duty_type, digest, payload, status, node_id, lock_token,
                    signature, claimed_at, lease_until, signed_at)
SELECT %(rollup)s, %(attester)s, %(slot)s, %(duty_type)s, %(digest)s, %(payload)s, %(status)s, %(node_id)s,
       %(token)s, %(signature)s, {{now}}, 0, %(signed_at)s
WHERE NOT EXISTS (SELECT 1 FROM watermarks WHERE {_SCOPE} AND slot >= %(slot)s)
ON CONFLICT DO NOTHING
RETURNING slot
"""
DUTY_DIGEST = f"SELECT digest FROM duties WHERE {_KEY}"
EXPORT_DUTIES = """
SELECT rollup, attester, slot, duty_type, digest, payload, status, node_id, signature, signed_at FROM duties
WHERE (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s) ORDER BY rollup, attester, duty_type, slot
"""
EXPORT_WATERMARKS = """
SELECT rollup, attester, duty_type, slot FROM watermarks
WHERE (CAST(%(rollup)s AS TEXT) IS NULL OR rollup = %(rollup)s) ORDER BY rollup, attester, duty_type
"""

_NAMED = re.compile(r"%\((\w+)\)s")

Row = tuple[Any, ...]


class Execute(Protocol):
    """Run one statement inside a transaction; the rows it returned (none when `fetch` is false)."""

    def __call__(self, sql: str, params: Mapping[str, Any], *, fetch: bool = True) -> list[Row]: ...


def _row(r: Row) -> DutyRow:
    return DutyRow(
        status=DutyStatus(r[0]),
        digest=bytes(r[1]),
        payload=bytes(r[2]),
        node_id=r[3],
        lock_token=r[4],
        signature=None if r[5] is None else bytes(r[5]),
        lease_until=float(r[6]),
        now=float(r[7]),
    )


def _claim_params(c: DutyClaim, node_id: str, lease_s: float) -> dict[str, Any]:
    return {
        **c.key.params(),
        "digest": c.digest,
        "payload": c.payload,
        "node_id": node_id,
        "token": c.token,
        "lease_s": lease_s,
    }


def _claim_result(r: Row, token: str) -> ClaimResult:
    found = _existing(r)
    row = found.row
    # The token is fresh for this call: a `signing` row holding it is the one this claim inserted.
    if row is not None and row.status is DutyStatus.SIGNING and row.lock_token == token:
        return Claimed()
    return found


def _existing(r: Row) -> Existing:
    """FETCH's columns: watermark, halt reason, then the duty row's (all NULL when there is no row)."""
    watermark = None if r[0] is None else int(r[0])
    return Existing(row=None if r[2] is None else _row(r[2:]), watermark=watermark, halted=r[1])


def _halt(r: Row) -> Halt:
    return Halt(
        id=int(r[0]),
        rollup=r[1],
        attester=r[2],
        slot=int(r[3]),
        duty_type=r[4],
        reason=r[5],
        evidence=r[6],
        node_id=r[7],
        halted_at=float(r[8]),
        resumed_at=None if r[9] is None else float(r[9]),
        resumed_by=r[10],
        resume_reason=r[11],
    )


def _publish(r: Row) -> PublishRecord:
    return PublishRecord(
        attester=r[0],
        slot=int(r[1]),
        node_id=r[2],
        attempt=int(r[3]),
        claimed_at=float(r[4]),
        deadline_at=float(r[5]),
        tx_hash=r[6],
        submitted_at=None if r[7] is None else float(r[7]),
        mined=bool(r[8]),
    )


class HealthProbe:
    """A background ping, fresh for `HEALTH_STALE_S`: healthy turns false within 1 s of an outage."""

    def __init__(
        self, ping: Any, interval_s: float = HEALTH_INTERVAL_S, stale_s: float = HEALTH_STALE_S
    ) -> None:
        self._ping = ping
        self._interval_s = interval_s
        self._stale_s = stale_s
        self._last_ok = -1e9
        self._last_failed = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _probe_once(self) -> None:
        try:
            self._ping()
        except Exception:
            self._last_failed = True
        else:
            self._last_ok = time.monotonic()
            self._last_failed = False

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._probe_once()

    @property
    def healthy(self) -> bool:
        """True when the last ping succeeded less than `stale_s` ago (starts the probe on first use)."""
        with self._lock:
            if self._thread is None:
                self._probe_once()
                self._thread = threading.Thread(target=self._run, name="ha-store-health", daemon=True)
                self._thread.start()
        return not self._last_failed and time.monotonic() - self._last_ok < self._stale_s

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


class SqlDutyStore:
    """The shared implementation; subclasses supply connections, transactions and the dialect's words."""

    dialect = ""  # 'sqlite' | 'postgres'
    words: dict[str, str] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self._sql_cache: dict[str, str] = {}
        self._probe = HealthProbe(self.ping)

    # -- subclass hooks --------------------------------------------------------------------------------------
    def _execute(self, sql: str, params: Mapping[str, Any], *, fetch: bool = True) -> list[Row]:
        """Run one statement in its own transaction."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _transaction(self) -> Generator[Execute]:
        """A write transaction; yields an `execute(sql, params)` callable."""
        raise NotImplementedError
        yield

    def _native(self, sql: str) -> str:
        """The statement in the driver's paramstyle with dialect words filled in (cached)."""
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = sql.format(**self.words)
            if self.dialect == "sqlite":
                cached = _NAMED.sub(r":\1", cached)
            self._sql_cache[sql] = cached
        return cached

    def _exec(self, sql: str, **params: Any) -> list[Row]:
        return self._execute(self._native(sql), params)

    def _claim_or_fetch(self, params: Mapping[str, Any]) -> Row:
        """Claim, and in the same transaction read FETCH's columns (our new row when the claim won).

        One transaction, so one lock and one commit: SQLite's BEGIN IMMEDIATE serializes writers, so the
        read after a conflict sees the winner's committed row. PostgreSQL does it in one statement."""
        with self._transaction() as execute:
            return self._claim_in(execute, params)

    def _claim_in(self, execute: Execute, params: Mapping[str, Any]) -> Row:
        """The claim's statements inside an open transaction; FETCH's columns."""
        execute(self._native(CLAIM), params)
        return execute(self._native(FETCH), params)[0]

    @contextlib.contextmanager
    def _claim_transaction(self) -> Generator[Execute]:
        """The transaction a batch of claims runs in (a backend may skip waiting for its durability)."""
        with self._transaction() as execute:
            yield execute

    # -- duties ----------------------------------------------------------------------------------------------
    def claim(
        self, key: DutyKey, digest: bytes, payload: bytes, node_id: str, token: str, lease_s: float
    ) -> ClaimResult:
        """Insert a `signing` row for us, or report the existing row / the watermark / the halt."""
        params = _claim_params(DutyClaim(key, digest, payload, token), node_id, lease_s)
        return _claim_result(self._claim_or_fetch(params), token)

    def claim_many(self, claims: Sequence[DutyClaim], node_id: str, lease_s: float) -> list[ClaimResult]:
        """`claim` for each duty, all in one transaction: one commit (one WAL flush) for a slot's duties.

        Each claim is the single claim's own statement, so each keeps the watermark and `_NOT_HALTED` gates:
        a halted attester's duty answers with its halt while the others of the batch go on."""
        rows = self._claim_rows([_claim_params(c, node_id, lease_s) for c in claims])
        return [_claim_result(r, c.token) for r, c in zip(rows, claims, strict=True)]

    def _claim_rows(self, params: Sequence[Mapping[str, Any]]) -> list[Row]:
        """Each claim's FETCH columns, the claims all in one transaction."""
        with self._claim_transaction() as execute:
            return [self._claim_in(execute, p) for p in params]

    def record_many(self, records: Sequence[DutyRecordRequest]) -> list[bool]:
        """`record` for each duty (each gated by its token and `_NOT_HALTED`), in one durable transaction."""
        if not records:
            return []
        params = [{**r.key.params(), "token": r.token, "signature": r.signature} for r in records]
        return [bool(rows) for rows in self._each_in_one_transaction(self._native(RECORD), params)]

    def _each_in_one_transaction(self, sql: str, params: Sequence[Mapping[str, Any]]) -> list[list[Row]]:
        """`sql` once per parameter set, all in one durable transaction; each execution's rows."""
        with self._transaction() as execute:
            return [execute(sql, p) for p in params]

    def fetch(self, key: DutyKey) -> Existing:
        """The duty's row (if any), its scope's watermark (if any) and the attester's active halt (if any)."""
        return _existing(self._exec(FETCH, **key.params())[0])

    def adopt(self, key: DutyKey, old_token: str, node_id: str, token: str, lease_s: float) -> DutyRow | None:
        """Take over an expired `signing` row; None if another adopter won or the claimant finished."""
        rows = self._exec(
            ADOPT, **key.params(), old_token=old_token, node_id=node_id, token=token, lease_s=lease_s
        )
        return _row(rows[0]) if rows else None

    def record(self, key: DutyKey, token: str, signature: bytes) -> bool:
        """Store the signature if we still hold the token."""
        return bool(self._exec(RECORD, **key.params(), token=token, signature=signature))

    def holder(self, key: DutyKey) -> str | None:
        """The node id currently holding the duty."""
        rows = self._exec(HOLDER, **key.params())
        return rows[0][0] if rows else None

    # -- publishing ------------------------------------------------------------------------------------------
    def claim_publish(
        self, rollup: str, attester: str, slot: int, node_id: str, deadline_s: float
    ) -> PublishTurn:
        """Ours (first, or taking over a submission past its deadline), a peer's, or done (mined)."""
        key = {"rollup": rollup, "attester": attester, "slot": slot}
        rows = self._exec(CLAIM_PUBLISH, **key, node_id=node_id, deadline_s=deadline_s)
        if not rows:
            current = self.publish_record(rollup, attester, slot)
            if current is not None:
                return PublishDone(current) if current.mined else PublishTheirs(current)
            # pruned in between: the insert cannot conflict now
            rows = self._exec(CLAIM_PUBLISH, **key, node_id=node_id, deadline_s=deadline_s)
        return PublishYours(_publish(rows[0]).attempt)

    def record_publish(
        self,
        rollup: str,
        attester: str,
        slot: int,
        node_id: str,
        attempt: int,
        tx_hash: str,
        deadline_s: float,
    ) -> bool:
        """Note our submitted tx; its deadline restarts from now. False if a peer took over meanwhile."""
        return bool(
            self._exec(
                RECORD_PUBLISH,
                rollup=rollup,
                attester=attester,
                slot=slot,
                node_id=node_id,
                attempt=attempt,
                tx_hash=tx_hash,
                deadline_s=deadline_s,
            )
        )

    def mark_mined(self, rollup: str, attester: str, slot: int) -> None:
        """The slot's transaction is mined: nobody publishes it again."""
        self._exec(MARK_MINED, rollup=rollup, attester=attester, slot=slot)

    def publish_record(self, rollup: str, attester: str, slot: int) -> PublishRecord | None:
        """The slot's publish record, if any."""
        rows = self._exec(PUBLISH_RECORD, rollup=rollup, attester=attester, slot=slot)
        return _publish(rows[0]) if rows else None

    # -- halts ----------------------------------------------------------------------------------------------
    def halt(
        self,
        rollup: str,
        attester: str,
        slot: int,
        duty_type: str,
        reason: str,
        evidence: str,
        node_id: str,
    ) -> bool:
        """Halt the attester fleet-wide; False if it is halted already (the first halt's evidence stays)."""
        rows = self._exec(
            HALT,
            rollup=rollup,
            attester=attester,
            slot=slot,
            duty_type=duty_type,
            reason=reason,
            evidence=evidence,
            node_id=node_id,
        )
        return bool(rows)

    def active_halts(self, rollup: str, attesters: Sequence[str]) -> list[Halt]:
        """The active halts of these attesters (all of the rollup's when `attesters` is empty)."""
        wanted = {a.lower() for a in attesters}
        halts = [_halt(r) for r in self._exec(ACTIVE_HALTS, rollup=rollup)]
        return [h for h in halts if not wanted or h.attester in wanted]

    def halts(self, rollup: str | None = None) -> list[Halt]:
        """Every halt, active and resumed, oldest first."""
        return [_halt(r) for r in self._exec(ALL_HALTS, rollup=rollup)]

    def resume(self, rollup: str | None, attester: str, by: str, reason: str) -> int:
        """Lift the attester's active halt(s), recording who and why; returns how many were lifted."""
        return len(self._exec(RESUME, rollup=rollup, attester=attester, by=by, reason=reason))

    # -- node liveness ---------------------------------------------------------------------------------------
    def register_node(self, node_id: str, instance: str, host: str, pid: int, stale_s: float) -> bool:
        """Take the node id unless another instance heartbeated within `stale_s`."""
        rows = self._exec(
            REGISTER_NODE, node_id=node_id, instance=instance, host=host, pid=pid, stale_s=stale_s
        )
        return bool(rows)

    def heartbeat_node(self, node_id: str, instance: str) -> bool:
        """Refresh our heartbeat; False if another instance took the id."""
        return bool(self._exec(HEARTBEAT_NODE, node_id=node_id, instance=instance))

    def unregister_node(self, node_id: str, instance: str) -> None:
        """Release the node id (clean shutdown)."""
        with self._transaction() as execute:
            execute(self._native(UNREGISTER_NODE), {"node_id": node_id, "instance": instance}, fetch=False)

    # -- maintenance -----------------------------------------------------------------------------------------
    def prune(self, below_or_at: int, rollup: str | None = None) -> PruneReport:
        """Delete duties and publish records at or below a slot, keeping each scope's watermark."""
        params = {"slot": below_or_at, "rollup": rollup}
        with self._transaction() as execute:
            self._lock_for_prune(execute)
            execute(self._native(PRUNE_WATERMARKS), params, fetch=False)
            duties = execute(self._native(PRUNE_DUTIES + " RETURNING slot"), params)
            publishes = execute(self._native(PRUNE_PUBLISHES + " RETURNING slot"), params)
            marks = execute(self._native(EXPORT_WATERMARKS), {"rollup": rollup})
        return PruneReport(
            duties_deleted=len(duties),
            publishes_deleted=len(publishes),
            watermarks=[(r[0], r[1], r[2], int(r[3])) for r in marks],
        )

    def _lock_for_prune(self, execute: Execute) -> None:
        """Keep claims out while the watermark moves (SQLite's BEGIN IMMEDIATE already does)."""

    def export_rows(self, rollup: str | None = None) -> tuple[list[DutyRecord], list[WatermarkRecord]]:
        """All duties and watermarks (optionally of one rollup)."""
        with self._transaction() as execute:
            duties = execute(self._native(EXPORT_DUTIES), {"rollup": rollup})
            marks = execute(self._native(EXPORT_WATERMARKS), {"rollup": rollup})
        out = [
            DutyRecord(
                rollup=r[0],
                attester=r[1],
                slot=int(r[2]),
                duty_type=r[3],
                digest=bytes(r[4]),
                payload=bytes(r[5]),
                status=r[6],
                node_id=r[7],
                signature=None if r[8] is None else bytes(r[8]),
                signed_at=None if r[9] is None else float(r[9]),
            )
            for r in duties
        ]
        return out, [
            WatermarkRecord(rollup=r[0], attester=r[1], duty_type=r[2], slot=int(r[3])) for r in marks
        ]

    def import_rows(
        self, duties: list[DutyRecord], watermarks: list[WatermarkRecord]
    ) -> tuple[int, list[DutyRecord]]:
        """Merge history in one transaction: new duties inserted, watermarks raised (max); returns
        (inserted, conflicts) where a conflict is a duty the store holds with a different digest."""
        inserted = 0
        conflicts: list[DutyRecord] = []
        marks: dict[tuple[str, str, str], int] = {}
        with self._transaction() as execute:
            self._lock_for_prune(execute)
            for d in duties:
                params: Mapping[str, Any] = {**d, "token": "imported"}
                if execute(self._native(IMPORT_DUTY), params):
                    inserted += 1
                else:
                    existing = execute(self._native(DUTY_DIGEST), params)
                    if existing and bytes(existing[0][0]) != d["digest"]:
                        conflicts.append(d)
                scope = (d["rollup"], d["attester"], d["duty_type"])
                marks[scope] = max(marks.get(scope, -1), d["slot"])
            for w in watermarks:
                scope = (w["rollup"], w["attester"], w["duty_type"])
                marks[scope] = max(marks.get(scope, -1), w["slot"])
            for (rollup, attester, duty_type), slot in marks.items():
                execute(
                    self._native(MERGE_WATERMARK),
                    {"rollup": rollup, "attester": attester, "duty_type": duty_type, "slot": slot},
                    fetch=False,
                )
        return inserted, conflicts

    def status(self) -> StoreStatus:
        """Counts and node heartbeats for `ha-db status`."""
        with self._transaction() as execute:
            counts = execute(
                "SELECT (SELECT COUNT(*) FROM duties), "
                "(SELECT COUNT(*) FROM duties WHERE status = 'signing'), "
                "(SELECT COUNT(*) FROM watermarks), (SELECT COUNT(*) FROM publishes)",
                {},
            )[0]
            nodes = execute(
                self._native("SELECT node_id, host, {now} - heartbeat_at FROM nodes ORDER BY node_id"), {}
            )
            halts = execute(f"SELECT {_HALT_COLS} FROM halts WHERE resumed_at IS NULL ORDER BY id", {})
        return StoreStatus(
            url=redact_dsn(self.url),
            schema_version=self.schema_version(),
            duties=int(counts[0]),
            signing=int(counts[1]),
            watermarks=int(counts[2]),
            publishes=int(counts[3]),
            nodes=[(n[0], n[1], float(n[2])) for n in nodes],
            halts=[_halt(h) for h in halts],
        )

    # -- schema ----------------------------------------------------------------------------------------------
    schema_table_exists = ""  # the dialect's query: one row, true when `ha_schema` exists

    def _lock_for_migration(self, execute: Execute) -> None:
        """Serialize concurrent `migrate` calls (nodes starting together); BEGIN IMMEDIATE does on SQLite."""

    def _version_in(self, execute: Execute) -> int:
        rows = execute(self.schema_table_exists, {})
        if not rows or not rows[0][0]:
            return 0
        return int(execute("SELECT MAX(version) FROM ha_schema", {})[0][0] or 0)

    def schema_version(self) -> int:
        """The highest applied migration (0 when the store was never migrated)."""
        with self._transaction() as execute:
            return self._version_in(execute)

    def migrate(self) -> list[int]:
        """Apply pending migrations in order, all in one locked transaction; returns the versions applied."""
        applied: list[int] = []
        with self._transaction() as execute:
            self._lock_for_migration(execute)
            current = self._version_in(execute)  # read under the lock: a concurrent migrate may have run
            if current > SCHEMA_VERSION:
                raise self._newer(current)
            for version, sql in _migrations(self.dialect):
                if version <= current:
                    continue
                for statement in _statements(sql):
                    execute(statement, {}, fetch=False)
                execute(
                    self._native("INSERT INTO ha_schema (version, applied_at) VALUES (%(v)s, {now})"),
                    {"v": version},
                    fetch=False,
                )
                applied.append(version)
        return applied

    def check_schema(self) -> None:
        """Refuse a store whose schema is not exactly this build's, saying which command fixes it."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise self._newer(current)
        if current < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"duty store {redact_dsn(self.url)} has schema version {current}, this build needs "
                f"{SCHEMA_VERSION}: run `ha-sequencer ha-db migrate --db {redact_dsn(self.url)}`"
            )

    def _newer(self, current: int) -> SchemaMismatch:
        return SchemaMismatch(
            f"duty store {redact_dsn(self.url)} has schema version {current}, newer than this build's "
            f"{SCHEMA_VERSION}: upgrade ha-sequencer (never downgrade a duty store)"
        )

    # -- health ----------------------------------------------------------------------------------------------
    def ping(self) -> None:
        """One cheap round trip; raises `StoreUnreachable` on failure."""
        raise NotImplementedError

    @property
    def healthy(self) -> bool:
        """False within 2 s of the store becoming unreachable, true again once it answers."""
        return self._probe.healthy

    def close(self) -> None:
        """Stop the probe and release connections."""
        self._probe.stop()


def _migrations(dialect: str) -> list[tuple[int, str]]:
    """The packaged migrations of a dialect, ordered by version (file names `NNNN_name.<dialect>.sql`)."""
    found: list[tuple[int, str]] = []
    for entry in resources.files("ha_sequencer.ha").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(f".{dialect}.sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside our DDL)."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]

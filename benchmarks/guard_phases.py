"""Where a guarded duty's time goes on PostgreSQL, phase by phase (a benchmark: figures, no assertions).

    .venv/bin/python benchmarks/guard_phases.py [--samples 1000]

One process, one duty at a time, on a temporary database of HA_TEST_DATABASE_URL (default 127.0.0.1:5432):
- the claim statement and the record statement on a bare connection, with `synchronous_commit` off and on (the
  difference is the commit's WAL flush), and `SELECT 1` (the round trip alone); EXPLAIN ANALYZE of the claim;
- the same through the store (its pools, its Python);
- a batch of K claims (`claim_many`'s rows) sent as one pipeline and one statement at a time.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from eth_utils.crypto import keccak

from ha_sequencer.bench.guard import temporary_store
from ha_sequencer.bench.stats import percentile
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.postgres_store import PostgresDutyStore
from ha_sequencer.ha.sqlbase import CLAIM_OR_FETCH, RECORD, SqlDutyStore
from ha_sequencer.ha.store import DutyKey

ROLLUP, ATTESTER = "0x" + "42" * 20, "0x" + "11" * 20
WARMUP = 50


def show(name: str, seconds: Sequence[float]) -> None:
    ms = [x * 1000 for x in seconds]
    print(f"{name:46s} p50 {percentile(ms, 0.5):.3f}  p99 {percentile(ms, 0.99):.3f}  max {max(ms):.3f} ms")


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


class Duties:
    """Fresh claim parameters, one slot after the other."""

    def __init__(self, start: int) -> None:
        self.slot = start

    def next(self) -> dict[str, Any]:
        self.slot += 1
        return {
            "rollup": ROLLUP,
            "attester": ATTESTER,
            "slot": self.slot,
            "duty_type": "attestation",
            "digest": keccak(b"%d" % self.slot),
            "payload": b"p",
            "node_id": "bench",
            "token": uuid.uuid4().hex,
            "lease_s": 1.0,
        }


def bare_connection(url: str, n: int, store: PostgresDutyStore) -> None:
    for commit in ("off", "on"):
        conn = psycopg.connect(
            url, autocommit=True, prepare_threshold=1, options=f"-c synchronous_commit={commit}"
        )
        on_connection(conn, commit, n, store)
        conn.close()


def on_connection(conn: psycopg.Connection[Any], commit: str, n: int, store: PostgresDutyStore) -> None:
    claim, record = store._native(CLAIM_OR_FETCH), store._native(RECORD)  # noqa: SLF001 - the store's own text
    duties = Duties(0 if commit == "off" else 10**5)
    for _ in range(WARMUP):
        conn.execute(claim, duties.next()).fetchall()
    show(
        f"claim statement, bare, synchronous_commit={commit}",
        timed(lambda: conn.execute(claim, duties.next()).fetchall(), n),
    )

    def claim_then_record() -> float:
        p = duties.next()
        conn.execute(claim, p).fetchall()
        r: Mapping[str, Any] = {k: p[k] for k in ("rollup", "attester", "slot", "duty_type", "token")}
        t = time.perf_counter()
        conn.execute(record, {**r, "signature": b"s" * 65}).fetchall()
        return time.perf_counter() - t

    show(f"record statement, bare, synchronous_commit={commit}", [claim_then_record() for _ in range(n)])
    show("SELECT 1, bare", timed(lambda: conn.execute("SELECT 1").fetchall(), n))
    plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + claim, duties.next()).fetchall()[0][0][0]
    planning, execution = plan["Planning Time"], plan["Execution Time"]
    print(f"  EXPLAIN ANALYZE claim: planning {planning:.3f} ms, execution {execution:.3f} ms")


def through_store(store: PostgresDutyStore, n: int) -> None:
    for i in range(WARMUP):
        store.claim(
            DutyKey(ROLLUP, ATTESTER, 10**6 + i, "attestation"),
            b"w" * 32,
            b"",
            "bench",
            uuid.uuid4().hex,
            1.0,
        )
    claims, records = [], []
    for i in range(n):
        key, token = DutyKey(ROLLUP, ATTESTER, 2 * 10**6 + i, "attestation"), uuid.uuid4().hex
        t = time.perf_counter()
        store.claim(key, keccak(b"%d" % i), b"", "bench", token, 1.0)
        claims.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.record(key, token, b"s" * 65)
        records.append(time.perf_counter() - t)
    show("store.claim (pool, synchronous_commit=off)", claims)
    show("store.record (pool, durable)", records)


def batches(store: PostgresDutyStore, n: int) -> None:
    ways: dict[str, Callable[[Sequence[Mapping[str, Any]]], Any]] = {
        "one pipeline": store._claim_rows,  # noqa: SLF001 - the two ways a batch can travel
        "one by one": lambda ps: SqlDutyStore._claim_rows(store, ps),  # noqa: SLF001
    }
    for k in (1, 10, 50):
        for i, (name, run) in enumerate(ways.items()):
            duties = Duties(10**7 * k + i * 5 * 10**6)
            samples = [batch(run, duties, k) for _ in range(max(1, n // 10))]
            show(f"claim batch K={k}, {name}", samples)


def batch(run: Callable[[Sequence[Mapping[str, Any]]], Any], duties: Duties, k: int) -> float:
    params = [duties.next() for _ in range(k)]
    t = time.perf_counter()
    run(params)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    n = parser.parse_args().samples
    print(f"load average at start: {os.getloadavg()}")
    with temporary_store("postgres") as url:
        store = open_store(url)
        assert isinstance(store, PostgresDutyStore)
        bare_connection(url, n, store)
        through_store(store, n)
        batches(store, n)
        store.close()
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

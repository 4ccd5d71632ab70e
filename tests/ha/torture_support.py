"""Shared by the guard torture's race tests: a race of real racer processes running while the test breaks the
store under it, and the audit of what the racers released against rows read straight from the store."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ha_sequencer.bench.guard import RaceResult, run_race, signer_of

WAIT_S = 120  # the test's own bound on the race's progress (a hung race fails, it does not hang CI)

Duty = tuple[int, str]
ROWS_SQL = "SELECT slot, duty_type, status, digest, signature, node_id FROM duties"


class BackgroundRace:
    """`run_race(db, **kwargs)` on a thread; `result()` joins it (re-raising what the race raised)."""

    def __init__(self, db: str, **kwargs: Any) -> None:
        self._out: dict[str, Any] = {}

        def run() -> None:
            try:
                self._out["result"] = run_race(db, **kwargs)
            except BaseException as exc:  # handed to the test thread by result()
                self._out["error"] = exc

        self._thread = threading.Thread(target=run, name="race", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """The race has not finished."""
        return self._thread.is_alive()

    def result(self, timeout_s: float = 600) -> RaceResult:
        """The race's traces once every racer has exited."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "race did not finish"
        if "error" in self._out:
            raise self._out["error"]
        return self._out["result"]


def sqlite_rows(path: Path) -> dict[Duty, tuple[Any, ...]]:
    """Every duty row of a SQLite store file: (slot, type) → (status, digest, signature, node_id)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(ROWS_SQL).fetchall()
    finally:
        conn.close()
    return as_rows(rows)


def as_rows(rows: Any) -> dict[Duty, tuple[Any, ...]]:
    """`ROWS_SQL`'s rows by duty."""
    return {(r[0], r[1]): (r[2], bytes(r[3]), None if r[4] is None else bytes(r[4]), r[5]) for r in rows}


def pg_rows(url: str) -> dict[Duty, tuple[Any, ...]]:
    """Every duty row of a PostgreSQL store, as `sqlite_rows`."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(ROWS_SQL).fetchall()
    return as_rows(rows)


def wait_until(condition: Callable[[], bool], what: str, race: BackgroundRace | None = None) -> None:
    """Poll `condition` until true (the race still running, when given)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert race is None or race.running, f"the race ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def released(result: RaceResult) -> dict[Duty, set[tuple[bytes, bytes]]]:
    """Per duty, the (digest, signature) pairs racers released."""
    out: dict[Duty, set[tuple[bytes, bytes]]] = {}
    for lines in result.traces.values():
        for t in lines:
            if t["signature"]:
                pair = (bytes.fromhex(t["digest"]), bytes.fromhex(t["signature"]))
                out.setdefault((t["slot"], t["duty_type"]), set()).add(pair)
    return out


def equivocations(result: RaceResult) -> list[Duty]:
    """Duties with two different released digests, or a released signature over another digest than the one
    its racer names (what was signed is read from the signature itself)."""
    attester = result.attester.lower()
    return sorted(
        d
        for d, pairs in released(result).items()
        if len({dg for dg, _ in pairs}) > 1 or any(signer_of(dg, sig) != attester for dg, sig in pairs)
    )


def released_not_recorded(result: RaceResult, rows: dict[Duty, tuple[Any, ...]]) -> list[Duty]:
    """Duties with a released signature that is not the store's recorded one."""
    return sorted(
        duty
        for duty, pairs in released(result).items()
        for digest, signature in pairs
        if duty not in rows or rows[duty][0] != "signed" or rows[duty][1:3] != (digest, signature)
    )


def outcome_counts(result: RaceResult) -> dict[str, int]:
    """How many duties of all racers ended with each outcome."""
    counts: dict[str, int] = {}
    for lines in result.traces.values():
        for t in lines:
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return counts

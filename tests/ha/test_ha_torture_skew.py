"""Racers with a real clock skew: two of three racer processes run under libfaketime (LD_PRELOAD, FAKETIME)
half a lease ahead and half a lease behind, not a patched `time.time`. On SQLite the leases are read on each
process's own clock, so a racer ahead takes a live peer's stalled claim for dead and adopts it, and a racer
behind hands out leases its peers see expire early; on PostgreSQL leases are on the server's clock and the
skew must change nothing. Either way: one digest per duty, every released signature the store's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from torture_support import (
    BackgroundRace,
    equivocations,
    outcome_counts,
    pg_rows,
    released,
    released_not_recorded,
    sqlite_rows,
)

from ha_sequencer.bench.guard import SEED_ENV
from ha_sequencer.chaos.faults import faketime_library, skew_env
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.faults import FAULT_ENV
from ha_sequencer.ha.sqlite_store import sqlite_path

pytestmark = pytest.mark.slow

DUTIES = 1500
LEASE_S = 0.2
SKEWS = {"node-1": LEASE_S / 2, "node-2": -LEASE_S / 2}  # node-0 keeps the real clock
# Some claims stall between claim and record for longer than a lease minus the skew but less than a lease: on
# SQLite the racer ahead adopts them while their claimant is alive (its record then fails: LostClaim).
STALLS = f"after_claim:delay:{LEASE_S * 0.75}%0.03"


@pytest.fixture(scope="module")
def libfaketime() -> str:
    """The path of libfaketime.so.1 (the project's script installs Debian's faketime when absent)."""
    return faketime_library()


def test_faketime_skews_a_process_clock(libfaketime):
    for offset in SKEWS.values():
        before = time.time()
        out = subprocess.run(
            [sys.executable, "-c", "import time; print(time.time())"],
            env={**os.environ, **skew_env(libfaketime, offset)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = time.time()
        assert before + offset <= float(out) <= after + offset


def test_skewed_racers_never_release_a_second_digest(store_url, libfaketime):
    open_store(store_url, migrate=True).close()
    race = BackgroundRace(
        store_url,
        nodes=3,
        duties=DUTIES,
        p_same=0.5,
        lease_s=LEASE_S,
        env={FAULT_ENV: STALLS},
        per_node_env={n: skew_env(libfaketime, s) for n, s in SKEWS.items()},
    )
    result = race.result()
    rows = sqlite_rows(sqlite_path(store_url)) if store_url.startswith("sqlite") else pg_rows(store_url)
    counts = outcome_counts(result)
    print(f"seed {result.seed} ({SEED_ENV}): outcomes {counts}")
    assert set(result.returncodes.values()) == {0}
    assert equivocations(result) == []
    assert released_not_recorded(result, rows) == []
    assert len(released(result)) == DUTIES
    if store_url.startswith("sqlite"):
        # The lease path ran: stalled claims were adopted (by a peer ahead, or of a claimant behind).
        assert counts.get("adopted", 0) > 0

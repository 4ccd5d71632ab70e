"""PostgreSQL with fsync on crashes (`pg_ctl stop -m immediate`) under racing processes and restarts (crash
recovery): every signature released before the crash is recorded after recovery, and at the end no duty has a
second digest and every released signature is the store's."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from torture_support import (
    BackgroundRace,
    equivocations,
    outcome_counts,
    pg_rows,
    released,
    released_not_recorded,
    wait_until,
)

from ha_sequencer.bench.torture import crash_and_restart, durable_private_pg
from ha_sequencer.ha.backends import open_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DUTIES = 1500
CRASH_AT = 400  # rows in the store


def _racers() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "ha_sequencer.bench.guard" in " ".join(p.cmdline())
    ]


def _released_so_far(racers: list[psutil.Process]) -> dict[tuple[int, str], set[tuple[bytes, bytes]]]:
    """What the (stopped) racers have released until now, from their trace files."""
    out: dict[tuple[int, str], set[tuple[bytes, bytes]]] = {}
    for racer in racers:
        cmd = racer.cmdline()
        trace = Path(cmd[cmd.index("--workdir") + 1]) / f"trace.{cmd[cmd.index('--node-id') + 1]}.jsonl"
        for line in trace.read_text().splitlines():
            try:
                t = json.loads(line)
            except ValueError:
                continue  # a racer stopped in the middle of writing its line: not released yet
            if t.get("signature"):
                pair = (bytes.fromhex(t["digest"]), bytes.fromhex(t["signature"]))
                out.setdefault((t["slot"], t["duty_type"]), set()).add(pair)
    return out


def test_crash_of_a_durable_postgres_mid_race_loses_no_released_signature():
    with durable_private_pg() as pg:
        url = pg.create_database("torture")
        open_store(url, migrate=True).close()
        race = BackgroundRace(url, nodes=3, duties=DUTIES, p_same=0.5, lease_s=0.2)
        wait_until(lambda: len(pg_rows(url)) >= CRASH_AT, f"{CRASH_AT} rows", race)
        racers = _racers()
        assert len(racers) == 3
        # The racers freeze (their transactions in flight stay in flight) while the server crashes and
        # recovers, so the rows read after recovery can be held against everything released before the crash.
        for r in racers:
            os.kill(r.pid, signal.SIGSTOP)
        try:
            crash_and_restart(pg)
            before_crash = _released_so_far(racers)
            recovered = pg_rows(url)
        finally:
            for r in racers:
                os.kill(r.pid, signal.SIGCONT)
        result = race.result()
        rows = pg_rows(url)

    counts = outcome_counts(result)
    print(f"seed {result.seed}: {len(before_crash)} duties released before the crash; outcomes {counts}")
    assert set(result.returncodes.values()) == {0}
    lost = sorted(
        duty
        for duty, pairs in before_crash.items()
        for digest, signature in pairs
        if recovered.get(duty, (None,))[0] != "signed" or recovered[duty][1:3] != (digest, signature)
    )
    assert lost == []
    assert equivocations(result) == []
    assert released_not_recorded(result, rows) == []
    # The crash was felt (connections died under the racers) and the race finished on the recovered server.
    assert sum(t["unavailable"] for lines in result.traces.values() for t in lines) > 0
    assert len(released(result)) == DUTIES

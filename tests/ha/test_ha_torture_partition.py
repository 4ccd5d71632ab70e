"""A silent partition between racing processes and PostgreSQL (a proxy that holds every byte, connections kept
open, no reset): the guards give up at their duties' deadlines and release nothing while it lasts; after it
heals, no duty has a second digest and every released signature is the store's recorded one."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

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

from ha_sequencer.ha.backends import open_store
from ha_sequencer.localnet.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DUTIES = 1500
PARTITION_AT = 300  # rows in the store at the first partition, then every as many more rows
PARTITIONS = 3  # each catches the racers at other points of their duties (in a claim, a record, a wait)
PARTITION_S = 4.0  # longer than the deadline, the lease and the TCP user timeout
DEADLINE_S = 1.0  # each duty's own deadline (a node's: the slot's)
# A signature whose record was acknowledged just before the pause (or its deadline) leaves the guard, and its
# racer notes the time, a moment later; no acknowledgement crosses the proxy while paused, so nothing is
# released later than this into the partition (or past a deadline).
ACK_IN_FLIGHT_S = 0.5


def test_silent_partition_releases_nothing_and_no_second_digest_after(pg_url):
    open_store(pg_url, migrate=True).close()
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = pg_url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}")
    try:
        race = BackgroundRace(proxied, nodes=3, duties=DUTIES, p_same=0.5, lease_s=0.2, deadline_s=DEADLINE_S)
        partitions: list[tuple[float, float]] = []  # (paused at, healed at)
        for n in range(PARTITIONS):
            at = PARTITION_AT * (n + 1)
            wait_until(lambda at=at: len(pg_rows(pg_url)) >= at, f"{at} rows", race)
            paused_at = time.time()
            proxy.pause()
            time.sleep(1.0)
            rows_in_partition = pg_rows(pg_url)
            time.sleep(PARTITION_S - 1.0)
            assert pg_rows(pg_url) == rows_in_partition  # the partition was real: nothing reached the store
            partitions.append((paused_at, time.time()))
            proxy.resume()
        result = race.result()
    finally:
        proxy.close()

    counts = outcome_counts(result)
    print(f"seed {result.seed}: outcomes {counts}")
    assert set(result.returncodes.values()) == {0}
    # The guards gave up at their deadlines and released nothing inside the partition.
    assert counts.get("deadline_passed", 0) > 0
    inside = [
        t
        for lines in result.traces.values()
        for t in lines
        for paused_at, healed_at in partitions
        if t["signature"] and paused_at + ACK_IN_FLIGHT_S <= t["at"] < healed_at
    ]
    assert inside == []
    late = [
        t
        for lines in result.traces.values()
        for t in lines
        if t["signature"] and t["at"] > t["deadline"] + ACK_IN_FLIGHT_S
    ]
    assert late == []  # a call that hung through the partition came back to release nothing
    # After it: one digest per duty, every released signature recorded, and the race went on.
    rows = pg_rows(pg_url)
    assert equivocations(result) == []
    assert released_not_recorded(result, rows) == []
    last_before = max(slot for slot, _ in rows_in_partition)
    assert any(slot > last_before for slot, _ in released(result))

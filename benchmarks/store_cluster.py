"""The duty store on a Patroni cluster (strict synchronous replication) against a single server, in one run
(a benchmark: figures, no assertions).

    .venv/bin/python benchmarks/store_cluster.py --duties 2000 --kills 3

1. Guard latency: `--duties` sequential guarded duties (claim + record; signing excluded: a fixed signature)
   on a private single PostgreSQL and on the cluster's multi-host URL; both with fsync off, so the difference
   is the synchronous standby's acknowledgement of each record. Also the claim statement alone. The same code
   measures both, warmed up, in alternating turns of 100 duties (a load spike falls on both alike).
2. Failover: `--kills` times, kill -9 the primary (Patroni and PostgreSQL) while one node signs a duty every
   50 ms (retrying while the store is unavailable); the time from the kill to the first guarded signature on
   the new primary. The killed member is restarted (it rejoins as a replica) before the next kill.
Prints medians and p99; the machine is shared, so the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import threading
import time
import uuid

from eth_utils import keccak

from ha_sequencer.bench.stats import percentile
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import DutyType, NewSignature
from ha_sequencer.ha.store import DutyKey
from ha_sequencer.localnet.postgres import PrivatePostgres
from ha_sequencer.localnet.store_cluster import StoreCluster

ATTESTER = "0x" + "11" * 20
ROLLUP = "0x" + "42" * 20
SIGNATURE = b"\x01" * 65


WARMUP = 50  # duties per URL before measuring: connections opened, statements prepared
BLOCK = 100  # duties per turn: the two stores take turns, so a load spike falls on both alike


class Latency:
    """One store's guard and claim timings, measured in turns with the other store."""

    def __init__(self, url: str) -> None:
        self.store = open_store(url, migrate=True)
        self.guard = DutyGuard(self.store, node_id=f"bench-{uuid.uuid4().hex[:6]}", rollup=ROLLUP)
        self.slot = int(time.time() * 1000)
        self.full: list[float] = []
        self.claims: list[float] = []
        self.turn(WARMUP, keep=False)

    def turn(self, duties: int, *, keep: bool = True) -> None:
        """`duties` guarded duties (claim + record, a fixed signature), each followed by a claim alone."""
        full: list[float] = []
        claims: list[float] = []
        for _ in range(duties):
            self.slot += 1
            digest = keccak(b"%d" % self.slot)
            t = time.perf_counter()
            out = self.guard.sign_duty(
                ATTESTER, self.slot, DutyType.ATTESTATION, digest, b"", lambda d: SIGNATURE
            )
            full.append(time.perf_counter() - t)
            assert isinstance(out, NewSignature), out
            key = DutyKey(ROLLUP, ATTESTER, self.slot, "block_proposal")
            t = time.perf_counter()
            self.store.claim(key, digest, b"", "bench", uuid.uuid4().hex, 1.0)
            claims.append(time.perf_counter() - t)
        if keep:
            self.full += full
            self.claims += claims

    def close(self) -> None:
        self.store.close()


def guard_latency(single_url: str, cluster_url: str, duties: int) -> tuple[Latency, Latency]:
    """Both stores measured by the same code in alternating turns of `BLOCK` duties."""
    single, cluster = Latency(single_url), Latency(cluster_url)
    for _ in range(max(1, duties // BLOCK)):
        single.turn(BLOCK)
        cluster.turn(BLOCK)
    single.close()
    cluster.close()
    return single, cluster


def failover_once(cluster: StoreCluster) -> float:
    """Kill the primary while a node signs continuously; seconds from the kill to its first new signature."""
    store = open_store(cluster.url)
    guard = DutyGuard(store, node_id=f"fo-{uuid.uuid4().hex[:6]}", rollup=ROLLUP)
    signed_at: list[tuple[float, float]] = []  # (duty started, signature released)
    stop = threading.Event()

    def work() -> None:
        slot = int(time.time() * 1000)
        while not stop.is_set():
            slot += 1
            started = time.monotonic()
            digest = keccak(b"%d" % slot)
            out = guard.sign_duty(ATTESTER, slot, DutyType.ATTESTATION, digest, b"", lambda d: SIGNATURE)
            if isinstance(out, NewSignature):
                signed_at.append((started, time.monotonic()))
            time.sleep(0.05)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while not signed_at:
        time.sleep(0.05)
    old = cluster.leader()
    assert old is not None
    killed = time.monotonic()
    cluster.kill_member(old)
    dead = time.monotonic()  # a duty in flight at the kill may still finish on the old primary: not counted

    def after() -> list[float]:
        return [done for started, done in signed_at if started > dead]

    while not after():
        time.sleep(0.05)
    first = min(after()) - killed
    stop.set()
    worker.join(timeout=30)
    store.close()
    cluster.start_member(old)
    cluster.wait_healthy()
    return first


def fmt(values: list[float]) -> str:
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"p50 {p50 * 1000:.3f} ms, p99 {(p99 or 0) * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duties", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)  # reconnect noise during the failovers
    print(f"load average at start: {os.getloadavg()}")
    with PrivatePostgres() as single, StoreCluster() as cluster:
        single_url = single.create_database("ha_duties")
        s, c = guard_latency(single_url, cluster.url, args.duties)
        s_full, s_claim, c_full, c_claim = s.full, s.claims, c.full, c.claims
        print(f"single server : guarded duty {fmt(s_full)}; claim alone {fmt(s_claim)}")
        print(f"sync cluster  : guarded duty {fmt(c_full)}; claim alone {fmt(c_claim)}")
        for name, a, b in (("guarded duty", c_full, s_full), ("claim alone", c_claim, s_claim)):
            p99a, p99b = percentile(a, 0.99) or 0, percentile(b, 0.99) or 1
            print(
                f"ratio cluster/single, {name}: p50 {statistics.median(a) / statistics.median(b):.2f}, "
                f"p99 {p99a / p99b:.2f}"
            )
        times = [failover_once(cluster) for _ in range(args.kills)]
        if not times:
            return
        p50 = statistics.median(times)
        each = ", ".join(f"{t:.1f}" for t in times)
        print(f"failover kill -> first guarded signature: {each} s; p50 {p50:.1f} s")
        print(
            f"missed duties per kill, bound ceil(failover / slot): 4 s slots {math.ceil(p50 / 4)}, "
            f"72 s slots 0 (a proposal waits up to 0.85 x 72 = {0.85 * 72:.0f} s for its store)"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

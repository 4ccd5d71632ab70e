"""How soon /status calls the duty store unhealthy: after a hang (the TCP path to PostgreSQL frozen, no
reset) and after a refused connection (a benchmark: figures, no assertions; targets ≤ 1 s and ≤ 0.5 s).

    PYTHONPATH=src:tests/ha .venv/bin/python benchmarks/health_timing.py --runs 10

Each run opens a fresh PostgreSQL store through a TCP proxy, lets the node's `StoreHealthWatch` see it
healthy, then pauses (or refuses) the proxy and times until the health state turns unhealthy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid

import psycopg
from store_health_timing import seconds_to_unhealthy

ADMIN_URL = os.environ.get("HA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    name = f"ha_bench_health_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        for label, fault, target in (("hang", "pause", 1.0), ("refused", "refuse", 0.5)):
            times = [seconds_to_unhealthy(url, lambda p, f=fault: getattr(p, f)()) for _ in range(args.runs)]
            print(
                f"{label:8} unhealthy after: median {statistics.median(times):.3f} s, "
                f"max {max(times):.3f} s, "
                f"{sum(t > target for t in times)}/{len(times)} over the {target:g} s target "
                f"(load average {os.getloadavg()[0]:.1f})"
            )
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()

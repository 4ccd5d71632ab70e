"""What `devnet up --prometheus` costs: start-up time with and without it, and Prometheus's scrape duration
per node (a benchmark: figures, no assertions).

    .venv/bin/python benchmarks/devnet_prometheus.py --runs 3 --settle 60

Each run is `ha-sequencer devnet up --detach --no-watcher` (then `devnet down`), alternating without and with
`--prometheus`, timed from the command's start to its return (every node's /status 200). With Prometheus,
after `--settle` seconds of running it reads `scrape_duration_seconds` of every node over that window from
Prometheus's own API (median and p99 per node). Prints medians; the machine is shared, so load average is
printed alongside.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ha_sequencer.devnet.prometheus import PrometheusApi
from ha_sequencer.devnet.state import load_state


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def one_run(prometheus: bool, settle: float) -> tuple[float, dict[str, tuple[float, float]]]:
    directory = Path(tempfile.mkdtemp(prefix="hasq-bench-prom-"))
    flags = ["--prometheus"] if prometheus else []
    try:
        started = time.monotonic()
        up = cli("devnet", "up", "--detach", "--no-watcher", "--dir", directory, *flags)
        elapsed = time.monotonic() - started
        if up.returncode != 0:
            raise SystemExit(f"devnet up failed:\n{up.stdout}\n{up.stderr}")
        scrapes: dict[str, tuple[float, float]] = {}
        if prometheus:
            time.sleep(settle)
            url = load_state(directory).prometheus_url
            assert url is not None
            api = PrometheusApi(url)
            window = f"[{int(settle)}s]"
            for quantile, column in ((0.5, 0), (0.99, 1)):
                expr = (
                    f'quantile_over_time({quantile}, scrape_duration_seconds{{job="ha-sequencer"}}{window})'
                )
                for row in api.query(expr):
                    name = row["metric"]["instance"]
                    pair = list(scrapes.get(name, (0.0, 0.0)))
                    pair[column] = float(row["value"][1])
                    scrapes[name] = (pair[0], pair[1])
        return elapsed, scrapes
    finally:
        cli("devnet", "down", "--dir", directory)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds of scraping to measure")
    args = parser.parse_args()
    plain: list[float] = []
    with_prometheus: list[float] = []
    scrapes: dict[str, list[tuple[float, float]]] = {}
    for run in range(args.runs):
        for prometheus in (False, True):
            elapsed, per_node = one_run(prometheus, args.settle)
            (with_prometheus if prometheus else plain).append(elapsed)
            for name, pair in per_node.items():
                scrapes.setdefault(name, []).append(pair)
            print(
                f"run {run + 1} {'with' if prometheus else 'without'} Prometheus: up in {elapsed:.1f} s "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    print(
        f"devnet up --detach, median of {args.runs}: without {statistics.median(plain):.1f} s, "
        f"with --prometheus {statistics.median(with_prometheus):.1f} s "
        f"(ratio {statistics.median(with_prometheus) / statistics.median(plain):.2f})"
    )
    print("scrape duration per node (median over runs of the per-run median / p99):")
    for name in sorted(scrapes):
        p50 = statistics.median(p for p, _ in scrapes[name]) * 1000
        p99 = statistics.median(p for _, p in scrapes[name]) * 1000
        print(f"  {name:<4} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


if __name__ == "__main__":
    main()

"""`devnet up --prometheus` end to end: a real Prometheus scrapes the nodes with deploy/prometheus/alerts.yml.

Through the CLI as an operator would: drain a publisher below 0.15 and then 0.1 ETH and read the balance
alerts through Prometheus's HTTP API (the critical one active within two evaluation intervals of the first low
sample, by Prometheus's own timestamps), refill it and see them resolve; stop a node and see `HASeqNodeDown`
fire, start it again and see it resolve; the live view shows what fires; every Grafana panel's query runs
against this Prometheus without error and returns data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from ha_sequencer.devnet.orchestrator import spawn_node
from ha_sequencer.devnet.prometheus import EVALUATION_INTERVAL, FiringAlert, PrometheusApi
from ha_sequencer.devnet.state import DevnetState, load_state, pid_alive, stop_pid, update_node_pid
from ha_sequencer.devnet.view import Monitor, render

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "ha-sequencer.json"
EVAL_S = float(EVALUATION_INTERVAL.rstrip("s"))
WEI = 10**18
BALANCE_WAIT_S = 90.0  # the node reads balances every 12 s; loaded CI cores stretch that
DOWN_WAIT_S = 150.0  # HASeqNodeDown has `for: 1m`


def cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetState]:
    directory = Path(tempfile.mkdtemp(prefix="hasq-devnet-prom-"))
    up = cli("devnet", "up", "--detach", "--prometheus", "--dir", directory, "--no-watcher")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Prometheus http://127.0.0.1:" in up.stdout
    try:
        yield load_state(directory)
    finally:
        down = cli("devnet", "down", "--dir", directory, timeout=120)
        state_file = directory / "devnet.json"
        assert not state_file.exists(), down.stdout + down.stderr
        prom_log = directory / "prometheus" / "prometheus.log"
        if prom_log.exists():
            print(f"----- prometheus log tail -----\n{prom_log.read_text(errors='replace')[-1500:]}")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def api(devnet: DevnetState) -> PrometheusApi:
    assert devnet.prometheus_url is not None
    prometheus = PrometheusApi(devnet.prometheus_url)
    every_node_up = 'up{job="ha-sequencer"} == 1'
    wait_for(lambda: len(prometheus.query(every_node_up)) == len(devnet.nodes), 60, "every node scraped")
    return prometheus


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def firing(api: PrometheusApi, name: str, **labels: str) -> FiringAlert | None:
    for alert in api.alerts():
        if (
            alert.name == name
            and alert.state == "firing"
            and all(alert.labels.get(k) == v for k, v in labels.items())
        ):
            return alert
    return None


def set_balance(state: DevnetState, address: str, wei: int) -> None:
    reply = httpx.post(
        state.l1_rpc_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [address, hex(wei)]},
        timeout=10,
    ).json()
    assert "error" not in reply, reply


def _timestamp(rfc3339: str) -> float:
    # Prometheus gives nanoseconds; datetime takes microseconds
    head, _, tail = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(tail or '0')[:6]}+00:00").timestamp()


def test_balance_alerts_fire_within_two_evaluations_and_resolve(
    devnet: DevnetState, api: PrometheusApi
) -> None:
    node = devnet.node("ha1")
    publisher = node.publisher

    set_balance(devnet, publisher, 12 * WEI // 100)  # 0.12 ETH: below the warning level
    low = wait_for(lambda: firing(api, "HASeqPublisherBalanceLow", address=publisher), BALANCE_WAIT_S, "Low")
    assert low.labels["instance"] == "ha1" and low.severity == "warning"
    assert firing(api, "HASeqPublisherBalanceCritical", address=publisher) is None

    set_balance(devnet, publisher, 5 * WEI // 100)  # 0.05 ETH: below the minimum
    critical = wait_for(
        lambda: firing(api, "HASeqPublisherBalanceCritical", address=publisher), BALANCE_WAIT_S, "Critical"
    )
    assert "below 0.1 ETH" in critical.summary and publisher in critical.summary
    # Prometheus's own clocks: the first sample under 0.1 ETH, and when the alert became active
    samples = api.query(f'publisher_balance_eth{{address="{publisher}"}}[5m]')[0]["values"]
    first_low = min(float(t) for t, v in samples if float(v) < 0.1)
    delay = _timestamp(critical.active_at) - first_low
    assert 0 <= delay <= 2 * EVAL_S, f"active {delay:.2f} s after the first low sample"
    wait_for(lambda: firing(api, "HASeqPublisherBalanceLow", address=publisher) is None, 10, "Low gives way")

    # the live view shows it
    monitor = Monitor(load_state(Path(devnet.directory)))
    try:
        console = Console(record=True, width=220)
        console.print(render(monitor, monitor.snapshot()))
    finally:
        monitor.close()
    assert "HASeqPublisherBalanceCritical" in console.export_text()

    set_balance(devnet, publisher, 50 * WEI)
    wait_for(
        lambda: not any(a.labels.get("address") == publisher for a in api.alerts()),
        BALANCE_WAIT_S,
        "resolved",
    )


def test_a_stopped_node_fires_node_down_and_resolves_when_restarted(
    devnet: DevnetState, api: PrometheusApi
) -> None:
    directory = Path(devnet.directory)
    entry = load_state(directory).node("ha3")
    assert stop_pid(entry.pid, entry.data_dir) == "stopped"
    update_node_pid(directory, entry.name, None)
    down = wait_for(lambda: firing(api, "HASeqNodeDown", instance="ha3"), DOWN_WAIT_S, "HASeqNodeDown")
    assert down.severity == "critical" and "ha3 is down" in down.summary

    proc = spawn_node(entry, load_state(directory).ha_db_url())
    update_node_pid(directory, entry.name, proc.pid)
    wait_for(lambda: firing(api, "HASeqNodeDown", instance="ha3") is None, DOWN_WAIT_S, "NodeDown resolved")
    assert pid_alive(proc.pid)


def test_every_grafana_panel_query_returns_data(devnet: DevnetState, api: PrometheusApi) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    now = time.time()
    checked = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$instance", ".*")  # the "All" value of the node variable
            reply = httpx.get(
                f"{api.url}/api/v1/query_range",
                params={"query": expr, "start": str(now - 120), "end": str(now), "step": "5"},
                timeout=10,
            ).json()
            assert reply["status"] == "success", (panel["title"], expr, reply)
            series = reply["data"]["result"]
            assert series and any(s["values"] for s in series), f"no data: {panel['title']}: {expr}"
            checked += 1
    assert checked == sum(len(p["targets"]) for p in dashboard["panels"]) >= 15

"""The devnet's Prometheus pieces without a devnet: the generated configuration (checked by the real
promtool), alerts as the HTTP API gives them, and the headless log's fire/resolve lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ha_sequencer.devnet.prometheus import JOB, FiringAlert, rules_file, scrape_config
from ha_sequencer.devnet.state import NodeEntry
from ha_sequencer.devnet.view import alert_changes, alerts_table


def _node(name: str, port: int, ha: bool) -> NodeEntry:
    return NodeEntry(
        name, "0x" + "aa" * 20, ha, 1, port, port + 1, "peer", "/d", "/k", "/l", "0x" + "bb" * 20, []
    )


def test_the_generated_configuration_scrapes_every_node_by_name_with_the_projects_rules(
    tmp_path: Path,
) -> None:
    nodes = [_node("ha1", 9001, True), _node("v1", 9003, False)]
    config = scrape_config(nodes, rules_file())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB == "ha-sequencer"
    assert [(c["targets"], c["labels"]["instance"]) for c in job["static_configs"]] == [
        (["127.0.0.1:9001"], "ha1"),
        (["127.0.0.1:9003"], "v1"),
    ]
    assert config["rule_files"] == [str(rules_file())]
    assert rules_file().name == "alerts.yml" and rules_file().parent.name == "prometheus"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run scripts/ensure-prometheus.sh (make test does)")
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _alert(name: str, state: str = "firing", **labels: str) -> FiringAlert:
    return FiringAlert.from_api(
        {
            "labels": {"alertname": name, "severity": "critical", **labels},
            "annotations": {"summary": f"{name} summary"},
            "state": state,
            "activeAt": "2026-11-30T22:33:21.375927375Z",
        }
    )


def test_alert_changes_name_what_started_and_stopped_firing() -> None:
    a = _alert("HASeqNodeDown", instance="ha3")
    pending = _alert("HASeqNodeUnhealthy", state="pending", instance="ha1")
    firing, lines = alert_changes({}, [a, pending])
    assert lines == ["alert HASeqNodeDown FIRING (critical): HASeqNodeDown summary"]
    firing, lines = alert_changes(firing, [a])
    assert lines == []
    _, lines = alert_changes(firing, [])
    assert lines == ["alert HASeqNodeDown resolved: HASeqNodeDown summary"]


def test_the_alerts_table_lists_firing_first(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(alerts_table([_alert("B", state="pending"), _alert("A")], "http://127.0.0.1:1"))
    text = console.export_text()
    assert text.index("A ") < text.index("B ") and "pending" in text
    console = Console(record=True, width=200)
    console.print(alerts_table([], "http://127.0.0.1:1"))
    assert "none" in console.export_text()

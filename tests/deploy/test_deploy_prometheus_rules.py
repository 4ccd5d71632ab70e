"""deploy/prometheus: the rules pass `promtool check` and their unit tests; every alert is tested firing and
carries a summary and a runbook whose row exists in the operator guide; the issue's conditions are covered."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from deploy_paths import DEPLOY, GUIDE

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = [DEPLOY / "prometheus" / "alerts.test.yml", DEPLOY / "prometheus" / "alerts-slots.test.yml"]


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*map(str, argv)], capture_output=True, text=True, timeout=300, check=False)


def test_rules_and_example_config_pass_promtool_check(promtool: str) -> None:
    rules = _run(promtool, "check", "rules", RULES)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _run(promtool, "check", "config", DEPLOY / "prometheus" / "prometheus.example.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_fails_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same rules with one expectation flipped do."""
    text = RULE_TESTS[0].read_text().replace("rule_files:\n  - alerts.yml", f"rule_files:\n  - {RULES}")
    flipped = text.replace(
        "      - eval_time: 1m  # down for 30 s: pending\n        alertname: HASeqNodeDown\n"
        "        exp_alerts: []",
        "      - eval_time: 1m\n        alertname: HASeqNodeDown\n"
        "        exp_alerts: [{exp_labels: {severity: critical, job: ha-sequencer, instance: ha1}}]",
    )
    assert flipped != text
    broken = tmp_path / "broken.test.yml"
    broken.write_text(flipped)
    result = _run(promtool, "test", "rules", broken)
    assert result.returncode != 0
    assert "HASeqNodeDown" in result.stdout + result.stderr


def test_every_alert_is_tested_firing() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fired == set(), "alerts without a test that shows them firing"


def test_the_issues_conditions_are_all_alerted() -> None:
    exprs = {a["alert"]: " ".join(str(a["expr"]).split()) for a in _alerts()}
    wanted = {
        "publisher below 0.15 ETH": ("HASeqPublisherBalanceLow", "publisher_balance_eth < 0.15"),
        "publisher below 0.1 ETH": ("HASeqPublisherBalanceCritical", "publisher_balance_eth < 0.1"),
        "store unreachable > a slot": (
            "HASeqDutyStoreUnreachable",
            "> ignoring(condition) hasq_slot_duration",
        ),
        "unhealthy for slots": ("HASeqNodeUnhealthy", 'condition="unhealthy"'),
        "not synced for slots": ("HASeqNodeNotSynced", 'condition="not_synced"'),
        "every L1 endpoint failing": ("HASeqL1Unreachable", 'condition="l1_unreachable"'),
        "proposals missed": ("HASeqProposalMissed", 'duty="block_proposal"'),
        "attestations missed": ("HASeqAttestationsMissed", 'duty="attestation"'),
        "guard store_unavailable": ("HASeqGuardStoreUnavailable", 'outcome="store_unavailable"'),
        "no gossip peers": ("HASeqNoGossipPeers", 'condition="no_peers"'),
        "node down": ("HASeqNodeDown", 'up{job="ha-sequencer"} == 0'),
    }
    for what, (name, fragment) in wanted.items():
        assert name in exprs, what
        assert fragment in exprs[name], (what, exprs[name])


def test_every_alert_has_a_summary_and_a_runbook_row_in_the_guide() -> None:
    guide = GUIDE.read_text()
    troubleshooting = guide[guide.index("## 12. Troubleshooting") :]
    rows = {m.group(1) for m in re.finditer(r"^\| alert `(HASeq\w+)`", troubleshooting, re.MULTILINE)}
    for alert in _alerts():
        name = alert["alert"]
        notes = alert["annotations"]
        assert notes.get("summary"), name
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert notes["runbook"] == f"docs/operator-guide.md#12-troubleshooting (row {name})", name
        assert name in rows, f"no troubleshooting row for {name}"

"""`devnet up --prometheus`: a real Prometheus (Debian's binary) scraping every node with the project's rules.

The configuration is generated into DIR/prometheus/: one static target per node (its `instance` label is the
node's name, so an alert says "ha2", not a port), `deploy/prometheus/alerts.yml` as the rules file, unchanged.
Scrape and evaluation run every second: the rules count slots of the node's own slot duration, so on a 4 s
devnet an alert fires within seconds of its condition, as it would within a minute or two on a 72 s network.
Prometheus listens on 127.0.0.1 only, keeps its data under DIR/prometheus/data and stops with the devnet.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import ha_sequencer
from ha_sequencer.devnet.state import DevnetError, NodeEntry, stop_pid
from ha_sequencer.keys.files import ensure_private_dir
from ha_sequencer.l1.anvil import free_port

JOB = "ha-sequencer"  # the job name deploy/prometheus/alerts.yml selects `up` by
SCRAPE_INTERVAL = "1s"
EVALUATION_INTERVAL = "1s"
READY_TIMEOUT_S = 30.0
DIRNAME = "prometheus"
CONFIG_NAME = "prometheus.yml"
INSTALL_HINT = "install it with scripts/ensure-prometheus.sh (Debian's `prometheus` package)"


def rules_file() -> Path:
    """The project's alert rules: deploy/prometheus/alerts.yml of this checkout."""
    path = Path(ha_sequencer.__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
    if not path.is_file():
        raise DevnetError(f"--prometheus needs the alert rules at {path} (run the devnet from a checkout)")
    return path


def scrape_config(nodes: Sequence[NodeEntry], rules: Path) -> dict[str, Any]:
    """The Prometheus configuration for these nodes (JSON is YAML, so it is written as JSON)."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{n.http_port}"],
                        "labels": {"instance": n.name, "ha": "true" if n.ha else "false"},
                    }
                    for n in nodes
                ],
            }
        ],
    }


@dataclass(frozen=True)
class FiringAlert:
    """One alert as Prometheus's HTTP API reports it."""

    name: str
    state: str  # "firing" or "pending"
    severity: str
    summary: str
    labels: dict[str, str]
    active_at: str

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> FiringAlert:
        """From an item of `GET /api/v1/alerts`."""
        labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
        annotations = doc.get("annotations") or {}
        return cls(
            name=labels.get("alertname", "?"),
            state=str(doc.get("state", "")),
            severity=labels.get("severity", ""),
            summary=str(annotations.get("summary", "")),
            labels=labels,
            active_at=str(doc.get("activeAt", "")),
        )


class PrometheusApi:
    """The few HTTP API calls the devnet and its tests make."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def alerts(self) -> list[FiringAlert]:
        """Alerts pending or firing now."""
        doc = self._get("/api/v1/alerts")
        return [FiringAlert.from_api(a) for a in doc["data"]["alerts"]]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises DevnetError on a query error)."""
        return self._get("/api/v1/query", {"query": expr})["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last scrape duration."""
        return self._get("/api/v1/targets", {"state": "active"})["data"]["activeTargets"]

    def ready(self) -> bool:
        """Whether Prometheus answers /-/ready."""
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = httpx.get(f"{self.url}{path}", params=params, timeout=self.timeout)
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DevnetError(f"Prometheus {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if doc.get("status") != "success":
            raise DevnetError(f"Prometheus {self.url}{path}: {doc.get('errorType')}: {doc.get('error')}")
        return doc


class DevnetPrometheus:
    """One Prometheus process for one devnet."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory) / DIRNAME
        self.config_path = self.dir / CONFIG_NAME
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The HTTP URL (UI and API)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.proc.pid if self.proc is not None else None

    @staticmethod
    def preflight() -> str:
        """The prometheus binary, checked with the rules file before the devnet starts anything."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise DevnetError(f"--prometheus: the prometheus binary is not installed; {INSTALL_HINT}")
        rules_file()
        return binary

    def start(self, nodes: Sequence[NodeEntry]) -> None:
        """Write the configuration and start Prometheus (returns at once; `wait_ready` waits)."""
        binary = self.preflight()
        shutil.rmtree(self.dir, ignore_errors=True)  # an earlier devnet's samples are another chain's
        ensure_private_dir(self.dir)
        self.config_path.write_text(json.dumps(scrape_config(nodes, rules_file()), indent=2) + "\n")
        self.port = free_port()
        with open(self.dir / "prometheus.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    "--storage.tsdb.retention.time=1d",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait for /-/ready (DevnetError with the log tail when Prometheus exits or stays unready)."""
        deadline = time.monotonic() + timeout
        api = PrometheusApi(self.url)
        while not api.ready():
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "prometheus.log").read_text(errors="replace")[-2000:]
                raise DevnetError(f"Prometheus did not start; {self.dir / 'prometheus.log'}:\n{log}")
            time.sleep(0.2)

    def stop(self) -> str:
        """SIGTERM (Prometheus flushes its head block), SIGKILL after the timeout."""
        if self.proc is None:
            return "not running"
        result = stop_pid(self.proc.pid, str(self.config_path))
        self.proc.poll()
        return result

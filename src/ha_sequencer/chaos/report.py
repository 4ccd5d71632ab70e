"""The chaos report: a terminal table, the JSON document (schema in docs/chaos.md), a PNG timeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ha_sequencer.chaos.audit import AuditResult
from ha_sequencer.chaos.faults import Impairment
from ha_sequencer.chaos.schedule import Fault

SCHEMA_VERSION = 1
LANE_COLOURS = {
    "kill": "#d62728",
    "term": "#ff7f0e",
    "pause": "#9467bd",
    "store": "#8c564b",
    "l1": "#1f77b4",
    "partition": "#17becf",
    "skew": "#bcbd22",
}
LANE_LABELS = {
    "kill": "killed",
    "term": "terminated",
    "pause": "paused",
    "store": "store cut",
    "l1": "L1 cut/slow",
    "partition": "partitioned",
    "skew": "skewed (and its restarts)",
}


@dataclass
class ChaosReport:
    """Everything a run produced."""

    seed: int
    slots: int
    kinds: tuple[str, ...]
    rate: float
    min_fulfilment: float
    ha_nodes: tuple[str, ...]
    planned: list[Fault]
    impairments: list[Impairment]
    skipped: list[dict[str, Any]]
    audit: AuditResult
    watcher: dict[str, Any]
    slashing_submissions: list[dict[str, Any]]
    duration_s: float
    interrupted: bool
    command: str
    slot_at: Callable[[float], int] = field(repr=False, default=lambda t: int(t))
    slot_start: Callable[[int], float] = field(repr=False, default=float)

    @property
    def passed(self) -> bool:
        """The exit-0 condition (an interrupted run never passes)."""
        return not self.interrupted and self.full_coverage and self.audit.passed(self.min_fulfilment)

    @property
    def full_coverage(self) -> bool:
        """The watcher had every node as a peer at the end (it saw the gossip it judges)."""
        return self.watcher.get("peers", 0) >= self.watcher.get("expectedPeers", 1)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON document."""
        return {
            "schemaVersion": SCHEMA_VERSION,
            "passed": self.passed,
            "fullCoverage": self.full_coverage,
            "interrupted": self.interrupted,
            "command": self.command,
            "seed": self.seed,
            "slots": self.slots,
            "faultClasses": list(self.kinds),
            "faultRate": self.rate,
            "minFulfilment": self.min_fulfilment,
            "haNodes": list(self.ha_nodes),
            "durationS": round(self.duration_s, 1),
            "faults": {
                "planned": [f.to_json() for f in self.planned],
                "executed": [i.to_json(self.slot_at) for i in self.impairments],
                "skipped": self.skipped,
            },
            "watcher": self.watcher,
            "slashingSubmissions": self.slashing_submissions,
            "audit": self.audit.to_json(),
        }


def print_table(report: ChaosReport, console: Console) -> None:
    """The terminal summary."""
    a = report.audit
    doc = a.to_json()
    table = Table(title=f"chaos: slots {a.first_slot}…{a.last_slot}, seed {report.seed}")
    for col in ("measure", "value"):
        table.add_column(col)
    e, o = doc["eligible"], doc["ineligible"]
    rows = [
        ("blocks on L1", f"{a.blocks} of {a.last_slot - a.first_slot + 1} slots"),
        ("eligible slots", str(a.eligible_slots)),
        ("eligible duties fulfilled", f"{e['fulfilled']}/{e['duties']} ({a.fulfilment:.2%})"),
        ("other duties fulfilled", f"{o['fulfilled']}/{o['duties']} (a fault left no HA node or no store)"),
        ("attestations, slot without block", str(doc["attestationsWithoutBlock"])),
        ("equivocations", str(len(a.equivocations))),
        ("Slashed (HA identity / all)", f"{len(a.slashed_ha)} / {len(a.slashed)}"),
        ("faults executed / skipped", f"{len(report.impairments)} / {len(report.skipped)}"),
        (
            "watcher",
            f"{report.watcher.get('peers')} of {report.watcher.get('expectedPeers')} peers, "
            f"{report.watcher.get('messages')} messages",
        ),
    ]
    for kind, c in a.cost.items():
        rows.append((f"cost of {kind}", f"{c['missedDuties']} missed / {c['faults']} faults"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    for d in e["missed"]:
        console.print(f"missed (eligible): slot {d['slot']} {d['duty']} during {d['faults'] or 'no fault'}")
    for d in doc["equivocations"]:
        console.print(f"EQUIVOCATION: slot {d['slot']} {d['duty']} digests {d['digests']}")
    console.print(("PASS" if report.passed else "FAIL") + f" (min fulfilment {report.min_fulfilment:.2%})")


def write_report(report: ChaosReport, directory: Path) -> list[Path]:
    """Write chaos-report.json and chaos-timeline.png into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "chaos-report.json"
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    png_path = directory / "chaos-timeline.png"
    draw_timeline(report, png_path)
    return [json_path, png_path]


def draw_timeline(report: ChaosReport, path: Path) -> None:
    """x = slot; a lane per HA node and one for the store; per HA duty: fulfilled, missed or equivocated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, slot_start = report.audit, report.slot_start
    t0, d = slot_start(a.first_slot), slot_start(a.first_slot + 1) - slot_start(a.first_slot)

    def x(t: float) -> float:
        return a.first_slot + (t - t0) / d

    lanes = [*report.ha_nodes, "store"]
    fig, ax = plt.subplots(figsize=(max(8.0, (a.last_slot - a.first_slot) / 6), 1.2 + 0.5 * (len(lanes) + 2)))
    end = x(slot_start(a.last_slot + 1))
    for i in range(len(lanes)):
        ax.broken_barh([(a.first_slot, end - a.first_slot)], (i - 0.35, 0.7), facecolors="#c7e9c0")
    seen_kinds = set()
    for imp in report.impairments:
        lane = lanes.index(imp.node) if imp.node in lanes else len(lanes) - 1
        start = x(imp.start)
        stop = x(imp.end) if imp.end is not None else end
        ax.broken_barh(
            [(start, max(0.05, stop - start))],
            (lane - 0.35, 0.7),
            facecolors=LANE_COLOURS.get(imp.kind, "grey"),
            label=None if imp.kind in seen_kinds else LANE_LABELS.get(imp.kind, imp.kind),
        )
        seen_kinds.add(imp.kind)
    duty_y = {"proposal": len(lanes) + 0.5, "attestation": len(lanes) + 1.2}
    styles = {"fulfilled": ("o", "#2ca02c"), "missed": ("x", "#d62728"), "equivocated": ("*", "black")}
    plotted = set()
    for v in a.duties:
        if v.fulfilled is None:
            continue
        state = "equivocated" if v.equivocated else "fulfilled" if v.fulfilled else "missed"
        marker, colour = styles[state]
        label = f"duty {state}" if state not in plotted else None
        plotted.add(state)
        ax.scatter([v.slot + 0.5], [duty_y[v.duty]], marker=marker, color=colour, s=30, label=label)
    ax.set_yticks([*range(len(lanes)), *duty_y.values()], [*lanes, "proposal", "attestation"])
    ax.set_xlabel("slot")
    ax.set_xlim(a.first_slot, end)
    ax.set_title(
        f"chaos seed {report.seed}: {len(report.impairments)} faults, "
        f"eligible fulfilment {a.fulfilment:.2%}, "
        f"{len(a.equivocations)} equivocations, {len(a.slashed_ha)} slashed"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

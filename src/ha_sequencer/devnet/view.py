"""The devnet's live view: one row per slot (proposer, which HA node signed and published, attestations in the
L1 block, L1 tx, txs), each node's health, publisher balances, the load and the equivocation watcher.

`Monitor.snapshot()` gathers the facts (L1 events, the duty store, every node's /status); `render()` turns a
snapshot into rich renderables; headless runs print `slot_line()` once per finished slot instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ha_sequencer.devnet.orchestrator import all_statuses
from ha_sequencer.devnet.prometheus import FiringAlert, PrometheusApi
from ha_sequencer.devnet.slots import SlotBook, SlotFacts
from ha_sequencer.devnet.state import DevnetError, DevnetState, NodeEntry, pid_alive
from ha_sequencer.devnet.store_cluster import describe as describe_cluster
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.store import DutyKey, DutyStore
from ha_sequencer.l1.client import RollupClient

SLOT_ROWS = 12
BALANCE_REFRESH_S = 5.0
BLOCK_PROPOSAL = "block_proposal"
ATTESTATION = "attestation"


@dataclass
class SlotRow:
    """One slot for display."""

    facts: SlotFacts
    current: bool
    signed_by: str = ""
    published_by: str = ""


@dataclass
class Snapshot:
    """Everything one frame of the view shows."""

    slot: int
    rows: list[SlotRow]
    nodes: list[tuple[NodeEntry, int | None, dict[str, Any]]]
    balances: dict[str, int]
    load: Any = None
    equivocations: int | None = None
    watcher_peers: int | None = None
    alerts: list[FiringAlert] | None = None  # None: no Prometheus with this devnet
    store_cluster: str | None = None  # `devnet up --store-cluster`: its members, the primary first
    errors: list[str] = field(default_factory=list)


class Monitor:
    """Reads L1, the duty store and the nodes for the view (blocking; call from one thread)."""

    def __init__(
        self,
        state: DevnetState,
        *,
        nodes: Callable[[], list[NodeEntry]] | None = None,
        load: Any = None,
        watcher: Any = None,
    ) -> None:
        self.state = state
        self.client = RollupClient([state.l1_rpc_url], state.rollup)
        self.params = self.client.params()
        self.book = SlotBook(self.client, self.params)
        # Slots that ended before every node was up are start-up, not missed duties: the view starts after.
        self.first_slot = self.params.slot_at(int(time.time())) + 1
        self.nodes = nodes or (lambda: state.nodes)
        self.load = load
        self.watcher = watcher
        self.labels = {
            a: ("HA" if a == state.ha_attester else f"v{i}") for i, a in enumerate(state.validators)
        }
        self._store: DutyStore | None = None
        self.prometheus = PrometheusApi(state.prometheus_url) if state.prometheus_url else None
        self._balances: dict[str, int] = {}
        self._balances_at = 0.0

    def close(self) -> None:
        """Close the duty store connection."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def store(self) -> DutyStore | None:
        """The HA duty store (opened lazily; None while unreachable)."""
        if self._store is None:
            with contextlib.suppress(Exception):
                self._store = open_store(self.state.ha_db_url())
        return self._store

    def node_of_publisher(self, address: str) -> str:
        """Node name paying gas with `address`."""
        for n in self.nodes():
            if n.publisher == address:
                return n.name
        return address[:10]

    def signer_node(self, attester: str, slot: int, duty: str) -> str:
        """The HA node that holds the duty's row in the store ('' if none)."""
        store = self.store()
        if store is None:
            return "?"
        try:
            found = store.fetch(DutyKey(self.state.rollup.lower(), attester.lower(), slot, duty))
        except Exception:
            return "?"
        return found.row.node_id if found.row is not None else ""

    def snapshot(self, rows: int = SLOT_ROWS) -> Snapshot:
        """Gather one frame."""
        errors: list[str] = []
        try:
            self.book.refresh()
        except Exception as exc:
            errors.append(f"L1: {exc}")
        now = self.book.current_slot()
        slot_rows = []
        for slot in range(now, max(self.first_slot - 1, now - rows), -1):
            try:
                facts = self.book.facts(slot)
            except Exception as exc:
                errors.append(f"slot {slot}: {exc}")
                break
            row = SlotRow(facts, current=slot == now)
            if facts.proposer == self.state.ha_attester:
                row.signed_by = self.signer_node(facts.proposer, slot, BLOCK_PROPOSAL)
            else:
                row.signed_by = self.labels.get(facts.proposer, "")
            if facts.block is not None:
                row.published_by = self.node_of_publisher(facts.block.publisher)
            slot_rows.append(row)
        nodes = self.nodes()
        statuses = all_statuses([n for n in nodes if pid_alive(n.pid)])
        if time.monotonic() - self._balances_at > BALANCE_REFRESH_S:
            with contextlib.suppress(Exception):
                self._balances = {n.publisher: self.client.balance(n.publisher) for n in nodes}
                self._balances_at = time.monotonic()
        alerts = None
        if self.prometheus is not None:
            try:
                alerts = self.prometheus.alerts()
            except DevnetError as exc:
                errors.append(str(exc))
        return Snapshot(
            slot=now,
            rows=slot_rows,
            nodes=[(n, *statuses.get(n.name, (None, {}))) for n in nodes],
            balances=dict(self._balances),
            load=self.load.stats if self.load is not None else None,
            equivocations=len(self.watcher.ledger.equivocations()) if self.watcher is not None else None,
            watcher_peers=self.watcher.peer_count() if self.watcher is not None else None,
            alerts=alerts,
            store_cluster=describe_cluster(self.state.store_cluster) if self.state.store_cluster else None,
            errors=errors,
        )

    def attestation_cell(self, facts: SlotFacts) -> Text:
        """'3/4 HA✓' style cell: attesters in the L1 block / committee, and whether the HA identity is in."""
        if facts.block is None:
            return Text("-", style="dim")
        cell = Text(f"{len(facts.block.attesters)}/{len(facts.committee)}")
        if self.state.ha_attester in facts.committee:
            ok = self.state.ha_attester in facts.block.attesters
            cell.append(" HA✓" if ok else " HA✗", style="green" if ok else "bold red")
        return cell


def _short(h: bytes | str, n: int = 10) -> str:
    text = h if isinstance(h, str) else "0x" + h.hex()
    return text[:n] + "…"


def render(monitor: Monitor, snap: Snapshot) -> Group:
    """The frame: slots table, nodes table, one status line."""
    state = monitor.state
    slots = Table(title=f"slots (now {snap.slot}; HA identity {state.ha_attester})", expand=False)
    for col in ("slot", "proposer", "signed by", "published by", "attestations", "L1 tx", "txs"):
        slots.add_column(col)
    for row in snap.rows:
        f = row.facts
        proposer = monitor.labels.get(f.proposer, f.proposer[:10])
        if f.block is not None:
            style, tx, txs = "", _short(f.block.l1_tx_hash), str(row.facts.tx_count)
        elif row.current:
            style, tx, txs = "yellow", "…", ""
        else:
            style, tx, txs = "red", "MISSED", ""
        slots.add_row(
            str(f.slot),
            Text(proposer, style="bold cyan" if proposer == "HA" else ""),
            row.signed_by,
            row.published_by,
            monitor.attestation_cell(f),
            Text(tx, style=style),
            txs,
        )
    nodes = Table(title="nodes", expand=False)
    for col in (
        "node",
        "pid",
        "health",
        "role",
        "L2 block",
        "peers",
        "mempool",
        "publisher ETH",
        "status URL",
    ):
        nodes.add_column(col)
    for entry, code, doc in snap.nodes:
        if code is None:
            health = Text("down" if not pid_alive(entry.pid) else "starting", style="red")
        elif code == 200:
            health = Text("ok", style="green")
        else:
            health = Text("unhealthy: " + ", ".join(doc.get("reasons", [])), style="yellow")
        balance = snap.balances.get(entry.publisher)
        nodes.add_row(
            entry.name,
            str(entry.pid or "-"),
            health,
            str(doc.get("role") or "-"),
            str((doc.get("sync") or {}).get("blockNumber", "-")),
            str(doc.get("peers", "-")),
            str(doc.get("mempool", "-")),
            f"{balance / 10**18:.4f}" if balance is not None else "-",
            f"{entry.url}/status",
        )
    parts: list[Any] = [slots, nodes]
    if snap.store_cluster is not None:
        line = snap.store_cluster
        parts.append(Text("duty store cluster: " + line, style=_cluster_style(line)))
    if snap.alerts is not None:
        parts.append(alerts_table(snap.alerts, state.prometheus_url or ""))
    footer = Text()
    if snap.load is not None:
        footer.append(f"L2 load: {snap.load.accepted} txs accepted, {snap.load.rejected} rejected   ")
    if snap.equivocations is not None:
        footer.append(
            f"watcher: {snap.watcher_peers} peers, equivocations {snap.equivocations}   ",
            style="bold red" if snap.equivocations else "",
        )
    footer.append("Ctrl-C stops the devnet", style="dim")
    parts.append(footer)
    for err in snap.errors[:3]:
        parts.append(Text(err, style="red"))
    return Group(*parts)


def _cluster_style(line: str) -> str:
    return "bold red" if line.startswith(("NO PRIMARY", "no member")) else ""


def alerts_table(alerts: list[FiringAlert], url: str) -> Table:
    """Prometheus's pending and firing alerts: firing before pending, critical before warning."""
    table = Table(title=f"alerts (Prometheus {url}/alerts)", expand=False)
    for col in ("alert", "state", "severity", "summary"):
        table.add_column(col)
    if not alerts:
        table.add_row(Text("none", style="green"), "", "", "")
    for alert in sorted(alerts, key=lambda a: (a.state != "firing", a.severity != "critical", a.name)):
        style = "dim"
        if alert.state == "firing":
            style = "bold red" if alert.severity == "critical" else "yellow"
        table.add_row(Text(alert.name, style=style), alert.state, alert.severity, alert.summary)
    return table


def alert_changes(
    before: dict[str, FiringAlert], alerts: list[FiringAlert]
) -> tuple[dict[str, FiringAlert], list[str]]:
    """Firing alerts keyed by name and labels, and a line for each that started or stopped firing."""
    now = {f"{a.name}{sorted(a.labels.items())}": a for a in alerts if a.state == "firing"}
    lines = [f"alert {a.name} FIRING ({a.severity}): {a.summary}" for k, a in now.items() if k not in before]
    lines += [f"alert {a.name} resolved: {a.summary}" for k, a in before.items() if k not in now]
    return now, lines


def slot_line(monitor: Monitor, row: SlotRow) -> str:
    """One plain line for a finished slot (headless mode and logs)."""
    f = row.facts
    proposer = monitor.labels.get(f.proposer, f.proposer)
    if f.block is None:
        return f"slot {f.slot}: proposer {proposer}: MISSED (no block on L1)"
    ha = ""
    if monitor.state.ha_attester in f.committee:
        ha = " HA attestation " + (
            "included" if monitor.state.ha_attester in f.block.attesters else "MISSING"
        )
    return (
        f"slot {f.slot}: proposer {proposer} signed by {row.signed_by} published by {row.published_by}; "
        f"{len(f.block.attesters)}/{len(f.committee)} attestations{ha}; {f.tx_count} txs; "
        f"L1 tx 0x{f.block.l1_tx_hash.hex()}"
    )


def status_urls(state: DevnetState) -> list[str]:
    """Lines naming every node's /status URL (and Prometheus's, when it runs)."""
    lines = [
        f"  {n.name:<5} {'HA ' if n.ha else '   '}{n.url}/status   (pid {n.pid}, log {n.log})"
        for n in state.nodes
    ]
    if state.prometheus_url:
        lines.append(f"  Prometheus {state.prometheus_url}   (alerts: {state.prometheus_url}/alerts)")
    return lines

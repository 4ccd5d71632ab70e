"""`ha-sequencer devnet up / down / status` and `ha-sequencer failover-test`."""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ha_sequencer.cli_options import DevnetDir
from ha_sequencer.devnet.defaults import (
    DEFAULT_DIR,
    DEFAULT_EPOCH_LENGTH,
    DEFAULT_HA_NODES,
    DEFAULT_SLOT_DURATION,
    DEFAULT_VALIDATORS,
)
from ha_sequencer.devnet.state import load_state, pid_alive
from ha_sequencer.ha.faults import KILL_POINTS

if TYPE_CHECKING:
    from ha_sequencer.devnet.orchestrator import DevnetConfig

_ENV = "HA_SEQUENCER_DEVNET_"
app = typer.Typer(
    help="A whole HA network on this machine: anvil, the Rollup, validators, nodes.", no_args_is_help=True
)
# not a terminal (CI logs, `--detach`): wide lines rather than tables squeezed into 80 columns
_out = Console(width=None if sys.stdout.isatty() else 160)
_err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@app.callback()
def _devnet() -> None:
    """A whole HA network on this machine."""


@app.command("up")
def up(
    directory: DevnetDir = DEFAULT_DIR,
    validators: int = typer.Option(
        DEFAULT_VALIDATORS,
        "--validators",
        envvar=f"{_ENV}VALIDATORS",
        help="Validators (each its own identity); validator 0 is the HA identity.",
    ),
    ha_nodes: int = typer.Option(
        DEFAULT_HA_NODES,
        "--ha-nodes",
        envvar=f"{_ENV}HA_NODES",
        help="Nodes running the HA identity (the others run on one node each).",
    ),
    slot_duration: int = typer.Option(
        DEFAULT_SLOT_DURATION, "--slot-duration", envvar=f"{_ENV}SLOT_DURATION", help="Seconds per slot."
    ),
    epoch_length: int = typer.Option(
        DEFAULT_EPOCH_LENGTH, "--epoch-length", envvar=f"{_ENV}EPOCH_LENGTH", help="Slots per epoch."
    ),
    committee_size: int | None = typer.Option(
        None,
        "--committee-size",
        envvar=f"{_ENV}COMMITTEE_SIZE",
        help="Committee size (default: every validator, at most 48).",
    ),
    ha_db: str | None = typer.Option(
        None,
        "--ha-db",
        envvar=f"{_ENV}HA_DB",
        show_default=False,
        help="Duty store of the HA nodes: postgresql://… (default: one SQLite file "
        "in the devnet directory shared by the HA nodes).",
    ),
    store_cluster: bool = typer.Option(
        False,
        "--store-cluster",
        envvar=f"{_ENV}STORE_CLUSTER",
        help="Duty store of the HA nodes on 3 Patroni-managed PostgreSQL members in strict synchronous "
        "mode and 3 etcd members, on loopback, data under the devnet directory (scripts/"
        "ensure-store-cluster.sh installs them); the nodes get the multi-host URL.",
    ),
    users: int = typer.Option(
        4, "--users", envvar=f"{_ENV}USERS", help="Funded L2 accounts for the tx load."
    ),
    load_rate: float = typer.Option(
        1.0,
        "--load-rate",
        envvar=f"{_ENV}LOAD_RATE",
        help="L2 transfers per second sent with node_sendTx (0: none).",
    ),
    duty_lease: float | None = typer.Option(
        None,
        "--duty-lease",
        envvar=f"{_ENV}DUTY_LEASE",
        help="Seconds before an unfinished duty may be adopted (node default).",
    ),
    watch: bool = typer.Option(
        True,
        "--watcher/--no-watcher",
        envvar=f"{_ENV}WATCHER",
        help="Run the equivocation watcher as an extra gossip peer.",
    ),
    prometheus: bool = typer.Option(
        False,
        "--prometheus/--no-prometheus",
        envvar=f"{_ENV}PROMETHEUS",
        help="Also run a real Prometheus (Debian's binary) scraping every node with "
        "deploy/prometheus/alerts.yml; its URL is printed and firing alerts show in the live view.",
    ),
    live: bool = typer.Option(True, "--live/--no-live", help="Live terminal view (else one line per slot)."),
    detach: bool = typer.Option(False, "--detach", help="Run in the background; stop with `devnet down`."),
    headless: bool = typer.Option(
        False, "--headless", hidden=True, help="Internal: the detached supervisor."
    ),
    ha_db_stdin: bool = typer.Option(
        False, "--ha-db-stdin", hidden=True, help="Internal: read the duty store URL from stdin."
    ),
) -> None:
    """Start anvil, deploy, make keys, fund, register, start every node; Ctrl-C stops everything."""
    from ha_sequencer.devnet import supervisor
    from ha_sequencer.devnet.orchestrator import DevnetConfig, drop_inherited_secrets

    if ha_db_stdin:
        ha_db = sys.stdin.readline().strip() or None
    drop_inherited_secrets()  # read above (typer took --ha-db from the environment): no child inherits it
    config = DevnetConfig(
        directory=directory,
        validators=validators,
        ha_nodes=ha_nodes,
        slot_duration=slot_duration,
        epoch_length=epoch_length,
        committee_size=committee_size,
        ha_db=ha_db,
        store_cluster=store_cluster,
        users=users,
        load_rate=load_rate,
        duty_lease_s=duty_lease,
        prometheus=prometheus,
    )
    config.validate()
    if detach:
        argv = [
            "--dir", str(directory), "--validators", str(validators), "--ha-nodes", str(ha_nodes),
            "--slot-duration", str(slot_duration), "--epoch-length", str(epoch_length),
            "--users", str(users), "--load-rate", str(load_rate), "--watcher" if watch else "--no-watcher",
        ]  # fmt: skip
        if committee_size is not None:
            argv += ["--committee-size", str(committee_size)]
        if duty_lease is not None:
            argv += ["--duty-lease", str(duty_lease)]
        if prometheus:
            argv.append("--prometheus")
        if store_cluster:
            argv.append("--store-cluster")
        supervisor.detach(
            config, argv, lambda line: _out.print(line, markup=False, highlight=False), ha_db=ha_db
        )
        return
    supervisor.run(config, live=live and not headless and _out.is_terminal, watch=watch, console=_out)


@app.command("down")
def down(directory: DevnetDir = DEFAULT_DIR) -> None:
    """Stop a devnet left running (its supervisor, then any node or anvil it left behind)."""
    from ha_sequencer.devnet.orchestrator import down_from_state

    stopped = down_from_state(directory, lambda line: _out.print(line, markup=False, highlight=False))
    _out.print(f"devnet in {directory} stopped ({stopped} process(es) signalled)")


@app.command("status")
def status(
    directory: DevnetDir = DEFAULT_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the devnet's nodes and their health (exit 1 if any node is down or unhealthy)."""
    from ha_sequencer.devnet.orchestrator import all_statuses
    from ha_sequencer.devnet.store_cluster import describe as describe_cluster

    state = load_state(directory)
    statuses = all_statuses([n for n in state.nodes if pid_alive(n.pid)])
    rows = []
    for n in state.nodes:
        code, doc = statuses.get(n.name, (None, {}))
        health = (
            "ok"
            if code == 200
            else ("down" if not pid_alive(n.pid) else ("unreachable" if code is None else "unhealthy"))
        )
        rows.append((n, health, doc))
    bad = [n.name for n, health, _ in rows if health != "ok"]
    if as_json:
        doc = {
            "directory": state.directory,
            "rollup": state.rollup,
            "l1RpcUrl": state.l1_rpc_url,
            "haAttester": state.ha_attester,
            "haDb": state.ha_db,
            "supervisorRunning": pid_alive(state.supervisor_pid),
            "prometheusUrl": state.prometheus_url,
            "storeCluster": describe_cluster(state.store_cluster) if state.store_cluster else None,
            "nodes": [
                {
                    "name": n.name,
                    "ha": n.ha,
                    "pid": n.pid,
                    "publisher": n.publisher,
                    "health": h,
                    "url": f"{n.url}/status",
                    "reasons": d.get("reasons", []),
                    "role": d.get("role"),
                    "blockNumber": (d.get("sync") or {}).get("blockNumber"),
                    "peers": d.get("peers"),
                }
                for n, h, d in rows
            ],
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        _out.print(
            f"devnet {state.directory}: rollup {state.rollup} on {state.l1_rpc_url}; HA identity "
            f"{state.ha_attester} (duty store {state.ha_db}); supervisor "
            f"{'running' if pid_alive(state.supervisor_pid) else 'NOT running'} (pid {state.supervisor_pid})",
            markup=False,
            highlight=False,
        )
        if state.prometheus_url:
            _out.print(f"Prometheus {state.prometheus_url} (alerts: {state.prometheus_url}/alerts)")
        if state.store_cluster:
            line = "duty store cluster: " + describe_cluster(state.store_cluster)
            _out.print(line, markup=False, highlight=False)
        table = Table()
        for col in ("node", "HA", "pid", "health", "role", "L2 block", "peers", "status URL"):
            table.add_column(col)
        for n, health, d in rows:
            reasons = ", ".join(d.get("reasons", []))
            table.add_row(
                n.name,
                "yes" if n.ha else "",
                str(n.pid or "-"),
                Text(
                    health + (f": {reasons}" if reasons else ""), style="green" if health == "ok" else "red"
                ),
                str(d.get("role") or "-"),
                str((d.get("sync") or {}).get("blockNumber", "-")),
                str(d.get("peers", "-")),
                f"{n.url}/status",
            )
        _out.print(table)
    if bad:
        raise typer.Exit(1)


def failover_test(
    directory: DevnetDir = DEFAULT_DIR,
    slots: int = typer.Option(
        4, "--slots", envvar="HA_SEQUENCER_FAILOVER_SLOTS", help="Slots per phase (N)."
    ),
    kill: bool = typer.Option(False, "--kill", help="kill -9 instead of SIGTERM."),
    kill_at: str | None = typer.Option(
        None,
        "--kill-at",
        metavar="POINT",
        show_default=False,
        help="Kill inside a duty (implies --kill): the node's own guard kills it at this fault point of its "
        "next duty (after_claim: claim held; after_sign / before_record: signed, not recorded; after_record: "
        "recorded, not released or gossiped), then the run proves from the store's rows that a twin adopted "
        "the claim or the duty was fulfilled on L1. "
        "Restarts the node (--node, default the first HA node) with --allow-fault-injection first.",
    ),
    store_failover: bool = typer.Option(
        False,
        "--store-failover",
        help="Instead of a node: kill -9 the duty store's primary (Patroni and PostgreSQL) of a devnet "
        "started with --store-cluster; report kill → first guarded signature on the new primary, missed "
        "duties, equivocations, and whether every HA node resumed without a restart.",
    ),
    node: str | None = typer.Option(
        None, "--node", help="The HA node to stop (default: the one holding the identity's next duty)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    start: bool = typer.Option(
        False, "--start", help="Start a devnet in --dir first and stop it afterwards."
    ),
    slot_duration: int = typer.Option(
        DEFAULT_SLOT_DURATION, "--slot-duration", help="With --start: seconds per slot."
    ),
    ha_nodes: int = typer.Option(DEFAULT_HA_NODES, "--ha-nodes", help="With --start: HA nodes."),
    validators: int = typer.Option(DEFAULT_VALIDATORS, "--validators", help="With --start: validators."),
    ha_db: str | None = typer.Option(
        None,
        "--ha-db",
        envvar=f"{_ENV}HA_DB",
        show_default=False,
        help="With --start: duty store URL (default: shared SQLite file).",
    ),
) -> None:
    """The guide's "Testing Failover", automated: exit 0 only if no duty was missed, nothing equivocated."""
    from ha_sequencer.devnet.failover import FailoverTest
    from ha_sequencer.devnet.orchestrator import DevnetConfig
    from ha_sequencer.devnet.store_failover import StoreFailoverReport, StoreFailoverTest

    if store_failover and (kill or kill_at is not None or node is not None):
        raise typer.BadParameter(
            "--store-failover kills the store's primary: no --kill, --kill-at or --node with it"
        )
    if kill_at is not None and kill_at not in KILL_POINTS:
        raise typer.BadParameter(
            f"--kill-at {kill_at!r}: not a guard fault point inside a duty (one of {', '.join(KILL_POINTS)})"
        )
    if store_failover and ha_db is not None:
        raise typer.BadParameter("--store-failover runs on the devnet's store cluster: no --ha-db with it")

    console = _err if as_json else _out

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    devnet = load = None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        if start:
            devnet, load = _start_devnet(
                DevnetConfig(
                    directory=directory,
                    validators=validators,
                    ha_nodes=ha_nodes,
                    slot_duration=slot_duration,
                    ha_db=ha_db,
                    store_cluster=store_failover,
                ),
                say,
            )
        state = load_state(directory)
        if store_failover:
            report = StoreFailoverTest(state, slots_per_phase=slots, say=say).run()
        else:
            report = FailoverTest(
                state, slots_per_phase=slots, kill=kill, kill_at=kill_at, node=node, say=say
            ).run()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if load is not None:
            load.stop()
        if devnet is not None:
            devnet.down()
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    elif isinstance(report, StoreFailoverReport):
        print_store_report(report)
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def _start_devnet(config: DevnetConfig, say):
    from ha_sequencer.devnet.load import TxLoad
    from ha_sequencer.devnet.orchestrator import Devnet
    from ha_sequencer.l1.client import RollupClient

    devnet = Devnet(config, say=say)
    state = devnet.up()
    params = RollupClient([state.l1_rpc_url], state.rollup).params()
    load = TxLoad(
        params,
        devnet.users,
        lambda: [n.url for n in devnet.current_nodes() if pid_alive(n.pid)],
        rate=config.load_rate,
    )
    load.start()
    return devnet, load


def print_report(report) -> None:
    """The failover report as a table plus the failing rows."""
    table = Table(
        title=f"failover-test: {report.mode} of {report.target} (slot {report.stopped_at_slot}, "
        f"holding {report.stopped_duty})"
    )
    for col in (
        "phase",
        "slots",
        "blocks on L1",
        "proposals on L1",
        "attestations in L1 block",
        "missed",
        "equivocations",
        "slashed",
        "notes",
    ):
        table.add_column(col)
    for p in report.phases:
        bad = "bold red"
        table.add_row(
            p.name,
            f"{p.first_slot}…{p.last_slot} ({p.slots})",
            f"{p.blocks}/{p.slots}",
            f"{p.proposals_ok}/{p.proposals}",
            f"{p.attestations_ok}/{p.attestations}",
            Text(str(len(p.missed)), style=bad if p.missed else "green"),
            Text(str(len(p.equivocations)), style=bad if p.equivocations else "green"),
            Text(str(len(p.slashed)), style=bad if p.slashed else "green"),
            "; ".join(p.notes),
        )
    _out.print(table)
    r = report.rejoin
    _out.print(
        f"rejoin: {r.node} healthy={r.healthy} synced={r.synced} (block {r.block_number}, L1 tip {r.l1_tip}) "
        f"signed since restart={r.signed_since_restart} healthy after {r.seconds_to_healthy} s",
        markup=False,
        highlight=False,
    )
    _out.print(
        f"watcher: {report.watcher_peers} of {report.watcher_expected} nodes as peers"
        f"{'' if report.full_coverage else ' (PARTIAL COVERAGE)'}, {report.watcher_messages} signed messages "
        f"seen, {len(report.slashing_submissions)} slashing proofs submitted; "
        f"run took {report.duration_s:.0f} s",
        markup=False,
        highlight=False,
    )
    if report.mode == "kill":
        adopted = ", ".join(
            f"slot {a['slot']} {a['duty']} by {a['adoptedBy']}" for a in report.adopted_from_target
        )
        _out.print(
            f"claims of {report.target} adopted by a twin: {adopted or 'none (it held no unfinished claim)'}",
            markup=False,
            highlight=False,
        )
        held = ", ".join(
            f"slot {h.slot} {h.duty}: "
            + ("adopted by " + h.adopted_by if h.adopted_by else "fulfilled" if h.fulfilled else "LOST")
            for h in report.held_by_target
        )
        where = f" at {report.kill_at}" if report.kill_at else ""
        _out.print(
            f"duties {report.target} held when killed{where}: {held or 'none'}", markup=False, highlight=False
        )
    if report.attestation_arrival:
        arrivals = ", ".join(f"{k[:10]} {v:.3f}" for k, v in sorted(report.attestation_arrival.items()))
        _out.print(
            f"attestations on gossip, median s into the slot: {arrivals}", markup=False, highlight=False
        )
    if report.attestation_inclusion:
        shares = ", ".join(f"{k[:10]} {n}/{d}" for k, (n, d) in sorted(report.attestation_inclusion.items()))
        _out.print(f"attestations in L1 blocks, by attester: {shares}", markup=False, highlight=False)
    if report.ok:
        _out.print(Text("PASS: no duty missed, no equivocation, node rejoined", style="bold green"))
    else:
        _out.print(Text("FAIL:", style="bold red"))
        for row in report.failing_rows:
            _out.print("  " + row, markup=False, highlight=False)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def print_store_report(report) -> None:
    """The store failover report: timings, phases, the HA nodes, and the failing rows."""
    line = (
        f"failover-test --store-failover: kill -9 of primary {report.killed} "
        f"in slot {report.killed_at_slot}; "
        f"new primary {report.new_primary} after {_seconds(report.kill_to_new_primary_s)}; first guarded "
        f"signature on it {_seconds(report.kill_to_first_signature_s)} after the kill "
        f"({report.first_signature or 'none'})"
    )
    _out.print(line, markup=False, highlight=False)
    table = Table()
    for col in (
        "phase",
        "slots",
        "blocks on L1",
        "proposals on L1",
        "attestations",
        "missed",
        "equivocations",
    ):
        table.add_column(col)
    for p in report.phases:
        table.add_row(
            p.name,
            f"{p.first_slot}…{p.last_slot} ({p.slots})",
            f"{p.blocks}/{p.slots}",
            f"{p.proposals_ok}/{p.proposals}",
            f"{p.attestations_ok}/{p.attestations}",
            str(len(p.missed)),
            Text(str(len(p.equivocations) + len(p.slashed)), style="bold red" if not p.ok else "green"),
        )
    _out.print(table)
    _out.print(
        f"HA identity missed {report.missed} duties "
        f"(bound ceil(failover / slot) = {report.expected_missed_bound}); "
        f"equivocations {report.equivocations}",
        markup=False,
        highlight=False,
    )
    for n in report.nodes:
        _out.print(
            f"  {n.node}: pid {n.pid_before} → {n.pid_after}, healthy={n.healthy}, "
            f"signed {n.signed_at_failover} → {n.signed_at_end}: {'resumed' if n.ok else 'NOT resumed'}",
            markup=False,
            highlight=False,
        )
    if report.ok:
        _out.print(Text("PASS: no equivocation, every HA node resumed without a restart", style="bold green"))
    else:
        _out.print(Text("FAIL:", style="bold red"))
        for row in report.failing_rows:
            _out.print("  " + row, markup=False, highlight=False)

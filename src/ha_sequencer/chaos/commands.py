"""`ha-sequencer chaos`: seeded random faults over many slots of a devnet, audited independently."""

from __future__ import annotations

import json
import logging
import random
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from ha_sequencer.chaos.schedule import DEFAULT_FAULT_RATE, FAULT_CLASSES, check_inputs, parse_fault_list
from ha_sequencer.devnet.defaults import DEFAULT_DIR, DEFAULT_HA_NODES, DEFAULT_VALIDATORS
from ha_sequencer.errors import EXIT_FAILURE_FOUND

_ENV = "HA_SEQUENCER_CHAOS_"
DEFAULT_SLOTS = 100
DEFAULT_MIN_FULFILMENT = 0.995
CHAOS_SLOT_DURATION = 4

_out = Console(width=None if sys.stdout.isatty() else 160)
_err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def chaos(
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="The devnet's directory."),
    start: bool = typer.Option(
        False, "--start", help="Start a devnet in --dir first and stop it afterwards."
    ),
    slots: int = typer.Option(DEFAULT_SLOTS, "--slots", envvar=f"{_ENV}SLOTS", help="Slots to run (N ≥ 1)."),
    seed: int | None = typer.Option(
        None,
        "--seed",
        envvar=f"{_ENV}SEED",
        show_default=False,
        help="Schedule seed (default: random, printed).",
    ),
    faults: str = typer.Option(
        "all",
        "--faults",
        envvar=f"{_ENV}FAULTS",
        help=f"Fault classes, comma-separated ({', '.join(FAULT_CLASSES)}).",
    ),
    fault_rate: float = typer.Option(
        DEFAULT_FAULT_RATE, "--fault-rate", envvar=f"{_ENV}FAULT_RATE", help="Chance per slot a fault starts."
    ),
    min_fulfilment: float = typer.Option(
        DEFAULT_MIN_FULFILMENT,
        "--min-fulfilment",
        envvar=f"{_ENV}MIN_FULFILMENT",
        help="Fulfilled share of the eligible duties needed to pass (0.995 = 99.5 %).",
    ),
    allow_total_outage: bool = typer.Option(
        False, "--allow-total-outage", help="Let node faults take every HA node out at once."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema: docs/chaos.md)."),
    report_dir: Path | None = typer.Option(
        None, "--report", show_default=False, help="Write chaos-report.json and chaos-timeline.png here."
    ),
    slot_duration: int = typer.Option(
        CHAOS_SLOT_DURATION, "--slot-duration", help="With --start: seconds per slot."
    ),
    ha_nodes: int = typer.Option(DEFAULT_HA_NODES, "--ha-nodes", help="With --start: HA nodes."),
    validators: int = typer.Option(DEFAULT_VALIDATORS, "--validators", help="With --start: validators."),
    ha_db: str | None = typer.Option(
        None,
        "--ha-db",
        envvar=f"{_ENV}HA_DB",
        show_default=False,
        help="With --start: the HA nodes' duty store, postgresql://… (default: the devnet's SQLite file).",
    ),
) -> None:
    """Seeded faults (kill -9, SIGTERM, SIGSTOP past the lease, store and L1 outages, gossip partition, clock
    skew) over N slots of a devnet.

    Exit 0 only with 0 equivocations, 0 `Slashed` of the HA identity and fulfilment ≥ --min-fulfilment.
    """
    from ha_sequencer.chaos.report import print_table, write_report
    from ha_sequencer.chaos.run import ChaosSettings, run_chaos
    from ha_sequencer.devnet.commands import _start_devnet
    from ha_sequencer.devnet.orchestrator import DevnetConfig, drop_inherited_secrets
    from ha_sequencer.devnet.state import load_state
    from ha_sequencer.p2p.gossip import route_libp2p_logs

    kinds = parse_fault_list(faults)
    check_inputs(slots, fault_rate, min_fulfilment)
    drop_inherited_secrets()  # typer has read --ha-db from the environment: no node inherits it from here
    _bounded_logging(route_libp2p_logs)
    if seed is None:
        seed = random.randrange(1 << 31)
    console = _err if as_json else _out

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    say(f"chaos seed {seed} (replay: --seed {seed})")
    command = (
        shlex.join(["ha-sequencer", "chaos", *sys.argv[2:]]) if len(sys.argv) > 1 else "ha-sequencer chaos"
    )
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
                ),
                say,
            )
        state = load_state(directory)
        settings = ChaosSettings(
            slots=slots,
            seed=seed,
            kinds=kinds,
            rate=fault_rate,
            min_fulfilment=min_fulfilment,
            allow_total_outage=allow_total_outage,
            command=command,
            restore_l1=not start,
        )
        report = run_chaos(state, settings, say)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if load is not None:
            load.stop()
        if devnet is not None:
            devnet.down()
        signal.signal(signal.SIGTERM, previous)
    if report_dir is not None:
        for path in write_report(report, report_dir):
            say(f"wrote {path}")
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_table(report, _out)
    if not report.passed:
        raise typer.Exit(EXIT_FAILURE_FOUND)


def _bounded_logging(route_libp2p_logs: Callable[[], None]) -> None:
    """The watcher runs in this process: its py-libp2p records pass the same bounded, one-line handler as a
    node's (warnings and up; a contained failure's traceback cut to one line), not raw tracebacks."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.Formatter.converter = time.gmtime
    route_libp2p_logs()


class _OneLineFormatter(logging.Formatter):
    """One record, one terminal line: py-libp2p's dial failures span lines (peer, protocols, state)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(super().format(record).split())


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()

"""`ha-sequencer bench …`: the benchmarks (figures for notes and comparisons; never asserted in tests)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import typer

from ha_sequencer.bench.guard import bench_guard_run
from ha_sequencer.bench.pipeline import run_pipeline
from ha_sequencer.cli_options import JsonObject
from ha_sequencer.errors import EXIT_FAILURE_FOUND, InputError

_ENV = "HA_SEQUENCER_"

app = typer.Typer(
    help="Benchmarks (figures for notes and comparisons; never asserted in tests).", no_args_is_help=True
)


@app.command("guard")
def guard(
    store: str = typer.Option("sqlite", "--store", help="sqlite or postgres."),
    nodes: int = typer.Option(3, "--nodes", min=1, help="Racing nodes (OS processes)."),
    duties: int = typer.Option(2000, "--duties", min=1, help="Duties per node (the same duties for all)."),
    db: str | None = typer.Option(
        None,
        "--db",
        envvar=f"{_ENV}BENCH_DB",
        help="Store URL (default: a temp SQLite file, or a temp database on "
        "HA_TEST_DATABASE_URL / 127.0.0.1:5432).",
    ),
    p_same: float = typer.Option(
        0.5, "--p-same", min=0.0, max=1.0, help="Probability a racer picks the shared digest."
    ),
    private_pg: bool = typer.Option(
        False,
        "--private-pg",
        help="postgres: a throwaway local cluster with fsync off (isolates the guard's cost from the disk); "
        "with --chaos, one with fsync on that the torture crashes (pg_ctl stop -m immediate) and restarts.",
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        envvar="HA_RACE_SEED",
        show_default=False,
        help="Seed of the racers' choices (default: random; printed either way, to replay a run).",
    ),
    chaos: bool = typer.Option(
        False,
        "--chaos",
        help="Guard torture: racers killed -9 and paused at random points (the guard's fault points "
        "included) and restarted, PostgreSQL connections dropped; audit released signatures vs the store.",
    ),
    interval_ms: float = typer.Option(
        0.0,
        "--interval-ms",
        min=0.0,
        help="Pace the racers: all start duty i at the same moment, one duty per interval (0: as fast as "
        "they can, a throughput run).",
    ),
    independent: bool = typer.Option(
        False, "--independent", help="Each racer its own attester: no contested duty (the control)."
    ),
    as_json: JsonObject = False,
) -> None:
    """Race N guarded signers on M duties; report outcomes, claim latency and guarded vs raw signing rate."""
    if store not in ("sqlite", "postgres"):
        raise InputError(f"--store: expected sqlite or postgres, got {store!r}")
    if private_pg and store != "postgres":
        raise InputError("--private-pg: only with --store postgres")
    if chaos:
        from ha_sequencer.bench.guard import temporary_store
        from ha_sequencer.bench.torture import torture

        if private_pg:
            from ha_sequencer.bench.torture import crash_and_restart, durable_private_pg

            with durable_private_pg() as pg, temporary_store(store, pg.create_database("torture")) as url:
                result = torture(
                    url, nodes=nodes, duties=duties, seed=seed, crash_store=lambda: crash_and_restart(pg)
                )
        else:
            with temporary_store(store, db) as url:
                result = torture(url, nodes=nodes, duties=duties, seed=seed)
        if as_json:
            typer.echo(json.dumps(result))
        else:
            for k, v in result.items():
                typer.echo(f"{k:>18}: {v}")
        if result["equivocations"] or result["releasedNotInStore"] or result["signaturesNotOverDigest"]:
            raise typer.Exit(EXIT_FAILURE_FOUND)
        return
    result = bench_guard_run(
        store,
        nodes,
        duties,
        db,
        p_same=p_same,
        private_pg=private_pg,
        seed=seed,
        interval_ms=interval_ms,
        independent=independent,
    )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k:>18}: {v}")
    if result["equivocations"] or result["unsigned_duties"]:
        raise typer.Exit(EXIT_FAILURE_FOUND)


@app.command("pipeline")
def pipeline(
    committee: int = typer.Option(4, "--committee", help="Committee size (= validators), e.g. 4, 16, 48."),
    slots: int = typer.Option(20, "--slots", help="Slots to measure (after 2 warm-up slots)."),
    nodes: int = typer.Option(4, "--nodes", help="Node processes; validators are spread across them."),
    slot_duration: int = typer.Option(4, "--slot-duration", help="Seconds per slot."),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON report."),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (node logs)."),
    ha_db: str = typer.Option(
        "", "--ha-db", help="Duty store URL for every node (default: SQLite per node)."
    ),
) -> None:
    """Proposal → quorum → L1 latencies per slot on a local network, and RSS/CPU per node process."""
    workdir = Path(tempfile.mkdtemp(prefix="hasq-bench-pipeline-"))
    report = run_pipeline(
        committee=committee,
        slots=slots,
        nodes=min(nodes, committee),
        slot_duration=slot_duration,
        workdir=workdir,
        ha_db=ha_db or None,
    )
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        report["workdir"] = str(workdir)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"committee {committee}, {report['nodes']} node processes, {slots} slots of {slot_duration} s: "
        f"{report['blocks']}/{slots} slots with a block"
    )
    for stage, s in report["summary"].items():
        typer.echo(f"  {stage:18} n={s['n']:3}  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms")
    for name, p in report["processes"].items():
        typer.echo(f"  {name}: RSS {p['rss_mb']} MB, CPU {p['cpu_percent']} %")


@app.command("scale")
def scale(
    identities: str = typer.Option(
        "1,10,50", "--identities", help="Identities per HA node, one network per value (comma separated)."
    ),
    committee: int = typer.Option(48, "--committee", min=1, help="Committee size; other nodes fill it."),
    slots: int = typer.Option(20, "--slots", min=1, help="Slots measured per point (after 2 warm-up slots)."),
    store: str = typer.Option("sqlite", "--store", help="The HA fleet's duty store: sqlite or postgres."),
    slot_duration: int = typer.Option(4, "--slot-duration", min=1, help="Seconds per slot."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of every figure against K."),
    as_json: JsonObject = False,
) -> None:
    """A 3-node HA fleet running K identities each: CPU, RSS, guard calls, latency, quorum, misses vs K."""
    from ha_sequencer.bench.scale import plot_scale, run_scale

    if store not in ("sqlite", "postgres"):
        raise InputError(f"--store: expected sqlite or postgres, got {store!r}")
    try:
        ks = [int(x) for x in identities.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--identities: expected comma-separated integers, got {identities!r}") from None
    if not ks or min(ks) < 1:
        raise InputError(f"--identities: expected positive integers, got {identities!r}")
    if plot is not None and not plot.parent.is_dir():
        raise InputError(f"--plot: directory {plot.parent} does not exist")
    report = run_scale(
        identities=ks, committee=committee, slots=slots, store=store, slot_duration=slot_duration
    )
    if plot is not None:
        plot_scale(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for p in report["points"]:
            typer.echo(
                f"K={p['identities']:>3}: missed {p['missed_duties']}/{p['ha_duties']}, HA CPU "
                f"{p['ha_cpu_percent_mean']} %, RSS ≤ {p['ha_rss_mb_max']} MB, guard calls/slot "
                f"{p['ha_guard_calls_per_slot_mean']}, duty latency p50 {p['fleet_duty_latency_p50_ms']} ms "
                f"p99 {p['fleet_duty_latency_p99_ms']} ms, guard p99 {p['ha_guard_p99_ms_max']} ms, "
                f"quorum p50 {p['quorum_p50_ms']} ms"
            )
    if any(p["missed_duties"] for p in report["points"]):
        raise typer.Exit(EXIT_FAILURE_FOUND)

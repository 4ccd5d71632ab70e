"""The `ha-sequencer` entry point: one typer app composed of each package's commands."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ha_sequencer import __version__
from ha_sequencer.errors import HASequencerError

app = typer.Typer(
    name="ha-sequencer",
    help="A rollup sequencer running one identity on several nodes: no missed duty, no double-sign.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ha-sequencer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """ha-sequencer."""


def _register() -> None:
    # Each package owns its commands; this file only composes them, in the operator's order.
    from ha_sequencer.bench.commands import app as bench_app
    from ha_sequencer.chaos.commands import chaos
    from ha_sequencer.devnet.commands import app as devnet_app
    from ha_sequencer.devnet.commands import failover_test
    from ha_sequencer.ha.commands import app as ha_db_app
    from ha_sequencer.keys.commands import app as keys_app
    from ha_sequencer.l1.commands import app as l1_app
    from ha_sequencer.monitoring.commands import balance, monitor
    from ha_sequencer.node.commands import app as node_app

    app.add_typer(keys_app, name="validator-keys")
    app.add_typer(node_app, name="node")
    app.add_typer(devnet_app, name="devnet")
    app.command("failover-test")(failover_test)
    app.command("chaos")(chaos)
    app.command("balance")(balance)
    app.command("monitor")(monitor)
    app.add_typer(ha_db_app, name="ha-db")
    app.add_typer(l1_app, name="l1")
    app.add_typer(bench_app, name="bench")


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; project errors become one red line on stderr and their exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except HASequencerError as exc:
        _err.print("error:", style="bold red", end=" ")
        _err.print(str(exc), markup=False, highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()

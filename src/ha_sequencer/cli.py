"""The `ha-sequencer` entry point: one typer app composed of each package's commands."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.console import Console

from ha_sequencer import __version__
from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError
from ha_sequencer.redact import scrub_text

DEBUG_ENV = "HA_SEQUENCER_DEBUG"

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
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar=DEBUG_ENV,
        help="On an unexpected error, print its traceback (URLs in it still redacted).",
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


def _urls(argv: list[str]) -> list[str]:
    """Every URL the operator handed us (arguments and our environment): their secrets are never echoed."""
    words = [*argv, *(v for k, v in os.environ.items() if k.startswith("HA_SEQUENCER_"))]
    urls: list[str] = []
    for word in words:
        value = word.partition("=")[2] if word.startswith("--") and "=" in word else word
        if "://" in value:
            urls.append(value)
    return urls


def _project_error(exc: BaseException) -> HASequencerError | None:
    """The project error inside `exc` (itself, or the first in an exception group a task nursery raised)."""
    if isinstance(exc, HASequencerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            found = _project_error(inner)  # pyright: ignore[reportUnknownArgumentType]
            if found is not None:
                return found
    return None


def _fail(message: str, exit_code: int, urls: list[str]) -> None:
    _err.print("error:", style="bold red", end=" ")
    _err.print(scrub_text(message, urls), markup=False, highlight=False, soft_wrap=True)
    sys.exit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: every error becomes one scrubbed line on stderr and an exit code (1, or 2 for usage).

    Project errors carry their own message and code; anything else is an unexpected failure (exit 1) shown
    as its type and first line, with its traceback only under `--debug`. Nothing printed holds a credential
    of a URL given on the command line or in the environment.
    """
    args = sys.argv[1:] if argv is None else argv
    urls = _urls(args)
    try:
        app(args=args, standalone_mode=True)
    except Exception as exc:  # the one place every command's errors end: nothing escapes unscrubbed
        project = _project_error(exc)
        if project is not None:
            _fail(str(project), project.exit_code, urls)
        if "--debug" in args or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes"):
            _err.print(
                scrub_text("".join(traceback.format_exception(exc)), urls), markup=False, highlight=False
            )
        leaf = _first_leaf(exc)
        first = (str(leaf).strip().splitlines() or [""])[0]
        _fail(f"unexpected {type(leaf).__name__}: {first}", EXIT_FAILURE_FOUND, urls)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested exception groups (a Trio nursery's): the one saying what failed."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    main()

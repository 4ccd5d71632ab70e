"""The process that owns a devnet: starts it, runs the L2 load, the watcher and the live view, and stops
everything on Ctrl-C / SIGTERM (no orphans: nodes by pid from the state file, anvil dies with us regardless).

`--detach` re-runs this process headless in its own session (output to DIR/devnet.log) and returns once the
devnet is ready, so scripts and CI can drive it with `devnet status`, `failover-test` and `devnet down`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from ha_sequencer.devnet.load import TxLoad
from ha_sequencer.devnet.orchestrator import (
    Devnet,
    DevnetConfig,
    cli_command,
    drop_inherited_secrets,
    log_tail,
)
from ha_sequencer.devnet.prometheus import FiringAlert
from ha_sequencer.devnet.slasher import SlashingReporter, devnet_reporter_account
from ha_sequencer.devnet.state import DevnetError, load_state, pid_alive, state_path
from ha_sequencer.devnet.view import Monitor, alert_changes, render, slot_line, status_urls
from ha_sequencer.devnet.watcher import Watcher
from ha_sequencer.errors import InputError
from ha_sequencer.l1.client import RollupClient

REFRESH_S = 1.0
DETACH_TIMEOUT_S = 300.0
SUPERVISOR_LOG = "devnet.log"
HA_DB_STDIN_FLAG = "--ha-db-stdin"  # the detached supervisor reads its duty store URL from stdin


class _Stop(BaseException):
    """SIGTERM arrived.

    A BaseException, like KeyboardInterrupt: raised from the signal handler into whatever runs, it must not
    be swallowed by an `except Exception` there (the L1 client's retry loop caught it as an RPC failure and
    the supervisor went on polling a stopped devnet).
    """


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop()


def run(config: DevnetConfig, *, live: bool, watch: bool = True, console: Console | None = None) -> None:
    """Start a devnet and keep it running until Ctrl-C or SIGTERM; stop everything on the way out."""
    console = console or Console()

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    # Ctrl-C must stop the devnet even when started from a shell that ignores SIGINT for background jobs
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_hup = signal.signal(signal.SIGHUP, _on_sigterm)  # a closed terminal stops the devnet cleanly too
    devnet = Devnet(config, say=say)
    load = watcher = monitor = None
    try:
        state = devnet.up()
        say("node /status URLs:")
        for line in status_urls(state):
            say(line)
        say(f"L1 RPC {state.l1_rpc_url}  rollup {state.rollup}  duty store {state.ha_db}")
        monitor = Monitor(state, nodes=devnet.current_nodes)
        load = TxLoad(
            monitor.params,
            devnet.users,
            lambda: [n.url for n in devnet.current_nodes() if pid_alive(n.pid)],
            rate=config.load_rate,
        )
        load.start()
        monitor.load = load
        if watch:
            l1 = RollupClient([state.l1_rpc_url], state.rollup)
            reporter = SlashingReporter(l1, devnet_reporter_account())
            watcher = Watcher(
                monitor.params,
                [n.multiaddr for n in state.nodes],
                key_dir=Path(state.directory),
                on_equivocation=reporter,  # the proof of any equivocation it sees goes to L1
            )
            try:
                watcher.start()
                monitor.watcher = watcher
            except RuntimeError as exc:
                say(f"equivocation watcher not running: {exc}")
                watcher = None
        say("devnet running; stop with Ctrl-C or `ha-sequencer devnet down --dir " + state.directory + "`")
        if live:
            _live_loop(devnet, monitor, console)
        else:
            _headless_loop(devnet, monitor, say)
    except (KeyboardInterrupt, _Stop):
        say("stopping the devnet …")
    finally:
        # a second Ctrl-C must not abandon the clean-up half way
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            for part in (load, watcher):
                if part is not None:
                    with contextlib.suppress(Exception):
                        part.stop()
            if monitor is not None:
                monitor.close()
            devnet.down()
            say("devnet stopped")
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGHUP, previous_hup)


def _live_loop(devnet: Devnet, monitor: Monitor, console: Console) -> None:
    with Live(console=console, refresh_per_second=2, screen=False) as live:
        while True:
            devnet.reap()
            live.update(render(monitor, monitor.snapshot()))
            time.sleep(REFRESH_S)


def _headless_loop(devnet: Devnet, monitor: Monitor, say) -> None:
    printed = -1
    firing: dict[str, FiringAlert] = {}
    primary: str | None = None
    while True:
        devnet.reap()
        snap = monitor.snapshot(rows=3)
        if snap.store_cluster is not None and snap.store_cluster.split(" ", 1)[0] != primary:
            primary = snap.store_cluster.split(" ", 1)[0]  # a line when the primary changes
            say("duty store cluster: " + snap.store_cluster)
        if snap.alerts is not None:
            firing, lines = alert_changes(firing, snap.alerts)
            for line in lines:
                say(line)
        for row in reversed(snap.rows):
            # a slot is final once the next one started (L1 accepts a proposal only in its own slot)
            if not row.current and row.facts.slot > printed:
                say(slot_line(monitor, row))
                printed = row.facts.slot
        time.sleep(REFRESH_S)


def detach(config: DevnetConfig, argv: list[str], say, *, ha_db: str | None = None) -> None:
    """Run `devnet up --headless …` in its own session and wait until its devnet is ready.

    The duty store URL (it may hold a password) goes to the supervisor on its stdin: never in its argv,
    never in its environment, where every process it starts would inherit it.
    """
    directory = Path(config.directory).resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = directory / SUPERVISOR_LOG
    drop_inherited_secrets()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*cli_command(), "devnet", "up", "--headless", *argv, *([HA_DB_STDIN_FLAG] if ha_db else [])],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(f"{ha_db or ''}\n".encode())
    deadline = time.monotonic() + DETACH_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise DevnetError(
                f"the devnet supervisor exited ({proc.returncode}); {log_path}:\n{log_tail(log_path)}"
            )
        if state_path(directory).exists():
            with contextlib.suppress(InputError):
                state = load_state(directory)
                if state.ready and state.supervisor_pid == proc.pid:
                    break
        if time.monotonic() > deadline:
            proc.terminate()
            raise DevnetError(f"the devnet was not ready after {DETACH_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.5)
    say(f"devnet running in the background (supervisor pid {proc.pid}, log {log_path})")
    for line in status_urls(state):
        say(line)
    say(f"stop it with `ha-sequencer devnet down --dir {directory}`")

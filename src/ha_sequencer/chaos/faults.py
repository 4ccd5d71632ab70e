"""The fault mechanisms: real signals to real node processes, a real lock on the duty store.

Each fault is a start and an end action; `FaultRunner` performs them at their wall-clock times and records,
per HA node, the intervals it was impaired (for the audit's eligibility and the timeline), so what the audit
judges is what happened, not what was planned. A node fault is skipped (and recorded as skipped) when no other
HA node is up at that moment: the run never takes every HA node out unless told to.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ha_sequencer.chaos.schedule import Fault
from ha_sequencer.devnet.orchestrator import node_env, node_status
from ha_sequencer.devnet.state import (
    DevnetError,
    DevnetState,
    NodeEntry,
    pid_alive,
    signal_pid,
    update_node_pid,
    wait_gone,
)
from ha_sequencer.errors import InputError
from ha_sequencer.ha.faults import FAULT_ENV, MID_DUTY_POINTS
from ha_sequencer.localnet.proxy import TcpProxy

log = logging.getLogger(__name__)

SIGTERM_WAIT_S = 20.0
HEALTHY_POLL_S = 0.5
ROLLING_RESTART_S = 90.0
STORE_LOCK_WAIT_S = 30.0
ARM_TIMEOUT_S = 12.0  # an armed node whose guard reaches no fault point by then is SIGKILLed


def _with_l1(argv: list[str], url: str) -> list[str]:
    """`argv` with its --l1-rpc-urls value replaced by `url`."""
    out = list(argv)
    out[out.index("--l1-rpc-urls") + 1] = url
    return out


@dataclass
class Impairment:
    """An interval (wall-clock seconds) during which `node` (None: every HA node) suffered fault `kind`."""

    fault: int
    kind: str
    node: str | None
    start: float
    end: float | None = None
    detail: str = ""

    def to_json(self, slot_at: Callable[[float], int]) -> dict[str, Any]:
        """JSON form with slots."""
        return {
            "fault": self.fault,
            "kind": self.kind,
            "node": self.node,
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "startSlot": slot_at(self.start),
            "endSlot": None if self.end is None else slot_at(self.end),
            "detail": self.detail,
        }


@dataclass
class FaultRunner:
    """Applies faults to the devnet's HA nodes and undoes them; `restore_all` leaves every node running."""

    state: DevnetState
    say: Callable[[str], None] = print
    impairments: list[Impairment] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    _paused: dict[str, Impairment] = field(default_factory=dict)
    _down: dict[str, Impairment] = field(default_factory=dict)  # killed/terminated, not restarted yet
    _recovering: dict[str, Impairment] = field(default_factory=dict)  # restarted, not healthy yet
    _store_cut: tuple[threading.Event, threading.Thread] | None = None  # the lock holder and its release
    _terminating: dict[str, tuple[Impairment, float]] = field(default_factory=dict)  # SIGTERM sent, not gone
    _proxies: dict[str, TcpProxy] = field(default_factory=dict)  # HA node → its L1 proxy
    _original_argv: dict[str, list[str]] = field(default_factory=dict)
    _l1_cut: dict[str, Impairment] = field(default_factory=dict)
    _armed: dict[str, tuple[Path, Fault, float]] = field(
        default_factory=dict
    )  # node → (file, fault, deadline)
    _extra_env: dict[str, str] = field(default_factory=dict)
    _restart_at: dict[str, float] = field(default_factory=dict)  # killed inside a duty: restart time

    @property
    def arm_dir(self) -> Path:
        """Where the files that arm a node's guard fault points live."""
        return Path(self.state.directory) / "chaos-arm"

    def __post_init__(self) -> None:
        if self.state.ha_db_kind != "sqlite":
            self._store_kind_error = (
                "the store fault is implemented for the SQLite duty store only (devnet up without --ha-db)"
            )
        else:
            self._store_kind_error = ""

    def check_supported(self, kinds: tuple[str, ...]) -> None:
        """InputError when a requested fault class cannot run on this devnet."""
        if "store" in kinds and self._store_kind_error:
            raise InputError(f"--faults store: {self._store_kind_error}")

    # --- L1 behind a proxy per node ------------------------------------------------------------------------

    def prepare(self, *, l1_proxies: bool, fault_points: bool) -> None:
        """Rolling restart of the HA nodes, one at a time and each healthy before the next (so the identity
        keeps signing meanwhile): each behind its own L1 proxy, and/or with the guard's fault points armable
        by a file (`HA_GUARD_FAULTS=point:kill!DIR/point.{pid}` and `--allow-fault-injection`)."""
        if not (l1_proxies or fault_points):
            return
        url = urlsplit(self.state.l1_rpc_url)
        if fault_points:
            self.arm_dir.mkdir(parents=True, exist_ok=True)
            spec = ",".join(f"{p}:kill!{self.arm_dir}/{p}.{{pid}}" for p in MID_DUTY_POINTS)
            self._extra_env = {FAULT_ENV: spec}
        for entry in self.state.ha_nodes:
            self._original_argv[entry.name] = list(entry.argv)
            argv = list(entry.argv)
            if l1_proxies:
                proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 8545)
                self._proxies[entry.name] = proxy
                argv = _with_l1(argv, proxy.url)
            if fault_points:
                argv.append("--allow-fault-injection")
            self._rolling_restart(entry, argv)
        self.say(
            f"HA nodes restarted{' behind their own L1 proxies' if l1_proxies else ''}"
            f"{' with armable guard fault points' if fault_points else ''}"
        )

    def unprepare(self) -> None:
        """Back to the devnet's own command lines (rolling restart), then close the proxies."""
        self._extra_env = {}
        for name, argv in self._original_argv.items():
            self._rolling_restart(self.node(name), argv)
        for proxy in self._proxies.values():
            proxy.close()
        self._proxies.clear()
        self._original_argv.clear()

    def close_proxies(self) -> None:
        """Close the proxies without restarting (the devnet is going down)."""
        for proxy in self._proxies.values():
            proxy.close()
        self._proxies.clear()

    def _rolling_restart(self, entry: NodeEntry, argv: list[str]) -> None:
        if pid_alive(entry.pid):
            signal_pid(entry.pid, signal.SIGTERM, entry.data_dir)
            if not wait_gone(entry.pid, SIGTERM_WAIT_S):
                signal_pid(entry.pid, signal.SIGKILL, entry.data_dir)
                wait_gone(entry.pid, 5.0)
        entry.argv = argv
        proc = self._spawn(entry)
        entry.pid = proc.pid
        update_node_pid(Path(self.state.directory), entry.name, proc.pid)
        deadline = time.monotonic() + ROLLING_RESTART_S
        while node_status(entry, timeout=1.0)[0] != 200:
            if time.monotonic() > deadline or not pid_alive(entry.pid):
                raise DevnetError(f"node {entry.name} not healthy after its restart behind the L1 proxy")
            time.sleep(HEALTHY_POLL_S)

    # --- state ---------------------------------------------------------------------------------------------

    def node(self, name: str) -> NodeEntry:
        """The current entry of an HA node."""
        return self.state.node(name)

    def down(self) -> set[str]:
        """HA nodes without a process, or restarted and not healthy yet."""
        return set(self._down) | set(self._recovering)  # a node stopping after SIGTERM is still connected

    def impaired(self) -> set[str]:
        """HA nodes that cannot act now: down, paused, without L1, or restarted and not healthy yet."""
        out = set(self._paused) | set(self._down) | set(self._recovering) | set(self._l1_cut)
        return out | set(self._armed) | set(self._terminating)

    # --- start and end -------------------------------------------------------------------------------------

    def start(self, f: Fault) -> bool:
        """Begin fault `f`; False when skipped (it would take the last HA node out)."""
        if f.node is not None:
            others = [n.name for n in self.state.ha_nodes if n.name != f.node]
            if f.node in self.impaired() or all(o in self.impaired() for o in others):
                self.skipped.append({**f.to_json(), "why": "the target or every other HA node is impaired"})
                return False
        now = time.time()
        match f.kind:
            case "kill" if f.point and self._extra_env:
                self._arm(f, now)
            case "kill" | "term":
                assert f.node is not None
                self._stop(f, now)
            case "pause":
                assert f.node is not None
                entry = self.node(f.node)
                if not signal_pid(entry.pid, signal.SIGSTOP, entry.data_dir):
                    self.skipped.append({**f.to_json(), "why": "not running"})
                    return False
                imp = Impairment(f.index, "pause", f.node, now, detail=f"SIGSTOP for {f.hold_s:.1f} s")
                self._paused[f.node] = imp
                self.impairments.append(imp)
            case "store":
                if self._store_cut is not None:  # the previous outage has not ended yet
                    self.skipped.append({**f.to_json(), "why": "the store is already cut"})
                    return False
                self._cut_store(f, now)
            case "l1":
                assert f.node is not None
                proxy = self._proxies[f.node]
                if f.delay_s:
                    proxy.slow(f.delay_s)
                else:
                    proxy.cut()
                how = f"slow ({f.delay_s:.2f} s per chunk)" if f.delay_s else "down"
                imp = Impairment(f.index, "l1", f.node, now, detail=f"L1 {how}")
                self._l1_cut[f.node] = imp
                self.impairments.append(imp)
            case _:
                raise InputError(f"fault {f.kind!r} is not implemented")
        self.say(f"fault {f.index}: {f.kind} {f.node or 'duty store'} (holds {f.hold_s:.1f} s)")
        return True

    def end(self, f: Fault) -> None:
        """End fault `f` (restart, SIGCONT, store back)."""
        match f.kind:
            case "kill" | "term":
                assert f.node is not None
                if f.node in self._armed or f.node in self._restart_at:
                    return  # a kill inside a duty restarts `hold_s` after the death (poll)
                if f.node in self._terminating:
                    self._restart_at[f.node] = 0.0  # restart as soon as it has exited (poll)
                    return
                self._restart(f.node)
            case "pause":
                assert f.node is not None
                imp = self._paused.pop(f.node, None)
                if imp is not None:
                    entry = self.node(f.node)
                    signal_pid(entry.pid, signal.SIGCONT, entry.data_dir)
                    imp.end = time.time()
            case "store":
                self._restore_store()
            case "l1":
                assert f.node is not None
                self._restore_l1(f.node)
            case _:
                raise InputError(f"fault {f.kind!r} is not implemented")

    def _restore_l1(self, name: str) -> None:
        imp = self._l1_cut.pop(name, None)
        if imp is not None:
            self._proxies[name].restore()
            imp.end = time.time()

    def poll(self) -> None:
        """Note armed nodes that died; close the interval of each restarted node once its /status is 200."""
        self._check_armed()
        self._check_terminating()
        for name, when in list(self._restart_at.items()):
            if time.time() >= when and name in self._down:
                del self._restart_at[name]
                self._restart(name)
        for name, imp in list(self._recovering.items()):
            entry = self.node(name)
            if not pid_alive(entry.pid):
                imp.detail += "; exited after restart"
                del self._recovering[name]
                imp.end = time.time()
                gone = Impairment(imp.fault, imp.kind, name, time.time(), detail="exited after restart")
                self._down[name] = gone
                self.impairments.append(gone)
                continue
            code, _ = node_status(entry, timeout=1.0)
            if code == 200:
                imp.end = time.time()
                del self._recovering[name]

    def restore_all(self) -> None:
        """Undo everything still in effect: disarm, SIGCONT, store back, restart stopped nodes."""
        for path, _f, _deadline in self._armed.values():
            path.unlink(missing_ok=True)
        self._armed.clear()
        self._restart_at.clear()
        for name in list(self._paused):
            imp = self._paused.pop(name)
            entry = self.node(name)
            signal_pid(entry.pid, signal.SIGCONT, entry.data_dir)
            imp.end = time.time()
        self._restore_store()
        for name in list(self._l1_cut):
            self._restore_l1(name)
        while self._terminating:
            self._check_terminating()
            time.sleep(0.1)
        for name in list(self._down):
            self._restart(name)

    # --- mechanisms ----------------------------------------------------------------------------------------

    def _stop(self, f: Fault, now: float) -> None:
        assert f.node is not None
        entry = self.node(f.node)
        signum = signal.SIGKILL if f.kind == "kill" else signal.SIGTERM
        if not signal_pid(entry.pid, signum, entry.data_dir):
            raise DevnetError(f"node {entry.name} (pid {entry.pid}) is not running")
        imp = Impairment(f.index, f.kind, f.node, now, detail=signum.name)
        self.impairments.append(imp)
        if f.kind == "term":
            # a clean stop finishes the duty in hand (seconds, more with the store cut): the loop must not
            # wait for it, or every other fault's timing slips; poll() notes the exit
            self._terminating[f.node] = (imp, now + SIGTERM_WAIT_S)
            return
        if not wait_gone(entry.pid, 5.0):
            raise DevnetError(f"node {entry.name} did not exit after {signum.name}")
        self._gone(entry, imp)

    def _gone(self, entry: NodeEntry, imp: Impairment) -> None:
        update_node_pid(Path(self.state.directory), entry.name, None)
        entry.pid = None
        self._down[entry.name] = imp

    def _check_terminating(self) -> None:
        for name, (imp, deadline) in list(self._terminating.items()):
            entry = self.node(name)
            if not wait_gone(entry.pid, 0.02):
                if time.time() < deadline:
                    continue
                signal_pid(entry.pid, signal.SIGKILL, entry.data_dir)
                wait_gone(entry.pid, 5.0)
                imp.detail += f"; no exit {SIGTERM_WAIT_S:.0f} s after SIGTERM: SIGKILL"
            del self._terminating[name]
            imp.detail += f"; exited after {time.time() - imp.start:.1f} s"
            self._gone(entry, imp)

    def _restart(self, name: str) -> None:
        imp = self._down.pop(name, None)
        if imp is None:
            return
        entry = self.node(name)
        proc = self._spawn(entry)
        entry.pid = proc.pid
        update_node_pid(Path(self.state.directory), name, proc.pid)
        imp.detail = "; ".join(filter(None, [imp.detail, f"restarted after {time.time() - imp.start:.1f} s"]))
        self._recovering[name] = imp  # down until healthy: the interval ends in poll()

    def _spawn(self, entry: NodeEntry) -> subprocess.Popen[bytes]:
        with open(entry.log, "ab") as log_file:
            return subprocess.Popen(
                entry.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**node_env(entry, self.state.ha_db_url()), **self._extra_env},
                start_new_session=True,
            )

    def _arm(self, f: Fault, now: float) -> None:
        """Make the node's guard kill it at `f.point` of its next duty (SIGKILL after ARM_TIMEOUT_S)."""
        assert f.node is not None
        entry = self.node(f.node)
        path = self.arm_dir / f"{f.point}.{entry.pid}"
        path.touch()
        self._armed[f.node] = (path, f, now + ARM_TIMEOUT_S)

    def _check_armed(self) -> None:
        for name, (path, f, deadline) in list(self._armed.items()):
            entry = self.node(name)
            died = wait_gone(entry.pid, 0.05)
            if not died and time.time() < deadline:
                continue
            del self._armed[name]
            path.unlink(missing_ok=True)
            if died:
                detail = f"killed by its guard at {f.point} (mid-duty)"
            else:
                signal_pid(entry.pid, signal.SIGKILL, entry.data_dir)
                wait_gone(entry.pid, 5.0)
                detail = f"no duty reached {f.point} in time: SIGKILL"
            update_node_pid(Path(self.state.directory), name, None)
            entry.pid = None
            imp = Impairment(f.index, "kill", name, time.time(), detail=detail)
            self._down[name] = imp
            self.impairments.append(imp)
            self._restart_at[name] = time.time() + f.hold_s

    def _cut_store(self, f: Fault, now: float) -> None:
        path = self.state.ha_db_url().removeprefix("sqlite:///")
        imp = Impairment(f.index, "store", None, now, detail="SQLite file locked")
        release = threading.Event()

        def hold_lock() -> None:
            # An exclusive transaction locks the whole file: every node's claim waits out its busy timeout
            # and gets "database is locked" (the store is unreachable: the guard must sign nothing). Taking
            # the lock waits for a write in flight, so it runs in its own thread; the outage starts when the
            # lock is held.
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=STORE_LOCK_WAIT_S, check_same_thread=False
            )
            try:
                conn.execute("BEGIN EXCLUSIVE")
                imp.start = time.time()
                self.impairments.append(imp)
                release.wait()
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                imp.end = time.time()
            except sqlite3.Error as exc:
                log.warning("store fault %d: could not lock the SQLite file: %s", f.index, exc)
            finally:
                conn.close()

        thread = threading.Thread(target=hold_lock, name="store-lock", daemon=True)
        thread.start()
        self._store_cut = (release, thread)

    def _restore_store(self) -> None:
        if self._store_cut is not None:
            release, thread = self._store_cut
            release.set()
            thread.join(STORE_LOCK_WAIT_S + 5)
            self._store_cut = None

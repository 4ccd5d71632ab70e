"""The fault mechanisms: real signals to real node processes, real proxies cut, a real lock on the duty store.

Each fault is a start and an end action; `FaultRunner` performs them at their wall-clock times and records,
per HA node, the intervals it was impaired (for the audit's eligibility and the timeline), so what the audit
judges is what happened, not what was planned. A node fault is skipped (and recorded as skipped) when no other
HA node is up at that moment: the run never takes every HA node out unless told to.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

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
from ha_sequencer.ha.faults import FAULT_ENV, KILL_POINTS
from ha_sequencer.l1.anvil import free_port
from ha_sequencer.localnet.proxy import TcpProxy

T = TypeVar("T")

log = logging.getLogger(__name__)

SIGTERM_WAIT_S = 20.0
HEALTHY_POLL_S = 0.5
ROLLING_RESTART_S = 90.0
STORE_LOCK_WAIT_S = 30.0
ARM_TIMEOUT_S = 12.0  # an armed node whose guard reaches no fault point by then is SIGKILLed
PARTITION_SETTLE_S = 1.0  # after the cut, bytes already read are processed: the count of received starts here
READ_TRIES = 3  # a partitioned node's /status or /metrics, asked again when it does not answer in time
HEAL_WAIT_S = 30.0  # a healed node without a gossip peer again by then is noted and no longer waited for
FAKETIME_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "ensure-faketime.sh"
RECEIVED_METRIC = "hasq_gossip_messages"  # every gossip message a node received, any topic and verdict


def _with_arg(argv: list[str], flag: str, value: str) -> list[str]:
    """`argv` with the value of `flag` replaced by `value` (appended when absent)."""
    if flag not in argv:
        return [*argv, flag, value]
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def faketime_library() -> str:
    """The path of libfaketime.so.1, from the project's own script (which installs Debian's when absent)."""
    if not FAKETIME_SCRIPT.is_file():
        raise InputError("--faults skew: needs libfaketime (Debian's faketime); scripts/ensure-faketime.sh")
    proc = subprocess.run(["bash", str(FAKETIME_SCRIPT)], capture_output=True, text=True, timeout=300)
    lib = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if not lib or not Path(lib[0]).is_file():
        why = proc.stderr.strip()[-300:]
        raise InputError(f"--faults skew: {FAKETIME_SCRIPT} found no libfaketime: {why}")
    return lib[0]


def skew_env(library: str, skew_s: float) -> dict[str, str]:
    """The environment that runs a process with its wall clock off by `skew_s` seconds (libfaketime)."""
    return {
        "LD_PRELOAD": library,
        # A relative offset moves CLOCK_REALTIME (what a host with a wrong clock shows) and shifts
        # CLOCK_MONOTONIC by the same constant, which no interval notices: trio's deadlines stay true.
        # FAKETIME_DONT_FAKE_MONOTONIC=1 is not an option: with it every Python time.sleep (an absolute
        # clock_nanosleep on the monotonic clock) fails with EINVAL, which crashed a skewed node in its
        # store's lock wait (chaos seed 112).
        "FAKETIME": f"{skew_s:+.3f}",
    }


def library_mapped(pid: int | None, library: str) -> bool:
    """Whether the process has `library` mapped (LD_PRELOAD took effect)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def proxied_store_url(url: str, proxy_port: int) -> str:
    """A single-host postgresql:// URL with host and port replaced by the proxy's (user, db, options kept)."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{proxy_port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def store_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of a single-host postgresql:// URL; None for several hosts or a socket directory."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    if "," in hosts or "host=" in parts.query:
        return None
    try:
        host, port = parts.hostname, parts.port or 5432
    except ValueError:
        return None
    return (host, port) if host else None


def gossip_received(entry: NodeEntry) -> int | None:
    """Gossip messages the node has received so far (its /metrics), None when it does not answer."""
    try:
        text = httpx.get(f"{entry.url}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == RECEIVED_METRIC:
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def _answer(read: Callable[[], T | None]) -> T | None:
    """`read()` until it answers, for up to READ_TRIES attempts: a node busy after a SIGCONT or on a loaded
    machine can miss one 1 s timeout, and a missing reading must not pass for a leak (or hide one)."""
    for _ in range(READ_TRIES - 1):
        if (value := read()) is not None:
            return value
    return read()


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
    _store_cut: tuple[threading.Event, threading.Thread] | None = None  # SQLite: the lock holder, its release
    _store_refused: Impairment | None = None  # PostgreSQL: its proxy refuses
    _terminating: dict[str, tuple[Impairment, float]] = field(default_factory=dict)  # SIGTERM sent, not gone
    _proxies: dict[str, TcpProxy] = field(default_factory=dict)  # HA node → its L1 proxy
    _original_argv: dict[str, list[str]] = field(default_factory=dict)
    _l1_cut: dict[str, Impairment] = field(default_factory=dict)
    _armed: dict[str, tuple[Path, Fault, float]] = field(
        default_factory=dict
    )  # node → (file, fault, deadline)
    _extra_env: dict[str, str] = field(default_factory=dict)
    _restart_at: dict[str, float] = field(default_factory=dict)  # killed inside a duty: restart time
    # gossip: HA node → the proxy that took its advertised p2p port, and the proxies of its own dials
    _p2p_inbound: dict[str, TcpProxy] = field(default_factory=dict)
    _p2p_outbound: dict[str, list[TcpProxy]] = field(default_factory=dict)
    _partitioned: dict[str, tuple[Impairment, float, int | None]] = field(
        default_factory=dict
    )  # node → (interval, cut at, messages received PARTITION_SETTLE_S after the cut)
    _healing: dict[str, tuple[Impairment, float]] = field(default_factory=dict)  # healed, no peer yet
    _skewed: dict[str, Impairment] = field(default_factory=dict)
    _node_env: dict[str, dict[str, str]] = field(default_factory=dict)  # skew: libfaketime for one node
    _faketime: str = ""
    _store_proxy: TcpProxy | None = None  # PostgreSQL: the HA nodes reach the store through it
    _store_url: str = ""  # the URL the HA nodes get (the proxy's when there is one)

    @property
    def arm_dir(self) -> Path:
        """Where the files that arm a node's guard fault points live."""
        return Path(self.state.directory) / "chaos-arm"

    def check_supported(self, kinds: tuple[str, ...]) -> None:
        """InputError when a requested fault class cannot run on this devnet; finds libfaketime for skew."""
        one_server = self.state.store_cluster is None and store_endpoint(self.state.ha_db_url()) is not None
        if "store" in kinds and self.state.ha_db_kind != "sqlite" and not one_server:
            raise InputError(
                "--faults store: on PostgreSQL it cuts one server (a single-host postgresql:// URL); "
                "a store cluster's outage is failover-test --store-failover"
            )
        if "skew" in kinds:
            self._faketime = faketime_library()

    # --- L1 behind a proxy per node ------------------------------------------------------------------------

    def prepare(self, *, l1_proxies: bool, fault_points: bool, p2p_proxies: bool, store_proxy: bool) -> None:
        """Rolling restart of the HA nodes, one at a time and each healthy before the next (so the identity
        keeps signing meanwhile): each behind its own L1 proxy; with the guard's fault points armable by a
        file (`HA_GUARD_FAULTS=point:kill!DIR/point.{pid}` and `--allow-fault-injection`); with its gossip
        through proxies both ways (partition); and/or with PostgreSQL behind one proxy (store)."""
        self._store_url = self.state.ha_db_url()
        store_proxy = store_proxy and self.state.ha_db_kind != "sqlite"  # SQLite's outage is a file lock
        if not (l1_proxies or fault_points or p2p_proxies or store_proxy):
            return
        url = urlsplit(self.state.l1_rpc_url)
        if fault_points:
            self.arm_dir.mkdir(parents=True, exist_ok=True)
            spec = ",".join(f"{p}:kill!{self.arm_dir}/{p}.{{pid}}" for p in KILL_POINTS)
            self._extra_env = {FAULT_ENV: spec}
        if store_proxy:
            endpoint = store_endpoint(self._store_url)
            assert endpoint is not None  # check_supported refused the others
            self._store_proxy = TcpProxy(*endpoint)
            self._store_url = proxied_store_url(self._store_url, self._store_proxy.port)
        for entry in self.state.ha_nodes:
            self._original_argv[entry.name] = list(entry.argv)
            argv = list(entry.argv)
            if l1_proxies:
                proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 8545)
                self._proxies[entry.name] = proxy
                argv = _with_arg(argv, "--l1-rpc-urls", proxy.url)
            if fault_points:
                argv.append("--allow-fault-injection")
            take_port = None
            if p2p_proxies:
                argv, take_port = self._gossip_through_proxies(entry, argv)
            self._rolling_restart(entry, argv, take_port)
        self.say(
            "HA nodes restarted"
            + "".join(
                text
                for on, text in (
                    (l1_proxies, " behind their own L1 proxies"),
                    (fault_points, ", guard fault points armable"),
                    (p2p_proxies, ", gossip through proxies both ways"),
                    (self._store_proxy is not None, ", PostgreSQL behind a proxy"),
                )
                if on
            )
        )

    def _gossip_through_proxies(
        self, entry: NodeEntry, argv: list[str]
    ) -> tuple[list[str], Callable[[], None]]:
        """The node's command line with its libp2p listener moved to a private port and every bootstrap peer
        dialled through a proxy of its own; plus the step (run once the node is gone) that puts a proxy on its
        advertised port in front of that listener. Every byte of gossip in or out then crosses a proxy of
        this node: cutting them isolates it both ways while every other link stays as it was."""
        private = free_port()
        outbound: list[TcpProxy] = []
        bootstrap: list[str] = []
        for peer in self.state.nodes:
            if peer.name != entry.name:
                proxy = TcpProxy("127.0.0.1", peer.p2p_port)
                outbound.append(proxy)
                bootstrap.append(f"/ip4/127.0.0.1/tcp/{proxy.port}/p2p/{peer.peer_id}")
        self._p2p_outbound[entry.name] = outbound
        argv = _with_arg(argv, "--p2p-port", str(private))
        # peers are told the advertised port (the inbound proxy), never the private one: a peer that learned
        # the private port by identify could otherwise reconnect around the proxy and leak through a partition
        argv = _with_arg(argv, "--p2p-announce-port", str(entry.p2p_port))
        argv = _with_arg(argv, "--bootstrap-nodes", ",".join(bootstrap))

        def take_port() -> None:
            self._p2p_inbound[entry.name] = TcpProxy("127.0.0.1", private, listen_port=entry.p2p_port)

        return argv, take_port

    def unprepare(self) -> None:
        """Back to the devnet's own command lines (rolling restart), then close the proxies."""
        self._extra_env = {}
        self._store_url = self.state.ha_db_url()
        for name, argv in self._original_argv.items():
            inbound = self._p2p_inbound.pop(name, None)
            self._rolling_restart(self.node(name), argv, inbound.close if inbound is not None else None)
        self.close_proxies()
        self._original_argv.clear()

    def close_proxies(self) -> None:
        """Close the proxies without restarting (the devnet is going down)."""
        proxies = [*self._proxies.values(), *self._p2p_inbound.values()]
        proxies += [p for out in self._p2p_outbound.values() for p in out]
        if self._store_proxy is not None:
            proxies.append(self._store_proxy)
        for proxy in proxies:
            proxy.close()
        self._proxies.clear()
        self._p2p_inbound.clear()
        self._p2p_outbound.clear()
        self._store_proxy = None

    def _rolling_restart(
        self, entry: NodeEntry, argv: list[str], when_gone: Callable[[], None] | None = None
    ) -> None:
        if pid_alive(entry.pid):
            signal_pid(entry.pid, signal.SIGTERM, entry.data_dir)
            if not wait_gone(entry.pid, SIGTERM_WAIT_S):
                signal_pid(entry.pid, signal.SIGKILL, entry.data_dir)
                wait_gone(entry.pid, 5.0)
        if when_gone is not None:
            when_gone()
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

    def unreachable(self) -> set[str]:
        """HA nodes no gossip peer can reach now: down, or partitioned (until a peer is connected again)."""
        return self.down() | set(self._partitioned) | set(self._healing)

    def impaired(self) -> set[str]:
        """HA nodes that cannot act now: down, paused, without L1, cut off, skewed, or restarting."""
        out = set(self._paused) | set(self._down) | set(self._recovering) | set(self._l1_cut)
        out |= set(self._partitioned) | set(self._healing) | set(self._skewed)
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
                if self.store_cut():  # the previous outage has not ended yet
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
            case "partition":
                assert f.node is not None
                for proxy in self._gossip_proxies(f.node):
                    proxy.cut()
                imp = Impairment(f.index, "partition", f.node, now, detail="gossip cut both ways")
                self._partitioned[f.node] = (imp, now, None)
                self.impairments.append(imp)
            case "skew":
                assert f.node is not None
                self._node_env[f.node] = skew_env(self._faketime, f.skew_s)
                detail = f"clock {f.skew_s:+.2f} s (libfaketime)"
                imp = Impairment(f.index, "skew", f.node, now, detail=detail)
                self._skewed[f.node] = imp
                self.impairments.append(imp)
                self._restart_now(f.index, f.node, "restart under libfaketime")
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
            case "partition":
                assert f.node is not None
                self._heal(f.node)
            case "skew":
                assert f.node is not None
                self._unskew(f.node)
            case _:
                raise InputError(f"fault {f.kind!r} is not implemented")

    def _gossip_proxies(self, name: str) -> list[TcpProxy]:
        return [self._p2p_inbound[name], *self._p2p_outbound[name]]

    def _heal(self, name: str) -> None:
        """Restore the node's gossip proxies; note what it received while cut (must be nothing)."""
        held = self._partitioned.pop(name, None)
        if held is None:
            return
        imp, _cut_at, baseline = held
        entry = self.node(name)
        peers = _answer(lambda: node_status(entry, timeout=1.0)[1].get("peers"))
        received = _answer(lambda: gossip_received(entry))
        for proxy in self._gossip_proxies(name):
            proxy.restore()
        got = "?" if baseline is None or received is None else str(received - baseline)
        imp.detail += f"; while cut: {peers} gossip peers at the end, {got} messages received"
        self._healing[name] = (imp, time.time())

    def _restart_now(self, fault: int, name: str, why: str) -> None:
        """SIGTERM a skewed node; poll() restarts it (with its `_node_env`) once gone, without waiting."""
        entry = self.node(name)
        recovering = self._recovering.pop(name, None)
        if recovering is not None:
            recovering.end = time.time()
        if not signal_pid(entry.pid, signal.SIGTERM, entry.data_dir):
            return
        restart = Impairment(fault, "skew", name, time.time(), detail=f"SIGTERM: {why}")
        self.impairments.append(restart)
        self._terminating[name] = (restart, time.time() + SIGTERM_WAIT_S)
        self._restart_at[name] = 0.0

    def _unskew(self, name: str) -> None:
        """Restart the node without libfaketime (or let a pending restart run without it)."""
        self._node_env.pop(name, None)
        imp = self._skewed.pop(name, None)
        if imp is None:
            return
        imp.end = time.time()
        if name in self._down or name in self._terminating:
            imp.detail += "; ended before its restart under libfaketime"
            return
        self._restart_now(imp.fault, name, "restart without libfaketime")

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
                if name in self._skewed and name in self._node_env:
                    loaded = library_mapped(entry.pid, self._faketime)
                    self._skewed[name].detail += "; libfaketime " + ("loaded" if loaded else "NOT loaded")
        for name, (imp, cut_at, baseline) in list(self._partitioned.items()):
            if baseline is None and time.time() >= cut_at + PARTITION_SETTLE_S:
                received = _answer(functools.partial(gossip_received, self.node(name)))
                self._partitioned[name] = (imp, cut_at, received)
        for name, (imp, healed_at) in list(self._healing.items()):
            peers = node_status(self.node(name), timeout=1.0)[1].get("peers") or 0
            waited = time.time() - healed_at
            if peers > 0 or waited > HEAL_WAIT_S:
                imp.end = time.time()
                how = "gossip again" if peers else "no gossip peer"
                imp.detail += f"; {how} {waited:.1f} s after the heal"
                del self._healing[name]

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
        for name in list(self._partitioned):
            self._heal(name)
        for name in list(self._skewed):
            self._unskew(name)
        self._node_env.clear()
        while self._terminating:
            self._check_terminating()
            time.sleep(0.1)
        for name in list(self._down):
            self._restart(name)
        self._restart_at.clear()

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
                env={
                    **node_env(entry, self._store_url or self.state.ha_db_url()),
                    **self._extra_env,
                    **self._node_env.get(entry.name, {}),
                },
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
        if self._store_proxy is not None:
            # refused: the listening socket is closed (new connections get RST); terminated: every
            # established connection is closed, so each backend sees its client gone and ends
            self._store_proxy.refuse()
            imp = Impairment(f.index, "store", None, now, detail="PostgreSQL refused and connections cut")
            self.impairments.append(imp)
            self._store_refused = imp
            return
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

    def store_cut(self) -> bool:
        """Whether a store outage is in effect."""
        return self._store_cut is not None or self._store_refused is not None

    def _restore_store(self) -> None:
        if self._store_refused is not None and self._store_proxy is not None:
            # a new proxy on the same port, to the same server: the URL the nodes hold works again
            old = self._store_proxy
            self._store_proxy = TcpProxy(*old.target, listen_port=old.port)
            self._store_refused.end = time.time()
            self._store_refused = None
        if self._store_cut is not None:
            release, thread = self._store_cut
            release.set()
            thread.join(STORE_LOCK_WAIT_S + 5)
            self._store_cut = None

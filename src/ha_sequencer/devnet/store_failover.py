"""`failover-test --store-failover`: kill -9 the duty store's primary mid-run, against a devnet started with
`--store-cluster`.

Phases, back to back (every slot in exactly one):
  1. before    N slots with the whole cluster up;
  2. failover  from the slot of the kill (the primary's Patroni and PostgreSQL, SIGKILL) until the first
               guarded signature of the HA identity recorded on the new primary;
  3. after     N more slots.

Reported: the time from the kill to the new primary (Patroni's view) and to that first signature (its
`signed_at`, the database clock, on loopback the same clock as ours); the HA identity's missed duties per
phase (as `failover-test` defines them); equivocations seen by the independent watcher on gossip and
`Slashed` events on L1; and for every HA node: the same process before and after (no restart), healthy, and
signing again after the failover (its guard released signatures: `hasq_duties_total` grew). Missed duties
are expected while no primary exists (about ceil(failover / slot)); exit 1 on an equivocation, a slash, no
signature on the new primary, or a node that did not resume.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ha_sequencer.devnet.failover import DEFAULT_SLOTS_PER_PHASE, PhaseReport, evaluate_phase, signed_duties
from ha_sequencer.devnet.orchestrator import node_status
from ha_sequencer.devnet.slots import SlotBook, current_slot, wait_slot_start
from ha_sequencer.devnet.state import DevnetState, NodeEntry, StoreClusterEntry, pid_alive, pid_matches
from ha_sequencer.devnet.watcher import Watcher, slashed_events
from ha_sequencer.errors import InputError
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.store_cluster import (
    DB_NAME,
    PG_USER,
    cluster_members,
    kill_member_processes,
    leader_of,
)

WATCHER_CONNECT_S = 30.0
FAILOVER_TIMEOUT_S = 120.0  # Patroni's ttl (20 s) plus generous slack on 2 loaded cores
POLL_S = 0.05
_FIRST_SIGNATURE = """
SELECT signed_at, slot, duty_type, node_id FROM duties
 WHERE rollup = %s AND attester = %s AND status = 'signed' AND signed_at > %s
 ORDER BY signed_at LIMIT 1
"""


class StoreFailoverError(InputError):
    """The devnet cannot run this test (no store cluster, no primary): exit 2 with what to do."""


@dataclass
class NodeResume:
    """One HA node across the failover."""

    node: str
    pid_before: int | None
    pid_after: int | None
    healthy: bool = False
    signed_at_failover: int = 0
    signed_at_end: int = 0

    @property
    def same_process(self) -> bool:
        """Not restarted: the same pid, still running."""
        return self.pid_before is not None and self.pid_before == self.pid_after

    @property
    def ok(self) -> bool:
        """Same process, healthy, and it released signatures after the failover."""
        return self.same_process and self.healthy and self.signed_at_end > self.signed_at_failover

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "node": self.node,
            "pidBefore": self.pid_before,
            "pidAfter": self.pid_after,
            "sameProcess": self.same_process,
            "healthy": self.healthy,
            "signedAtFailover": self.signed_at_failover,
            "signedAtEnd": self.signed_at_end,
            "resumed": self.ok,
        }


@dataclass
class StoreFailoverReport:
    """The whole run."""

    killed: str
    new_primary: str | None
    killed_at_slot: int
    slot_duration: int
    kill_to_new_primary_s: float | None
    kill_to_first_signature_s: float | None
    first_signature: dict[str, Any] | None
    phases: list[PhaseReport]
    nodes: list[NodeResume]
    watcher_peers: int
    watcher_messages: int
    duration_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def equivocations(self) -> int:
        """Equivocations on gossip plus Slashed events on L1 (must be 0)."""
        return sum(len(p.equivocations) + len(p.slashed) for p in self.phases)

    @property
    def missed(self) -> int:
        """The HA identity's missed duties over the whole run."""
        return sum(len(p.missed) for p in self.phases)

    @property
    def expected_missed_bound(self) -> int | None:
        """ceil(kill → first signature / slot): what a failover of that length may cost."""
        if self.kill_to_first_signature_s is None:
            return None
        return math.ceil(self.kill_to_first_signature_s / self.slot_duration)

    @property
    def ok(self) -> bool:
        """Exit 0 condition."""
        return self.equivocations == 0 and self.first_signature is not None and all(n.ok for n in self.nodes)

    @property
    def failing_rows(self) -> list[str]:
        """One line per failure."""
        rows = [f"{p.name}: EQUIVOCATION {e}" for p in self.phases for e in p.equivocations]
        rows += [f"{p.name}: SLASHED {s}" for p in self.phases for s in p.slashed]
        if self.first_signature is None:
            rows.append(
                f"no guarded signature of the HA identity on a new primary within {FAILOVER_TIMEOUT_S:.0f} s"
            )
        for n in self.nodes:
            if not n.ok:
                rows.append(
                    f"{n.node} did not resume: same process={n.same_process} healthy={n.healthy} "
                    f"signed {n.signed_at_failover} when the store was back, {n.signed_at_end} at the end"
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        """JSON form (`--json`)."""
        return {
            "ok": self.ok,
            "mode": "store-failover",
            "killedPrimary": self.killed,
            "newPrimary": self.new_primary,
            "killedAtSlot": self.killed_at_slot,
            "slotDurationS": self.slot_duration,
            "killToNewPrimaryS": _round(self.kill_to_new_primary_s),
            "killToFirstSignatureS": _round(self.kill_to_first_signature_s),
            "firstSignature": self.first_signature,
            "missedDuties": self.missed,
            "missedBound": self.expected_missed_bound,
            "equivocations": self.equivocations,
            "phases": [p.to_json() for p in self.phases],
            "nodes": [n.to_json() for n in self.nodes],
            "nodesResumedWithoutRestart": all(n.ok for n in self.nodes),
            "watcher": {"peers": self.watcher_peers, "messages": self.watcher_messages},
            "failures": self.failing_rows,
            "notes": self.notes,
            "durationS": round(self.duration_s, 1),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class StoreFailoverTest:
    """Drives one primary kill against the devnet described by `state`."""

    def __init__(
        self,
        state: DevnetState,
        *,
        slots_per_phase: int = DEFAULT_SLOTS_PER_PHASE,
        say: Callable[[str], None] = print,
    ) -> None:
        if slots_per_phase < 1:
            raise InputError(f"--slots: at least 1 slot per phase, got {slots_per_phase}")
        if state.store_cluster is None:
            raise StoreFailoverError(
                f"--store-failover: the devnet at {state.directory} has no store cluster "
                "(start it with `devnet up --store-cluster`, or add --start)"
            )
        if not state.ha_nodes:
            raise InputError(f"the devnet at {state.directory} has no HA nodes")
        self.state = state
        self.cluster: StoreClusterEntry = state.store_cluster
        self.n = slots_per_phase
        self.say = say
        self.client = RollupClient([state.l1_rpc_url], state.rollup)
        self.params = self.client.params()
        self.book = SlotBook(self.client, self.params)
        self.ha = state.ha_attester
        self.l1_start_block = self.client.l1_block_number()

    def run(self) -> StoreFailoverReport:
        """Run the three phases and evaluate them."""
        started = time.monotonic()
        down = [n.name for n in self.state.ha_nodes if not pid_alive(n.pid)]
        if down:
            raise StoreFailoverError(
                f"HA node(s) {', '.join(down)} are not running: restart the devnet first"
            )
        self._check_whole()
        alive = [n for n in self.state.nodes if pid_alive(n.pid)]
        watcher = Watcher(self.params, [n.multiaddr for n in self.state.nodes])
        watcher.start()
        try:
            if not watcher.wait_peers(len(alive), WATCHER_CONNECT_S):
                self.say(f"watcher: only {watcher.peer_count()} of {len(alive)} nodes connected; going on")
            return self._run(watcher, started)
        finally:
            watcher.stop()

    def _run(self, watcher: Watcher, started: float) -> StoreFailoverReport:
        n = self.n
        s0 = current_slot(self.params) + 1
        self.say(f"phase 1 before: slots {s0}…{s0 + n - 1}, the whole store cluster up")
        wait_slot_start(self.params, s0 + n)
        ha_nodes = self.state.ha_nodes
        resume = [NodeResume(e.name, e.pid, None) for e in ha_nodes]
        old = self._kill_primary()
        kill_slot, t_kill, kill_mono = current_slot(self.params), time.time(), time.monotonic()
        self.say(f"phase 2 failover: kill -9 of primary {old} (Patroni and PostgreSQL) in slot {kill_slot}")
        new, to_primary = self._wait_new_primary(old, kill_mono)
        notes: list[str] = []
        first, to_signature = None, None
        if new is None:
            notes.append(f"no new primary within {FAILOVER_TIMEOUT_S:.0f} s")
        else:
            self.say(f"  new primary {new} after {to_primary:.1f} s (Patroni)")
            first = self._first_signature(new, t_kill, kill_mono)
            if first is not None:
                to_signature = first["signedAt"] - t_kill
                self.say(
                    f"  first guarded signature on {new}: {to_signature:.1f} s after the kill "
                    f"(slot {first['slot']} {first['duty']} by {first['node']})"
                )
        for r, entry in zip(resume, ha_nodes, strict=True):
            r.signed_at_failover = signed_duties(entry)  # each must sign more from here on
        after_first = current_slot(self.params) + 1
        last = after_first + n - 1
        self.say(f"phase 3 after: slots {after_first}…{last}")
        wait_slot_start(self.params, last + 1)
        time.sleep(0.5)  # blocks of the last slot land within it
        for r, entry in zip(resume, ha_nodes, strict=True):
            self._check_resumed(r, entry)
        self.book.refresh()
        slashed = slashed_events(self.state.l1_rpc_url, self.state.rollup, self.l1_start_block)

        def phase(name: str, first_slot: int, last_slot: int, extra: list[str]) -> PhaseReport:
            facts = [self.book.facts(s) for s in range(first_slot, last_slot + 1)]
            return evaluate_phase(
                name,
                first_slot,
                last_slot,
                facts,
                self.ha,
                watcher.ledger,
                slashed,
                self.params.slot_start,
                extra,
            )

        phases = [
            phase("before", s0, kill_slot - 1, []),
            phase("failover", kill_slot, after_first - 1, [f"kill -9 of {old}", *notes]),
            phase("after", after_first, last, []),
        ]
        outside = [s for s in slashed if not s0 <= s.slot <= last]
        phases[-1].slashed += [s.to_json() for s in outside]
        return StoreFailoverReport(
            killed=old,
            new_primary=new,
            killed_at_slot=kill_slot,
            slot_duration=self.params.slot_duration,
            kill_to_new_primary_s=to_primary,
            kill_to_first_signature_s=to_signature,
            first_signature=first,
            phases=phases,
            nodes=resume,
            watcher_peers=watcher.peer_count(),
            watcher_messages=watcher.ledger.messages,
            duration_s=time.monotonic() - started,
            notes=notes,
        )

    # --- the kill ------------------------------------------------------------------------------------------

    def _check_whole(self) -> None:
        members = cluster_members(self.cluster.api_ports)
        leader = leader_of(members)
        healthy = [m for m in members if m.state in ("running", "streaming")]
        if leader is None or len(healthy) < len(self.cluster.names):
            # the member killed by an earlier run is not restarted: with one standby left, strict synchronous
            # mode would leave the new primary unable to commit anything
            raise StoreFailoverError(
                f"the store cluster is not whole ({len(healthy)} of {len(self.cluster.names)} members up, "
                f"primary {leader or 'none'}): restart the devnet "
                "(`devnet down`, then `devnet up --store-cluster`)"
            )

    def _kill_primary(self) -> str:
        self._check_whole()
        leader = leader_of(cluster_members(self.cluster.api_ports))
        if leader is None:
            raise StoreFailoverError("the store cluster has no primary: nothing to fail over")
        pid = self.cluster.patroni_pids.get(leader)
        config = str(Path(self.cluster.directory) / leader / "patroni.yml")
        if pid is None or not pid_matches(pid, config):
            raise StoreFailoverError(
                f"primary {leader}: its Patroni (pid {pid}) is not the devnet's any more; restart the devnet"
            )
        kill_member_processes(pid, Path(self.cluster.directory) / leader / "data")
        return leader

    def _wait_new_primary(self, old: str, t0: float) -> tuple[str | None, float | None]:
        ports = [p for name, p in zip(self.cluster.names, self.cluster.api_ports, strict=True) if name != old]
        while time.monotonic() - t0 < FAILOVER_TIMEOUT_S:
            leader = leader_of(cluster_members(ports))
            if leader is not None and leader != old:
                return leader, time.monotonic() - t0
            time.sleep(POLL_S)
        return None, None

    def _first_signature(self, primary: str, t_kill: float, t0: float) -> dict[str, Any] | None:
        """The HA identity's first duty recorded as signed on `primary` after the kill (polled there)."""
        port = self.cluster.pg_ports[self.cluster.names.index(primary)]
        url = f"postgresql://{PG_USER}@127.0.0.1:{port}/{DB_NAME}"
        key = (self.state.rollup.lower(), self.ha.lower(), t_kill)
        while time.monotonic() - t0 < FAILOVER_TIMEOUT_S:
            with contextlib.suppress(psycopg.Error):
                with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                    row = conn.execute(_FIRST_SIGNATURE, key).fetchone()
                if row is not None:
                    signed_at, slot, duty, node = row
                    return {
                        "signedAt": float(signed_at),
                        "slot": int(slot),
                        "duty": str(duty),
                        "node": str(node),
                    }
            time.sleep(POLL_S * 4)
        return None

    def _check_resumed(self, r: NodeResume, entry: NodeEntry) -> None:
        r.pid_after = entry.pid if pid_alive(entry.pid) else None
        code, _ = node_status(entry)
        r.healthy = code == 200
        r.signed_at_end = signed_duties(entry)

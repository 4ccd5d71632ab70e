"""`failover-test`: the guide's "Testing Failover", automated against a running devnet.

Phases, back to back so that every slot from the first to the last belongs to exactly one of them:
  1. baseline  N slots with every node up;
  2. stop      until one HA node is stopped: by default the node holding the identity's next duty (a block
               proposal when the identity proposes soon, else an attestation), SIGTERM like `docker compose
               down`, or SIGKILL with `--kill`, at the moment it holds the duty; with `--kill-at POINT` the
               node's own guard kills it *inside* its next duty, at that fault point (claim held, signed but
               not recorded), so a twin must adopt the claim;
  3. down      N slots with it down;
  4. restart   from restarting it until its /status is ok and it is synced to the L1 tip;
  5. rejoined  N slots, then: healthy, synced, and signing again (its guard released signatures).

A duty of the HA identity, per slot (honest and strict, read from L1):
  - proposal:    the identity is the slot's proposer → its block for that slot must be on L1;
  - attestation: the identity is in the slot's committee and the slot has a block on L1 → its attestation
                 must be in that block. A slot without a block (another proposer missed) has no block to be
                 in: the identity's duty there is to attest the proposal if one was gossiped, checked with
                 the watcher; with no proposal at all there was nothing to attest (counted as such).
Equivocations: two different digests by one attester for one (slot, duty) seen on gossip by the independent
watcher, and `Slashed` events on L1. With `--kill`, every duty the killed node held unfinished (its `signing`
rows, and rows a twin adopted from it, in the duty store) must have been adopted or fulfilled on L1.
Exit 0 only when nothing was missed, nothing equivocated, no held duty was lost, and the node rejoined;
otherwise 1 with the failing rows.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ha_sequencer.devnet.orchestrator import log_tail, node_env, node_status, spawn_node
from ha_sequencer.devnet.slasher import SlashingReporter, devnet_reporter_account
from ha_sequencer.devnet.slots import SlotBook, SlotFacts, current_slot, wait_slot_start
from ha_sequencer.devnet.state import (
    DevnetError,
    DevnetState,
    NodeEntry,
    pid_alive,
    signal_pid,
    update_node_pid,
    wait_gone,
)
from ha_sequencer.devnet.store_rows import StoredDuty, stored_duties
from ha_sequencer.devnet.watcher import (
    ATTESTATION,
    PROPOSAL,
    SignatureLedger,
    SlashedEvent,
    Watcher,
    slashed_events,
)
from ha_sequencer.errors import InputError
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.faults import FAULT_ENV, KILL_POINTS
from ha_sequencer.ha.store import DutyKey
from ha_sequencer.l1.client import RollupClient

DEFAULT_SLOTS_PER_PHASE = 4
WATCHER_CONNECT_S = 30.0
RESTART_TIMEOUT_S = 120.0
SIGTERM_TIMEOUT_S = 20.0
HOLDER_WINDOW = 0.6  # of a slot: how long to look for the duty's row at the start of the chosen slot
SEARCH_EPOCHS = 2  # how far ahead to look for a slot the identity proposes (committees are known that far)
SIGNED_OUTCOMES = ("new_signature", "same_data", "adopted")
KILL_AT_SLOTS = 16  # an armed node whose guard reached no fault point within this many slots is SIGKILLed
ALLOW_FAULTS_FLAG = "--allow-fault-injection"
_DUTIES_METRIC = re.compile(r"^hasq_duties_total\{([^}]*)\}\s+([0-9.e+]+)$", re.M)


@dataclass
class Miss:
    """One duty of the HA identity that is not on L1."""

    slot: int
    duty: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"slot": self.slot, "duty": self.duty, "detail": self.detail}


@dataclass
class PhaseReport:
    """The duties of one phase and what became of them."""

    name: str
    first_slot: int
    last_slot: int
    proposals: int = 0
    proposals_ok: int = 0
    attestations: int = 0
    attestations_ok: int = 0
    blocks: int = 0
    nothing_to_attest: int = 0
    missed: list[Miss] = field(default_factory=list)
    equivocations: list[dict[str, Any]] = field(default_factory=list)
    slashed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def slots(self) -> int:
        """Slots in the phase."""
        return max(0, self.last_slot - self.first_slot + 1)

    @property
    def ok(self) -> bool:
        """Nothing missed, nothing equivocated, nothing slashed."""
        return not self.missed and not self.equivocations and not self.slashed

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "phase": self.name,
            "firstSlot": self.first_slot,
            "lastSlot": self.last_slot,
            "slots": self.slots,
            "blocksOnL1": self.blocks,
            "proposals": {"duties": self.proposals, "onL1": self.proposals_ok},
            "attestations": {"duties": self.attestations, "inL1Block": self.attestations_ok},
            "slotsWithNothingToAttest": self.nothing_to_attest,
            "missed": [m.to_json() for m in self.missed],
            "equivocations": self.equivocations,
            "slashed": self.slashed,
            "notes": self.notes,
            "ok": self.ok,
        }


@dataclass
class RejoinCheck:
    """The restarted node at the end of the test."""

    node: str
    healthy: bool = False
    synced: bool = False
    block_number: int | None = None
    l1_tip: int | None = None
    signed_since_restart: int = 0
    seconds_to_healthy: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Healthy, synced to the L1 tip, and signing again."""
        return self.healthy and self.synced and self.signed_since_restart > 0

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "node": self.node,
            "healthy": self.healthy,
            "synced": self.synced,
            "blockNumber": self.block_number,
            "l1Tip": self.l1_tip,
            "signedSinceRestart": self.signed_since_restart,
            "secondsToHealthy": self.seconds_to_healthy,
            "reasons": self.reasons,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class HeldDuty:
    """A duty the killed node held unfinished (store rows) and what became of it."""

    slot: int
    duty: str
    # the row's status at the end: signed (by a twin that adopted it, or by the killed node itself, which
    # recorded it and died before releasing it: --kill-at after_record) or still signing
    status: str
    adopted_by: str | None
    fulfilled: bool  # on L1: the identity's block for the slot, or its attestation in the slot's block

    @property
    def ok(self) -> bool:
        """Adopted by a twin or fulfilled on L1: the kill cost nothing."""
        return self.adopted_by is not None or self.fulfilled

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "slot": self.slot,
            "duty": self.duty,
            "status": self.status,
            "adoptedBy": self.adopted_by,
            "fulfilled": self.fulfilled,
            "ok": self.ok,
        }


@dataclass
class FailoverReport:
    """The whole run."""

    mode: str
    target: str
    stopped_at_slot: int | None
    stopped_duty: str
    phases: list[PhaseReport]
    rejoin: RejoinCheck
    watcher_peers: int
    watcher_messages: int
    duration_s: float
    # nodes the watcher must see (every node alive at the start): fewer peers = partial coverage = a failure
    watcher_expected: int = 0
    # slashing proofs the watcher submitted to L1 for equivocations it saw
    slashing_submissions: list[dict[str, Any]] = field(default_factory=list)
    # with --kill: duties the stopped node held that a twin adopted (from the duty store's rows)
    adopted_from_target: list[dict[str, Any]] = field(default_factory=list)
    # attester → median seconds into the slot at which the watcher first saw its attestation
    attestation_arrival: dict[str, float] = field(default_factory=dict)
    # attester → [attestations in L1 blocks, committee slots with a block]: the same measure for everyone
    attestation_inclusion: dict[str, list[int]] = field(default_factory=dict)
    # with --kill-at: the guard fault point the node was killed at, and whether its guard reached it
    kill_at: str | None = None
    kill_point_reached: bool | None = None
    # with --kill: every duty the killed node held unfinished, adopted or fulfilled (or lost)
    held_by_target: list[HeldDuty] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Exit 0 condition."""
        return (
            all(p.ok for p in self.phases)
            and self.rejoin.ok
            and self.full_coverage
            and all(h.ok for h in self.held_by_target)
            and self.kill_proven
        )

    @property
    def kill_proven(self) -> bool:
        """Without --kill-at: nothing to prove. With it: the guard killed the node inside a duty it held."""
        return self.kill_at is None or (bool(self.kill_point_reached) and bool(self.held_by_target))

    @property
    def full_coverage(self) -> bool:
        """The watcher was connected to every node (else a missing proposal may only be unseen)."""
        return self.watcher_peers >= self.watcher_expected

    @property
    def failing_rows(self) -> list[str]:
        """One line per failure."""
        rows = []
        for p in self.phases:
            rows += [f"{p.name}: slot {m.slot} {m.duty} missed: {m.detail}" for m in p.missed]
            rows += [f"{p.name}: EQUIVOCATION {e}" for e in p.equivocations]
            rows += [f"{p.name}: SLASHED {s}" for s in p.slashed]
        if not self.full_coverage:
            rows.append(
                f"watcher: connected to {self.watcher_peers} of {self.watcher_expected} nodes "
                "(partial coverage: unseen gossip cannot be judged)"
            )
        rows += [
            f"{h.duty} of slot {h.slot} held by the killed {self.target}: neither adopted by a twin nor "
            f"fulfilled on L1 (row {h.status})"
            for h in self.held_by_target
            if not h.ok
        ]
        if self.kill_at is not None and not self.kill_point_reached:
            rows.append(
                f"--kill-at {self.kill_at}: the guard of {self.target} reached no such point within "
                f"{KILL_AT_SLOTS} slots (SIGKILL instead): adoption not proven"
            )
        elif self.kill_at is not None and not self.held_by_target:
            rows.append(
                f"--kill-at {self.kill_at}: {self.target} was killed there but the store holds no claim of "
                "it to adopt: adoption not proven"
            )
        if not self.rejoin.ok:
            rows.append(
                f"rejoin: {self.rejoin.node} healthy={self.rejoin.healthy} synced={self.rejoin.synced} "
                f"signed since restart={self.rejoin.signed_since_restart} {self.rejoin.reasons}"
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        """JSON form (`--json`)."""
        return {
            "ok": self.ok,
            "mode": self.mode,
            "target": self.target,
            "stoppedAtSlot": self.stopped_at_slot,
            "stoppedHolding": self.stopped_duty,
            "phases": [p.to_json() for p in self.phases],
            "rejoin": self.rejoin.to_json(),
            "watcher": {
                "peers": self.watcher_peers,
                "expectedPeers": self.watcher_expected,
                "fullCoverage": self.full_coverage,
                "messages": self.watcher_messages,
                "slashingSubmissions": self.slashing_submissions,
            },
            "adoptedFromStopped": self.adopted_from_target,
            "killAt": self.kill_at,
            "killPointReached": self.kill_point_reached,
            "heldByStopped": [h.to_json() for h in self.held_by_target],
            "attestationArrivalMedianS": self.attestation_arrival,
            "attestationInclusion": self.attestation_inclusion,
            "failures": self.failing_rows,
            "durationS": round(self.duration_s, 1),
        }


class FailoverTest:
    """Drives one failover run against the devnet described by `state`."""

    def __init__(
        self,
        state: DevnetState,
        *,
        slots_per_phase: int = DEFAULT_SLOTS_PER_PHASE,
        kill: bool = False,
        kill_at: str | None = None,
        node: str | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        if kill_at is not None and kill_at not in KILL_POINTS:
            raise InputError(
                f"--kill-at {kill_at!r}: not a guard fault point inside a duty "
                f"(one of {', '.join(KILL_POINTS)})"
            )
        if slots_per_phase < 1:
            raise InputError(f"--slots: at least 1 slot per phase, got {slots_per_phase}")
        if not state.ha_nodes:
            raise InputError(f"the devnet at {state.directory} has no HA nodes")
        if len(state.ha_nodes) < 2:
            raise InputError("failover needs an identity on at least 2 HA nodes (devnet up --ha-nodes 2+)")
        if node is not None and node not in [n.name for n in state.ha_nodes]:
            raise InputError(f"--node {node!r}: not an HA node ({', '.join(n.name for n in state.ha_nodes)})")
        self.state = state
        self.n = slots_per_phase
        self.kill = kill or kill_at is not None
        self.kill_at = kill_at
        self.kill_point_reached: bool | None = None
        self.node = node
        self.say = say
        self.client = RollupClient([state.l1_rpc_url], state.rollup)
        self.params = self.client.params()
        self.book = SlotBook(self.client, self.params)
        self.ha = state.ha_attester
        self.store = open_store(state.ha_db_url())
        self.l1_start_block = self.client.l1_block_number()

    # --- the run -------------------------------------------------------------------------------------------

    def run(self) -> FailoverReport:
        """Run the five phases and evaluate them."""
        started = time.monotonic()
        alive = [n for n in self.state.nodes if pid_alive(n.pid)]
        down = [n.name for n in self.state.ha_nodes if not pid_alive(n.pid)]
        if down:
            raise DevnetError(f"HA node(s) {', '.join(down)} are not running: restart the devnet first")
        if self.kill_at is not None:
            self._make_armable(self._kill_at_target())
        self.reporter = SlashingReporter(self.client, devnet_reporter_account())
        watcher = Watcher(self.params, [n.multiaddr for n in self.state.nodes], on_equivocation=self.reporter)
        watcher.start()
        self.expected_peers = len(alive)
        try:
            if not watcher.wait_peers(len(alive), WATCHER_CONNECT_S):
                self.say(
                    f"watcher: only {watcher.peer_count()} of {len(alive)} nodes connected; "
                    "the run will fail (partial coverage)"
                )
            else:
                self.say(f"watcher: connected to all {len(alive)} nodes as peer {watcher.peer_id}")
            return self._run(watcher, started)
        finally:
            watcher.stop()
            self.store.close()

    def _run(self, watcher: Watcher, started: float) -> FailoverReport:
        n = self.n
        s0 = current_slot(self.params) + 1
        self.say(f"phase 1 baseline: slots {s0}…{s0 + n - 1}, all nodes up")
        wait_slot_start(self.params, s0 + n)
        # phase 2: stop the target at the moment it holds a duty
        if self.kill_at is not None:
            target, stop_slot, duty, note = self._kill_inside_duty(s0 + n)
        else:
            target, stop_slot, duty, note = self._stop_target(s0 + n)
        down_first = stop_slot + 1
        self.say(f"phase 3 down: slots {down_first}…{down_first + n - 1} with {target.name} down")
        wait_slot_start(self.params, down_first + n)
        # phase 4: restart
        restart_slot = current_slot(self.params)
        proc = spawn_node(target, self.state.ha_db_url())
        update_node_pid(Path(self.state.directory), target.name, proc.pid)
        target.pid = proc.pid
        self.say(f"phase 4 restart: {target.name} started again (pid {proc.pid}) in slot {restart_slot}")
        healthy_after = self._wait_rejoined(target)
        self.say(f"  {target.name} healthy and synced after {healthy_after:.1f} s")
        rejoin_first = current_slot(self.params) + 1
        self.say(f"phase 5 rejoined: slots {rejoin_first}…{rejoin_first + n - 1}")
        wait_slot_start(self.params, rejoin_first + n)
        rejoin = self._check_rejoin(target, healthy_after)
        last = rejoin_first + n - 1
        # blocks of the last slot land within it; read L1 once the next slot has begun
        wait_slot_start(self.params, last + 1)
        time.sleep(0.5)
        self.book.refresh()
        self.reporter.drain()  # every proof the watcher sent is mined before Slashed is read
        slashed = slashed_events(self.state.l1_rpc_url, self.state.rollup, self.l1_start_block)
        watcher.wait_peers(self.expected_peers, 10.0)  # the restarted node reconnects to the watcher
        phases = [
            self._evaluate("baseline", s0, s0 + n - 1, watcher, slashed),
            self._evaluate("stop", s0 + n, stop_slot, watcher, slashed, [note]),
            self._evaluate("down", down_first, restart_slot - 1, watcher, slashed),
            self._evaluate(
                "restart",
                restart_slot,
                rejoin_first - 1,
                watcher,
                slashed,
                [f"{target.name} healthy and synced after {healthy_after:.1f} s"],
            ),
            self._evaluate("rejoined", rejoin_first, last, watcher, slashed),
        ]
        # a Slashed event for a slot outside every phase window still fails the run
        outside = [s for s in slashed if not s0 <= s.slot <= last]
        if outside:
            phases[-1].slashed += [s.to_json() for s in outside]
        return FailoverReport(
            mode="kill" if self.kill else "sigterm",
            target=target.name,
            stopped_at_slot=stop_slot,
            stopped_duty=duty,
            phases=phases,
            rejoin=rejoin,
            watcher_peers=watcher.peer_count(),
            watcher_messages=watcher.ledger.messages,
            duration_s=time.monotonic() - started,
            watcher_expected=self.expected_peers,
            slashing_submissions=[x.to_json() for x in self.reporter.submissions],
            adopted_from_target=self._adopted_from(target.name, s0 + n, last),
            attestation_arrival=self._arrivals(watcher, s0, last),
            attestation_inclusion=self._inclusion(s0, last),
            kill_at=self.kill_at,
            kill_point_reached=self.kill_point_reached,
            held_by_target=self._held_by(
                target.name,
                s0 + n,
                restart_slot - 1,
                # the guard killed it in the slot its death was seen in, or (seen late) the one before
                recorded_in=(stop_slot - 1, stop_slot) if self.kill_at == "after_record" else None,
            )
            if self.kill
            else [],
        )

    def _held_by(
        self, node: str, first: int, last: int, *, recorded_in: tuple[int, int] | None = None
    ) -> list[HeldDuty]:
        """The identity's duties in [first, last] that `node` left unfinished when it was killed: rows still
        `signing` in its name, rows a twin adopted from it, and (`recorded_in`: the slots it was killed in,
        after a record) the rows it recorded there, one of them never released; each judged adopted or
        fulfilled on L1."""
        rows = stored_duties(self.state.ha_db_url(), self.state.rollup, self.ha)
        held: list[HeldDuty] = []
        for r in rows:
            if not first <= r.slot <= last:
                continue
            recorded = (
                recorded_in is not None
                and recorded_in[0] <= r.slot <= recorded_in[1]
                and r.node_id == node
                and r.adopted_from is None
            )
            if r.adopted_from == node or (r.node_id == node and r.status != "signed") or recorded:
                adopted_by = r.node_id if r.adopted_from == node and r.status == "signed" else None
                held.append(HeldDuty(r.slot, r.duty_type, r.status, adopted_by, self._fulfilled(r)))
        return held

    def _fulfilled(self, row: StoredDuty) -> bool:
        block = self.book.facts(row.slot).block
        if block is None:
            return False
        if row.duty_type == "block_proposal":
            return block.proposer == self.ha
        return self.ha in block.attesters

    def _adopted_from(self, node: str, first: int, last: int) -> list[dict[str, Any]]:
        """The identity's duties in [first, last] that `node` claimed and a twin adopted (store rows)."""
        rows = stored_duties(self.state.ha_db_url(), self.state.rollup, self.ha)
        return [
            {"slot": r.slot, "duty": r.duty_type, "adoptedBy": r.node_id}
            for r in rows
            if r.adopted_from == node and first <= r.slot <= last
        ]

    def _inclusion(self, first: int, last: int) -> dict[str, list[int]]:
        """For every attester: [its attestations in L1 blocks, committee slots that have a block]."""
        out: dict[str, list[int]] = {}
        for slot in range(first, last + 1):
            facts = self.book.facts(slot)
            if facts.block is None:
                continue
            for member in facts.committee:
                counts = out.setdefault("HA" if member == self.ha else member, [0, 0])
                counts[0] += member in facts.block.attesters
                counts[1] += 1
        return out

    def _arrivals(self, watcher: Watcher, first: int, last: int) -> dict[str, float]:
        """Median arrival (seconds into the slot) of each attester's attestations on gossip."""
        out = {}
        for attester, times in watcher.ledger.first_seen(ATTESTATION, first, last).items():
            offsets = sorted(t - self.params.slot_start(slot) for slot, t in times)
            label = "HA" if attester == self.ha else attester
            out[label] = round(offsets[len(offsets) // 2], 3)
        return out

    # --- phase 2 -------------------------------------------------------------------------------------------

    def _stop_target(self, first_slot: int) -> tuple[NodeEntry, int, str, str]:
        """Pick and stop the node; returns (node, slot of the stop, duty it held, note)."""
        how = "SIGKILL" if self.kill else "SIGTERM"
        if self.node is not None:
            target = self.state.node(self.node)
            slot = current_slot(self.params)
            self.say(f"phase 2 stop: {how} to {target.name} (chosen with --node) in slot {slot}")
            self._signal(target)
            return target, slot, "chosen by --node", f"{how} {target.name} in slot {slot} (--node)"
        slot, duty = self._next_duty_slot(first_slot)
        self.say(f"phase 2 stop: waiting for slot {slot}, where the identity has a {duty} duty")
        wait_slot_start(self.params, slot)
        holder, delay = self._holder(slot, duty)
        if holder is None:
            target = self.state.ha_nodes[0]
            note = f"{how} {target.name} in slot {slot}: no {duty} row within {HOLDER_WINDOW:.0%} of the slot"
        else:
            target = self.state.node(holder)
            note = f"{how} {target.name} in slot {slot}, {delay * 1000:.0f} ms in, holding the {duty} duty"
        self._signal(target)
        self.say(f"  {note}")
        return target, slot, duty if holder else "none found", note

    def _kill_at_target(self) -> NodeEntry:
        return self.state.node(self.node) if self.node is not None else self.state.ha_nodes[0]

    def _arm_file(self, target: NodeEntry) -> Path:
        return Path(self.state.directory) / "failover-arm" / f"{self.kill_at}.{target.pid}"

    def _make_armable(self, target: NodeEntry) -> None:
        """Restart `target` (before the baseline) with its guard's fault point armable by a file: its
        `HA_GUARD_FAULTS` kills it at the point while `failover-arm/POINT.{pid}` exists. The devnet's state
        keeps its own command line, so the restart of phase 4 brings back the node as it was."""
        self.say(f"{target.name}: restarting with the guard fault point {self.kill_at} armable by a file")
        self._arm_file(target).parent.mkdir(parents=True, exist_ok=True)
        if not signal_pid(target.pid, signal.SIGTERM, target.data_dir) or not wait_gone(
            target.pid, SIGTERM_TIMEOUT_S
        ):
            raise DevnetError(f"node {target.name} (pid {target.pid}) did not stop for its armable restart")
        spec = f"{self.kill_at}:kill!{self._arm_file(target).parent}/{self.kill_at}.{{pid}}"
        with open(target.log, "ab") as log_file:
            proc = subprocess.Popen(
                [*target.argv, ALLOW_FAULTS_FLAG],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**node_env(target, self.state.ha_db_url()), FAULT_ENV: spec},
                start_new_session=True,
            )
        target.pid = proc.pid
        update_node_pid(Path(self.state.directory), target.name, proc.pid)
        self._wait_rejoined(target)

    def _kill_inside_duty(self, first_slot: int) -> tuple[NodeEntry, int, str, str]:
        """Arm the target's fault point and wait for its guard to kill it inside its next duty."""
        target = self._kill_at_target()
        wait_slot_start(self.params, first_slot)
        armed_slot = current_slot(self.params)
        arm = self._arm_file(target)
        arm.touch()
        self.say(
            f"phase 2 stop: {target.name} armed in slot {armed_slot}: its guard kills it at {self.kill_at}"
        )
        try:
            gone = wait_gone(target.pid, KILL_AT_SLOTS * self.params.slot_duration)
        finally:
            arm.unlink(missing_ok=True)
        slot = current_slot(self.params)
        self.kill_point_reached = gone
        if gone:
            note = (
                f"{target.name} killed by its guard at {self.kill_at} in slot {slot} (armed in {armed_slot})"
            )
        else:
            signal_pid(target.pid, signal.SIGKILL, target.data_dir)
            wait_gone(target.pid, 5.0)
            note = f"{target.name}: no duty reached {self.kill_at} within {KILL_AT_SLOTS} slots: SIGKILL"
        update_node_pid(Path(self.state.directory), target.name, None)
        self.say(f"  {note}")
        return target, slot, f"a duty at {self.kill_at}" if gone else "none found", note

    def _next_duty_slot(self, first_slot: int) -> tuple[int, str]:
        """The next slot (from `first_slot`) the identity proposes, else the next it attests."""
        horizon = first_slot + SEARCH_EPOCHS * self.params.epoch_length
        for s in range(first_slot, horizon):
            if self.book.proposer(s) == self.ha:
                return s, "block_proposal"
        for s in range(first_slot, horizon):
            if self.ha in self.book.committee(self.params.epoch_of(s)):
                return s, "attestation"
        return first_slot, "none"

    def _holder(self, slot: int, duty: str) -> tuple[str | None, float]:
        """Poll the duty store for the duty's row at the start of `slot`: (node id, seconds into the slot)."""
        start = self.params.slot_start(slot)
        deadline = start + HOLDER_WINDOW * self.params.slot_duration
        key = DutyKey(self.state.rollup.lower(), self.ha.lower(), slot, duty)
        while time.time() < deadline:
            with contextlib.suppress(Exception):
                found = self.store.fetch(key)
                if found.row is not None:
                    return found.row.node_id, time.time() - start
            time.sleep(0.01)
        return None, 0.0

    def _signal(self, target: NodeEntry) -> None:
        signum = signal.SIGKILL if self.kill else signal.SIGTERM
        if not signal_pid(target.pid, signum, target.data_dir):
            raise DevnetError(f"node {target.name} (pid {target.pid}) is not running")
        gone = wait_gone(target.pid, 5.0 if self.kill else SIGTERM_TIMEOUT_S)
        if not gone:
            raise DevnetError(f"node {target.name} did not exit within {SIGTERM_TIMEOUT_S:.0f} s of SIGTERM")
        update_node_pid(Path(self.state.directory), target.name, None)
        if not self.kill:
            clean = "stopped cleanly" in log_tail(target.log, 4000)
            self.say(
                f"  {target.name} exited after SIGTERM ({'clean' if clean else 'no clean-stop line in log'})"
            )

    # --- phases 4-5 ----------------------------------------------------------------------------------------

    def _wait_rejoined(self, target: NodeEntry) -> float:
        """Wait until the restarted node is healthy and at the L1 tip; seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + RESTART_TIMEOUT_S
        while time.monotonic() < deadline:
            if not pid_alive(target.pid):
                raise DevnetError(
                    f"{target.name} exited after its restart; log {target.log}:\n{log_tail(target.log)}"
                )
            code, doc = node_status(target)
            if code == 200 and (doc.get("sync") or {}).get("synced"):
                return time.monotonic() - t0
            time.sleep(0.25)
        raise DevnetError(
            f"{target.name} not healthy {RESTART_TIMEOUT_S:.0f} s after its restart; log {target.log}"
        )

    def _check_rejoin(self, target: NodeEntry, healthy_after: float) -> RejoinCheck:
        check = RejoinCheck(target.name, seconds_to_healthy=round(healthy_after, 1))
        code, doc = node_status(target)
        check.healthy = code == 200
        check.reasons = list(doc.get("reasons", []))
        sync = doc.get("sync") or {}
        check.block_number = sync.get("blockNumber")
        with contextlib.suppress(Exception):
            check.l1_tip = self.client.tips().block_number
        check.synced = bool(sync.get("synced")) and (
            check.l1_tip is None or check.block_number is None or check.l1_tip - check.block_number <= 1
        )
        check.signed_since_restart = signed_duties(target)
        return check

    # --- evaluation ----------------------------------------------------------------------------------------

    def _evaluate(
        self, name: str, first: int, last: int, watcher: Watcher, slashed, notes: list[str] | None = None
    ) -> PhaseReport:
        facts = [self.book.facts(slot) for slot in range(first, last + 1)]
        return evaluate_phase(
            name, first, last, facts, self.ha, watcher.ledger, slashed, self.params.slot_start, notes or []
        )


def evaluate_phase(
    name: str,
    first: int,
    last: int,
    slots: Sequence[SlotFacts],
    ha: str,
    ledger: SignatureLedger,
    slashed: Sequence[SlashedEvent],
    slot_start: Callable[[int], float],
    notes: Sequence[str] = (),
) -> PhaseReport:
    """The HA identity's duties in slots `first`…`last` and what became of them (definitions: module doc)."""
    report = PhaseReport(name, first, last, notes=list(notes))
    for facts in slots:
        slot, block = facts.slot, facts.block
        if block is not None:
            report.blocks += 1
        if facts.proposer == ha:
            report.proposals += 1
            if block is not None and block.proposer == ha:
                report.proposals_ok += 1
            else:
                seen = ledger.sightings(ha, slot, PROPOSAL)
                why = "proposal seen on gossip but not on L1" if seen else "no proposal seen on gossip"
                report.missed.append(Miss(slot, "proposal", f"no block on L1 for the slot ({why})"))
        if ha not in facts.committee:
            continue
        if block is not None:
            report.attestations += 1
            if ha in block.attesters:
                report.attestations_ok += 1
                continue
            seen = [s for s in ledger.sightings(ha, slot, ATTESTATION) if s.archive == block.archive]
            if seen:
                offset = seen[0].seen_at - slot_start(slot)
                included = f"{len(block.attesters)}/{len(facts.committee)}"
                detail = (
                    f"attestation seen on gossip {offset:.2f} s into the slot but not in the L1 block "
                    f"({included} attestations included)"
                )
            else:
                detail = "no attestation for the L1 block seen on gossip"
            report.missed.append(Miss(slot, "attestation", detail))
            continue
        proposals = ledger.sightings(facts.proposer, slot, PROPOSAL)
        if not proposals:
            report.nothing_to_attest += 1
            continue
        report.attestations += 1
        archives = {p.archive for p in proposals}
        if any(s.archive in archives for s in ledger.sightings(ha, slot, ATTESTATION)):
            report.attestations_ok += 1
        else:
            detail = "a proposal was gossiped, no block landed, and no attestation of it seen"
            report.missed.append(Miss(slot, "attestation", detail))
    report.equivocations = [e.to_json() for e in ledger.equivocations(first, last)]
    report.slashed = [s.to_json() for s in slashed if first <= s.slot <= last]
    return report


def signed_duties(node: NodeEntry) -> int:
    """Duties the node's guard released a signature for since it started (its `hasq_duties_total`)."""
    try:
        text = httpx.get(f"{node.url}/metrics", timeout=3).text
    except httpx.HTTPError:
        return 0
    total = 0
    for labels, value in _DUTIES_METRIC.findall(text):
        if any(f'outcome="{o}"' in labels for o in SIGNED_OUTCOMES):
            total += int(float(value))
    return total

"""One chaos run against a devnet: plan, inject on the wall clock, watch gossip, audit, report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ha_sequencer.chaos.audit import audit_run
from ha_sequencer.chaos.faults import FaultRunner
from ha_sequencer.chaos.report import ChaosReport
from ha_sequencer.chaos.schedule import Fault, plan_faults
from ha_sequencer.devnet.slasher import SlashingReporter, devnet_reporter_account
from ha_sequencer.devnet.slots import SlotBook
from ha_sequencer.devnet.state import DevnetError, DevnetState, pid_alive
from ha_sequencer.devnet.store_rows import stored_duties
from ha_sequencer.devnet.watcher import Watcher, slashed_events
from ha_sequencer.ha.guard import DEFAULT_LEASE_S
from ha_sequencer.l1.client import RollupClient

WATCHER_CONNECT_S = 30.0
TICK_S = 0.1
SETTLE_S = 60.0  # after the last fault: restarted nodes healthy and reconnected to the watcher


@dataclass(frozen=True)
class ChaosSettings:
    """What to inject and how to judge it."""

    slots: int
    seed: int
    kinds: tuple[str, ...]
    rate: float
    min_fulfilment: float
    allow_total_outage: bool = False
    lease_s: float = DEFAULT_LEASE_S
    restore_l1: bool = (
        True  # after an l1 run, restart the HA nodes on the direct L1 URL (not when tearing down)
    )
    command: str = ""


def run_chaos(state: DevnetState, settings: ChaosSettings, say: Callable[[str], None]) -> ChaosReport:
    """Inject the faults over `settings.slots` slots from the next one; Ctrl-C ends early (partial report)."""
    down = [n.name for n in state.ha_nodes if not pid_alive(n.pid)]
    if down:
        raise DevnetError(f"HA node(s) {', '.join(down)} are not running: restart the devnet first")
    started = time.monotonic()
    client = RollupClient([state.l1_rpc_url], state.rollup)
    params = client.params()
    l1_start = client.l1_block_number()
    ha_nodes = tuple(n.name for n in state.ha_nodes)
    runner = FaultRunner(state, say=say)
    runner.check_supported(settings.kinds)
    planned = plan_faults(
        slots=settings.slots,
        seed=settings.seed,
        kinds=settings.kinds,
        rate=settings.rate,
        ha_nodes=ha_nodes,
        slot_duration=params.slot_duration,
        lease_s=settings.lease_s,
        allow_total_outage=settings.allow_total_outage,
    )
    runner.prepare(
        l1_proxies="l1" in settings.kinds,
        fault_points="kill" in settings.kinds,
        p2p_proxies="partition" in settings.kinds,
        store_proxy="store" in settings.kinds,
    )
    reporter = SlashingReporter(client, devnet_reporter_account())
    alive = [n for n in state.nodes if pid_alive(n.pid)]
    watcher = Watcher(params, [n.multiaddr for n in alive], on_equivocation=reporter)
    watcher.start()
    interrupted = False
    executed: Counter[str] = Counter()
    coverage: list[tuple[int, int, int]] = []  # (slot, watcher peers, nodes up)
    try:
        if not watcher.wait_peers(len(alive), WATCHER_CONNECT_S):
            say(f"watcher: only {watcher.peer_count()} of {len(alive)} nodes connected (partial coverage)")
        first = params.slot_at(time.time()) + 1
        last = first + settings.slots - 1
        say(
            f"chaos: slots {first}…{last} ({settings.slots} × {params.slot_duration} s), "
            f"seed {settings.seed}, "
            f"{len(planned)} faults planned from {', '.join(settings.kinds)} at rate {settings.rate}"
        )
        t0 = params.slot_start(first)
        actions: list[tuple[float, int, str, Fault]] = []
        for f in planned:
            at = t0 + (f.at_slot + f.offset) * params.slot_duration
            actions += [(at, f.index, "start", f), (at + f.hold_s, f.index, "end", f)]
        actions.sort(key=lambda a: (a[0], a[1], a[2] == "start"))
        started_faults: set[int] = set()
        sampled_slot = first - 1
        try:
            end_at = params.slot_start(last + 1)
            while time.time() < end_at or actions:
                now = time.time()
                while actions and actions[0][0] <= now:
                    _, index, what, fault = actions.pop(0)
                    if what == "start":
                        if runner.start(fault):
                            started_faults.add(index)
                            executed[fault.kind] += 1
                    elif index in started_faults:
                        runner.end(fault)
                runner.poll()
                slot_now = params.slot_at(time.time())
                if sampled_slot < slot_now <= last:  # once per slot: peers against the nodes reachable
                    sampled_slot = slot_now
                    up = len(alive) - len(runner.unreachable())
                    coverage.append((slot_now, watcher.peer_count(), up))
                if time.time() >= end_at and not actions:
                    break
                time.sleep(TICK_S)
        except KeyboardInterrupt:
            interrupted = True
            say("chaos: interrupted; undoing the faults in effect and writing the partial report")
            last = max(first, params.slot_at(time.time()) - 1)
        finally:
            runner.restore_all()
        # restarted nodes back to health, and back in the watcher's view, before the coverage is judged
        settle = time.monotonic() + SETTLE_S
        while runner.impaired() and time.monotonic() < settle:
            runner.poll()
            time.sleep(0.5)
        watcher.wait_peers(len(alive), max(1.0, settle - time.monotonic()))
        # every block of the last slot lands within it; read L1 once the next slot has begun
        wait = params.slot_start(last + 1) + 0.5 - time.time()
        if wait > 0 and not interrupted:
            time.sleep(wait)
        reporter.drain()
        book = SlotBook(client, params)
        book.refresh()
        result = audit_run(
            params=params,
            book=book,
            ha=state.ha_attester,
            ha_nodes=ha_nodes,
            first_slot=first,
            last_slot=last,
            ledger=watcher.ledger,
            store_rows=stored_duties(state.ha_db_url(), state.rollup, state.ha_attester),
            slashed=slashed_events(state.l1_rpc_url, state.rollup, l1_start),
            impairments=runner.impairments,
            fault_counts=dict(executed),
            now=time.time(),
        )
        watcher_doc = {
            "peers": watcher.peer_count(),
            "expectedPeers": len(alive),
            "messages": watcher.ledger.messages,
            "malformed": watcher.malformed,
            # slots whose sample had fewer peers than nodes reachable (up, not cut off): a redial pending
            "slotsBelowFullCoverage": [c[0] for c in coverage if c[1] < c[2]],
        }
    finally:
        watcher.stop()
        if settings.restore_l1:
            runner.unprepare()
        else:
            runner.close_proxies()
    return ChaosReport(
        seed=settings.seed,
        slots=settings.slots,
        kinds=settings.kinds,
        rate=settings.rate,
        min_fulfilment=settings.min_fulfilment,
        ha_nodes=ha_nodes,
        planned=planned,
        impairments=runner.impairments,
        skipped=runner.skipped,
        audit=result,
        watcher=watcher_doc,
        slashing_submissions=[s.to_json() for s in reporter.submissions],
        duration_s=time.monotonic() - started,
        interrupted=interrupted,
        command=settings.command,
        slot_at=params.slot_at,
        slot_start=lambda slot: float(params.slot_start(slot)),
    )

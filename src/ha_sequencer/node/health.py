"""The node's health as /status reports it (L1, duty store, gossip), its probe loop and the store heartbeat.

`Health` is the shared state: written by the start-up phase (L1 not reachable yet) and by `HealthMonitor`,
read by the status page. `Heartbeat` keeps this node's id alive in the duty store, so `ha-db status` and
the twins see which nodes are up.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from ha_sequencer.ha.errors import DuplicateNodeError, DutyStoreError
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.killswitch import KillSwitch
from ha_sequencer.ha.store import DutyStore, Halt
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.sync import Sync
from ha_sequencer.p2p.gossip import GossipNode

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 1.0
STORE_HEALTH_S = 0.1  # the duty store's health is read this often (its probe runs apart: ha/sqlbase.py)
HEARTBEAT_S = 1.0
NODE_STALE_S = (
    4.0  # a node id whose heartbeat is older than this is presumed dead (a restart waits this long)
)


class Health:
    """L1 and duty-store health, with the gauges that mirror them."""

    def __init__(self, metrics: NodeMetrics, scrub: Callable[[str], str]) -> None:
        self._metrics = metrics
        self._scrub = scrub
        self.l1_error: str | None = "not contacted yet"
        self.l1_last_ok: float | None = None
        self.store_healthy: bool | None = None  # None: not opened yet
        self.halts: list[Halt] = []  # active halts of this node's attesters

    def scrub(self, text: str) -> str:
        """`text` without L1 RPC credentials (URLs, API keys)."""
        return self._scrub(text)

    def l1_ok(self) -> None:
        """An L1 call succeeded."""
        self.l1_error = None
        self.l1_last_ok = time.time()
        self._metrics.l1_healthy.set(1)

    def l1_failed(self, why: str) -> None:
        """L1 is unreachable or erroring; `why` is scrubbed of RPC credentials here."""
        self.l1_error = self._scrub(why)
        self._metrics.l1_healthy.set(0)

    def store(self, ok: bool) -> None:
        """The duty store's probe answered (or not)."""
        self.store_healthy = ok
        self._metrics.store_healthy.set(1 if ok else 0)


class HaltAlerts(Protocol):
    """Where halts are announced (the funds service's webhook alerter)."""

    def halted(self, attester: str, slot: int, duty: str, reason: str) -> None: ...
    def halt_lifted(self, attester: str) -> None: ...


class HaltWatch:
    """What a node does about its attesters' halts: /status, `hasq_halted`, one alert and log line each."""

    def __init__(
        self, health: Health, attesters: Sequence[str], metrics: NodeMetrics, alerts: HaltAlerts
    ) -> None:
        self._health = health
        self._attesters = list(attesters)
        self._metrics = metrics
        self._alerts = alerts
        for attester in self._attesters:
            metrics.halted.labels(attester=attester).set(0)

    def note(self, halts: list[Halt]) -> None:
        """The active halts as just read from the store."""
        before = {h.attester for h in self._health.halts}
        now = {h.attester: h for h in halts}
        self._health.halts = halts
        for attester in self._attesters:
            halt = now.get(attester.lower())
            self._metrics.halted.labels(attester=attester).set(0 if halt is None else 1)
            if halt is not None:
                if halt.attester not in before:
                    log.error(
                        "attester %s is HALTED fleet-wide: %s (see `ha-db halts`)", attester, halt.reason
                    )
                self._alerts.halted(attester, halt.slot, halt.duty_type, halt.reason)
            elif attester.lower() in before:
                log.warning("attester %s resumed by an operator: signing again", attester)
                self._alerts.halt_lifted(attester)


class HealthMonitor:
    """Every `HEALTH_INTERVAL_S`: the store probe, L1 from the client's endpoints and sync, the peer count,
    and the halts of this node's attesters (written by any twin's detector)."""

    def __init__(
        self,
        health: Health,
        *,
        guard: DutyGuard,
        killswitch: KillSwitch,
        attesters: Sequence[str],
        alerts: HaltAlerts,
        client: RollupClient,
        sync: Sync,
        gossip: GossipNode,
        metrics: NodeMetrics,
    ) -> None:
        self._health = health
        self._guard = guard
        self._killswitch = killswitch
        self._attesters = list(attesters)
        self._client = client
        self._sync = sync
        self._gossip = gossip
        self._metrics = metrics
        self._halts = HaltWatch(health, self._attesters, metrics, alerts)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe until cancelled; `task_status` fires after the first probe."""
        store = StoreHealthWatch(self._health, lambda: self._guard.healthy)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await self._probe()
            task_status.started()
            while True:
                await trio.sleep(HEALTH_INTERVAL_S)
                await self._probe()

    async def _probe(self) -> None:
        sync_error = self._sync.status.last_error
        if self._client.healthy and sync_error is None:
            self._health.l1_ok()
        else:
            self._health.l1_failed(sync_error or "no L1 RPC endpoint healthy")
        self._metrics.peers.set(self._gossip.peer_count())
        try:
            halts = await trio.to_thread.run_sync(lambda: self._killswitch.active(self._attesters))
        except DutyStoreError:
            return  # the store probe above reports it; the last known halts stay
        self._halts.note(halts)


class StoreHealthWatch:
    """The duty store's health into `Health` every `STORE_HEALTH_S`: /status follows the store's own probe
    within that (the probe pings in its own thread, so a hung store never blocks this loop)."""

    def __init__(self, health: Health, healthy: Callable[[], bool]) -> None:
        self._health = health
        self._healthy = healthy

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read until cancelled; `task_status` fires after the first reading."""
        self._health.store(await trio.to_thread.run_sync(self._healthy))  # the first reading pings
        task_status.started()
        while True:
            await trio.sleep(STORE_HEALTH_S)
            self._health.store(self._healthy())


class Heartbeat:
    """This node's row in the store's `nodes` table: registered at start, refreshed, removed at exit."""

    def __init__(self, store: DutyStore, node_id: str) -> None:
        self._store = store
        self.node_id = node_id
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.displaced = False

    async def register(self) -> None:
        """Take this node's id; while another instance heartbeats it, wait for that one to go stale.

        A node restarted after kill -9 finds its own old row still fresh: it waits at most `NODE_STALE_S`
        for it. An id still fresh after that belongs to a live node: `DuplicateNodeError` (exit 2), because
        two live nodes with one id make every log and `ha-db status` line ambiguous.
        """
        deadline = trio.current_time() + NODE_STALE_S + HEARTBEAT_S
        warned = False
        while not await trio.to_thread.run_sync(self._register):
            if trio.current_time() >= deadline:
                raise DuplicateNodeError(
                    f"node id {self.node_id!r} is in use by a live node (heartbeat within "
                    f"{NODE_STALE_S:g} s in the duty store): give each node its own --node-id, or stop the "
                    "other one first"
                )
            if not warned:
                log.warning(
                    "node id %s: another instance heartbeated within %g s; waiting for it to go stale",
                    self.node_id,
                    NODE_STALE_S,
                )
                warned = True
            await trio.sleep(HEARTBEAT_S)

    def _register(self) -> bool:
        return self._store.register_node(
            self.node_id, self.instance, socket.gethostname(), os.getpid(), NODE_STALE_S
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Refresh the heartbeat every `HEARTBEAT_S` until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(HEARTBEAT_S)
            try:
                alive = await trio.to_thread.run_sync(
                    lambda: self._store.heartbeat_node(self.node_id, self.instance)
                )
                if not alive and not self.displaced:
                    # our row went stale (paused, store outage) and another instance took the id
                    self.displaced = True
                    log.error(
                        "node id %s was taken by another instance: two nodes share it now", self.node_id
                    )
            except DutyStoreError as exc:  # the store's health is the monitor's to report
                log.debug("duty store heartbeat failed: %s", exc)

    async def unregister(self) -> None:
        """Release the id at a clean exit (the store may be the thing that is down)."""
        try:
            await trio.to_thread.run_sync(lambda: self._store.unregister_node(self.node_id, self.instance))
        except DutyStoreError as exc:
            log.warning("could not unregister from the duty store: %s", exc)

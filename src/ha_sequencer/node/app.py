"""The node's composition root: build every collaborator, start each component, wait for shutdown.

1. Before L1 answers: the keystore is loaded, HTTP serves /status (it says why the node is not ready), the
   funds watcher runs (an unfunded node still alerts).
2. `read_network` retries until L1 gives the network parameters and, side by side, `open_duty_store` until
   the store answers (/status: `duty_store_unreachable`, nothing signed); then every collaborator is built,
   fully, before any of them starts (`Services`).
3. Components each own their loop and start with `nursery.start(component.run)`: sync, committees, gossip
   inbox, health monitor, store heartbeat; the duty scheduler runs last, in the foreground.
4. SIGTERM/SIGINT: the scheduler starts no new duty, the duty in hand finishes (its guard call is never
   abandoned) within `SHUTDOWN_GRACE_S`, then everything is cancelled and the process exits 0. A component
   that dies brings the node down with its traceback (exit 1).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, assert_never, cast

import trio

from ha_sequencer import __version__
from ha_sequencer.errors import HASequencerError, InputError
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.faults import FAULT_ENV, FaultHook, faults_from_env
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.killswitch import KillSwitch
from ha_sequencer.ha.metrics import GuardMetrics
from ha_sequencer.ha.pg_cluster import hosts_of
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.keys import LoadedKeystore, PasswordSource, load_keystore
from ha_sequencer.keys.discovery import insecure_keystore_files
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.monitoring.service import FundsService
from ha_sequencer.node.bootstrap import Network, open_duty_store, read_network
from ha_sequencer.node.chain import Chain, ChainBlock
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.conditions import HealthConditions
from ha_sequencer.node.config import NodeConfig
from ha_sequencer.node.detector import Detector
from ha_sequencer.node.duty_audit import DutyAudit
from ha_sequencer.node.gossip_checks import GossipChecks
from ha_sequencer.node.health import NODE_STALE_S, Health, HealthMonitor, Heartbeat
from ha_sequencer.node.http import RpcMethod, serve_http
from ha_sequencer.node.inbox import GossipInbox
from ha_sequencer.node.mempool import Mempool
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.publisher import Publisher
from ha_sequencer.node.rpc import NodeRpc, starting_methods
from ha_sequencer.node.scheduler import Identity, Scheduler
from ha_sequencer.node.services import DUTY_STORE, NETWORK, Phase, Services, Starting
from ha_sequencer.node.status import NodeFacts, status_report
from ha_sequencer.node.sync import Sync
from ha_sequencer.p2p.gossip import GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC
from ha_sequencer.p2p.validation import GossipMetrics
from ha_sequencer.redact import scrub_dsn, scrub_endpoints

log = logging.getLogger("ha_sequencer.node")

SYNC_POLL_FRACTION = 0.1  # of a slot: L1 is polled ~10× per slot
MIN_SYNC_POLL_S = 0.2
SHUTDOWN_GRACE_S = 5.0  # at most this long for the duty in hand after SIGTERM
PYTHON_RECURSION_LIMIT = 1000  # CPython's default; see run_node


class KeystorePermissionError(InputError):
    """A keystore file is readable by group or others."""


def setup_logging(level: str) -> None:
    """Plain line logging to stderr with UTC timestamps."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.Formatter.converter = time.gmtime
    for noisy in ("libp2p", "multiaddr", "hypercorn.access", "web3", "urllib3", "asyncio", "async_service"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # py-libp2p sets INFO on some of its own loggers; its connector chatter every 10 s is noise here
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.WARNING)


def check_keystore_permissions(config: NodeConfig) -> None:
    """Refuse keystore files readable by group/others unless overridden (then warn loudly)."""
    bad = insecure_keystore_files(config.keystore)
    if not bad:
        return
    names = ", ".join(str(p) for p in bad)
    if config.allow_insecure_keystore:
        log.warning(
            "!!! keystore file(s) readable by group/others: %s — running anyway because "
            "--allow-insecure-keystore is set; fix with `chmod 600 FILE` !!!",
            names,
        )
        return
    raise KeystorePermissionError(
        f"keystore file(s) readable by group or others: {names}; run `chmod 600 {bad[0]}` "
        "(or pass --allow-insecure-keystore to start anyway)"
    )


def load_identities(config: NodeConfig) -> LoadedKeystore:
    """Load the keystore, with the password source the flags name (if any)."""
    if config.keystore_password_file is not None:
        return load_keystore(
            config.keystore, passwords=PasswordSource.from_file(config.keystore_password_file)
        )
    if config.keystore_password is not None:
        return load_keystore(config.keystore, passwords=PasswordSource(default=config.keystore_password))
    return load_keystore(config.keystore)


class Node:
    """One running sequencer node: what exists from the start, and the phase it is in (see the module doc)."""

    def __init__(self, config: NodeConfig, keystore: LoadedKeystore, client: RollupClient) -> None:
        self.config = config
        self.keystore = keystore
        self.client = client
        self.metrics = NodeMetrics()
        validators = list(keystore.validators)
        # attester → every publisher this node may pay gas with (split keystores hold one; the attester
        # itself when the keystore names none); the funds service picks one per submission
        self.publishers = {v.attester.address: list(v.publishers) or [v.attester] for v in validators}
        self.facts = NodeFacts(
            config=config,
            attesters=[v.attester.address for v in validators],
            publishers={a: [p.address for p in ps] for a, ps in self.publishers.items()},
            started=time.time(),
        )
        self.health = Health(self.metrics, self._scrub)
        self.funds = FundsService.from_keystore(
            keystore,
            config.l1_rpc_urls,
            registry=self.metrics.registry,
            node_id=config.node_id,
            settings=config.funds,
        )
        self.phase: Phase = Starting()
        self._rpc: Mapping[str, RpcMethod] = starting_methods(self.status_report)
        self._scheduler_stopped = trio.Event()  # set once the scheduler finished its duties after a signal

    # --- what HTTP serves -----------------------------------------------------------------------------------

    def status_report(self) -> dict[str, Any]:
        """The /status document."""
        return status_report(self.facts, self.health, self.funds, self.client, self.phase)

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        """JSON-RPC 2.0 methods of the current phase."""
        return self._rpc

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (returns) or a component fails (raises)."""
        async with trio.open_nursery() as root:
            http = await root.start(serve_http, self, self.config.host, self.config.port)
            log.info("http: serving /status, /metrics and JSON-RPC on %s", ", ".join(http))
            # from the start: a node stuck before its first slot (L1 down, unfunded) still alerts and reports
            await root.start(self._run_funds)
            await root.start(HealthConditions(self.metrics).run, self.status_report)
            stop = trio.Event()
            root.start_soon(self._wait_for_signal, stop, root)
            network, store = await self._connect()
            try:
                services = self._build(network, store)
                heartbeat = Heartbeat(store, self.config.node_id)
                await heartbeat.register()
                try:
                    await self._serve(services, heartbeat, stop)
                finally:
                    with trio.CancelScope(shield=True):
                        await heartbeat.unregister()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(store.close)

    async def _connect(self) -> tuple[Network, DutyStore]:
        """Read the network from L1 and open the duty store side by side, each retried until it answers, so
        /status names everything still missing at once; the node has no duties (signs nothing) until both."""
        networks: list[Network] = []
        stores: list[DutyStore] = []

        async def network() -> None:
            networks.append(
                await read_network(self.client, self.health, self.facts.attesters, self.config.rollup)
            )
            self._done_waiting_for(NETWORK)

        async def store() -> None:
            stores.append(await open_duty_store(self._open_store, self.health, self._scrub_store))
            self._done_waiting_for(DUTY_STORE)

        try:
            async with trio.open_nursery() as both:
                both.start_soon(network)
                both.start_soon(store)
        except BaseException:
            with trio.CancelScope(shield=True):
                for opened in stores:
                    await trio.to_thread.run_sync(opened.close)
            raise
        return networks[0], stores[0]

    def _done_waiting_for(self, what: str) -> None:
        if isinstance(self.phase, Starting):
            self.phase = self.phase.without(what)

    def _open_store(self) -> DutyStore:
        url = self.config.ha_db.url
        # several hosts: a replicated cluster; its primary must have a synchronous standby (duty-store-ha.md)
        replicated = self.config.ha_db.kind == "postgres" and len(hosts_of(url)) > 1
        require_sync = replicated and not self.config.ha_db_allow_async
        if replicated and not require_sync:
            log.warning("--ha-db-allow-async: not checking for a synchronous standby (double-signing risk)")
        return open_store(url, migrate=True, require_sync=require_sync)

    async def _run_funds(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.funds.run(status_report=self.status_report, task_status=task_status)

    def _build(self, network: Network, store: DutyStore) -> Services:
        """Every collaborator of the running node, wired, none started."""
        params = network.params
        config = self.config
        clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
        chain = Chain(params, network.allocation)
        mempool = Mempool(params, min_fee=self.config.min_tx_fee)
        self.metrics.slot_duration.set(params.slot_duration)
        committees = CommitteeCache(params, self.client.epoch_committee)
        audit = DutyAudit(
            clock=clock,
            committees=committees,
            synced=lambda: sync.synced,
            healthy=lambda: self.status_report()["status"] == "ok",
            attesters=self.facts.attesters,
            metrics=self.metrics,
        )

        def on_block(block: ChainBlock) -> None:
            mempool.on_block(chain.state, block.txs)
            self.metrics.mempool_size.set(len(mempool))
            audit.on_block(block)

        killswitch = KillSwitch(store, rollup=params.rollup, node_id=config.node_id)
        detector = Detector(
            params=params,
            killswitch=killswitch,
            attesters=self.facts.attesters,
            current_slot=clock.current_slot,
            metrics=self.metrics,
        )
        sync = Sync(
            self.client,
            chain,
            self.metrics,
            scrub=self._scrub,
            on_block=on_block,
            on_event=detector.observe_l1,
        )
        guard = DutyGuard(
            store,
            node_id=config.node_id,
            rollup=params.rollup,
            metrics=GuardMetrics(self.metrics.registry),
            **({"lease_s": config.lease_s} if config.lease_s is not None else {}),
            fault_hook=self._fault_hook(),
        )
        gossip = GossipNode(
            config.p2p_key_path,
            config.p2p_port,
            list(config.bootstrap_nodes),
            listen_host=config.p2p_host,
            announce_port=config.p2p_announce_port,
            metrics=GossipMetrics(self.metrics.registry),
        )
        publisher = Publisher(
            client=self.client,
            guard=guard,
            clock=clock,
            metrics=self.metrics,
            funds=self.funds,
        )
        scheduler = Scheduler(
            params=params,
            clock=clock,
            chain=chain,
            sync=sync,
            committees=committees,
            mempool=mempool,
            guard=guard,
            publisher=publisher,
            metrics=self.metrics,
            identities=[Identity.from_account(v.attester, v.fee_recipient) for v in self.keystore.validators],
            publish_gossip=gossip.publish,
            alerts=self.funds,
        )
        return Services(
            params=params,
            clock=clock,
            chain=chain,
            sync=sync,
            committees=committees,
            mempool=mempool,
            store=store,
            guard=guard,
            killswitch=killswitch,
            detector=detector,
            gossip=gossip,
            publisher=publisher,
            scheduler=scheduler,
            audit=audit,
        )

    async def _serve(self, s: Services, heartbeat: Heartbeat, stop: trio.Event) -> None:
        """Join gossip, start every component, run duties until a signal stops the scheduler."""
        checks = GossipChecks(
            s.params,
            s.committees,
            s.clock.current_slot,
            sightings=s.detector,
            min_tx_fee=self.config.min_tx_fee,
        )
        async with s.gossip:
            await s.gossip.subscribe(TX_TOPIC, checks.check_tx)
            await s.gossip.subscribe(PROPOSAL_TOPIC, checks.check_proposal)
            await s.gossip.subscribe(ATTESTATION_TOPIC, checks.check_attestation)
            log.info("gossip: peer id %s at %s", s.gossip.peer_id, s.gossip.multiaddr)
            self.phase = s
            self._rpc = NodeRpc(s, self.metrics, self.status_report).methods()
            inbox = GossipInbox(
                params=s.params,
                gossip=s.gossip,
                scheduler=s.scheduler,
                mempool=s.mempool,
                chain=s.chain,
                metrics=self.metrics,
            )
            monitor = HealthMonitor(
                self.health,
                guard=s.guard,
                killswitch=s.killswitch,
                attesters=self.facts.attesters,
                alerts=self.funds,
                client=self.client,
                sync=s.sync,
                gossip=s.gossip,
                metrics=self.metrics,
            )
            async with trio.open_nursery() as components:
                # decide the doppelganger hold first, so the detector's findings always follow it in the log
                await self._doppelganger_wait(s, heartbeat)
                poll_s = max(MIN_SYNC_POLL_S, SYNC_POLL_FRACTION * s.params.slot_duration)
                await components.start(s.sync.run, poll_s)
                await components.start(s.committees.run, s.clock, self.facts.attesters)
                await components.start(s.detector.run)
                await components.start(inbox.run)
                await components.start(monitor.run)
                await components.start(heartbeat.run)
                await components.start(s.audit.run)
                components.start_soon(self._stop_scheduler_on, stop, s.scheduler)
                await s.scheduler.run()
                self._scheduler_stopped.set()
                # the duties in hand are done (SIGTERM): the signal task cancels the root scope
                await trio.sleep_forever()

    async def _doppelganger_wait(self, s: Services, heartbeat: Heartbeat) -> None:
        """With no twin live in the store, hold the first signature for `--doppelganger-slots` slots.

        A twin live in the store shares this node's guard, so joining it cannot double-sign; with none, a
        signer of ours elsewhere (a copied keystore on its own store) would be invisible until it signs —
        the detector runs meanwhile, and a foreign signature halts the attester instead.
        """
        slots = self.config.doppelganger_slots
        if slots <= 0:
            return
        status = await trio.to_thread.run_sync(s.store.status)
        twins = [n for n, _host, age in status.nodes if n != heartbeat.node_id and age < NODE_STALE_S]
        if twins:
            log.info("doppelganger: twin(s) %s live in the duty store: signing at once", ", ".join(twins))
            return
        first = s.clock.current_slot() + slots + 1
        s.scheduler.hold_signing_until(first)
        log.warning(
            "doppelganger: no twin live in the duty store; listening %d slots, first signature at slot %d",
            slots,
            first,
        )

    async def _wait_for_signal(self, stop: trio.Event, root: trio.Nursery) -> None:
        """First SIGTERM/SIGINT: stop duties gracefully (or at once before they started); second: at once."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if stop.is_set():
                    log.warning("second %s: stopping now", name)
                    root.cancel_scope.cancel()
                    return
                stop.set()
                match self.phase:
                    case Starting():
                        root.cancel_scope.cancel()
                        return
                    case Services():
                        log.info("%s: finishing the duty in hand, then stopping", name)
                        root.start_soon(self._cancel_after_duties, root.cancel_scope)
                    case _:
                        assert_never(self.phase)

    async def _cancel_after_duties(self, root: trio.CancelScope) -> None:
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            await self._scheduler_stopped.wait()
        root.cancel()

    @staticmethod
    async def _stop_scheduler_on(stop: trio.Event, scheduler: Scheduler) -> None:
        await stop.wait()
        scheduler.stop()

    def _fault_hook(self) -> FaultHook | None:
        if not self.config.allow_fault_injection:  # build_config refused a set variable without the flag
            return None
        hook = faults_from_env()
        if hook is not None:
            log.warning("!!! %s is set: the duty guard will inject faults (tests/chaos only) !!!", FAULT_ENV)
        return hook

    def _scrub(self, text: str) -> str:
        return scrub_endpoints(text, self.config.l1_rpc_urls)

    def _scrub_store(self, text: str) -> str:
        return scrub_dsn(text, self.config.ha_db.url)


def log_startup(config: NodeConfig, keystore: LoadedKeystore) -> None:
    """The start-up lines: node id, attesters, publishers, rollup, L1 URLs (redacted), store — never a key."""
    log.info(
        "ha-sequencer %s node %s starting (network %s, pid %d)",
        __version__,
        config.node_id,
        config.network,
        os.getpid(),
    )
    for v in keystore.validators:
        pubs = ", ".join(p.address for p in v.publishers) or f"{v.attester.address} (attester pays gas)"
        log.info(
            "attester %s, publisher(s) %s, fee recipient 0x%s",
            v.attester.address,
            pubs,
            v.fee_recipient.hex(),
        )
    log.info("rollup %s", config.rollup)
    log.info("L1 RPC URLs: %s", ", ".join(config.l1_urls_display))
    log.info("duty store: %s (%s)", config.ha_db.kind, config.ha_db.display)
    log.info(
        "data dir %s, http %s:%d, p2p %s:%d, %d bootstrap peer(s)",
        config.data_dir,
        config.host,
        config.port,
        config.p2p_host,
        config.p2p_port,
        len(config.bootstrap_nodes),
    )


async def _main(config: NodeConfig, keystore: LoadedKeystore) -> None:
    client = RollupClient(list(config.l1_rpc_urls), config.rollup)
    await Node(config, keystore, client).run()
    log.info("node %s stopped cleanly", config.node_id)


def run_node(config: NodeConfig) -> None:
    """Run a node in this process until SIGTERM/SIGINT; raises on a fatal error."""
    check_keystore_permissions(config)
    keystore = load_identities(config)
    if not keystore.validators:
        raise InputError(f"--keystore {config.keystore}: no validators in the keystore")
    log_startup(config, keystore)
    # py_ecc (imported by eth-account) raises the recursion limit to 100,000 for the whole process, where a
    # deeply nested hostile input would overflow the C stack (SIGSEGV) instead of raising RecursionError.
    # Nothing the node runs needs more than Python's default.
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)
    try:
        trio.run(_main, config, keystore)
    except BaseExceptionGroup as group:
        # one project error (node id already live, chain diverged…) → one clear line and its exit code
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], HASequencerError):
            log.error("node %s stopped: %s", config.node_id, leaves[0])
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(cast(BaseExceptionGroup[BaseException], exc)))
        else:
            out.append(exc)
    return out

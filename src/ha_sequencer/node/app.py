"""The node: one trio nursery, each subsystem a task (DESIGN.md: Node; STYLE.md: trio).

Start-up: check and load the keystore, log who we are (never a key), serve HTTP at once (so /status can
say why the node is unhealthy), then read the network from L1, open the duty store, join gossip and run sync,
committee refresh, health probes and the duty scheduler. SIGTERM/SIGINT: no new duties, the duty in
hand finishes (its guard call is never abandoned), then everything is cancelled and the process exits 0.
Any subsystem that dies brings the node down with its traceback (exit 1).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

import trio

from ha_sequencer import __version__
from ha_sequencer.errors import HASequencerError, InputError
from ha_sequencer.keys.discovery import insecure_keystore_files
from ha_sequencer.monitoring.service import FundsService
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.config import NodeConfig
from ha_sequencer.node.gossip_checks import GossipChecks
from ha_sequencer.node.http import INVALID_PARAMS, NOT_READY, RpcError, RpcMethod, serve_http
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.wire import encode_tx_message, parse_attestation, parse_proposal, parse_tx
from ha_sequencer.redact import scrub_endpoints

log = logging.getLogger("ha_sequencer.node")

SYNC_POLL_FRACTION = 0.1  # of a slot: L1 is polled ~10× per slot
MIN_SYNC_POLL_S = 0.2
HEALTH_INTERVAL_S = 1.0
SHUTDOWN_GRACE_S = 5.0  # at most this long for the duty in hand after SIGTERM
L1_STALE_S = 5.0  # no successful L1 call for this long → L1 unhealthy
HEARTBEAT_S = 2.0
PYTHON_RECURSION_LIMIT = 1000  # CPython's default; see run_node
NODE_STALE_S = 10.0


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


def load_identities(config: NodeConfig):
    """Load the keystore; returns the keys module's LoadedKeystore."""
    from ha_sequencer.keys.keystore import load_keystore

    kwargs: dict[str, Any] = {}
    passwords = _password_source(config)
    if passwords is not None:
        kwargs["passwords"] = passwords
    return load_keystore(config.keystore, **kwargs)


def _password_source(config: NodeConfig):
    if config.keystore_password is None and config.keystore_password_file is None:
        return None
    from ha_sequencer.keys.keystore import PasswordSource

    if config.keystore_password_file is not None:
        return PasswordSource.from_file(config.keystore_password_file)
    return PasswordSource(default=config.keystore_password)


class Node:
    """A running sequencer node (see the module docstring)."""

    def __init__(self, config: NodeConfig, keystore, client) -> None:
        self.config = config
        self.keystore = keystore
        self.client = client
        self.metrics = NodeMetrics()
        self.started = time.time()
        self.params = None
        self.clock: SlotClock | None = None
        self.chain: Chain | None = None
        self.sync = None
        self.committees: CommitteeCache | None = None
        self.mempool = None
        self.guard = None
        self.store = None
        self.gossip = None
        self.checks: GossipChecks | None = None
        self.scheduler = None
        self.publisher = None
        self.http_addresses: list[str] = []
        self.l1_error: str | None = "not contacted yet"
        self.l1_last_ok: float | None = None
        self.store_healthy: bool | None = None
        self._instance = f"{socket.gethostname()}:{os.getpid()}:{int(self.started)}"
        self._stopping = False
        self.validators = list(keystore.validators)
        self.attesters = [v.attester.address for v in self.validators]
        # attester → every publisher this node may pay gas with (split keystores hold one; the attester
        # itself when the keystore names none); FundsService picks one per submission
        self.publishers = {v.attester.address: list(v.publishers) or [v.attester] for v in self.validators}
        # publisher balances on a timer, the per-submission publisher choice, webhook alerts
        self.funds = FundsService.from_keystore(
            keystore,
            config.l1_rpc_urls,
            registry=self.metrics.registry,
            node_id=config.node_id,
            settings=config.funds,
        )

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (returns) or a subsystem fails (raises)."""
        async with trio.open_nursery() as root:
            root.start_soon(self._signals, root.cancel_scope)
            self.http_addresses = await root.start(serve_http, self, self.config.host, self.config.port)
            log.info("http: serving /status, /metrics and JSON-RPC on %s", ", ".join(self.http_addresses))
            # from the start: a node stuck before its first slot (L1 down, unfunded) still alerts and reports
            await root.start(
                lambda task_status: self.funds.run(status_report=self.status_report, task_status=task_status)
            )
            await self._bootstrap()
            await self._run_subsystems(root)

    async def _signals(self, root_scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if self._stopping:
                    log.warning("second %s: stopping now", signal.Signals(signum).name)
                    root_scope.cancel()
                    return
                self._stopping = True
                log.info("%s: finishing the duty in hand, then stopping", signal.Signals(signum).name)
                if self.scheduler is None:
                    root_scope.cancel()
                    return
                self.scheduler.stop()
                with trio.move_on_after(SHUTDOWN_GRACE_S):
                    await self.scheduler.finished.wait()
                root_scope.cancel()
                return

    async def _bootstrap(self) -> None:
        """Read the network from L1, retrying until it answers (/status says why meanwhile)."""
        from ha_sequencer.node.sync import Sync

        delay = 0.5
        while True:
            try:
                params = await trio.to_thread.run_sync(self.client.params)
                allocation = await trio.to_thread.run_sync(self.client.genesis_allocation)
                break
            except HASequencerError as exc:
                self.l1_error = self._scrub(str(exc))
            except Exception as exc:  # web3/requests errors while L1 is unreachable
                self.l1_error = self._scrub(f"{type(exc).__name__}: {exc}")
            log.warning("L1 not reachable yet (%s); retrying in %.1f s", self.l1_error, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self._l1_ok()
        await self._check_registration()
        self.params = params
        self.clock = SlotClock(SlotTiming(params.genesis_time, params.slot_duration))
        self.chain = Chain(params, allocation)
        self.committees = CommitteeCache(params)
        self.sync = Sync(self.client, self.chain, self.metrics, scrub=self._scrub)
        log.info(
            "network: chain id %d, rollup %s, genesis %d, slot %d s, epoch %d slots, committee %d",
            params.chain_id,
            params.rollup,
            params.genesis_time,
            params.slot_duration,
            params.epoch_length,
            params.committee_size,
        )

    async def _check_registration(self) -> None:
        """Warn (loudly, once) about attesters the rollup does not know: they will never have duties."""
        from ha_sequencer.l1.errors import L1Error, NotRegistered

        for attester in self.attesters:
            try:
                await trio.to_thread.run_sync(self.client.validator, attester)
            except NotRegistered:
                log.warning(
                    "attester %s is not registered on rollup %s: it will have no duties",
                    attester,
                    self.config.rollup,
                )
            except L1Error as exc:
                log.warning("could not check the registration of %s: %s", attester, self._scrub(str(exc)))

    def _scrub(self, text: str) -> str:
        return scrub_endpoints(text, self.config.l1_rpc_urls)

    def _l1_ok(self) -> None:
        self.l1_error = None
        self.l1_last_ok = time.time()
        self.metrics.l1_healthy.set(1)

    async def _run_subsystems(self, root: trio.Nursery) -> None:
        from ha_sequencer.ha.faults import FAULT_ENV, faults_from_env
        from ha_sequencer.ha.guard import DutyGuard
        from ha_sequencer.ha.metrics import GuardMetrics
        from ha_sequencer.ha.store import open_store
        from ha_sequencer.node.mempool import Mempool
        from ha_sequencer.node.publisher import Publisher
        from ha_sequencer.node.scheduler import Identity, Scheduler
        from ha_sequencer.p2p.gossip import GossipNode
        from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC
        from ha_sequencer.p2p.validation import GossipMetrics

        params, clock = self.params, self.clock
        assert params is not None and clock is not None and self.chain is not None
        self.store = await trio.to_thread.run_sync(lambda: open_store(self.config.ha_db.url, migrate=True))
        await trio.to_thread.run_sync(
            lambda: self.store.register_node(
                self.config.node_id, self._instance, socket.gethostname(), os.getpid(), NODE_STALE_S
            )
        )
        guard_kwargs: dict[str, Any] = {}
        if self.config.lease_s is not None:
            guard_kwargs["lease_s"] = self.config.lease_s
        fault_hook = faults_from_env()
        if fault_hook is not None:
            log.warning("!!! %s is set: the duty guard will inject faults (tests/chaos only) !!!", FAULT_ENV)
            guard_kwargs["fault_hook"] = fault_hook
        self.guard = DutyGuard(
            self.store,
            node_id=self.config.node_id,
            rollup=params.rollup,
            metrics=GuardMetrics(self.metrics.registry),
            **guard_kwargs,
        )
        self.mempool = Mempool(params)
        self.checks = GossipChecks(params, self.committees, clock.current_slot)
        self.publisher = Publisher(
            client=self.client,
            guard=self.guard,
            clock=clock,
            metrics=self.metrics,
            funds=self.funds,
        )
        gossip = GossipNode(
            self.config.p2p_key_path,
            self.config.p2p_port,
            list(self.config.bootstrap_nodes),
            listen_host=self.config.p2p_host,
            metrics=GossipMetrics(self.metrics.registry),
        )
        async with gossip:
            self.gossip = gossip
            await gossip.subscribe(TX_TOPIC, self.checks.check_tx)
            await gossip.subscribe(PROPOSAL_TOPIC, self.checks.check_proposal)
            await gossip.subscribe(ATTESTATION_TOPIC, self.checks.check_attestation)
            log.info("gossip: peer id %s at %s", gossip.peer_id, gossip.multiaddr)
            self.scheduler = Scheduler(
                params=params,
                clock=clock,
                chain=self.chain,
                sync=self.sync,
                committees=self.committees,
                mempool=self.mempool,
                guard=self.guard,
                publisher=self.publisher,
                metrics=self.metrics,
                identities=[Identity.from_account(v.attester, v.fee_recipient) for v in self.validators],
                publish_gossip=self._publish,
                alerts=self.funds,
            )
            async with trio.open_nursery() as n:
                n.start_soon(self._refresh_committees)
                poll = max(MIN_SYNC_POLL_S, SYNC_POLL_FRACTION * params.slot_duration)
                await n.start(self.sync.run, poll)
                n.start_soon(self._consume_gossip)
                n.start_soon(self._health)
                n.start_soon(self._on_new_blocks)
                n.start_soon(self._heartbeat)
                await self.scheduler.run()
                # scheduler stopped (SIGTERM): the signal task cancels the root scope
                await trio.sleep_forever()

    async def close(self) -> None:
        """Release resources that outlive the nursery (store)."""
        if self.store is not None:
            store = self.store
            try:
                await trio.to_thread.run_sync(
                    lambda: store.unregister_node(self.config.node_id, self._instance)
                )
            except Exception as exc:  # the store may be the thing that is down
                log.warning("could not unregister from the duty store: %s", exc)
            await trio.to_thread.run_sync(store.close)

    # --- subsystems ---------------------------------------------------------------------------------------

    async def _publish(self, topic: str, data: bytes) -> None:
        if self.gossip is not None:
            await self.gossip.publish(topic, data)

    async def _refresh_committees(self) -> None:
        """Keep the committees of the current and next epoch cached (they are fixed two epochs ahead)."""
        assert self.params is not None and self.clock is not None and self.committees is not None
        while True:
            epoch = self.params.epoch_of(max(0, self.clock.current_slot()))
            for e in (epoch, epoch + 1):
                if self.committees.has(e):
                    continue
                try:
                    committee = await trio.to_thread.run_sync(self.client.epoch_committee, e)
                    self.committees.put(e, committee)
                    self._l1_ok()
                    if e == epoch:
                        mine = [a for a in self.attesters if a in committee]
                        log.info(
                            "epoch %d: committee of %d, ours: %s",
                            e,
                            len(committee),
                            ", ".join(mine) or "none",
                        )
                except Exception as exc:  # L1 down: retry soon; gossip of that epoch is ignored meanwhile
                    log.warning("epoch %d: committee not available: %s", e, exc)
                    break
            await trio.sleep(min(1.0, self.params.slot_duration / 2))

    async def _consume_gossip(self) -> None:
        assert self.gossip is not None and self.params is not None
        async for msg in self.gossip:
            try:
                self._dispatch(msg.topic, msg.data)
            # the gate validated these bytes already; still, a message never kills the node
            except (HASequencerError, ValueError) as exc:
                log.debug("gossip %s message not used: %s", msg.topic, exc)

    def _dispatch(self, topic: str, data: bytes) -> None:
        from ha_sequencer.node.mempool import MempoolError
        from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC

        assert self.scheduler is not None and self.params is not None
        if topic == PROPOSAL_TOPIC:
            self.scheduler.on_proposal_nowait(parse_proposal(self.params, data))
        elif topic == ATTESTATION_TOPIC:
            self.scheduler.on_attestation(parse_attestation(self.params, data))
        elif topic == TX_TOPIC:
            try:
                self.mempool.add(parse_tx(self.params, data), self.chain.state)
            except MempoolError as exc:
                log.debug("gossip tx not added: %s", exc)
            self.metrics.mempool_size.set(len(self.mempool))

    async def _on_new_blocks(self) -> None:
        """Prune the mempool when blocks land."""
        assert self.sync is not None and self.chain is not None
        seen = self.chain.height
        while True:
            await self.sync.wait_new_block()
            for number in range(seen + 1, self.chain.height + 1):
                block = self.chain.by_number(number)
                self.mempool.on_block(self.chain.state, block.txs if block else ())
            seen = self.chain.height
            self.metrics.mempool_size.set(len(self.mempool))

    async def _health(self) -> None:
        while True:
            ok = await trio.to_thread.run_sync(lambda: self.guard.healthy)
            self.store_healthy = ok
            self.metrics.store_healthy.set(1 if ok else 0)
            sync_error = self.sync.status.last_error if self.sync is not None else None
            if self.client.healthy and sync_error is None:
                self._l1_ok()
            else:
                self.l1_error = self._scrub(sync_error or "no L1 RPC endpoint healthy")
                self.metrics.l1_healthy.set(0)
            if self.gossip is not None:
                self.metrics.peers.set(self.gossip.peer_count())
            await trio.sleep(HEALTH_INTERVAL_S)

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(HEARTBEAT_S)
            try:
                await trio.to_thread.run_sync(
                    lambda: self.store.heartbeat_node(self.config.node_id, self._instance)
                )
            except Exception as exc:  # store health is reported by _health
                log.debug("duty store heartbeat failed: %s", exc)

    # --- /status and JSON-RPC -----------------------------------------------------------------------------

    def status_report(self) -> dict[str, Any]:
        """The /status document (DESIGN.md: Node)."""
        reasons: list[str] = []
        slot = role = epoch = None
        if self.params is None or self.clock is None:
            reasons.append("starting: network parameters not read from L1 yet")
        else:
            slot = self.clock.current_slot()
            epoch = self.params.epoch_of(slot)
            role = self.scheduler.role_at(slot) if self.scheduler is not None else None
        l1_healthy = self.l1_error is None
        if not l1_healthy:
            reasons.append(f"l1_unreachable: {self.l1_error}")
        if self.store_healthy is False:
            reasons.append("duty_store_unreachable")
        synced = bool(self.sync is not None and self.sync.synced)
        if self.sync is not None and not synced:
            reasons.append("not_synced")
        peers = self.gossip.peer_count() if self.gossip is not None else 0
        if self.gossip is not None and peers == 0 and self._expects_peers(slot):
            reasons.append("no_peers")
        reasons.extend(self.funds.reasons())
        sync_status = self.sync.status if self.sync is not None else None
        tip = self.chain.tip if self.chain is not None else None
        return {
            "status": "ok" if not reasons else "unhealthy",
            "reasons": reasons,
            "nodeId": self.config.node_id,
            "network": self.config.network,
            "version": __version__,
            "rollup": self.config.rollup,
            "attesters": self.attesters,
            "publishers": list(dict.fromkeys(p.address for ps in self.publishers.values() for p in ps)),
            "slot": slot,
            "epoch": epoch,
            "role": role,
            "sync": {
                "synced": synced,
                "blockNumber": tip.number if tip else None,
                "archive": "0x" + tip.archive.hex() if tip else None,
                "slot": tip.slot if tip else None,
                "l1BlockNumber": sync_status.l1_height if sync_status else None,
                "lastError": sync_status.last_error if sync_status else None,
            },
            "l1": {
                "healthy": l1_healthy,
                "urls": self.config.l1_urls_display,
                "endpoints": _endpoints(self.client),
                "chainId": self.params.chain_id if self.params else None,
                "lastOk": self.l1_last_ok,
                "error": self.l1_error,
            },
            "ha": {
                "store": self.config.ha_db.kind,
                "url": self.config.ha_db.display,
                "healthy": self.store_healthy,
                "nodeId": self.config.node_id,
                "leaseS": getattr(self.guard, "lease_s", None),
            },
            "peers": peers,
            "peerId": self.gossip.peer_id if self.gossip is not None else None,
            "p2p": self.gossip.multiaddr if self.gossip is not None else None,
            "mempool": len(self.mempool) if self.mempool is not None else 0,
            "funds": self.funds.status_section(),
            "uptimeS": round(time.time() - self.started, 1),
        }

    def _expects_peers(self, slot: int | None) -> bool:
        if self.config.bootstrap_nodes:
            return True
        if slot is None or self.committees is None:
            return False
        committee = self.committees.committee_at(slot)
        return bool(committee) and any(a not in self.attesters for a in committee)

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        """JSON-RPC 2.0 methods."""
        return {
            "node_sendTx": self._rpc_send_tx,
            "node_getBlockNumber": self._rpc_block_number,
            "node_getBlock": self._rpc_get_block,
            "node_getBalance": self._rpc_get_balance,
            "node_getStatus": lambda _params: self.status_report(),
            "node_getSlotRecords": self._rpc_slot_records,
        }

    def _rpc_slot_records(self, _params: Any) -> list[dict[str, Any]]:
        """Per-slot timings of this node's proposals (seconds after slot start), for benchmarks."""
        self._ready()
        if self.scheduler is None:
            return []
        return [dataclasses.asdict(r) for r in sorted(self.scheduler.records.values(), key=lambda r: r.slot)]

    def _ready(self) -> None:
        if self.chain is None or self.mempool is None:
            raise RpcError(NOT_READY, "node is starting: not connected to L1 yet")

    async def _rpc_send_tx(self, params: Any) -> str:
        from ha_sequencer.node.mempool import MempoolError
        from ha_sequencer.p2p.topics import TX_TOPIC
        from ha_sequencer.protocol.block import InvalidTxs, SignedTx

        self._ready()
        raw = _one_param(params, "tx")
        if not isinstance(raw, str) or not raw.startswith("0x"):
            raise RpcError(INVALID_PARAMS, "tx must be a 0x-prefixed hex string (the 201-byte signed tx)")
        try:
            stx = SignedTx.decode(bytes.fromhex(raw[2:]))
        except (ValueError, InvalidTxs) as exc:
            raise RpcError(INVALID_PARAMS, f"tx does not decode: {exc}") from None
        try:
            result = self.mempool.add(stx, self.chain.state)
        except MempoolError as exc:
            self.metrics.rpc_txs.labels(result="rejected").inc()
            err = exc.to_rpc_error()
            raise RpcError(err["code"], err["message"], err.get("data")) from None
        self.metrics.rpc_txs.labels(result="accepted").inc()
        self.metrics.mempool_size.set(len(self.mempool))
        await self._publish_safe(TX_TOPIC, encode_tx_message(stx.encode()))
        return "0x" + result.tx_hash.hex()

    async def _publish_safe(self, topic: str, data: bytes) -> None:
        try:
            await self._publish(topic, data)
        except Exception as exc:  # the tx is in our mempool either way
            log.warning("gossip %s: publish failed: %s", topic, exc)

    def _rpc_block_number(self, _params: Any) -> int:
        self._ready()
        return self.chain.height

    def _rpc_get_block(self, params: Any) -> dict[str, Any] | None:
        self._ready()
        ref = _one_param(params, "block", default="latest")
        if ref == "latest":
            block = self.chain.tip
        elif isinstance(ref, int) and not isinstance(ref, bool):
            block = self.chain.by_number(ref)
        elif isinstance(ref, str) and ref.startswith("0x") and len(ref) == 66:
            try:
                block = self.chain.by_archive(bytes.fromhex(ref[2:]))
            except ValueError:
                raise RpcError(INVALID_PARAMS, "archive must be 32 bytes of hex") from None
        else:
            raise RpcError(INVALID_PARAMS, 'block must be a number, "latest" or a 0x archive (32 bytes)')
        return block.to_json() if block is not None else None

    def _rpc_get_balance(self, params: Any) -> dict[str, Any]:
        from eth_utils import is_address, to_checksum_address

        self._ready()
        address = _one_param(params, "address")
        if not isinstance(address, str) or not is_address(address):
            raise RpcError(INVALID_PARAMS, "address must be a 0x-prefixed 20-byte hex address")
        address = to_checksum_address(address)
        account = self.chain.state.account(address)
        return {
            "address": address,
            "balance": str(account.balance),
            "nonce": account.nonce,
            "pendingNonce": self.mempool.next_nonce(address, self.chain.state),
            "blockNumber": self.chain.height,
        }


def _one_param(params: Any, name: str, *, default: Any = ...) -> Any:
    if isinstance(params, dict):
        if name in params:
            return params[name]
    elif isinstance(params, list) and params:
        return params[0]
    if default is ...:
        raise RpcError(INVALID_PARAMS, f"missing parameter {name!r}")
    return default


def _endpoints(client) -> list[dict[str, Any]]:
    """Per-URL health from the L1 client (which keeps URLs redacted)."""
    out = []
    for status in getattr(client, "endpoints", []):
        out.append({"url": status.url, "healthy": status.healthy, "failures": status.failures})
    return out


def log_startup(config: NodeConfig, keystore) -> None:
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


async def _main(config: NodeConfig, keystore) -> None:
    from ha_sequencer.l1.client import RollupClient

    client = RollupClient(list(config.l1_rpc_urls), config.rollup)
    node = Node(config, keystore, client)
    try:
        await node.run()
    finally:
        with trio.CancelScope(shield=True):
            await node.close()
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


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out

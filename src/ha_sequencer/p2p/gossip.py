"""`GossipNode`: py-libp2p 0.8.1 gossipsub under trio, with validated topics and reconnecting bootstrap peers.

Choices:
- Message ids are content hashes (`validation.message_id`), so the same bytes published by two HA
  nodes are one message: the second copy is dropped as a duplicate everywhere.
- Every received message goes through its topic's `TopicGate` before it is delivered or relayed;
  REJECT and IGNORE are neither. Local publications skip the gate (the node trusts itself) except
  for the size cap, which `publish` enforces by raising `PublishError`.
- Local publications are NOT delivered to the node's own receive channel (`deliver_own=False`):
  the node already acts on what it publishes, and echoing its own proposal or attestation would make
  it process that twice. An HA twin's copy of the same duty arrives from another peer id and is delivered.
- py-libp2p's per-peer, per-topic rate limit (`max_messages_per_topic_per_second`, default 10/s in
  the library) silently drops relays above it; here it is a config value sized for a committee of
  up to 256 attesting within a second, with HA duplicates and tx bursts on top.
- Gossipsub v1.1 only, no "adaptive"/eclipse extras, a 0.7 s heartbeat, a 1024-RPC outbound queue per
  peer, and two hostile-input crashes of py-libp2p contained (see `DEFAULT_PROTOCOLS`, `GossipConfig`,
  `_ContainedPubsub`).
- Validators are synchronous and run on the trio thread in arrival order: keep them cheap (decode,
  size, slot window, signature recovery, committee lookup); heavy work (re-executing a block) belongs
  after delivery.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.peer.peerstore import PeerStore
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.score import ScoreParams
from libp2p.tools.anyio_service import background_trio_service
from prometheus_client import CollectorRegistry

from ha_sequencer.log_limits import BoundedLog
from ha_sequencer.p2p import topics as topic_caps
from ha_sequencer.p2p.errors import ListenError, MultiaddrError, PublishError
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of
from ha_sequencer.p2p.validation import (
    GossipMetrics,
    RejectionSummary,
    SeenCache,
    TopicGate,
    Validator,
    Verdict,
    message_id,
)

log = logging.getLogger(__name__)

# Gossipsub v1.1 only. py-libp2p's v1.2 sends an IDONTWANT RPC for every received message to every mesh
# peer, whatever its size and including the peer it came from (gossipsub.py _emit_idontwant_for_message;
# go-libp2p does so only above 1 KiB): with our small messages that doubled CPU and took 4 nodes at
# 100 msg/s from p50 3.7 ms to p50 470 ms (benchmarks/gossip_latency.py, --protocols).
DEFAULT_PROTOCOLS: tuple[str, ...] = (PROTOCOL_ID_V11,)


class GossipMessage(NamedTuple):
    """An accepted message: its topic, payload and the base58 peer id of the node that published it."""

    topic: str
    data: bytes
    from_peer: str


@dataclass(frozen=True)
class GossipConfig:
    """Gossipsub and connection parameters; defaults suit a devnet of 4-50 nodes with 4 s slots."""

    degree: int = 6
    degree_low: int = 4
    degree_high: int = 12
    # py-libp2p defaults to 120 s, which leaves a restarted peer out of the mesh for minutes.
    heartbeat_interval_s: float = 0.7
    heartbeat_initial_delay_s: float = 0.1
    # Per forwarding peer and topic; py-libp2p's default of 10/s drops real traffic (DESIGN.md facts).
    max_messages_per_topic_per_second: float = 5_000.0
    seen_ttl_s: int = 120
    gossip_window: int = 3
    gossip_history: int = 5
    prune_back_off_s: int = 60
    # Accepted messages waiting for the node; beyond this they are dropped and counted.
    receive_queue_size: int = 8_192
    # RPCs waiting to be written to one peer; py-libp2p's 32 drops a committee's attestation burst.
    outbound_queue_size: int = 1_024
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0
    reconnect_check_s: float = 0.5
    dial_timeout_s: float = 10.0
    maintenance_interval_s: float = 10.0
    deliver_own: bool = False
    # Gossipsub versions offered, preferred first; empty = DEFAULT_PROTOCOLS.
    protocols: tuple[str, ...] = ()
    # py-libp2p peer scoring; None = its defaults, which weigh nothing and never graylist (scoring off).
    # Off by default: a node whose checks wrongly REJECT honest traffic would otherwise cut itself off.
    score_params: ScoreParams | None = None
    # "YAMUX" (py-libp2p's default) or "MPLEX". py-libp2p's yamux writes a window update after nearly
    # every read; mplex used ~30% less CPU at 100 msg/s on 4 nodes (13.7% vs 19.4% per node), same latency.
    muxer: Literal["YAMUX", "MPLEX"] = "YAMUX"


def parse_bootstrap(addrs: Sequence[str]) -> list[tuple[str, ID, Any]]:
    """Parse `/ip4/…/tcp/…/p2p/<peer id>` multiaddrs; raises `MultiaddrError` naming the bad one."""
    parsed = []
    for addr in addrs:
        addr = addr.strip()
        if not addr:
            continue
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise MultiaddrError(
                f"bootstrap multiaddr {addr!r}: {exc} (expected /ip4/HOST/tcp/PORT/p2p/PEER_ID)"
            ) from None
        parsed.append((addr, info.peer_id, info))
    return parsed


class BootstrapPeerStore(PeerStore):
    """A peerstore through which the node dials only its bootstrap peers, each at its configured address.

    Identify replaces a peer's addresses with the ones it announces, and py-libp2p dials on its own whenever
    it wants a stream to a peer whose connection dropped (pubsub sending to a mesh peer): at the announced
    address, around the proxy or NAT that only the configured one crosses. A chaos partition leaked that way:
    the cut node redialled its peers directly within a second and kept receiving gossip (seed 1950). A peer
    that dialled us (a watcher, a node we were not told of) gets no address: if its connection drops, it
    redials us; the library's auto-connector would otherwise dial it at whatever address it announced."""

    def __init__(self, pinned: dict[ID, list[multiaddr.Multiaddr]]) -> None:
        super().__init__()
        self._pinned = pinned

    def addrs(self, peer_id: ID) -> list[multiaddr.Multiaddr]:
        """The configured address of a bootstrap peer; none for any other (nothing to dial)."""
        return list(self._pinned.get(peer_id, ()))


def listen_multiaddr(host: str, port: int) -> multiaddr.Multiaddr:
    """The TCP listen multiaddr for an IPv4/IPv6 literal and a port (0 = any free port)."""
    if not 0 <= port <= 65535:
        raise MultiaddrError(f"p2p listen port {port} is outside 0..65535")
    proto = "ip6" if ":" in host else "ip4"
    try:
        return multiaddr.Multiaddr(f"/{proto}/{host}/tcp/{port}")
    except Exception as exc:
        raise MultiaddrError(f"p2p listen address {host!r}:{port}: {exc}") from None


def ensure_port_free(host: str, port: int) -> None:
    """Raise `ListenError` if a socket already listens on host:port (port 0 is always free).

    py-libp2p binds its TCP listener with SO_REUSEPORT (transport/tcp/tcp.py _open_reuseport_listeners),
    so a second node started on the same port binds too and the kernel splits inbound connections
    between them. A plain SO_REUSEADDR bind fails on a live listener yet passes TIME_WAIT leftovers of
    a node that just restarted on its port.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ListenError(f"p2p listen address {host}:{port} is unusable: {exc.strerror}") from None


class _BoundedForward(logging.Handler):
    """Hands py-libp2p's records to the root logger's handlers, at most a few of each kind per minute, a
    contained failure's traceback cut to one line (a filter on a handler sees every child logger's records,
    including those of loggers py-libp2p creates per service later)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.addFilter(BoundedLog(contained=(Exception,)))

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)  # as propagation would: the root's handlers, at their levels


def route_libp2p_logs() -> None:
    """Send py-libp2p's log records through the application's handlers, minus routine dial failures.

    On import py-libp2p sets its "libp2p" logger to propagate=False with no handler (libp2p/utils/
    logging.py), so its warnings bypass the node's logging config and land raw on stderr; and it logs
    every failed TCP dial at ERROR, which is routine while a bootstrap peer is down (our reconnect
    loop logs those at DEBUG).
    """
    libp2p = logging.getLogger("libp2p")
    # A hostile peer drives py-libp2p's warnings (one per subscription over its cap, per oversized RPC) and
    # the tracebacks of failures it contains (LifecycleError when a task is scheduled at shutdown): its
    # records pass one bounded handler on their way to the application's handlers.
    if not any(isinstance(h, _BoundedForward) for h in libp2p.handlers):
        libp2p.addHandler(_BoundedForward())
    libp2p.propagate = False
    logging.getLogger("libp2p.transport.tcp.tcp").setLevel(logging.CRITICAL)
    # auto_connector.py forces its own logger to INFO and reports "below target (200 connections)" often.
    logging.getLogger("libp2p.network.auto_connector").setLevel(logging.WARNING)


def _pubsub_message_id(msg: rpc_pb2.Message) -> bytes:
    return message_id("\n".join(msg.topicIDs), msg.data)


class _ContainedPubsub(Pubsub):
    """Pubsub whose per-message failures stay per-message, and whose deliveries go to the node's channel.

    In py-libp2p 0.8.1 one hostile peer can take a node down, both reproduced in tests/p2p:
    - an exception in a `push_msg` task (`signature_validator` re-raises the protobuf DecodeError of a
      crafted `key` field, pubsub/validators.py:60, called from pubsub.py:1747) is collected by the
      service manager, which cancels the Pubsub service and the node with it;
    - an RPC frame that is not protobuf raises DecodeError in `continuously_read_stream`
      (pubsub.py:562), which `stream_handler` does not catch: it escapes into the connection's task
      and cancels the Swarm.
    Here both are contained to the message / stream, logged and counted.
    """

    def __init__(self, *args: Any, node: GossipNode, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._node = node

    async def _handle_new_peer(self, peer_id: ID) -> None:
        await super()._handle_new_peer(peer_id)
        queue = self.peer_queues.get(peer_id)
        if queue is not None:
            # RpcQueue() is built with its default bound inside the library method; widen it here.
            queue._queue.max_size = self._node.config.outbound_queue_size

    async def stream_handler(self, stream: Any) -> None:
        try:
            await super().stream_handler(stream)
        except Exception as exc:
            peer_id = stream.muxed_conn.peer_id
            if self.manager.is_cancelled or not self.manager.is_running:
                # Shutting down: the read loop raced the closing task nursery ("closed to new arrivals").
                log.debug("gossip: stream of %s ended during shutdown: %s", peer_id, type(exc).__name__)
                return
            self._node.metrics.internal_errors.inc()
            log.warning(
                "gossip: closed the stream of %s after unreadable input: %s", peer_id, type(exc).__name__
            )
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer_id)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:
            if msg_forwarder == self.my_id:
                raise  # our own publication: the caller must see it
            self._node.metrics.internal_errors.inc()
            log.warning(
                "gossip: dropped a message from %s that broke py-libp2p: %s: %s",
                msg_forwarder,
                type(exc).__name__,
                exc,
            )

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        self._node._deliver(publish_message)


class GossipNode:
    """A gossipsub node: `async with GossipNode(key_path, port, bootstrap) as g: await g.subscribe(...)`."""

    def __init__(
        self,
        key_path: Path,
        listen_port: int = 0,
        bootstrap: Sequence[str] = (),
        *,
        listen_host: str = "127.0.0.1",
        announce_port: int = 0,
        config: GossipConfig | None = None,
        registry: CollectorRegistry | None = None,
        metrics: GossipMetrics | None = None,
    ) -> None:
        self.config = config or GossipConfig()
        route_libp2p_logs()
        self.metrics = metrics if metrics is not None else GossipMetrics(registry)
        self._key_pair = load_or_create_peer_key(Path(key_path))
        self.peer_id: str = peer_id_of(self._key_pair)
        self._listen = listen_multiaddr(listen_host, listen_port)
        self._listen_host, self._listen_port = listen_host, listen_port
        # The port peers are told to dial (identify), when it differs from the one we listen on: a proxy or a
        # NAT forwards it to us. Advertising the listen port then would let peers learn a way around it.
        self._announce = [listen_multiaddr(listen_host, announce_port)] if announce_port else None
        self._bootstrap = [b for b in parse_bootstrap(bootstrap) if b[1].to_base58() != self.peer_id]
        self._gates: dict[str, TopicGate] = {}
        self._seen = SeenCache(ttl_s=float(self.config.seen_ttl_s))
        self.rejections = RejectionSummary()
        self._send, self._receive = trio.open_memory_channel[GossipMessage](self.config.receive_queue_size)
        self._host: Any = None
        self._pubsub: _ContainedPubsub | None = None
        self._router: GossipSub | None = None
        self._my_id = ID.from_pubkey(self._key_pair.public_key)
        self._cm: Any = None
        self.multiaddr: str = ""

    # --- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> GossipNode:
        self._cm = self._run()
        await self._cm.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        cm, self._cm = self._cm, None
        return await cm.__aexit__(*exc_info)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        cfg = self.config
        ensure_port_free(self._listen_host, self._listen_port)
        self._host = new_host(
            key_pair=self._key_pair,
            listen_addrs=[self._listen],
            muxer_preference=cfg.muxer,
            announce_addrs=self._announce,
            peerstore_opt=BootstrapPeerStore({peer: list(info.addrs) for _, peer, info in self._bootstrap}),
        )
        self._router = GossipSub(
            protocols=[TProtocol(p) for p in (cfg.protocols or DEFAULT_PROTOCOLS)],
            degree=cfg.degree,
            degree_low=cfg.degree_low,
            degree_high=cfg.degree_high,
            gossip_window=cfg.gossip_window,
            gossip_history=cfg.gossip_history,
            heartbeat_initial_delay=cfg.heartbeat_initial_delay_s,
            heartbeat_interval=cfg.heartbeat_interval_s,  # type: ignore[arg-type]  # float works (trio.sleep)
            prune_back_off=cfg.prune_back_off_s,
            score_params=cfg.score_params,
            max_messages_per_topic_per_second=cfg.max_messages_per_topic_per_second,
            # "Adaptive" gossip raises the heartbeat to 30-60 s when its health score dips (gossipsub.py
            # _adapt_heartbeat_parameters), and eclipse protection grafts beyond D by IP: both are wrong
            # for a small permissioned mesh whose peers often share one host.
            adaptive_gossip_enabled=False,
            eclipse_protection_enabled=False,
        )
        self._pubsub = _ContainedPubsub(
            self._host,
            self._router,
            node=self,
            seen_ttl=cfg.seen_ttl_s,
            msg_id_constructor=_pubsub_message_id,
            # The library caches validation results by message id for 300 s, which would turn an
            # IGNORE (e.g. "too early") into a 5-minute reject; TopicGate keeps its own verdict cache.
            validation_cache_ttl=0,
            validation_cache_size=1,
            max_inbound_rpc_size=topic_caps.MAX_RPC_BYTES,
        )
        try:
            async with self._host.run(listen_addrs=[self._listen]):
                try:
                    self.multiaddr = self._pick_multiaddr()
                    async with background_trio_service(self._pubsub), background_trio_service(self._router):
                        await self._pubsub.wait_until_ready()
                        async with trio.open_nursery() as nursery:
                            for addr, peer_id, info in self._bootstrap:
                                nursery.start_soon(self._keep_connected, addr, peer_id, info)
                            nursery.start_soon(self._maintain)
                            log.info(
                                "gossip: listening on %s, %d bootstrap peer(s)",
                                self.multiaddr,
                                len(self._bootstrap),
                            )
                            try:
                                yield
                            finally:
                                nursery.cancel_scope.cancel()
                finally:
                    # host.run() stops the swarm's tasks but leaves dialed sockets open; close() shuts them.
                    with trio.CancelScope(deadline=trio.current_time() + 5, shield=True):
                        await self._host.close()
        finally:
            self._send.close()
            self._pubsub.seen_messages.stop()

    def _pick_multiaddr(self) -> str:
        addrs = [str(a) for a in self._host.get_addrs()]
        if not addrs:
            raise MultiaddrError(f"libp2p host did not report a listen address for {self._listen}")
        return addrs[0]

    async def _keep_connected(self, addr: str, peer_id: ID, info: Any) -> None:
        """Dial a bootstrap peer until connected, and again whenever the connection drops (peer restarts)."""
        cfg = self.config
        delay = cfg.reconnect_min_s
        was_connected = False
        while True:
            if self._connected(peer_id):
                was_connected = True
                delay = cfg.reconnect_min_s
                await trio.sleep(cfg.reconnect_check_s)
                continue
            if was_connected:
                log.info("gossip: lost %s, reconnecting", addr)
                was_connected = False
            # py-libp2p blocks a peer for 60 s after one failed dial ("negative peer cache"), which would
            # keep a restarted peer unreachable for a minute; our own backoff governs redials instead.
            self._host.get_network().unblock_peer(peer_id)
            # Dialled at its configured address (BootstrapPeerStore), never at the one its identify reply
            # announced: behind a proxy or NAT only the configured one is the way in.
            try:
                with trio.fail_after(cfg.dial_timeout_s):
                    await self._host.connect(info)
                log.info("gossip: connected to %s", addr)
                # The backoff resets only once the connection has lived a check interval.
                await trio.sleep(cfg.reconnect_check_s)
                continue
            except Exception as exc:  # dial errors are routine while a peer is down
                log.debug(
                    "gossip: dial %s failed (%s: %s); retry in %.1fs", addr, type(exc).__name__, exc, delay
                )
            # Jitter, so that peers restarted together do not dial in lockstep.
            await trio.sleep(delay * random.uniform(1.0, 1.5))
            delay = min(delay * 2, cfg.reconnect_max_s)

    async def _maintain(self) -> None:
        """Trim router state py-libp2p only trims when "adaptive gossip" is on (which we turn off)."""
        assert self._router is not None
        while True:
            await trio.sleep(self.config.maintenance_interval_s)
            # gossipsub.py appends a timestamp per published/relayed message (publish, line 1089) and
            # prunes the lists only in _calculate_message_delivery_health: unbounded growth otherwise.
            self._router.recent_message_deliveries.clear()
            del self._router.recent_peer_connections[:]
            del self._router.recent_peer_disconnections[:]

    def _connected(self, peer_id: ID) -> bool:
        conns = self._host.get_network().connections.get(peer_id)
        return bool(conns)

    # --- topics --------------------------------------------------------------------------------

    async def subscribe(
        self, topic: str, validator: Validator | None = None, *, max_bytes: int | None = None
    ) -> None:
        """Join `topic`; received messages pass size cap, duplicate drop and `validator` before delivery."""
        pubsub = self._require_running()
        if topic in self._gates:
            raise ValueError(f"already subscribed to {topic}")
        cap = max_bytes if max_bytes is not None else topic_caps.max_bytes(topic)
        self._gates[topic] = TopicGate(topic, cap, validator, self.metrics, self._seen, self.rejections)
        pubsub.set_topic_validator(topic, self._pubsub_validator, False)
        await pubsub.subscribe(topic)

    async def publish(self, topic: str, data: bytes) -> bool:
        """Publish `data` on `topic`; False if these exact bytes were already seen here (nothing sent)."""
        pubsub = self._require_running()
        gate = self._gates.get(topic)
        try:
            cap = gate.max_bytes if gate is not None else topic_caps.max_bytes(topic)
        except KeyError as exc:
            raise PublishError(str(exc.args[0])) from None
        if not data or len(data) > cap:
            raise PublishError(f"gossip {topic}: payload of {len(data)} bytes is outside 1..{cap}")
        if pubsub.seen_messages.has(message_id(topic, data)):
            return False
        try:
            await pubsub.publish(topic, data)
        except Exception as exc:  # py-libp2p's stream errors have no common base: one error type for callers
            raise PublishError(f"gossip {topic}: {type(exc).__name__}: {exc}") from exc
        self.metrics.published.labels(topic=topic).inc()
        return True

    @property
    def messages(self) -> trio.MemoryReceiveChannel[GossipMessage]:
        """Accepted messages of all subscribed topics, in arrival order."""
        return self._receive

    def __aiter__(self) -> AsyncIterator[GossipMessage]:
        return self._receive.__aiter__()

    # --- state ---------------------------------------------------------------------------------

    def peer_count(self) -> int:
        """Peers with an open gossip stream (connected and speaking gossipsub)."""
        return len(self._live_peers())

    def peers(self) -> list[str]:
        """Base58 ids of the peers with an open gossip stream."""
        return sorted(p.to_base58() for p in self._live_peers())

    def _live_peers(self) -> list[ID]:
        # pubsub.peers can keep a peer whose connection is gone (a partitioned node reported a peer while it
        # received nothing): a peer counts only while the swarm holds a connection to it. list() copies the
        # dict in one step: the chaos watcher asks from another thread.
        if self._pubsub is None or self._host is None:
            return []
        return [p for p in list(self._pubsub.peers) if self._connected(p)]

    def topic_peers(self, topic: str) -> list[str]:
        """Base58 ids of connected peers subscribed to `topic`."""
        if self._pubsub is None:
            return []
        return sorted(p.to_base58() for p in self._pubsub.peer_topics.get(topic, ()))

    async def wait_for_topic_peers(self, topic: str, count: int, timeout_s: float = math.inf) -> None:
        """Wait until at least `count` peers are subscribed to `topic` (raises trio.TooSlowError)."""
        with trio.fail_after(timeout_s):
            while len(self.topic_peers(topic)) < count:
                await trio.sleep(0.05)

    # --- internals -----------------------------------------------------------------------------

    def _require_running(self) -> _ContainedPubsub:
        if self._pubsub is None or self._cm is None:
            raise RuntimeError("GossipNode is not running: use `async with GossipNode(...) as node:`")
        return self._pubsub

    def _pubsub_validator(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """The hook py-libp2p calls before delivery and relay (sync validator: runs in order, no await)."""
        try:
            if forwarder == self._my_id:
                return True  # our own publication; `publish` checked the cap
            if len(msg.topicIDs) != 1:
                for topic in msg.topicIDs:
                    if topic in self._gates:
                        self.metrics.count(topic, Verdict.REJECT)
                return False
            gate = self._gates.get(msg.topicIDs[0])
            if gate is None:
                return False
            return gate(msg.data, ID(msg.from_id).to_base58()) is Verdict.ACCEPT
        except Exception as exc:  # never let a validator failure reach py-libp2p's task manager
            log.warning("gossip: validation of a message from %s failed: %s", forwarder, type(exc).__name__)
            return False

    def _deliver(self, msg: rpc_pb2.Message) -> None:
        if not self.config.deliver_own and msg.from_id == self._my_id.to_bytes():
            return
        from_peer = ID(msg.from_id).to_base58()
        for topic in msg.topicIDs:
            if topic not in self._gates:
                continue
            try:
                self._send.send_nowait(GossipMessage(topic, msg.data, from_peer))
            except trio.WouldBlock:
                self.metrics.delivery_dropped.labels(topic=topic).inc()
                log.warning(
                    "gossip %s: receive queue full (%d), message dropped",
                    topic,
                    self.config.receive_queue_size,
                )
            except trio.ClosedResourceError:
                return

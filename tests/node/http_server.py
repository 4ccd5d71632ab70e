"""A node's real HTTP server (hypercorn on trio, `serve_http`) in a thread of the test process, over the
node's real JSON-RPC methods (a real chain and mempool; gossip without peers), with its log captured."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.l1.anvil import free_port
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.http import serve_http
from ha_sequencer.node.mempool import Mempool
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.rpc import NodeRpc
from ha_sequencer.p2p.errors import P2PError
from params_fixtures import PARAMS

FUNDED = Account.from_key(keccak(b"http-server funded account"))


class NoPeers:
    """Gossip with no peer connected: what `GossipNode.publish` raises then."""

    async def publish(self, topic: str, data: bytes) -> None:
        raise P2PError(f"{topic}: no peers")


@dataclass
class CapturedLog(logging.Handler):
    """Every record logged while the server runs (any logger), formatted as the node would."""

    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __hash__(self) -> int:
        return id(self)


class RealRpcNode:
    """The NodeApi the HTTP layer serves: the node's own `NodeRpc` methods and a status report."""

    def __init__(self, min_tx_fee: int = 0) -> None:
        self.metrics = NodeMetrics()
        chain = Chain(PARAMS, [(FUNDED.address, 10**12)])
        mempool = Mempool(PARAMS, 64, min_fee=min_tx_fee)
        services: Any = SimpleNamespace(
            chain=chain, mempool=mempool, gossip=NoPeers(), scheduler=SimpleNamespace(records={})
        )
        self.services = services
        self._rpc = NodeRpc(services, self.metrics, self.status_report)
        self.status_calls = 0

    def status_report(self) -> dict[str, Any]:
        self.status_calls += 1
        return {"status": "ok", "reasons": [], "nodeId": "fuzz"}

    def rpc_methods(self) -> Any:
        return self._rpc.methods()


@dataclass
class RunningServer:
    host: str
    port: int
    log: CapturedLog
    node: RealRpcNode
    failure: list[BaseException]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def running_http_server(node: RealRpcNode | None = None) -> Iterator[RunningServer]:
    """serve_http on a free port in its own thread (its own trio loop) until the block ends."""
    node = node or RealRpcNode()
    port = free_port()
    captured = CapturedLog()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    started = threading.Event()
    token: list[trio.lowlevel.TrioToken] = []
    cancel: list[trio.CancelScope] = []
    failure: list[BaseException] = []

    async def main() -> None:
        token.append(trio.lowlevel.current_trio_token())
        with trio.CancelScope() as scope:
            cancel.append(scope)
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_http, node, "127.0.0.1", port)
                started.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # noqa: BLE001 -- reported to the test below
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="http-under-test", daemon=True)
    thread.start()
    started.wait(30)
    assert not failure, failure
    try:
        yield RunningServer("127.0.0.1", port, captured, node, failure)
    finally:
        trio.from_thread.run_sync(cancel[0].cancel, trio_token=token[0])
        thread.join(15)
        root.removeHandler(captured)
        root.setLevel(old_level)
    assert not failure, failure

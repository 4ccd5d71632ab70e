"""`POST /` JSON-RPC 2.0 methods of a node: `node_sendTx`, `node_getBlockNumber`, `node_getBlock`,
`node_getBalance`, `node_getStatus`, `node_getSlotRecords` (DESIGN.md: Node)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from eth_utils.address import is_address, to_checksum_address

from ha_sequencer.node.chain import ChainBlock
from ha_sequencer.node.http import INVALID_PARAMS, NOT_READY, RpcError, RpcMethod
from ha_sequencer.node.mempool import MempoolError
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.services import Services
from ha_sequencer.p2p.errors import P2PError
from ha_sequencer.p2p.topics import TX_TOPIC
from ha_sequencer.protocol.block import InvalidTxs, SignedTx
from ha_sequencer.protocol.wire import encode_tx_message

log = logging.getLogger(__name__)

_MISSING: Any = object()


def starting_methods(status: Callable[[], dict[str, Any]]) -> Mapping[str, RpcMethod]:
    """The methods while the node has not read the network from L1: status answers, the rest say why not."""

    def not_ready(_params: Any) -> Any:
        raise RpcError(NOT_READY, "node is starting: not connected to L1 yet")

    methods: dict[str, RpcMethod] = {name: not_ready for name in _NAMES}
    methods["node_getStatus"] = lambda _params: status()
    return methods


class NodeRpc:
    """The methods of a running node, over its chain, mempool and gossip."""

    def __init__(
        self,
        services: Services,
        metrics: NodeMetrics,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self._s = services
        self._metrics = metrics
        self._status = status

    def methods(self) -> Mapping[str, RpcMethod]:
        """Name → handler taking the request's `params`."""
        handlers: dict[str, Callable[[Any], Any | Awaitable[Any]]] = {
            "node_sendTx": self.send_tx,
            "node_getBlockNumber": self.block_number,
            "node_getBlock": self.get_block,
            "node_getBalance": self.get_balance,
            "node_getStatus": lambda _params: self._status(),
            "node_getSlotRecords": self.slot_records,
        }
        return handlers

    async def send_tx(self, params: Any) -> str:
        """Add a signed tx (hex of its 201 bytes) to the mempool and gossip it; returns its hash."""
        raw = _one_param(params, "tx")
        if not isinstance(raw, str) or not raw.startswith("0x"):
            raise RpcError(INVALID_PARAMS, "tx must be a 0x-prefixed hex string (the 201-byte signed tx)")
        try:
            stx = SignedTx.decode(bytes.fromhex(raw[2:]))
        except (ValueError, InvalidTxs) as exc:
            raise RpcError(INVALID_PARAMS, f"tx does not decode: {exc}") from None
        mempool = self._s.mempool
        try:
            result = mempool.add(stx, self._s.chain.state)
        except MempoolError as exc:
            self._metrics.rpc_txs.labels(result="rejected").inc()
            err = exc.to_rpc_error()
            raise RpcError(err["code"], err["message"], err.get("data")) from None
        self._metrics.rpc_txs.labels(result="accepted").inc()
        self._metrics.mempool_size.set(len(mempool))
        try:
            await self._s.gossip.publish(TX_TOPIC, encode_tx_message(stx.encode()))
        except P2PError as exc:  # no peers yet: the tx is in our mempool either way
            log.warning("gossip %s: publish failed: %s", TX_TOPIC, exc)
        return "0x" + result.tx_hash.hex()

    def block_number(self, _params: Any) -> int:
        """The local L2 tip's number."""
        return self._s.chain.height

    def get_block(self, params: Any) -> dict[str, Any] | None:
        """A block by number, by archive (0x + 32 bytes) or "latest"; null when unknown."""
        chain = self._s.chain
        ref = _one_param(params, "block", default="latest")
        block: ChainBlock | None
        if ref == "latest":
            block = chain.tip
        elif isinstance(ref, int) and not isinstance(ref, bool):
            block = chain.by_number(ref)
        elif isinstance(ref, str) and ref.startswith("0x") and len(ref) == 66:
            try:
                block = chain.by_archive(bytes.fromhex(ref[2:]))
            except ValueError:
                raise RpcError(INVALID_PARAMS, "archive must be 32 bytes of hex") from None
        else:
            raise RpcError(INVALID_PARAMS, 'block must be a number, "latest" or a 0x archive (32 bytes)')
        return block.to_json() if block is not None else None

    def get_balance(self, params: Any) -> dict[str, Any]:
        """An L2 account's balance, nonce and the next nonce counting the mempool."""
        address = _one_param(params, "address")
        if not isinstance(address, str) or not is_address(address):
            raise RpcError(INVALID_PARAMS, "address must be a 0x-prefixed 20-byte hex address")
        address = to_checksum_address(address)
        state = self._s.chain.state
        account = state.account(address)
        return {
            "address": address,
            "balance": str(account.balance),
            "nonce": account.nonce,
            "pendingNonce": self._s.mempool.next_nonce(address, state),
            "blockNumber": self._s.chain.height,
        }

    def slot_records(self, _params: Any) -> list[dict[str, Any]]:
        """Per-slot timings of this node's proposals (seconds after slot start), for benchmarks."""
        records = sorted(self._s.scheduler.records.values(), key=lambda r: r.slot)
        return [dataclasses.asdict(r) for r in records]


_NAMES = (
    "node_sendTx",
    "node_getBlockNumber",
    "node_getBlock",
    "node_getBalance",
    "node_getStatus",
    "node_getSlotRecords",
)


def _one_param(params: object, name: str, *, default: Any = _MISSING) -> Any:
    if isinstance(params, dict):
        named = cast(dict[str, Any], params)
        if name in named:
            return named[name]
    elif isinstance(params, list) and params:
        return cast(list[Any], params)[0]
    if default is _MISSING:
        raise RpcError(INVALID_PARAMS, f"missing parameter {name!r}")
    return default

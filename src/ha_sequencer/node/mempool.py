"""The mempool: pending L2 txs checked on entry, selected into valid blocks, pruned as blocks land.

Admission (`add`): a well-formed signature by the sender, a nonce in [account nonce, account nonce +
max_nonce_ahead), a balance that covers amount + fee of all the sender's pending txs together, not already
known; a tx with the nonce of a pending one replaces it only with a fee at least `replacement_bump_percent`
higher. When full, the cheapest last-in-line tx of another sender is evicted for a better-paying one.
Selection (`select`) replays `check_tx`/`apply_tx_unchecked` of the state transition on a scratch overlay, so
its output always passes `apply_block`. Pure, in memory, single-threaded (the node runs on one trio thread).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import ChainMap
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from ha_sequencer.errors import HASequencerError
from ha_sequencer.protocol.block import TX_SIZE, SignedTx
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, NetworkParams
from ha_sequencer.protocol.state import (
    EMPTY_ACCOUNT,
    L2Account,
    L2State,
    account_id,
    apply_tx_unchecked,
    check_tx,
)

DEFAULT_MAX_SIZE = 4_096
DEFAULT_MAX_NONCE_AHEAD = 64
DEFAULT_REPLACEMENT_BUMP_PERCENT = 10


class MempoolRejection(enum.Enum):
    """Why the mempool refused a tx: a JSON-RPC error code and a message (geth-like wording)."""

    INVALID_SIGNATURE = (-32001, "invalid signature")
    NONCE_TOO_LOW = (-32002, "nonce too low")
    NONCE_TOO_HIGH = (-32003, "nonce too high")
    INSUFFICIENT_BALANCE = (-32004, "insufficient balance for amount + fee")
    ALREADY_KNOWN = (-32005, "already known")
    REPLACEMENT_UNDERPRICED = (-32006, "replacement transaction underpriced")
    POOL_FULL = (-32007, "mempool is full")
    FEE_TOO_LOW = (-32008, "fee below this node's minimum")

    @property
    def rpc_code(self) -> int:
        """The JSON-RPC error code (server-defined range -32000..-32099)."""
        return self.value[0]

    @property
    def message(self) -> str:
        """The JSON-RPC error message."""
        return self.value[1]

    @property
    def peer_at_fault(self) -> bool:
        """True when the tx is invalid on any state (gossip REJECT); otherwise merely not useful here."""
        return self is MempoolRejection.INVALID_SIGNATURE


class MempoolError(HASequencerError):
    """A tx the mempool refused; `to_rpc_error()` gives the JSON-RPC error object."""

    def __init__(self, rejection: MempoolRejection, detail: str) -> None:
        self.rejection = rejection
        self.detail = detail
        super().__init__(f"{rejection.message}: {detail}")

    @property
    def rpc_code(self) -> int:
        """The JSON-RPC error code."""
        return self.rejection.rpc_code

    def to_rpc_error(self) -> dict[str, Any]:
        """The JSON-RPC 2.0 `error` member: code, message, data.reason and data.detail."""
        return {
            "code": self.rejection.rpc_code,
            "message": self.rejection.message,
            "data": {"reason": self.rejection.name, "detail": self.detail},
        }


@dataclass(frozen=True)
class AddResult:
    """An accepted tx: its hash (EIP-712 digest), and the pending tx it replaced or evicted, if any."""

    tx_hash: bytes
    replaced: SignedTx | None = None
    evicted: SignedTx | None = None


@dataclass(frozen=True)
class _Pending:
    stx: SignedTx
    tx_hash: bytes
    seq: int  # arrival order: the tie-break between equal fees


class Mempool:
    """Pending L2 txs keyed by hash and by (sender, nonce)."""

    def __init__(
        self,
        params: NetworkParams,
        max_size: int = DEFAULT_MAX_SIZE,
        *,
        max_nonce_ahead: int = DEFAULT_MAX_NONCE_AHEAD,
        replacement_bump_percent: int = DEFAULT_REPLACEMENT_BUMP_PERCENT,
        min_fee: int = 0,
    ) -> None:
        if max_size <= 0 or max_nonce_ahead <= 0 or replacement_bump_percent < 0 or min_fee < 0:
            raise ValueError(
                "max_size and max_nonce_ahead must be positive, replacement_bump_percent and min_fee ≥ 0"
            )
        self.min_fee = min_fee
        self.params = params
        self.max_size = max_size
        self.max_nonce_ahead = max_nonce_ahead
        self.replacement_bump_percent = replacement_bump_percent
        self._by_hash: dict[bytes, _Pending] = {}
        self._by_sender: dict[bytes, dict[int, _Pending]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> SignedTx | None:
        """The pending tx with this hash, if any."""
        entry = self._by_hash.get(tx_hash)
        return entry.stx if entry else None

    def pending(self, sender: str | bytes | None = None) -> list[SignedTx]:
        """Pending txs of one sender (address) in nonce order, or of everyone in arrival order."""
        if sender is None:
            return [entry.stx for entry in sorted(self._by_hash.values(), key=lambda e: e.seq)]
        queue = self._by_sender.get(account_id(sender), {})
        return [queue[nonce].stx for nonce in sorted(queue)]

    def next_nonce(self, sender: str | bytes, state: L2State) -> int:
        """The nonce a wallet should use next: past the sender's consecutive pending txs."""
        nonce = state.nonce(account_id(sender))
        queue = self._by_sender.get(account_id(sender), {})
        while nonce in queue:
            nonce += 1
        return nonce

    def add(self, stx: SignedTx, state: L2State) -> AddResult:
        """Admit a tx checked against `state` (the local tip), or raise `MempoolError` saying why not."""
        if stx.tx.fee < self.min_fee:  # first: refusing spam costs no signature recovery
            raise MempoolError(
                MempoolRejection.FEE_TOO_LOW, f"fee {stx.tx.fee}, this node takes at least {self.min_fee}"
            )
        tx_hash = stx.digest(self.params)
        if tx_hash in self._by_hash:
            raise MempoolError(MempoolRejection.ALREADY_KNOWN, f"tx 0x{tx_hash.hex()}")
        signer = stx.signer(self.params)
        if signer is None:
            raise MempoolError(
                MempoolRejection.INVALID_SIGNATURE, "signature is malformed or does not recover"
            )
        if signer != stx.sender:
            raise MempoolError(
                MempoolRejection.INVALID_SIGNATURE, f"signed by {signer}, but the tx sender is {stx.sender}"
            )
        balance, account_nonce = state.get(stx.sender_id, EMPTY_ACCOUNT)
        nonce = stx.tx.nonce
        if nonce < account_nonce:
            raise MempoolError(
                MempoolRejection.NONCE_TOO_LOW,
                f"sender {stx.sender}: nonce {nonce}, account nonce {account_nonce}",
            )
        if nonce >= account_nonce + self.max_nonce_ahead:
            raise MempoolError(
                MempoolRejection.NONCE_TOO_HIGH,
                f"sender {stx.sender}: nonce {nonce}, account nonce {account_nonce}, "
                f"at most {self.max_nonce_ahead - 1} ahead",
            )
        queue = self._by_sender.get(stx.sender_id, {})
        replaced = queue.get(nonce)
        if replaced is not None:
            old_fee = replaced.stx.tx.fee
            min_fee = max(old_fee + 1, old_fee * (100 + self.replacement_bump_percent) // 100)
            if stx.tx.fee < min_fee:
                raise MempoolError(
                    MempoolRejection.REPLACEMENT_UNDERPRICED,
                    f"sender {stx.sender} nonce {nonce}: fee {stx.tx.fee}, replacing needs {min_fee}",
                )
        committed = sum(e.stx.cost for n, e in queue.items() if n >= account_nonce and n != nonce)
        if committed + stx.cost > balance:
            raise MempoolError(
                MempoolRejection.INSUFFICIENT_BALANCE,
                f"sender {stx.sender}: balance {balance}, pending cost {committed} + this tx {stx.cost}",
            )
        evicted = None
        if replaced is None and len(self._by_hash) >= self.max_size:
            victim = self._eviction_candidate(exclude=stx.sender_id)
            if victim is None or victim.stx.tx.fee >= stx.tx.fee:
                floor = "" if victim is None else f", lowest evictable fee {victim.stx.tx.fee}"
                raise MempoolError(
                    MempoolRejection.POOL_FULL, f"{len(self._by_hash)} txs pending, fee {stx.tx.fee}{floor}"
                )
            self._remove(victim)
            evicted = victim.stx
        if replaced is not None:
            self._remove(replaced)
        entry = _Pending(stx, tx_hash, next(self._seq))
        self._by_hash[tx_hash] = entry
        self._by_sender.setdefault(stx.sender_id, {})[nonce] = entry
        return AddResult(tx_hash, replaced.stx if replaced else None, evicted)

    def select(
        self, state: L2State, max_txs: int = MAX_TXS_PER_BLOCK, max_bytes: int | None = None
    ) -> list[SignedTx]:
        """Valid txs for a block on `state`: each sender's in nonce order, best-paying sender first."""
        limit = min(max_txs, MAX_TXS_PER_BLOCK)
        if max_bytes is not None:
            limit = min(limit, max_bytes // TX_SIZE)
        # Writes land in the first map, so the tip state is never copied or changed.
        scratch: ChainMap[bytes, L2Account] = ChainMap({}, cast(MutableMapping[bytes, L2Account], state))
        heads: list[tuple[int, int, bytes, int]] = []
        for sender_id, queue in self._by_sender.items():
            nonce = state.get(sender_id, EMPTY_ACCOUNT).nonce
            if nonce in queue:
                heads.append(_head(queue[nonce], sender_id, nonce))
        heapq.heapify(heads)
        block: list[SignedTx] = []
        while heads and len(block) < limit:
            _, _, sender_id, nonce = heapq.heappop(heads)
            stx = self._by_sender[sender_id][nonce].stx
            if check_tx(scratch, stx, self.params) is not None:
                continue  # this sender is done for this block: later nonces would be gapped
            # No fee recipient in the simulation: that credit can only make later txs more valid.
            apply_tx_unchecked(scratch, stx, None)
            block.append(stx)
            following = self._by_sender[sender_id].get(nonce + 1)
            if following is not None:
                heapq.heappush(heads, _head(following, sender_id, nonce + 1))
        return block

    def on_block(self, state: L2State, included: Iterable[SignedTx] = ()) -> list[SignedTx]:
        """Forget a new block's txs and those the new tip `state` made invalid; returns the invalid ones."""
        for stx in included:
            entry = self._by_hash.get(stx.digest(self.params))
            if entry is not None:
                self._remove(entry)
        dropped: list[SignedTx] = []
        for sender_id in list(self._by_sender):
            queue = self._by_sender[sender_id]
            balance, account_nonce = state.get(sender_id, EMPTY_ACCOUNT)
            committed = 0
            unaffordable = False
            for nonce in sorted(queue):
                entry = queue[nonce]
                # Stale nonces are dead; once the balance runs out, every later nonce would be gapped.
                unaffordable = unaffordable or (
                    nonce >= account_nonce and committed + entry.stx.cost > balance
                )
                if nonce < account_nonce or unaffordable:
                    dropped.append(entry.stx)
                    self._remove(entry)
                else:
                    committed += entry.stx.cost
        return dropped

    def _eviction_candidate(self, *, exclude: bytes) -> _Pending | None:
        # Only a sender's last tx may go, so no one is left with a nonce gap; the cheapest, then the newest.
        tails = [queue[max(queue)] for sender_id, queue in self._by_sender.items() if sender_id != exclude]
        return min(tails, key=lambda e: (e.stx.tx.fee, -e.seq), default=None)

    def _remove(self, entry: _Pending) -> None:
        del self._by_hash[entry.tx_hash]
        queue = self._by_sender[entry.stx.sender_id]
        del queue[entry.stx.tx.nonce]
        if not queue:
            del self._by_sender[entry.stx.sender_id]


def _head(entry: _Pending, sender_id: bytes, nonce: int) -> tuple[int, int, bytes, int]:
    # heapq is a min-heap: highest fee first, then earliest arrival.
    return (-entry.stx.tx.fee, entry.seq, sender_id, nonce)

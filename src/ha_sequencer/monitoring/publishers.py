"""Choosing a publisher per submission when one node holds several: as a careful operator would.

Policy, in order: only idle publishers (no transaction of theirs pending: a second one would queue behind the
first's nonce and stall with it); among those, the ones that can pay the transaction's maximum cost; then the
highest balance; then the least recently used (spreads nonces and wear); then keystore order (deterministic).
A publisher marked pending is not chosen again until `resolve()` says its transaction is mined or dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from ha_sequencer.errors import InputError
from ha_sequencer.monitoring.eth import short_eth
from ha_sequencer.monitoring.funds import FundsError


class NoPublisherAvailable(FundsError):
    """Every publisher is busy with a pending transaction or cannot pay for this one."""


@dataclass(frozen=True)
class Pending:
    """A publisher's transaction in flight."""

    tx_hash: str | None
    since: float
    slot: int | None = None


class PublisherPool:
    """Selection state for one node's publishers: `choose()`, `mark_pending()`, `resolve()` (thread-safe)."""

    def __init__(self, publishers: Iterable[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.publishers: list[str] = list(dict.fromkeys(to_checksum_address(p) for p in publishers))
        self._order: dict[str, int] = {a: i for i, a in enumerate(self.publishers)}
        self._clock = clock
        self._lock = threading.RLock()  # choose() ranks and marks under one hold
        self._pending: dict[str, Pending] = {}
        self._last_used: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"PublisherPool(publishers={self.publishers}, pending={sorted(self._pending)})"

    def candidates(
        self,
        balances: Mapping[str, int] | None = None,
        *,
        required_wei: int = 0,
        among: Iterable[str] | None = None,
    ) -> list[str]:
        """Idle publishers (of `among`, default all) that can pay `required_wei`, best first."""
        balances = {to_checksum_address(a): b for a, b in (balances or {}).items()}
        allowed = self._subset(among)
        with self._lock:
            idle = [a for a in allowed if a not in self._pending]
            last_used = dict(self._last_used)

        def rank(address: str) -> tuple[int, int, float, int]:
            balance = balances.get(address)
            known = balance if balance is not None else -1  # unknown balances go after known ones
            return (-known, 0, last_used.get(address, float("-inf")), self._order[address])

        payable = [a for a in idle if required_wei <= 0 or balances.get(a, -1) >= required_wei]
        return sorted(payable, key=rank)

    def choose(
        self,
        balances: Mapping[str, int] | None = None,
        *,
        required_wei: int = 0,
        mark: bool = False,
        slot: int | None = None,
        among: Iterable[str] | None = None,
    ) -> str:
        """The best idle publisher; NoPublisherAvailable says why there is none.

        With `mark=True` the choice is marked pending atomically (two concurrent submissions never share one).
        """
        with self._lock:
            ranked = self.candidates(balances, required_wei=required_wei, among=among)
            if not ranked:
                raise NoPublisherAvailable(self._why_none(balances or {}, required_wei, self._subset(among)))
            chosen = ranked[0]
            if mark:
                self._pending[chosen] = Pending(None, self._clock(), slot)
                self._last_used[chosen] = self._clock()
            return chosen

    def _subset(self, among: Iterable[str] | None) -> list[str]:
        if among is None:
            return list(self.publishers)
        wanted = {self._known(a) for a in among}
        return [a for a in self.publishers if a in wanted]

    def _why_none(self, balances: Mapping[str, int], required_wei: int, allowed: list[str]) -> str:
        balances = {to_checksum_address(a): b for a, b in balances.items()}
        busy = [a for a in allowed if a in self._pending]
        poor = [a for a in allowed if a not in self._pending]
        parts = []
        if busy:
            parts.append(f"{len(busy)} with a pending transaction ({', '.join(busy)})")
        if poor:
            shown = ", ".join(
                f"{a} {short_eth(balances[a]) + ' ETH' if a in balances else 'balance unknown'}" for a in poor
            )
            parts.append(f"{len(poor)} cannot pay the maximum cost {short_eth(required_wei)} ETH ({shown})")
        return f"no publisher available among {len(allowed)}: " + "; ".join(parts)

    def mark_pending(
        self, address: str, tx_hash: bytes | str | None = None, *, slot: int | None = None
    ) -> None:
        """`address` has sent (or is about to send) a transaction: not chosen again until resolved."""
        address = self._known(address)
        if isinstance(tx_hash, bytes | bytearray):
            tx_hash = "0x" + bytes(tx_hash).hex()
        now = self._clock()
        with self._lock:
            self._pending[address] = Pending(tx_hash, now, slot)
            self._last_used[address] = now

    def resolve(self, address: str, tx_hash: bytes | str | None = None) -> None:
        """`address`'s pending transaction is mined, replaced or dropped (or was never sent): idle again.

        With `tx_hash`, only that transaction's pending mark is cleared (a late resolve of an older
        transaction does not free a publisher that has sent a newer one).
        """
        address = self._known(address)
        if isinstance(tx_hash, bytes | bytearray):
            tx_hash = "0x" + bytes(tx_hash).hex()
        with self._lock:
            pending = self._pending.get(address)
            if pending is None:
                return
            if tx_hash is not None and pending.tx_hash is not None and pending.tx_hash != tx_hash:
                return
            del self._pending[address]

    def pending(self) -> dict[str, Pending]:
        """Publishers with a transaction in flight."""
        with self._lock:
            return dict(self._pending)

    def is_idle(self, address: str) -> bool:
        """True when `address` has no pending transaction."""
        with self._lock:
            return self._known(address) not in self._pending

    def _known(self, address: str) -> str:
        address = to_checksum_address(address)
        if address not in self._order:
            raise InputError(f"{address} is not one of this node's publishers ({', '.join(self.publishers)})")
        return address

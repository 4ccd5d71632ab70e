"""A small L2 transaction load: signed transfers between funded users, sent with `node_sendTx` to the nodes.

Runs in a thread of the devnet supervisor so that blocks carry real txs. Nonces are tracked per user and
re-read (`node_getBalance` → pendingNonce) whenever a node rejects one; a node that is down is skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from eth_account.signers.local import LocalAccount

from ha_sequencer.localnet.nodes import signed_transfer
from ha_sequencer.protocol.constants import NetworkParams

log = logging.getLogger(__name__)

TRANSFER_FEE = 2
RPC_TIMEOUT_S = 2.0


@dataclass
class LoadStats:
    """Counters of the load generator (read by the live view)."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unreachable: int = 0


class TxLoad:
    """Send `rate` transfers per second round-robin over the users, each to a random live node."""

    def __init__(
        self,
        params: NetworkParams,
        users: Sequence[LocalAccount],
        node_urls: Callable[[], list[str]],
        *,
        rate: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.params = params
        self.users = list(users)
        self.node_urls = node_urls
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stats = LoadStats()
        self._nonces: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(seed)
        self._http = httpx.Client(timeout=RPC_TIMEOUT_S)

    def start(self) -> None:
        """Start the load thread (no-op when the rate is 0 or there are fewer than 2 users)."""
        if self.interval <= 0 or len(self.users) < 2:
            return
        self._thread = threading.Thread(target=self._run, name="devnet-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the load thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http.close()

    def _run(self) -> None:
        for sender in itertools.cycle(self.users):
            if self._stop.wait(self.interval):
                return
            try:
                self.send_one(sender)
            except Exception as exc:  # the load must never take the devnet down
                log.debug("load: %s", exc)

    def _rpc(self, url: str, method: str, params: list) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return self._http.post(url + "/", json=body).json()

    def send_one(self, sender: LocalAccount) -> bool:
        """Send one transfer from `sender`; True when a node accepted it."""
        urls = self.node_urls()
        if not urls:
            return False
        url = self._rng.choice(urls)
        to = self._rng.choice([u for u in self.users if u.address != sender.address])
        try:
            if sender.address not in self._nonces:
                self._nonces[sender.address] = self._pending_nonce(url, sender.address)
            nonce = self._nonces[sender.address]
            stx = signed_transfer(
                self.params, sender, to.address, self._rng.randint(1, 1000), TRANSFER_FEE, nonce
            )
            self.stats.sent += 1
            reply = self._rpc(url, "node_sendTx", ["0x" + stx.encode().hex()])
        except (httpx.HTTPError, ValueError):
            self.stats.unreachable += 1
            return False
        if "result" in reply:
            self.stats.accepted += 1
            self._nonces[sender.address] = nonce + 1
            return True
        self.stats.rejected += 1
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            self._nonces[sender.address] = self._pending_nonce(url, sender.address)
        return False

    def _pending_nonce(self, url: str, address: str) -> int:
        reply = self._rpc(url, "node_getBalance", [address])
        return int(reply["result"]["pendingNonce"])

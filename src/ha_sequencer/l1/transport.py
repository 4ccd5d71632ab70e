"""One way to L1 for every caller: RPC failover, EIP-1559 fees, tracked nonces, sending, receipts (blocking).

The Rollup client (`l1.client.RollupClient`) and the monitoring wallet (`monitoring.l1.L1Wallet`) both talk
to L1 through an `L1Transport`, so a proposal and a top-up are built, priced and sent the same way.

Failover: every call goes to the first healthy endpoint in the configured order; a connection error or
timeout marks that endpoint unhealthy for `recheck_s` and the call moves on to the next; after `recheck_s`
the endpoint is tried again and a success marks it healthy. An endpoint that answers, even with an error
(a revert, an unknown transaction), is healthy: the error is the caller's to handle.

URLs often carry API keys: they are shown only through `redact_endpoint`, and the libraries' error texts
(which quote URLs) are scrubbed of them before they reach a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BadResponseFormat,
    MultipleFailedRequests,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import BlockIdentifier

from ha_sequencer.l1.errors import L1Error, ReceiptTimeout, RpcUnavailable
from ha_sequencer.l1.fees import next_fees
from ha_sequencer.redact import redact_endpoint, scrub_endpoints

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RECHECK_S = 5.0
RETRY_BACKOFF_S = 0.05  # times the pass number, between passes over all endpoints
RECEIPT_POLL_S = 0.05
# Transport failures: the endpoint is at fault, try the next one.
_ENDPOINT_ERRORS = (
    requests.exceptions.RequestException,
    ProviderConnectionError,
    RequestTimedOut,
    TooManyRequests,
    BadResponseFormat,
    MultipleFailedRequests,
    OSError,
    TimeoutError,
)
_NONCE_ERRORS = ("nonce too low", "nonce too high", "invalid nonce", "replacement transaction underpriced")
# A failover resend of a transaction the pool already has: a success.
_ALREADY_KNOWN = ("already known", "already imported")


@dataclass
class EndpointStatus:
    """Health of one RPC URL (`url` is redacted)."""

    url: str
    healthy: bool = True
    failures: int = 0
    last_error: str = ""
    unhealthy_until: float = 0.0
    last_ok: float = 0.0


@dataclass
class _Endpoint:
    status: EndpointStatus
    w3: Web3 = field(repr=False)
    url: str = field(repr=False)  # as configured: may carry credentials, never shown


def tx_hex(tx_hash: bytes | str) -> str:
    """A transaction hash as 0x-prefixed hex."""
    return tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()


class L1Transport:
    """L1 JSON-RPC over one or more URLs with failover; signs and sends EIP-1559 transactions."""

    def __init__(
        self,
        rpc_urls: Sequence[str] | str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 1,
        recheck_s: float = DEFAULT_RECHECK_S,
    ) -> None:
        urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
        if not urls:
            raise L1Error("L1 needs at least one RPC URL")
        self.retries = retries
        self.recheck_s = recheck_s
        self._urls = urls
        self._endpoints = [
            _Endpoint(
                EndpointStatus(redact_endpoint(url)),
                Web3(
                    Web3.HTTPProvider(
                        url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
                    )
                ),
                url,
            )
            for url in urls
        ]
        self._lock = threading.Lock()
        self._chain_id: int | None = None
        self._nonces: dict[str, int] = {}
        self._nonce_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"L1Transport(endpoints={[e.status.url for e in self._endpoints]})"

    # --- endpoints and failover ---------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[EndpointStatus]:
        """Status of every RPC URL, in configured order."""
        with self._lock:
            return [EndpointStatus(**vars(e.status)) for e in self._endpoints]

    @property
    def healthy(self) -> bool:
        """True when at least one endpoint is healthy."""
        return any(s.healthy for s in self.endpoints)

    def scrub(self, text: str) -> str:
        """`text` without the secret parts of the configured URLs."""
        return scrub_endpoints(text, self._urls)

    def call(self, what: str, fn: Callable[[Web3], T]) -> T:
        """`fn(w3)` on the first endpoint that answers; RpcUnavailable (naming redacted URLs) when none does.

        Exceptions other than transport failures (reverts, unknown transactions, RPC errors) are raised as
        they are: the endpoint answered.
        """
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            for endpoint in self._ordered():
                try:
                    result = fn(endpoint.w3)
                except _ENDPOINT_ERRORS as exc:
                    self._mark(endpoint, exc)
                    errors.append(f"{endpoint.status.url}: {type(exc).__name__}")
                    continue
                except Exception:
                    self._mark(endpoint, None)
                    raise
                self._mark(endpoint, None)
                return result
            if attempt < self.retries:
                time.sleep(RETRY_BACKOFF_S * (attempt + 1))
        raise RpcUnavailable(
            f"{what}: no L1 RPC endpoint answered ({'; '.join(errors[-len(self._endpoints) :])})"
        )

    def _ordered(self) -> list[_Endpoint]:
        now = time.monotonic()
        with self._lock:
            ready = [e for e in self._endpoints if e.status.healthy or now >= e.status.unhealthy_until]
            waiting = [e for e in self._endpoints if e not in ready]
        return ready + waiting  # unhealthy ones last, so a call still has a chance when all are marked down

    def _mark(self, endpoint: _Endpoint, error: Exception | None) -> None:
        with self._lock:
            status = endpoint.status
            if error is None:
                status.healthy, status.failures, status.last_ok = True, 0, time.time()
            else:
                status.healthy = False
                status.failures += 1
                detail = scrub_endpoints(str(error), [endpoint.url])
                status.last_error = f"{type(error).__name__}: {detail[:200]}"
                status.unhealthy_until = time.monotonic() + self.recheck_s

    # --- reads --------------------------------------------------------------------------------------------

    def chain_id(self) -> int:
        """L1 chain id (read once)."""
        if self._chain_id is None:
            self._chain_id = int(self.call("eth_chainId", lambda w3: w3.eth.chain_id))
        return self._chain_id

    def block_number(self) -> int:
        """Latest L1 block number."""
        return int(self.call("eth_blockNumber", lambda w3: w3.eth.block_number))

    def block_timestamp(self, number: BlockIdentifier = "latest") -> int:
        """Timestamp of L1 block `number`."""
        return self.call("eth_getBlockByNumber", lambda w3: int(w3.eth.get_block(number).get("timestamp", 0)))

    def balance(self, address: str) -> int:
        """ETH balance of `address` in wei at the latest block (what `cast balance` prints)."""
        return int(self.call("eth_getBalance", lambda w3: w3.eth.get_balance(to_checksum_address(address))))

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) that the next transaction sent here will carry."""
        return self.call("fees", next_fees)

    def max_fee_per_gas(self) -> int:
        """The maxFeePerGas of the next transaction."""
        return self.fees()[0]

    def transaction(self, tx_hash: bytes | str) -> dict[str, Any]:
        """The transaction `tx_hash` (pending or mined); raises TransactionNotFound when the node has none."""
        return dict(
            self.call("eth_getTransactionByHash", lambda w3: w3.eth.get_transaction(HexBytes(tx_hash)))
        )

    def transaction_known(self, tx_hash: bytes | str) -> bool:
        """True while the node knows the transaction (pending or mined); False once it is dropped."""
        try:
            self.transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def receipt_or_none(self, tx_hash: bytes | str) -> dict[str, Any] | None:
        """The receipt of a mined transaction (reverted or not), None while it is not mined."""
        try:
            return dict(
                self.call(
                    "eth_getTransactionReceipt", lambda w3: w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                )
            )
        except (TransactionNotFound, TimeExhausted):
            return None

    def wait_receipt(
        self, tx_hash: bytes | str, deadline_s: float, *, poll_s: float = RECEIPT_POLL_S
    ) -> dict[str, Any]:
        """The receipt of `tx_hash` (reverted or not), waiting up to `deadline_s`; ReceiptTimeout after."""
        deadline = time.monotonic() + deadline_s
        while (receipt := self.receipt_or_none(tx_hash)) is None:
            if time.monotonic() >= deadline:
                raise ReceiptTimeout(f"tx {tx_hex(tx_hash)} not mined within {deadline_s:.1f} s")
            time.sleep(poll_s)
        return receipt

    # --- sending ------------------------------------------------------------------------------------------

    def send(
        self,
        sender: LocalAccount,
        *,
        to: str,
        gas: int,
        value: int = 0,
        data: bytes = b"",
        what: str = "transaction",
    ) -> bytes:
        """Sign an EIP-1559 transaction with `sender`'s tracked nonce and send it; returns its hash.

        A nonce the node rejects (another program used the key) is re-read from the chain and the
        transaction re-signed once.
        """
        address = sender.address
        max_fee, priority = self.fees()
        chain_id = self.chain_id()
        with self._nonce_lock(address):
            for attempt in range(2):
                nonce = self._next_nonce(address)
                signed = sender.sign_transaction(
                    {
                        "type": 2,
                        "chainId": chain_id,
                        "to": to_checksum_address(to),
                        "value": int(value),
                        "data": bytes(data),
                        "gas": int(gas),
                        "nonce": nonce,
                        "maxFeePerGas": max_fee,
                        "maxPriorityFeePerGas": priority,
                    }
                )
                try:
                    tx_hash = self._send_raw(bytes(signed.raw_transaction), bytes(signed.hash))
                except Web3RPCError as exc:
                    if attempt == 0 and any(m in str(exc).lower() for m in _NONCE_ERRORS):
                        self._nonces.pop(address, None)  # resync from the chain and re-sign once
                        continue
                    raise L1Error(
                        f"{what} from {address}: L1 rejected the transaction: {self.scrub(str(exc))}"
                    ) from None
                self._nonces[address] = nonce + 1
                return tx_hash
        raise L1Error(f"{what} from {address}: nonce resync did not help")  # pragma: no cover

    def resync_nonce(self, address: str) -> None:
        """Forget the tracked nonce of `address` (e.g. after a dropped transaction); re-read on next send."""
        with self._nonce_lock(to_checksum_address(address)):
            self._nonces.pop(to_checksum_address(address), None)

    def _send_raw(self, raw: bytes, tx_hash: bytes) -> bytes:
        def send(w3: Web3) -> bytes:
            try:
                return bytes(w3.eth.send_raw_transaction(raw))
            except Web3RPCError as exc:
                if any(m in str(exc).lower() for m in _ALREADY_KNOWN):
                    return tx_hash
                raise

        return self.call("eth_sendRawTransaction", send)

    def _nonce_lock(self, address: str) -> threading.Lock:
        with self._lock:
            return self._nonce_locks.setdefault(address, threading.Lock())

    def _next_nonce(self, address: ChecksumAddress) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(
                self.call(
                    "eth_getTransactionCount", lambda w3: w3.eth.get_transaction_count(address, "pending")
                )
            )
        return self._nonces[address]

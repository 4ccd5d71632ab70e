"""Blocking web3 client of the Rollup contract: RPC failover, EIP-1559 publishing, nonces, receipts, events.

Failover: every call goes to the first healthy endpoint in the configured order; a connection error or
timeout marks that endpoint unhealthy for `recheck_s` and the call moves on to the next; after `recheck_s`
the endpoint is tried again and a success marks it healthy. Reverts are never retried: they are decoded by
name from the ABI into `ha_sequencer.l1.errors.RollupError` subclasses.

`propose` attestation format: a list of 65-byte signatures (r, s, v) over the EIP-712
`Attestation(slot, archive)`, one per distinct committee member, any order; the contract recovers the
attesters itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import (
    BadResponseFormat,
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    MultipleFailedRequests,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)

from ha_sequencer.l1.build import load_artifact
from ha_sequencer.l1.errors import (
    ERRORS_BY_NAME,
    L1Error,
    ReceiptTimeout,
    RollupError,
    RpcUnavailable,
    TransactionFailed,
    UnknownRevert,
)
from ha_sequencer.l1.fees import next_fees
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import Attestation, Proposal
from ha_sequencer.redact import redact_endpoint, scrub_endpoints

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RECHECK_S = 5.0
COMMITTEE_CACHE_EPOCHS = 4
GAS_MARGIN = 1.2  # estimate * margin: execution may differ slightly from the simulation
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


class Tips(NamedTuple):
    """The chain tip: L2 block number, its archive and slot."""

    block_number: int
    archive: bytes
    last_slot: int


class BlockInfo(NamedTuple):
    """An L2 block as recorded on L1."""

    archive: bytes
    slot: int
    proposer: str


class ValidatorInfo(NamedTuple):
    """A registered attester."""

    withdrawer: str
    stake: int
    bls_public: bytes
    activation_epoch: int
    exit_epoch: int  # 2**48 - 1 when no exit is scheduled


@dataclass(frozen=True)
class BlockProposedEvent:
    """A `BlockProposed` log joined with the `propose` calldata of its transaction (the proposal, txs)."""

    slot: int
    block_number: int
    archive: bytes
    proposer: str
    publisher: str
    attesters: tuple[str, ...]
    proposal: Proposal
    txs: bytes
    l1_block_number: int
    l1_tx_hash: bytes
    log_index: int


@dataclass
class EndpointStatus:
    """Health of one RPC URL."""

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


def _revert_data(exc: Exception) -> bytes | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    return None


class RevertDecoder:
    """Maps custom-error selectors of an ABI to the named `RollupError` classes."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._by_selector: dict[bytes, tuple[str, list[str]]] = {}
        for item in abi:
            if item.get("type") == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self._by_selector[selector] = (item["name"], types)

    def decode(self, data: bytes) -> RollupError:
        """The named exception for revert `data` (UnknownRevert when no error matches)."""
        entry = self._by_selector.get(bytes(data[:4]))
        if entry is None or entry[0] not in ERRORS_BY_NAME:
            return UnknownRevert(bytes(data))
        name, types = entry
        values = abi_decode(types, bytes(data[4:])) if types else ()
        values = tuple(
            to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
        )
        return ERRORS_BY_NAME[name](*values)


class RollupClient:
    """The Rollup contract over one or more RPC URLs (blocking; call from `trio.to_thread` in async code)."""

    def __init__(
        self,
        rpc_urls: Sequence[str] | str,
        rollup: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = 1,
        recheck_s: float = DEFAULT_RECHECK_S,
    ) -> None:
        urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
        if not urls:
            raise L1Error("RollupClient needs at least one RPC URL")
        self.rollup = to_checksum_address(rollup)
        self.timeout = timeout
        self.retries = retries
        self.recheck_s = recheck_s
        artifact = load_artifact("Rollup")
        self.abi = artifact["abi"]
        self._decoder = RevertDecoder(self.abi)
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
        self._contracts = {
            id(e): e.w3.eth.contract(address=self.rollup, abi=self.abi) for e in self._endpoints
        }
        self._lock = threading.Lock()
        self._nonces: dict[str, int] = {}
        self._nonce_locks: dict[str, threading.Lock] = {}
        self._params: NetworkParams | None = None
        self._committees: dict[int, list[str]] = {}

    def __repr__(self) -> str:
        return f"RollupClient(rollup={self.rollup}, endpoints={[e.status.url for e in self._endpoints]})"

    # ------------------------------------------------------------------ endpoints and failover

    @property
    def endpoints(self) -> list[EndpointStatus]:
        """Status of every RPC URL, in configured order."""
        with self._lock:
            return [EndpointStatus(**vars(e.status)) for e in self._endpoints]

    @property
    def healthy(self) -> bool:
        """True when at least one endpoint is healthy."""
        return any(s.healthy for s in self.endpoints)

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

    def _call(self, what: str, fn: Callable[[Web3, Any], T]) -> T:
        """Run `fn(w3, contract)` on the first endpoint that answers; decode reverts; raise RpcUnavailable."""
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            for endpoint in self._ordered():
                try:
                    result = fn(endpoint.w3, self._contracts[id(endpoint)])
                except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
                    self._mark(endpoint, None)
                    raise self._decode(exc) from None
                except _ENDPOINT_ERRORS as exc:
                    self._mark(endpoint, exc)
                    errors.append(f"{endpoint.status.url}: {type(exc).__name__}")
                    continue
                self._mark(endpoint, None)
                return result
            if attempt < self.retries:
                time.sleep(0.05 * (attempt + 1))
        raise RpcUnavailable(
            f"{what}: no L1 RPC endpoint answered ({'; '.join(errors[-len(self._endpoints) :])})"
        )

    def _decode(self, exc: Exception) -> L1Error:
        data = _revert_data(exc)
        if data and len(data) >= 4:
            return self._decoder.decode(data)
        return TransactionFailed(f"Rollup reverted: {exc}")

    def decode_revert(self, data: bytes) -> RollupError:
        """Named exception for raw revert data of the Rollup."""
        return self._decoder.decode(data)

    # ------------------------------------------------------------------ reads

    def params(self) -> NetworkParams:
        """Network parameters (immutable per deployment; cached)."""
        if self._params is None:
            chain_id = self._call("eth_chainId", lambda w3, c: w3.eth.chain_id)
            cfg = self._call("getConfig", lambda w3, c: c.functions.getConfig().call())
            self._params = NetworkParams(
                chain_id=chain_id,
                rollup=self.rollup,
                genesis_time=cfg[0],
                slot_duration=cfg[1],
                epoch_length=cfg[2],
                committee_size=cfg[3],
                genesis_seed=bytes(cfg[4]),
                min_stake=cfg[5],
                slash_amount=cfg[6],
            )
        return self._params

    def chain_id(self) -> int:
        """L1 chain id."""
        return self.params().chain_id

    def l1_block_number(self) -> int:
        """Latest L1 block number."""
        return self._call("eth_blockNumber", lambda w3, c: w3.eth.block_number)

    def l1_timestamp(self) -> int:
        """Timestamp of the latest L1 block."""
        return self._call("eth_getBlockByNumber", lambda w3, c: w3.eth.get_block("latest")["timestamp"])

    def current_slot(self) -> int:
        """The contract's current slot (from the latest L1 block's timestamp)."""
        return self._call("getCurrentSlot", lambda w3, c: c.functions.getCurrentSlot().call())

    def current_epoch(self) -> int:
        """The contract's current epoch."""
        return self._call("getCurrentEpoch", lambda w3, c: c.functions.getCurrentEpoch().call())

    def epoch_committee(self, epoch: int) -> list[str]:
        """The committee of `epoch` (final for epochs up to current + 1)."""
        return self._call(
            "getEpochCommittee", lambda w3, c: list(c.functions.getEpochCommittee(epoch).call())
        )

    def active_attesters(self, epoch: int) -> list[str]:
        """Attesters active in `epoch`, in registration order."""
        return self._call(
            "getActiveAttesters", lambda w3, c: list(c.functions.getActiveAttesters(epoch).call())
        )

    def proposer(self, slot: int) -> str:
        """The proposer of `slot`."""
        return self._call("getProposer", lambda w3, c: c.functions.getProposer(slot).call())

    def tips(self) -> Tips:
        """(block_number, archive, last_slot) of the L2 chain tip on L1."""
        n, archive, slot = self._call("getTips", lambda w3, c: c.functions.getTips().call())
        return Tips(n, bytes(archive), slot)

    def get_block(self, block_number: int) -> BlockInfo:
        """The L2 block `block_number` as recorded on L1 (block 0 is genesis)."""
        archive, slot, proposer = self._call(
            "getBlock", lambda w3, c: c.functions.getBlock(block_number).call()
        )
        return BlockInfo(bytes(archive), slot, proposer)

    def genesis_allocation(self) -> list[tuple[str, int]]:
        """The L2 genesis balances set at deployment: [(address, amount)]."""
        accounts, balances = self._call(
            "getGenesisAllocation", lambda w3, c: c.functions.getGenesisAllocation().call()
        )
        return list(zip(accounts, balances, strict=True))

    def validator(self, attester: str) -> ValidatorInfo:
        """Registry entry of `attester` (raises NotRegistered)."""
        w, stake, bls, act, ext = self._call(
            "getValidator", lambda w3, c: c.functions.getValidator(to_checksum_address(attester)).call()
        )
        return ValidatorInfo(w, stake, bytes(bls), act, ext)

    def balance(self, address: str) -> int:
        """L1 ETH balance of `address` in wei."""
        return self._call("eth_getBalance", lambda w3, c: w3.eth.get_balance(to_checksum_address(address)))

    # ------------------------------------------------------------------ writes

    def propose(
        self,
        publisher: LocalAccount,
        proposal: Proposal,
        proposer_signature: bytes,
        attestations: Sequence[bytes],
        txs: bytes,
        *,
        committee: Sequence[str] | None = None,
        gas: int | None = None,
    ) -> bytes:
        """Publish a block; `attestations` are signatures only. Simulates first (reverts raise by name).

        `committee` defaults to the slot's epoch committee read from L1 (cached per epoch); the contract
        checks it against its per-epoch commitment, which saves re-scanning the registry on every block.
        """
        members = list(committee) if committee is not None else self.committee_for_slot(proposal.slot)
        args = (
            proposal.as_abi(),
            bytes(proposer_signature),
            [bytes(a) for a in attestations],
            members,
            bytes(txs),
        )
        return self.transact(publisher, "propose", args, gas=gas)

    def committee_for_slot(self, slot: int) -> list[str]:
        """The committee of `slot`'s epoch, cached; only for epochs whose set is final (up to current + 1)."""
        epoch = self.params().epoch_of(slot)
        with self._lock:
            cached = self._committees.get(epoch)
        if cached is None:
            cached = self.epoch_committee(epoch)
            with self._lock:
                self._committees[epoch] = cached
                for old in sorted(self._committees)[:-COMMITTEE_CACHE_EPOCHS]:
                    del self._committees[old]
        return list(cached)

    def deposit(
        self, funder: LocalAccount, attester: str, withdrawer: str, bls_public: bytes, stake: int
    ) -> bytes:
        """Register `attester` with `stake` wei paid by `funder`."""
        args = (
            to_checksum_address(attester),
            to_checksum_address(withdrawer),
            bytes(bls_public).rjust(32, b"\0"),
        )
        return self.transact(funder, "deposit", args, value=stake)

    def initiate_exit(self, withdrawer: LocalAccount, attester: str) -> bytes:
        """Schedule `attester`'s exit (two epochs ahead); sent by its withdrawer."""
        return self.transact(withdrawer, "initiateExit", (to_checksum_address(attester),))

    def withdraw(self, withdrawer: LocalAccount, attester: str) -> bytes:
        """Withdraw an exited attester's stake to its withdrawer (WITHDRAWAL_DELAY_EPOCHS after its exit)."""
        return self.transact(withdrawer, "withdraw", (to_checksum_address(attester),))

    def slash_duplicate_proposal(
        self, reporter: LocalAccount, a: Proposal, sig_a: bytes, b: Proposal, sig_b: bytes
    ) -> bytes:
        """Report two different proposals of one attester for one slot."""
        return self.transact(reporter, "slashDuplicateProposal", (a.as_abi(), sig_a, b.as_abi(), sig_b))

    def slash_duplicate_attestation(
        self, reporter: LocalAccount, a: Attestation, sig_a: bytes, b: Attestation, sig_b: bytes
    ) -> bytes:
        """Report two different attestations of one attester for one slot."""
        return self.transact(reporter, "slashDuplicateAttestation", (a.as_abi(), sig_a, b.as_abi(), sig_b))

    def transact(
        self,
        sender: LocalAccount,
        function: str,
        args: Sequence[Any],
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> bytes:
        """Simulate, sign (EIP-1559, tracked nonce) and send a Rollup call; returns the tx hash."""
        address = sender.address
        if gas is None:
            estimate = self._call(
                f"estimateGas {function}",
                # "pending": with automine the latest block's timestamp can be slots old, and the contract
                # judges the current slot by block.timestamp
                lambda w3, c: c.functions[function](*args).estimate_gas(
                    {"from": address, "value": value}, block_identifier="pending"
                ),
            )
            gas = int(estimate * GAS_MARGIN)
        max_fee, priority = self._fees()
        data = self._contracts[id(self._endpoints[0])].encode_abi(function, args=list(args))
        with self._nonce_lock(address):
            for attempt in range(2):
                nonce = self._next_nonce(address)
                tx = {
                    "type": 2,
                    "chainId": self.chain_id(),
                    "to": self.rollup,
                    "from": address,
                    "value": value,
                    "data": data,
                    "gas": gas,
                    "nonce": nonce,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": priority,
                }
                signed = sender.sign_transaction(tx)
                try:
                    tx_hash = self._send_raw(bytes(signed.raw_transaction), bytes(signed.hash))
                except Web3RPCError as exc:
                    message = str(exc).lower()
                    if attempt == 0 and any(m in message for m in _NONCE_ERRORS):
                        self._nonces.pop(address, None)  # resync from the chain and re-sign once
                        continue
                    raise L1Error(f"{function} from {address}: L1 rejected the transaction: {exc}") from None
                self._nonces[address] = nonce + 1
                return tx_hash
        raise L1Error(f"{function} from {address}: nonce resync did not help")  # pragma: no cover

    def _send_raw(self, raw: bytes, tx_hash: bytes) -> bytes:
        def send(w3: Web3, c: Any) -> bytes:
            try:
                return bytes(w3.eth.send_raw_transaction(raw))
            except Web3RPCError as exc:
                # A failover resend of a tx the pool already has is a success.
                if "already known" in str(exc).lower() or "already imported" in str(exc).lower():
                    return tx_hash
                raise

        return self._call("eth_sendRawTransaction", send)

    def _fees(self) -> tuple[int, int]:
        return self._call("fees", lambda w3, c: next_fees(w3))

    def _nonce_lock(self, address: str) -> threading.Lock:
        with self._lock:
            return self._nonce_locks.setdefault(address, threading.Lock())

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self._call(
                "eth_getTransactionCount", lambda w3, c: w3.eth.get_transaction_count(address, "pending")
            )
        return self._nonces[address]

    def resync_nonce(self, address: str) -> None:
        """Forget the tracked nonce of `address` (e.g. after a dropped transaction); re-read on next send."""
        with self._nonce_lock(address):
            self._nonces.pop(to_checksum_address(address), None)

    def wait_receipt(
        self, tx_hash: bytes, deadline_s: float, *, raise_on_revert: bool = True, poll_s: float = 0.05
    ) -> dict[str, Any]:
        """Wait up to `deadline_s` for the receipt; a reverted tx raises its decoded RollupError."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                receipt = self._call(
                    "eth_getTransactionReceipt", lambda w3, c: w3.eth.get_transaction_receipt(tx_hash)
                )
                break
            except (TransactionNotFound, TimeExhausted):
                pass
            if time.monotonic() >= deadline:
                raise ReceiptTimeout(f"tx 0x{bytes(tx_hash).hex()} not mined within {deadline_s:.1f} s")
            time.sleep(poll_s)
        if receipt["status"] != 1 and raise_on_revert:
            raise self._revert_reason(tx_hash, receipt["blockNumber"])
        return dict(receipt)

    def _revert_reason(self, tx_hash: bytes, block_number: int) -> L1Error:
        # Replay against the state after the block: for a lost race this yields e.g. SlotAlreadyInChain.
        tx = self._call("eth_getTransactionByHash", lambda w3, c: w3.eth.get_transaction(tx_hash))
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            self._call("eth_call", lambda w3, c: w3.eth.call(call, block_number))
        except RollupError as exc:
            return exc
        return TransactionFailed(f"tx 0x{bytes(tx_hash).hex()} reverted in L1 block {block_number}")

    # ------------------------------------------------------------------ events

    def block_proposed_events(
        self, from_block: int, to_block: int | str = "latest"
    ) -> list[BlockProposedEvent]:
        """`BlockProposed` events in the L1 block range, each with the proposal and txs from its calldata."""
        logs = self._call(
            "eth_getLogs",
            lambda w3, c: c.events.BlockProposed.get_logs(from_block=from_block, to_block=to_block),
        )
        events = []
        for log in logs:
            tx = self._call(
                "eth_getTransactionByHash", lambda w3, c, h=log["transactionHash"]: w3.eth.get_transaction(h)
            )
            contract = self._contracts[id(self._endpoints[0])]
            if tx["to"] is None or to_checksum_address(tx["to"]) != self.rollup:
                raise L1Error(
                    f"BlockProposed in tx 0x{bytes(log['transactionHash']).hex()} was not a direct call "
                    "to the Rollup; its txs cannot be read from calldata"
                )
            func, inputs = contract.decode_function_input(tx["input"])
            p = inputs["proposal"]
            proposal = Proposal(
                slot=p["slot"],
                parent_archive=bytes(p["parentArchive"]),
                archive=bytes(p["archive"]),
                txs_hash=bytes(p["txsHash"]),
                fee_recipient=bytes(p["feeRecipient"]),
            )
            a = log["args"]
            events.append(
                BlockProposedEvent(
                    slot=a["slot"],
                    block_number=a["blockNumber"],
                    archive=bytes(a["archive"]),
                    proposer=a["proposer"],
                    publisher=a["publisher"],
                    attesters=tuple(a["attesters"]),
                    proposal=proposal,
                    txs=bytes(inputs["txs"]),
                    l1_block_number=log["blockNumber"],
                    l1_tx_hash=bytes(log["transactionHash"]),
                    log_index=log["logIndex"],
                )
            )
        return events

"""Blocking web3 client of the Rollup contract: reads, calls, events, and reverts decoded by name.

RPC failover, EIP-1559 fees, nonces, sending and receipts are the `l1.transport.L1Transport`'s, shared with
the monitoring wallet. Reverts are never retried: they are decoded by name from the ABI into
`ha_sequencer.l1.errors.RollupError` subclasses.

`propose` attestation format: a list of 65-byte signatures (r, s, v) over the EIP-712
`Attestation(slot, archive)`, one per distinct committee member, any order; the contract recovers the
attesters itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.conversions import to_bytes
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.types import TxParams

from ha_sequencer.l1.build import load_artifact
from ha_sequencer.l1.errors import ERRORS_BY_NAME, L1Error, RollupError, TransactionFailed, UnknownRevert
from ha_sequencer.l1.transport import (
    DEFAULT_RECHECK_S,
    DEFAULT_TIMEOUT_S,
    RECEIPT_POLL_S,
    EndpointStatus,
    L1Transport,
    tx_hex,
)
from ha_sequencer.protocol.committee import RegistryEntry
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import Attestation, Proposal

T = TypeVar("T")

COMMITTEE_CACHE_EPOCHS = 4
GAS_MARGIN = 1.2  # estimate * margin: execution may differ slightly from the simulation


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
    proposer_signature: bytes = b""
    attestation_signatures: tuple[bytes, ...] = ()  # as submitted in calldata (the log names who verified)


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
        self.transport = L1Transport(rpc_urls, timeout=timeout, retries=retries, recheck_s=recheck_s)
        self.rollup = to_checksum_address(rollup)
        artifact = load_artifact("Rollup")
        self.abi = artifact["abi"]
        self._decoder = RevertDecoder(self.abi)
        # encodes calls and decodes calldata, receipts and logs; never sends (no endpoint of its own)
        self.contract: Contract = Web3().eth.contract(address=self.rollup, abi=self.abi)
        self._bound: dict[int, Contract] = {}  # id(endpoint's Web3) → the contract on that endpoint
        self._lock = threading.Lock()
        self._params: NetworkParams | None = None
        self._committees: dict[int, list[str]] = {}

    def __repr__(self) -> str:
        return f"RollupClient(rollup={self.rollup}, endpoints={[e.url for e in self.endpoints]})"

    # ------------------------------------------------------------------ endpoints

    @property
    def endpoints(self) -> list[EndpointStatus]:
        """Status of every RPC URL, in configured order (URLs redacted)."""
        return self.transport.endpoints

    @property
    def healthy(self) -> bool:
        """True when at least one endpoint is healthy."""
        return self.transport.healthy

    def _call(self, what: str, fn: Callable[[Web3, Any], T]) -> T:
        """Run `fn(w3, contract)` on the first endpoint that answers; decode reverts; raise RpcUnavailable."""
        try:
            return self.transport.call(what, lambda w3: fn(w3, self._on(w3)))
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self._decode(exc) from None

    def _on(self, w3: Web3) -> Contract:
        contract = self._bound.get(id(w3))
        if contract is None:
            contract = self._bound.setdefault(id(w3), w3.eth.contract(address=self.rollup, abi=self.abi))
        return contract

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
            chain_id = self.transport.chain_id()
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
        return self.transport.block_number()

    def l1_timestamp(self) -> int:
        """Timestamp of the latest L1 block."""
        return self.transport.block_timestamp("latest")

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

    def registry(self) -> list[RegistryEntry]:
        """Every registered entry in registration order: what `protocol.committee.committee_for` samples."""
        attesters, activations, exits = self._call(
            "getRegistry", lambda w3, c: c.functions.getRegistry().call()
        )
        return [
            RegistryEntry(a, int(s), int(e)) for a, s, e in zip(attesters, activations, exits, strict=True)
        ]

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
        return self.transport.balance(address)

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
        data = to_bytes(hexstr=self.contract.encode_abi(function, args=list(args)))
        return self.transport.send(sender, to=self.rollup, gas=gas, value=value, data=data, what=function)

    def resync_nonce(self, address: str) -> None:
        """Forget the tracked nonce of `address` (e.g. after a dropped transaction); re-read on next send."""
        self.transport.resync_nonce(address)

    def wait_receipt(
        self,
        tx_hash: bytes,
        deadline_s: float,
        *,
        raise_on_revert: bool = True,
        poll_s: float = RECEIPT_POLL_S,
    ) -> dict[str, Any]:
        """Wait up to `deadline_s` for the receipt; a reverted tx raises its decoded RollupError."""
        receipt = self.transport.wait_receipt(tx_hash, deadline_s, poll_s=poll_s)
        if receipt["status"] != 1 and raise_on_revert:
            raise self._revert_reason(tx_hash, receipt["blockNumber"])
        return receipt

    def _revert_reason(self, tx_hash: bytes, block_number: int) -> L1Error:
        # Replay against the state after the block: for a lost race this yields e.g. SlotAlreadyInChain.
        tx = self.transport.transaction(tx_hash)
        call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            self._call("eth_call", lambda w3, c: w3.eth.call(call, block_number))
        except RollupError as exc:
            return exc
        return TransactionFailed(f"tx {tx_hex(tx_hash)} reverted in L1 block {block_number}")

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
            tx = self.transport.transaction(log["transactionHash"])
            if tx["to"] is None or to_checksum_address(tx["to"]) != self.rollup:
                raise L1Error(
                    f"BlockProposed in tx 0x{bytes(log['transactionHash']).hex()} was not a direct call "
                    "to the Rollup; its txs cannot be read from calldata"
                )
            _func, inputs = self.contract.decode_function_input(tx["input"])
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
                    proposer_signature=bytes(inputs["proposerSignature"]),
                    attestation_signatures=tuple(bytes(s) for s in inputs["attestations"]),
                )
            )
        return events

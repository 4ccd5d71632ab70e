# pyright: reportUnnecessaryIsInstance=false
# (inputs decoded from the wire are checked at run time, whatever their annotation says)
"""The L2 state (balances and nonces) and the block state transition (DESIGN.md: network, "L2 state").

Accounts are keyed by 32-byte account ids: an Ethereum address is its left-zero-padded 32-byte form, a
block's `feeRecipient` is any bytes32. An account with balance 0 and nonce 0 does not exist, so crediting 0
changes nothing and the root never depends on empty entries.

    stateRoot = keccak256(abi.encodePacked(id_0, balance_0, nonce_0, id_1, …))     bytes32, uint256, uint256

over the existing accounts sorted by id ascending; the empty state's root is keccak256(""). Linear in the
number of accounts: fine at devnet sizes, and any script can reproduce it.

`apply_block` applies txs in order. Each must be signed by its sender, carry the sender's current nonce and
cost (amount + fee) at most the sender's balance; it debits the sender amount + fee, credits `to` the amount,
credits `feeRecipient` the fee and bumps the sender's nonce. One invalid tx makes the block invalid.
Genesis balances come from the Rollup's `getGenesisAllocation()`; repeated addresses add up.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

from ha_sequencer.errors import HASequencerError
from ha_sequencer.protocol.block import SignedTx
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, UINT256_MAX, NetworkParams

ACCOUNT_ID_SIZE = 32


class L2Account(NamedTuple):
    """One L2 account."""

    balance: int
    nonce: int


EMPTY_ACCOUNT = L2Account(0, 0)


class TxRejection(enum.Enum):
    """Why a tx cannot be applied to a state (a closed set, shared by the transition and the mempool)."""

    BAD_SIGNATURE = "signature is not canonical or does not recover"
    WRONG_SIGNER = "signature is not by the tx sender"
    NONCE_MISMATCH = "nonce is not the sender's next nonce"
    INSUFFICIENT_BALANCE = "balance does not cover amount + fee"
    TOO_MANY_TXS = "the block has more txs than MAX_TXS_PER_BLOCK"


class StateError(HASequencerError):
    """An error of the L2 state transition."""


class InvalidBlock(StateError):
    """A block that cannot be applied: names the tx index, the rule it breaks and the values involved."""

    def __init__(self, index: int, reason: TxRejection, detail: str = "") -> None:
        self.index = index
        self.reason = reason
        self.detail = detail
        super().__init__(f"invalid block: tx {index}: {reason.value}" + (f" ({detail})" if detail else ""))


class InvalidGenesis(StateError):
    """A genesis allocation that does not give a valid state."""


def account_id(account: str | bytes) -> bytes:
    """The 32-byte account id of an address (left-zero-padded) or of an id given as 32 bytes."""
    if isinstance(account, bytes | bytearray) and len(account) == ACCOUNT_ID_SIZE:
        return bytes(account)
    return bytes(12) + to_canonical_address(account)


class L2State(Mapping[bytes, L2Account]):
    """An immutable mapping of account id → L2Account; `root` is the state root (cached)."""

    __slots__ = ("_accounts", "_root")

    def __init__(self, accounts: Mapping[bytes, L2Account] | None = None) -> None:
        cleaned: dict[bytes, L2Account] = {}
        for key, value in (accounts or {}).items():
            if not isinstance(key, bytes) or len(key) != ACCOUNT_ID_SIZE:
                raise StateError(f"account id must be 32 bytes, got {key!r}")
            balance, nonce = value
            if not (0 <= balance <= UINT256_MAX and 0 <= nonce <= UINT256_MAX):
                raise StateError(f"account 0x{key.hex()}: balance and nonce must be uint256")
            if balance or nonce:
                cleaned[key] = L2Account(balance, nonce)
        self._accounts = cleaned
        self._root: bytes | None = None

    @classmethod
    def of_valid_accounts(cls, accounts: dict[bytes, L2Account]) -> L2State:
        """A state over `accounts` as they are: only for the transition's own output, whose dicts already
        hold only valid accounts (the constructor's checks would cost a pass over every account)."""
        state = cls.__new__(cls)
        state._accounts = accounts
        state._root = None
        return state

    def __getitem__(self, key: bytes) -> L2Account:
        return self._accounts[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, L2State):
            return self._accounts == other._accounts
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"L2State(accounts={len(self._accounts)}, root=0x{self.root.hex()})"

    def account(self, account: str | bytes) -> L2Account:
        """The account of an address or 32-byte id (an empty account if it does not exist)."""
        return self._accounts.get(account_id(account), EMPTY_ACCOUNT)

    def balance(self, account: str | bytes) -> int:
        """The balance of an address or 32-byte id."""
        return self.account(account).balance

    def nonce(self, account: str | bytes) -> int:
        """The next nonce of an address or 32-byte id."""
        return self.account(account).nonce

    def total_supply(self) -> int:
        """The sum of all balances (constant across blocks: the transition only moves value)."""
        return sum(balance for balance, _ in self._accounts.values())

    def accounts(self) -> Mapping[bytes, L2Account]:
        """A read-only view of the accounts."""
        return MappingProxyType(self._accounts)

    @property
    def root(self) -> bytes:
        """The state root (see the module docstring)."""
        if self._root is None:
            self._root = keccak(
                b"".join(
                    key + balance.to_bytes(32, "big") + nonce.to_bytes(32, "big")
                    for key, (balance, nonce) in sorted(self._accounts.items())
                )
            )
        return self._root


def state_root(state: L2State) -> bytes:
    """`stateRoot` of a state: keccak256 over its accounts sorted by id (see the module docstring)."""
    return state.root


def genesis_state(allocation: Sequence[tuple[str | bytes, int]]) -> L2State:
    """The L2 state before any block, from the Rollup's genesis allocation of (address, amount)."""
    balances: dict[bytes, int] = {}
    for position, (address, amount) in enumerate(allocation):
        if not isinstance(amount, int) or not 0 <= amount <= UINT256_MAX:
            raise InvalidGenesis(f"genesis allocation [{position}]: amount {amount!r} is not a uint256")
        try:
            key = account_id(address)
        except (ValueError, TypeError) as exc:
            raise InvalidGenesis(
                f"genesis allocation [{position}]: {address!r} is not an address ({exc})"
            ) from None
        balances[key] = balances.get(key, 0) + amount
    if sum(balances.values()) > UINT256_MAX:
        raise InvalidGenesis("genesis allocation: total supply exceeds uint256")
    return L2State({key: L2Account(balance, 0) for key, balance in balances.items()})


def check_tx(
    accounts: Mapping[bytes, L2Account], stx: SignedTx, params: NetworkParams
) -> tuple[TxRejection, str] | None:
    """Why `stx` cannot be applied on top of `accounts` (rejection and detail), or None if it can."""
    tx = stx.tx
    signer = stx.signer(params)
    if signer is None:
        return TxRejection.BAD_SIGNATURE, f"sender {stx.sender}"
    if signer != stx.sender:
        return TxRejection.WRONG_SIGNER, f"sender {stx.sender}, signed by {signer}"
    balance, nonce = accounts.get(stx.sender_id, EMPTY_ACCOUNT)
    if tx.nonce != nonce:
        return TxRejection.NONCE_MISMATCH, f"sender {stx.sender}: tx nonce {tx.nonce}, account nonce {nonce}"
    if stx.cost > balance:
        return TxRejection.INSUFFICIENT_BALANCE, f"sender {stx.sender}: cost {stx.cost}, balance {balance}"
    return None


def apply_tx_unchecked(
    accounts: MutableMapping[bytes, L2Account], stx: SignedTx, fee_recipient: bytes | None
) -> None:
    """Apply a tx that `check_tx` accepted to a mutable account dict (fee_recipient None: no fee credit)."""
    # Skipping the fee credit only lowers balances, so a simulation without it never accepts an invalid tx.
    tx = stx.tx
    sender = stx.sender_id
    balance, nonce = accounts.get(sender, EMPTY_ACCOUNT)
    accounts[sender] = L2Account(balance - stx.cost, nonce + 1)
    _credit(accounts, stx.to_id, tx.amount)
    if fee_recipient is not None:
        _credit(accounts, fee_recipient, tx.fee)


def _credit(accounts: MutableMapping[bytes, L2Account], key: bytes, amount: int) -> None:
    if amount:
        balance, nonce = accounts.get(key, EMPTY_ACCOUNT)
        accounts[key] = L2Account(balance + amount, nonce)


def apply_block(
    state: L2State, txs: Sequence[SignedTx], *, params: NetworkParams, fee_recipient: bytes
) -> tuple[L2State, bytes]:
    """Apply a block's txs in order: (new state, state root), or `InvalidBlock` naming the first bad tx."""
    if not isinstance(fee_recipient, bytes) or len(fee_recipient) != ACCOUNT_ID_SIZE:
        raise StateError(f"fee recipient must be 32 bytes, got {fee_recipient!r}")
    if len(txs) > MAX_TXS_PER_BLOCK:
        raise InvalidBlock(MAX_TXS_PER_BLOCK, TxRejection.TOO_MANY_TXS, f"{len(txs)} txs")
    accounts = dict(state.accounts())
    for index, stx in enumerate(txs):
        problem = check_tx(accounts, stx, params)
        if problem is not None:
            raise InvalidBlock(index, *problem)
        apply_tx_unchecked(accounts, stx, fee_recipient)
    new_state = L2State.of_valid_accounts(accounts)
    return new_state, new_state.root

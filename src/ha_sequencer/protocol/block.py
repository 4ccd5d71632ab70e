# pyright: reportUnnecessaryIsInstance=false
# (inputs decoded from the wire are checked at run time, whatever their annotation says)
"""A block's txs: the signed tx, their canonical bytes, `txsHash` and the archive chain (DESIGN.md: network).

Canonical tx encoding (v1), the exact bytes a proposer puts in `Rollup.propose(...)` calldata:

    txs  = tx_0 ‖ tx_1 ‖ … ‖ tx_{n-1}         no header; n = len(txs) / TX_SIZE, 0 ≤ n ≤ MAX_TXS_PER_BLOCK
    tx_i = from[20] ‖ to[20] ‖ amount[32] ‖ fee[32] ‖ nonce[32] ‖ r[32] ‖ s[32] ‖ v[1]      TX_SIZE = 201

Integers are unsigned big-endian (the EIP-712 `Tx` fields are uint256, so every signable tx has an
encoding); the signature is r‖s‖v over `tx_digest(params, tx)` as L1 takes it (v ∈ {27, 28}, r,s ≠ 0, low s),
so `encode_txs(decode_txs(b)) == b` for every accepted `b`. `txsHash = keccak256(txs)`; an empty block has
`txs = b""`. Fixed width keeps the bounds obvious: a full block is MAX_TXS_PER_BLOCK * TX_SIZE bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from ha_sequencer.errors import HASequencerError
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, SIGNATURE_BYTES, UINT256_MAX, NetworkParams
from ha_sequencer.protocol.messages import (
    InvalidSignature,
    L2Tx,
    check_signature_format,
    recover_signer,
    sign_digest,
    tx_digest,
)

# Field layout of one encoded tx.
_ADDRESS = 20
_WORD = 32
_SIG = SIGNATURE_BYTES
TX_SIZE = 2 * _ADDRESS + 3 * _WORD + _SIG
_OFF_TO = _ADDRESS
_OFF_AMOUNT = 2 * _ADDRESS
_OFF_FEE = _OFF_AMOUNT + _WORD
_OFF_NONCE = _OFF_FEE + _WORD
_OFF_SIG = _OFF_NONCE + _WORD

ZERO_HASH = bytes(32)
EMPTY_TXS_HASH = keccak(b"")


class InvalidTxs(HASequencerError):
    """Bytes that are not a canonical encoding of a block's txs; names the tx index and byte offset."""

    def __init__(self, reason: str, *, index: int | None = None, offset: int | None = None) -> None:
        self.reason = reason
        self.index = index
        self.offset = offset
        where: list[str] = []
        if index is not None:
            where.append(f"tx {index}")
        if offset is not None:
            where.append(f"byte {offset}")
        super().__init__(f"invalid txs ({', '.join(where)}): {reason}" if where else f"invalid txs: {reason}")


def signature_shape_error(signature: bytes) -> str | None:
    """Why a signature is not in the form L1 accepts (65 bytes, v ∈ {27, 28}, nonzero r, low s), or None."""
    try:
        check_signature_format(signature)
    except InvalidSignature as exc:
        return str(exc)
    return None


@dataclass(frozen=True, eq=True)
class SignedTx:
    """An L2 `Tx` with its sender's signature; always encodable; digest and signer cached per network."""

    tx: L2Tx
    signature: bytes
    # Derived once, not part of the value: checksum addresses, account ids, per-network (digest, signer).
    sender_id: bytes = field(init=False, repr=False, compare=False)
    to_id: bytes = field(init=False, repr=False, compare=False)
    _by_network: dict[NetworkParams, tuple[bytes, str | None]] = field(
        default_factory=dict[NetworkParams, tuple[bytes, str | None]], init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != _SIG:
            raise InvalidTxs(f"signature must be {_SIG} bytes r‖s‖v")
        for name in ("amount", "fee", "nonce"):
            value = getattr(self.tx, name)
            if type(value) is not int or not 0 <= value <= UINT256_MAX:
                raise InvalidTxs(f"tx.{name} must be a uint256, got {value!r}")
        for name in ("sender", "to"):
            value = getattr(self.tx, name)
            try:
                # "0x" + 40 hex digits is the common case; bytes.fromhex is 5x cheaper than the generic path.
                if isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X"):
                    raw = bytes.fromhex(value[2:])
                else:
                    raw = to_canonical_address(value)
                if len(raw) != _ADDRESS:  # fromhex skips whitespace
                    raise ValueError("not 20 bytes")
            except (ValueError, TypeError):
                raise InvalidTxs(f"tx.{name} is not an address: {value!r}") from None
            object.__setattr__(self, f"{name}_id", bytes(12) + raw)

    @cached_property
    def sender(self) -> str:
        """The sender the tx claims (`Tx.from`), checksummed; `signer(params)` says who really signed."""
        return eip55_address(self.sender_id[12:])

    @cached_property
    def to(self) -> str:
        """The recipient, checksummed."""
        return eip55_address(self.to_id[12:])

    def __repr__(self) -> str:
        tx = self.tx
        return (
            f"SignedTx(from={self.sender}, to={self.to}, amount={tx.amount}, fee={tx.fee}, "
            f"nonce={tx.nonce}, signature=0x{self.signature.hex()})"
        )

    @property
    def cost(self) -> int:
        """What the sender pays: amount + fee."""
        return self.tx.amount + self.tx.fee

    def digest(self, params: NetworkParams) -> bytes:
        """The EIP-712 digest of the tx on this network; also the tx's hash for RPC and the mempool."""
        return self._entry(params)[0]

    def signer(self, params: NetworkParams) -> str | None:
        """The checksum address that signed the tx on this network, or None for a malformed signature."""
        return self._entry(params)[1]

    def is_signed_by_sender(self, params: NetworkParams) -> bool:
        """True when the canonical signature recovers to `tx.sender`."""
        return self.signer(params) == self.sender

    def _entry(self, params: NetworkParams) -> tuple[bytes, str | None]:
        entry = self._by_network.get(params)
        if entry is None:
            digest = tx_digest(params, self.tx)
            try:
                signer: str | None = recover_signer(digest, self.signature)
            except InvalidSignature:
                signer = None
            entry = (digest, signer)
            self._by_network[params] = entry
        return entry

    def encode(self) -> bytes:
        """The tx's canonical 201-byte encoding (see the module docstring)."""
        tx = self.tx
        return b"".join(
            (
                self.sender_id[12:],
                self.to_id[12:],
                tx.amount.to_bytes(_WORD, "big"),
                tx.fee.to_bytes(_WORD, "big"),
                tx.nonce.to_bytes(_WORD, "big"),
                self.signature,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedTx:
        """Decode one canonical 201-byte tx (the gossip / RPC form); raises `InvalidTxs`."""
        if len(data) != TX_SIZE:
            raise InvalidTxs(f"a tx is {TX_SIZE} bytes, got {len(data)}", index=0, offset=0)
        return _decode_one(data, 0, 0)


def sign_tx(
    account: LocalAccount, params: NetworkParams, *, to: str, amount: int, fee: int, nonce: int
) -> SignedTx:
    """Build and sign an L2 transfer from `account` (wallets, the devnet and tests)."""
    tx = L2Tx(sender=account.address, to=to, amount=amount, fee=fee, nonce=nonce)
    return SignedTx(tx, sign_digest(account, tx_digest(params, tx)))


def eip55_address(raw: bytes) -> str:
    """The EIP-55 checksummed form of a 20-byte address (eth_utils' result, twice as fast: decode is hot)."""
    hex_address = raw.hex()
    hashed = keccak(hex_address.encode()).hex()
    return "0x" + "".join(
        c.upper() if h in _UPPER else c for c, h in zip(hex_address, hashed[:40], strict=True)
    )


_UPPER = frozenset("89abcdef")


def _decode_one(data: bytes | memoryview, start: int, index: int) -> SignedTx:
    signature = bytes(data[start + _OFF_SIG : start + TX_SIZE])
    problem = signature_shape_error(signature)
    if problem is not None:
        raise InvalidTxs(problem, index=index, offset=start + _OFF_SIG)
    sender = eip55_address(bytes(data[start : start + _OFF_TO]))
    to = eip55_address(bytes(data[start + _OFF_TO : start + _OFF_AMOUNT]))
    tx = L2Tx(
        sender=sender,
        to=to,
        amount=int.from_bytes(data[start + _OFF_AMOUNT : start + _OFF_FEE], "big"),
        fee=int.from_bytes(data[start + _OFF_FEE : start + _OFF_NONCE], "big"),
        nonce=int.from_bytes(data[start + _OFF_NONCE : start + _OFF_SIG], "big"),
    )
    stx = SignedTx(tx, signature)
    # Seed the cached properties: the checksums were just computed.
    stx.__dict__["sender"] = sender
    stx.__dict__["to"] = to
    return stx


def encode_txs(txs: Iterable[SignedTx], *, max_txs: int = MAX_TXS_PER_BLOCK) -> bytes:
    """The canonical bytes of a block's txs (calldata of `propose`); raises `InvalidTxs` above `max_txs`."""
    parts = [stx.encode() for stx in txs]
    if len(parts) > max_txs:
        raise InvalidTxs(f"{len(parts)} txs, the cap is {max_txs}", index=max_txs)
    return b"".join(parts)


def decode_txs(data: bytes, *, max_txs: int = MAX_TXS_PER_BLOCK) -> list[SignedTx]:
    """Decode a block's txs strictly (whole txs, at most `max_txs`, well-formed signatures)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidTxs(f"txs must be bytes, got {type(data).__name__}")
    count, rest = divmod(len(data), TX_SIZE)
    if count > max_txs:
        raise InvalidTxs(f"{count} txs, the cap is {max_txs}", index=max_txs, offset=max_txs * TX_SIZE)
    if rest:
        raise InvalidTxs(
            f"{rest} trailing bytes (txs are {TX_SIZE} bytes each)", index=count, offset=count * TX_SIZE
        )
    view = memoryview(data)
    return [_decode_one(view, i * TX_SIZE, i) for i in range(count)]


def txs_hash(data: bytes) -> bytes:
    """`txsHash = keccak256(txs)` over the canonical tx bytes, as `Rollup.propose` checks it."""
    return keccak(bytes(data))


def compute_archive(parent_archive: bytes, slot: int, state_root: bytes, txs_hash: bytes) -> bytes:
    """keccak256(abi.encode(bytes32 parentArchive, uint256 slot, bytes32 stateRoot, bytes32 txsHash))."""
    words = ["bytes32", "uint256", "bytes32", "bytes32"]
    return keccak(abi_encode(words, [parent_archive, slot, state_root, txs_hash]))


def genesis_archive(allocation: Sequence[tuple[str | bytes, int]]) -> bytes:
    """The L2 tip before any block: keccak256(abi.encode(address[] accounts, uint256[] balances)).

    It commits to the allocation exactly as the Rollup constructor received it (order and repeats
    included), so the contract can compute it in its constructor and every node derives the same
    value from `getGenesisAllocation()`.
    """
    accounts = [to_checksum_address(account) for account, _ in allocation]
    amounts = [amount for _, amount in allocation]
    return keccak(abi_encode(["address[]", "uint256[]"], [accounts, amounts]))

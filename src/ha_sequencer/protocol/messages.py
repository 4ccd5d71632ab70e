"""Signed messages of protocol v1 as EIP-712 typed data: Proposal, Attestation, L2 Tx; digests, sign, recover.

Digests follow EIP-712 (https://eips.ethereum.org/EIPS/eip-712):
keccak256(0x1901, domainSeparator, hashStruct). Every field is a static 32-byte word, so hashStruct is
keccak256(typeHash, words...) with no ABI library on the hot path; tests check the result against
eth_account's generic `encode_typed_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature as KeysSignature
from eth_typing import Hash32
from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from ha_sequencer.errors import HASequencerError
from ha_sequencer.protocol.constants import (
    BYTES32,
    EIP712_NAME,
    EIP712_VERSION,
    SECP256K1_HALF_N,
    SIGNATURE_BYTES,
    NetworkParams,
    uint256_word,
)

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
# Every byte of a proposal a node acts on is in here: the txs through txsHash, the fee recipient directly (the
# archive commits to it only through the state root, i.e. not at all when the block pays no fees).
PROPOSAL_TYPE = (
    "Proposal(uint256 slot,bytes32 parentArchive,bytes32 archive,bytes32 txsHash,bytes32 feeRecipient)"
)
ATTESTATION_TYPE = "Attestation(uint256 slot,bytes32 archive)"
TX_TYPE = "Tx(address from,address to,uint256 amount,uint256 fee,uint256 nonce)"

DOMAIN_TYPEHASH = keccak(text=DOMAIN_TYPE)
PROPOSAL_TYPEHASH = keccak(text=PROPOSAL_TYPE)
ATTESTATION_TYPEHASH = keccak(text=ATTESTATION_TYPE)
TX_TYPEHASH = keccak(text=TX_TYPE)


class InvalidSignature(HASequencerError):
    """A signature that is malformed or does not recover to an address."""


def _b32(value: bytes, field: str) -> bytes:
    if len(value) != BYTES32:
        raise ValueError(f"{field} must be 32 bytes, got {len(value)}")
    return bytes(value)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _addr_word(address: str) -> bytes:
    return to_canonical_address(address).rjust(32, b"\x00")


@dataclass(frozen=True)
class Proposal:
    """A proposer's claim: block `archive` on `parent_archive` at `slot`, txs hashing to `txs_hash`, fees to
    `fee_recipient`."""

    slot: int
    parent_archive: bytes
    archive: bytes
    txs_hash: bytes
    fee_recipient: bytes

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct(Proposal)."""
        return keccak(
            PROPOSAL_TYPEHASH
            + uint256_word(self.slot)
            + _b32(self.parent_archive, "parent_archive")
            + _b32(self.archive, "archive")
            + _b32(self.txs_hash, "txs_hash")
            + _b32(self.fee_recipient, "fee_recipient")
        )

    def as_abi(self) -> tuple[int, bytes, bytes, bytes, bytes]:
        """The Solidity `Proposal` struct tuple."""
        return (self.slot, self.parent_archive, self.archive, self.txs_hash, self.fee_recipient)

    def as_json(self) -> dict[str, int | str]:
        """The struct as JSON, field names as in Solidity (what `slashDuplicateProposal` takes)."""
        return {
            "slot": self.slot,
            "parentArchive": _hex(self.parent_archive),
            "archive": _hex(self.archive),
            "txsHash": _hex(self.txs_hash),
            "feeRecipient": _hex(self.fee_recipient),
        }


@dataclass(frozen=True)
class Attestation:
    """A committee member's vote for block `archive` at `slot`."""

    slot: int
    archive: bytes

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct(Attestation)."""
        return keccak(ATTESTATION_TYPEHASH + uint256_word(self.slot) + _b32(self.archive, "archive"))

    def as_abi(self) -> tuple[int, bytes]:
        """The Solidity `Attestation` struct tuple."""
        return (self.slot, self.archive)

    def as_json(self) -> dict[str, int | str]:
        """The struct as JSON, field names as in Solidity (what `slashDuplicateAttestation` takes)."""
        return {"slot": self.slot, "archive": _hex(self.archive)}


@dataclass(frozen=True)
class L2Tx:
    """An L2 transfer of `amount` from `sender` to `to`, paying `fee` to the block's fee recipient."""

    sender: str
    to: str
    amount: int
    fee: int
    nonce: int

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct(Tx)."""
        return keccak(
            TX_TYPEHASH
            + _addr_word(self.sender)
            + _addr_word(self.to)
            + uint256_word(self.amount)
            + uint256_word(self.fee)
            + uint256_word(self.nonce)
        )


def eip712_domain_separator(*, name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    """`hashStruct(EIP712Domain{name, version, chainId, verifyingContract})` (EIP-712, "domainSeparator")."""
    return keccak(
        DOMAIN_TYPEHASH
        + keccak(text=name)
        + keccak(text=version)
        + uint256_word(chain_id)
        + _addr_word(verifying_contract)
    )


def eip712_digest(domain_separator_hash: bytes, struct_hash: bytes) -> bytes:
    """`keccak256("\\x19\\x01" ‖ domainSeparator ‖ hashStruct(message))` (EIP-712, "Specification")."""
    return keccak(b"\x19\x01" + domain_separator_hash + struct_hash)


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int, rollup: str) -> bytes:
    return eip712_domain_separator(
        name=EIP712_NAME, version=EIP712_VERSION, chain_id=chain_id, verifying_contract=rollup
    )


def domain_separator(params: NetworkParams) -> bytes:
    """EIP-712 domain separator `{name: "HASequencer", version: "1", chainId, verifyingContract: rollup}`."""
    return _domain_separator(params.chain_id, params.rollup)


def typed_digest(params: NetworkParams, struct_hash: bytes) -> bytes:
    """EIP-712 signing digest of a struct hash in the network's domain."""
    return eip712_digest(_domain_separator(params.chain_id, params.rollup), struct_hash)


def proposal_digest(params: NetworkParams, proposal: Proposal) -> bytes:
    """Digest the proposer signs for `proposal`."""
    return typed_digest(params, proposal.struct_hash())


def attestation_digest(params: NetworkParams, attestation: Attestation) -> bytes:
    """Digest a committee member signs for `attestation`."""
    return typed_digest(params, attestation.struct_hash())


def tx_digest(params: NetworkParams, tx: L2Tx) -> bytes:
    """Digest the sender signs for an L2 `tx`."""
    return typed_digest(params, tx.struct_hash())


def sign_digest(account_or_key: LocalAccount | bytes | str, digest: bytes) -> bytes:
    """Sign a 32-byte digest: 65 bytes r‖s‖v with v in {27, 28}, low s, deterministic (RFC 6979)."""
    if len(digest) != BYTES32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    account = account_or_key if isinstance(account_or_key, LocalAccount) else Account.from_key(account_or_key)
    return bytes(account.unsafe_sign_hash(Hash32(digest)).signature)


def check_signature_format(signature: bytes) -> None:
    """Reject signatures L1 would reject: wrong length, v not 27/28, r or s zero, s above N/2."""
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidSignature(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}")
    if r == 0 or s == 0 or s > SECP256K1_HALF_N:
        raise InvalidSignature("signature r/s out of range (zero or high s)")


def recover_signer(digest: bytes, signature: bytes) -> str:
    """Checksummed address that signed `digest`; raises InvalidSignature on malformed input."""
    if len(digest) != BYTES32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    check_signature_format(signature)
    try:
        # eth_keys takes v as 0/1 where L1 (and our wire) carries 27/28
        vrs = KeysSignature(bytes(signature[:64]) + bytes([signature[64] - 27]))
        return to_checksum_address(vrs.recover_public_key_from_msg_hash(digest).to_canonical_address())
    except Exception as exc:  # eth_keys raises several types for points off the curve
        raise InvalidSignature(f"signature does not recover: {type(exc).__name__}") from exc

"""Block containers and their gossip encodings: fixed binary layouts, strictly decoded, signer recovered.

Layouts (big-endian; the first byte is the wire version):
  proposal:    0x01 ‖ slot u64 ‖ parentArchive 32 ‖ archive 32 ‖ feeRecipient 32 ‖ sig 65 ‖ len u32 ‖ txs
  attestation: 0x01 ‖ slot u64 ‖ archive 32 ‖ signature 65
  tx:          0x01 ‖ txs bytes holding exactly one signed tx (the `encode_txs` format)
The signer of a proposal or attestation is recovered from its EIP-712 signature, never sent: `parse_proposal`
and `parse_attestation` return the decoded message with its signer and digest. Shared by the node, the
devnet watcher, monitoring and the tests, so every reader decodes one definition.

Every byte is covered by the signature or fixed by the decoder, so a copy altered in transit never recovers
to the original signer: the version byte must be 1, the u32 length must equal the bytes that follow, the
signature must be canonical (v 27/28, low s), and the signed Proposal holds the slot, both archives, the fee
recipient and txsHash = keccak256(txs) (`Block.proposal`); an attestation signs (slot, archive); a tx signs
all of its fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from eth_utils.crypto import keccak

from ha_sequencer.errors import HASequencerError
from ha_sequencer.protocol.block import SignedTx
from ha_sequencer.protocol.constants import SIGNATURE_BYTES, NetworkParams
from ha_sequencer.protocol.messages import (
    Attestation,
    Proposal,
    attestation_digest,
    proposal_digest,
    recover_signer,
)

WIRE_VERSION = 1
_BLOCK_HEAD = struct.Struct(">BQ32s32s32s")
_ATTESTATION = struct.Struct(f">BQ32s{SIGNATURE_BYTES}s")
_U32 = struct.Struct(">I")
MAX_SLOT = 2**63  # slots are far below this; larger values are garbage


class WireError(HASequencerError):
    """A gossip message that does not decode (length, version, field range)."""


@dataclass(frozen=True)
class Block:
    """An L2 block as proposed: everything the archive commits to, plus the txs calldata."""

    slot: int
    parent_archive: bytes
    archive: bytes
    fee_recipient: bytes
    txs: bytes

    @property
    def txs_hash(self) -> bytes:
        """keccak256 of the txs calldata (what the Proposal signs)."""
        return keccak(self.txs)

    @property
    def proposal(self) -> Proposal:
        """The EIP-712 Proposal its proposer signs: it covers every field of the block."""
        return Proposal(self.slot, self.parent_archive, self.archive, self.txs_hash, self.fee_recipient)


@dataclass(frozen=True)
class SignedBlock:
    """A block with the proposer's signature over its Proposal digest."""

    block: Block
    signature: bytes


@dataclass(frozen=True)
class SignedAttestation:
    """An attestation (slot, archive) with the attester's signature."""

    slot: int
    archive: bytes
    signature: bytes


def _check_slot(slot: int) -> None:
    if not 0 <= slot < MAX_SLOT:
        raise WireError(f"slot {slot} out of range")


def encode_block(block: Block) -> bytes:
    """The unsigned block bytes (what the guard stores as the proposal's payload)."""
    _check_slot(block.slot)
    for name in ("parent_archive", "archive", "fee_recipient"):
        if len(getattr(block, name)) != 32:
            raise WireError(f"block {name} must be 32 bytes")
    return (
        _BLOCK_HEAD.pack(WIRE_VERSION, block.slot, block.parent_archive, block.archive, block.fee_recipient)
        + _U32.pack(len(block.txs))
        + block.txs
    )


def decode_block(data: bytes) -> Block:
    """Inverse of `encode_block`; raises WireError on any deviation."""
    if len(data) < _BLOCK_HEAD.size + _U32.size:
        raise WireError(f"block payload too short ({len(data)} bytes)")
    version, slot, parent, archive, fee_recipient = _BLOCK_HEAD.unpack_from(data, 0)
    if version != WIRE_VERSION:
        raise WireError(f"unknown block wire version {version}")
    _check_slot(slot)
    (n,) = _U32.unpack_from(data, _BLOCK_HEAD.size)
    body = data[_BLOCK_HEAD.size + _U32.size :]
    if len(body) != n:
        raise WireError(f"block txs length {n} does not match the {len(body)} bytes that follow")
    return Block(slot, parent, archive, fee_recipient, bytes(body))


def encode_signed_block(signed: SignedBlock) -> bytes:
    """Gossip bytes of a signed proposal: the unsigned block with the signature before the txs."""
    if len(signed.signature) != SIGNATURE_BYTES:
        raise WireError("proposal signature must be 65 bytes")
    b = signed.block
    _check_slot(b.slot)
    return (
        _BLOCK_HEAD.pack(WIRE_VERSION, b.slot, b.parent_archive, b.archive, b.fee_recipient)
        + signed.signature
        + _U32.pack(len(b.txs))
        + b.txs
    )


def decode_signed_block(data: bytes) -> SignedBlock:
    """Strict inverse of `encode_signed_block`."""
    head = _BLOCK_HEAD.size + SIGNATURE_BYTES + _U32.size
    if len(data) < head:
        raise WireError(f"proposal too short ({len(data)} bytes)")
    version, slot, parent, archive, fee_recipient = _BLOCK_HEAD.unpack_from(data, 0)
    if version != WIRE_VERSION:
        raise WireError(f"unknown proposal wire version {version}")
    _check_slot(slot)
    signature = bytes(data[_BLOCK_HEAD.size : _BLOCK_HEAD.size + SIGNATURE_BYTES])
    (n,) = _U32.unpack_from(data, _BLOCK_HEAD.size + SIGNATURE_BYTES)
    txs = data[head:]
    if len(txs) != n:
        raise WireError(f"proposal txs length {n} does not match the {len(txs)} bytes that follow")
    return SignedBlock(Block(slot, parent, archive, fee_recipient, bytes(txs)), signature)


def encode_attestation(att: SignedAttestation) -> bytes:
    """Gossip bytes of a signed attestation."""
    _check_slot(att.slot)
    if len(att.archive) != 32 or len(att.signature) != SIGNATURE_BYTES:
        raise WireError("attestation archive must be 32 bytes and signature 65")
    return _ATTESTATION.pack(WIRE_VERSION, att.slot, att.archive, att.signature)


def decode_attestation(data: bytes) -> SignedAttestation:
    """Strict inverse of `encode_attestation` (exact length)."""
    if len(data) != _ATTESTATION.size:
        raise WireError(f"attestation must be {_ATTESTATION.size} bytes, got {len(data)}")
    version, slot, archive, signature = _ATTESTATION.unpack(data)
    if version != WIRE_VERSION:
        raise WireError(f"unknown attestation wire version {version}")
    _check_slot(slot)
    return SignedAttestation(slot, archive, signature)


def encode_tx_message(tx_bytes: bytes) -> bytes:
    """Gossip bytes of one signed tx (its `encode_txs([tx])` form)."""
    return bytes([WIRE_VERSION]) + tx_bytes


def decode_tx_message(data: bytes) -> bytes:
    """The `encode_txs` bytes inside a tx gossip message (the caller decodes and checks exactly one tx)."""
    if len(data) < 2:
        raise WireError("tx message too short")
    if data[0] != WIRE_VERSION:
        raise WireError(f"unknown tx wire version {data[0]}")
    return bytes(data[1:])


@dataclass(frozen=True)
class ProposalMessage:
    """A decoded, signature-checked proposal."""

    signed: SignedBlock
    proposer: str
    digest: bytes


@dataclass(frozen=True)
class AttestationMessage:
    """A decoded, signature-checked attestation."""

    attestation: SignedAttestation
    attester: str
    digest: bytes


def parse_proposal(params: NetworkParams, data: bytes) -> ProposalMessage:
    """Decode a proposal and recover its signer (raises WireError / InvalidSignature)."""
    signed = decode_signed_block(data)
    digest = proposal_digest(params, signed.block.proposal)
    return ProposalMessage(signed, recover_signer(digest, signed.signature), digest)


def parse_attestation(params: NetworkParams, data: bytes) -> AttestationMessage:
    """Decode an attestation and recover its signer (raises WireError / InvalidSignature)."""
    att = decode_attestation(data)
    digest = attestation_digest(params, Attestation(att.slot, att.archive))
    return AttestationMessage(att, recover_signer(digest, att.signature), digest)


def parse_tx(params: NetworkParams, data: bytes) -> SignedTx:
    """Decode a tx message into one signed tx (raises WireError / InvalidTxs)."""
    return SignedTx.decode(decode_tx_message(data))


# What the duty guard stores as an attestation duty's payload: enough for a twin to finish the duty.
_ATTESTATION_PAYLOAD = struct.Struct(">Q32s")


def attestation_payload(slot: int, archive: bytes) -> bytes:
    """What the guard stores for an attestation duty (enough for a twin to finish it)."""
    return _ATTESTATION_PAYLOAD.pack(slot, archive)


def decode_attestation_payload(payload: bytes) -> tuple[int, bytes]:
    """Inverse of `attestation_payload`."""
    return _ATTESTATION_PAYLOAD.unpack(payload)

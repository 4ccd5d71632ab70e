"""Gossip encodings: round trips, strict decoding, and a signature over every byte a node acts on."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from ha_sequencer.protocol.block import InvalidTxs
from ha_sequencer.protocol.messages import (
    Attestation,
    InvalidSignature,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    WireError,
    decode_attestation,
    decode_block,
    decode_signed_block,
    decode_tx_message,
    encode_attestation,
    encode_block,
    encode_signed_block,
    encode_tx_message,
    parse_attestation,
    parse_proposal,
    parse_tx,
)
from params_fixtures import PARAMS, signed

b32 = st.binary(min_size=32, max_size=32)
sig = st.binary(min_size=65, max_size=65)
slots = st.integers(min_value=0, max_value=2**40)


@given(slots, b32, b32, b32, st.binary(max_size=700), sig)
def test_block_round_trips(slot, parent, archive, fee, txs, signature) -> None:
    block = Block(slot, parent, archive, fee, txs)
    assert decode_block(encode_block(block)) == block
    signed = SignedBlock(block, signature)
    assert decode_signed_block(encode_signed_block(signed)) == signed


@given(slots, b32, sig)
def test_attestation_round_trips(slot, archive, signature) -> None:
    att = SignedAttestation(slot, archive, signature)
    assert decode_attestation(encode_attestation(att)) == att


def test_strict_decoding_rejects_every_deviation() -> None:
    block = SignedBlock(Block(5, bytes(32), b"\x01" * 32, b"\x02" * 32, b"tx" * 10), b"\x1b" * 65)
    data = encode_signed_block(block)
    with pytest.raises(WireError, match="too short"):
        decode_signed_block(data[:50])
    with pytest.raises(WireError, match="length"):
        decode_signed_block(data + b"\x00")  # trailing byte
    with pytest.raises(WireError, match="length"):
        decode_signed_block(data[:-1])
    with pytest.raises(WireError, match="version"):
        decode_signed_block(b"\x02" + data[1:])
    att = encode_attestation(SignedAttestation(5, b"\x01" * 32, b"\x1c" * 65))
    for bad in (att[:-1], att + b"\x00", b"", b"\x09" + att[1:]):
        with pytest.raises(WireError):
            decode_attestation(bad)
    with pytest.raises(WireError):
        decode_tx_message(b"\x01")
    with pytest.raises(WireError):
        decode_tx_message(b"\x07" + bytes(201))
    assert decode_tx_message(encode_tx_message(b"abc")) == b"abc"


def test_encoding_refuses_bad_fields() -> None:
    with pytest.raises(WireError):
        encode_block(Block(1, bytes(31), bytes(32), bytes(32), b""))
    with pytest.raises(WireError):
        encode_signed_block(SignedBlock(Block(1, bytes(32), bytes(32), bytes(32), b""), bytes(64)))
    with pytest.raises(WireError):
        encode_attestation(SignedAttestation(-1, bytes(32), bytes(65)))


SIGNER = Account.from_key(b"\x07" * 32)


def _signed_proposal(fee_recipient: bytes = b"\x0f" * 32) -> bytes:
    txs = signed(SIGNER, SIGNER.address, 1, 2, 0).encode()
    block = Block(9, b"\x01" * 32, b"\x02" * 32, fee_recipient, txs)
    signature = sign_digest(SIGNER, proposal_digest(PARAMS, block.proposal))
    return encode_signed_block(SignedBlock(block, signature))


def test_the_proposal_signature_covers_every_field_of_the_block() -> None:
    block = Block(9, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"txs")
    digest = proposal_digest(PARAMS, block.proposal)
    changed = {
        "slot": 10,
        "parent_archive": b"\x11" * 32,
        "archive": b"\x12" * 32,
        "fee_recipient": b"\x13" * 32,
        "txs": b"other txs",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(Block)}  # a new field must be signed too
    for name, value in changed.items():
        assert proposal_digest(PARAMS, dataclasses.replace(block, **{name: value}).proposal) != digest, name


def test_a_proposal_with_its_fee_recipient_swapped_no_longer_recovers_to_the_proposer() -> None:
    genuine = _signed_proposal()
    assert parse_proposal(PARAMS, genuine).proposer == SIGNER.address
    forged = genuine[:73] + b"\x66" * 32 + genuine[105:]  # bytes 73..105: the fee recipient
    msg = parse_proposal(PARAMS, forged)
    assert msg.signed.block.fee_recipient == b"\x66" * 32 and msg.proposer != SIGNER.address


def _altered_copies(data: bytes):
    for i in range(len(data)):
        yield i, data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def test_changing_any_byte_of_a_signed_message_breaks_it_or_changes_its_signer() -> None:
    """No byte of a gossip message can change while its signature still recovers to the original signer."""
    for i, copy in _altered_copies(_signed_proposal()):
        try:
            assert parse_proposal(PARAMS, copy).proposer != SIGNER.address, f"proposal byte {i}"
        except (WireError, InvalidSignature):
            pass
    archive = b"\x02" * 32
    sig = sign_digest(SIGNER, attestation_digest(PARAMS, Attestation(9, archive)))
    for i, copy in _altered_copies(encode_attestation(SignedAttestation(9, archive, sig))):
        try:
            assert parse_attestation(PARAMS, copy).attester != SIGNER.address, f"attestation byte {i}"
        except (WireError, InvalidSignature):
            pass
    tx = encode_tx_message(signed(SIGNER, SIGNER.address, 1, 2, 0).encode())
    for i, copy in _altered_copies(tx):
        try:
            stx = parse_tx(PARAMS, copy)
        except (WireError, InvalidTxs):
            continue
        assert stx.signer(PARAMS) != SIGNER.address or not stx.is_signed_by_sender(PARAMS), f"tx byte {i}"

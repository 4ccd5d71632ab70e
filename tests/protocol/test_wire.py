"""Gossip encodings: round trips and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
)

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

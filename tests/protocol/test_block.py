"""A block's txs: SignedTx, the canonical fixed-width encoding, txsHash, archives."""

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ha_sequencer.protocol.block import (
    EMPTY_TXS_HASH,
    TX_SIZE,
    InvalidTxs,
    SignedTx,
    compute_archive,
    decode_txs,
    eip55_address,
    encode_txs,
    genesis_archive,
    sign_tx,
    txs_hash,
)
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, SECP256K1_N, NetworkParams
from ha_sequencer.protocol.messages import L2Tx
from params_fixtures import PARAMS, signed

KEYS = [Account.from_key(keccak(f"block-test-key-{i}".encode())) for i in range(4)]
UINT256_MAX = 2**256 - 1


def test_layout_matches_the_documented_offsets():
    a, b = KEYS[0], KEYS[1]
    stx = signed(a, b.address, 0x1234, 0x56, 7)
    data = stx.encode()
    assert TX_SIZE == 201 and len(data) == TX_SIZE
    assert data[0:20] == to_canonical_address(a.address)
    assert data[20:40] == to_canonical_address(b.address)
    assert int.from_bytes(data[40:72], "big") == 0x1234
    assert int.from_bytes(data[72:104], "big") == 0x56
    assert int.from_bytes(data[104:136], "big") == 7
    assert data[136:201] == stx.signature
    assert encode_txs([stx, stx]) == data + data


def test_round_trip_recovers_the_sender():
    txs = [signed(KEYS[i % 4], KEYS[(i + 1) % 4].address, i * 10**18, i, i) for i in range(6)]
    data = encode_txs(txs)
    decoded = decode_txs(data)
    assert decoded == txs
    assert [d.signer(PARAMS) for d in decoded] == [KEYS[i % 4].address for i in range(6)]
    assert all(d.is_signed_by_sender(PARAMS) for d in decoded)
    assert SignedTx.decode(data[:TX_SIZE]) == txs[0]


def test_empty_block():
    assert encode_txs([]) == b""
    assert decode_txs(b"") == []
    assert txs_hash(b"") == EMPTY_TXS_HASH == keccak(b"")


def test_extreme_values_round_trip():
    stx = signed(KEYS[0], KEYS[0].address, UINT256_MAX, UINT256_MAX, UINT256_MAX)
    assert decode_txs(stx.encode()) == [stx]


def test_signature_binds_the_network():
    stx = signed(KEYS[0], KEYS[1].address, 1, 1, 0)
    other = NetworkParams(**{**PARAMS.__dict__, "chain_id": 1})
    assert stx.signer(PARAMS) == KEYS[0].address
    assert stx.digest(other) != stx.digest(PARAMS)
    assert stx.signer(other) != KEYS[0].address
    assert not stx.is_signed_by_sender(other)


def test_trailing_bytes_are_rejected_with_position():
    data = encode_txs([signed(KEYS[0], KEYS[1].address, 1, 1, n) for n in range(2)])
    with pytest.raises(InvalidTxs) as err:
        decode_txs(data + b"\x00" * 5)
    assert (err.value.index, err.value.offset) == (2, 2 * TX_SIZE)
    assert "5 trailing bytes" in str(err.value)
    with pytest.raises(InvalidTxs):
        decode_txs(data[:-1])


def test_too_many_txs_are_rejected():
    one = signed(KEYS[0], KEYS[1].address, 1, 1, 0).encode()
    assert len(decode_txs(one * 3, max_txs=3)) == 3
    with pytest.raises(InvalidTxs) as err:
        decode_txs(one * 4, max_txs=3)
    assert err.value.index == 3
    with pytest.raises(InvalidTxs):
        encode_txs([SignedTx.decode(one)] * 4, max_txs=3)
    with pytest.raises(InvalidTxs, match="cap is"):
        decode_txs(one * (MAX_TXS_PER_BLOCK + 1))


def _with_signature(data: bytes, index: int, signature: bytes) -> bytes:
    start = index * TX_SIZE + 136
    return data[:start] + signature + data[start + 65 :]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r, s, v: (r, s, 29), "v must be 27 or 28"),
        (lambda r, s, v: (r, s, 0), "v must be 27 or 28"),
        (lambda r, s, v: (0, s, v), "out of range"),
        (lambda r, s, v: (r, 0, v), "out of range"),
        (lambda r, s, v: (r, SECP256K1_N - s, 55 - v), "high s"),  # the mirrored (malleable) twin
    ],
)
def test_non_canonical_signatures_are_rejected_with_position(mutate, match):
    txs = [signed(KEYS[0], KEYS[1].address, 1, 1, n) for n in range(3)]
    data = encode_txs(txs)
    sig = txs[1].signature
    r, s, v = mutate(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64])
    bad = _with_signature(data, 1, r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]))
    with pytest.raises(InvalidTxs, match=match) as err:
        decode_txs(bad)
    assert (err.value.index, err.value.offset) == (1, TX_SIZE + 136)


def test_signed_tx_rejects_unencodable_values():
    sig = signed(KEYS[0], KEYS[1].address, 1, 1, 0).signature
    ok = dict(sender=KEYS[0].address, to=KEYS[1].address, amount=1, fee=1, nonce=0)
    with pytest.raises(InvalidTxs, match="65 bytes"):
        SignedTx(L2Tx(**ok), sig[:64])
    for field, value in [("amount", -1), ("fee", UINT256_MAX + 1), ("nonce", 1.0), ("amount", True)]:
        with pytest.raises(InvalidTxs, match=f"tx.{field}"):
            SignedTx(L2Tx(**{**ok, field: value}), sig)
    with pytest.raises(InvalidTxs, match="tx.to is not an address"):
        SignedTx(L2Tx(**{**ok, "to": "0x1234"}), sig)


def test_malformed_signature_has_no_signer():
    stx = signed(KEYS[0], KEYS[1].address, 1, 1, 0)
    broken = SignedTx(stx.tx, stx.signature[:64] + b"\x05")
    assert broken.signer(PARAMS) is None
    assert not broken.is_signed_by_sender(PARAMS)
    forged = SignedTx(stx.tx, signed(KEYS[2], KEYS[1].address, 1, 1, 0).signature)
    assert forged.signer(PARAMS) not in (None, KEYS[0].address)


def test_compute_archive_is_abi_encode_of_four_words():
    parent, root, th = keccak(b"p"), keccak(b"r"), keccak(b"t")
    slot = 123_456
    expected = keccak(parent + slot.to_bytes(32, "big") + root + th)
    assert compute_archive(parent, slot, root, th) == expected
    assert compute_archive(parent, slot + 1, root, th) != expected


def test_genesis_archive_is_abi_encode_of_the_allocation():
    a, b = KEYS[0].address, KEYS[1].address
    word = lambda n: n.to_bytes(32, "big")  # noqa: E731
    # abi.encode(address[], uint256[]): two head offsets, then each array as length + elements.
    manual = (
        word(0x40)
        + word(0x40 + 32 * 3)
        + word(2)
        + bytes(12)
        + to_canonical_address(a)
        + bytes(12)
        + to_canonical_address(b)
        + word(2)
        + word(5)
        + word(7)
    )
    assert genesis_archive([(a, 5), (b, 7)]) == keccak(manual)
    assert genesis_archive([(a, 5), (b, 7)]) != genesis_archive([(b, 7), (a, 5)])
    assert genesis_archive([]) == keccak(abi_encode(["address[]", "uint256[]"], [[], []]))


# Structured random bytes reach past the v check much more often than uniform noise.
_raw_tx = st.builds(
    lambda head, r, s, v: head + r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]),
    st.binary(min_size=136, max_size=136),
    st.integers(0, 2**256 - 1),
    st.one_of(st.integers(0, SECP256K1_N // 2 + 2), st.integers(0, 2**256 - 1)),
    st.sampled_from([0, 1, 27, 28, 29, 255]),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=3 * TX_SIZE + 7), st.lists(_raw_tx, max_size=4).map(b"".join)))
def test_decode_of_arbitrary_bytes_only_raises_invalid_txs(data):
    try:
        txs = decode_txs(data)
    except InvalidTxs:
        return
    assert encode_txs(txs) == data
    for stx in txs:
        stx.signer(PARAMS)  # recovering never raises either: a bad signature just has no signer


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, UINT256_MAX),
            st.integers(0, UINT256_MAX),
            st.integers(0, 2**64),
        ),
        max_size=6,
    )
)
def test_encode_decode_round_trip(specs):
    txs = [signed(KEYS[s], KEYS[t].address, amount, fee, nonce) for s, t, amount, fee, nonce in specs]
    data = encode_txs(txs)
    assert len(data) == TX_SIZE * len(txs)
    assert decode_txs(data) == txs
    assert [stx.signer(PARAMS) for stx in decode_txs(data)] == [KEYS[s].address for s, *_ in specs]


def test_sign_tx_builds_the_same_signed_tx():
    stx = sign_tx(KEYS[0], PARAMS, to=KEYS[1].address, amount=5, fee=1, nonce=2)
    assert stx == signed(KEYS[0], KEYS[1].address, 5, 1, 2)
    assert stx.signer(PARAMS) == KEYS[0].address
    assert repr(stx).startswith(f"SignedTx(from={KEYS[0].address}, to={KEYS[1].address}, amount=5")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_eip55_matches_eth_utils(raw):
    assert eip55_address(raw) == to_checksum_address(raw)


def test_addresses_with_whitespace_are_not_addresses():
    sig = signed(KEYS[0], KEYS[1].address, 1, 1, 0).signature
    spaced = "0x" + " " * 2 + KEYS[1].address[2:40]
    with pytest.raises(InvalidTxs, match="tx.to is not an address"):
        SignedTx(L2Tx(sender=KEYS[0].address, to=spaced, amount=1, fee=1, nonce=0), sig)
    lower = SignedTx(L2Tx(sender=KEYS[0].address.lower(), to=KEYS[1].address, amount=1, fee=1, nonce=0), sig)
    assert (
        lower.sender == KEYS[0].address
        and lower.encode() == signed(KEYS[0], KEYS[1].address, 1, 1, 0).encode()
    )

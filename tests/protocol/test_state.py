"""The L2 state transition: genesis, state root, apply_block and its rejections, supply conservation."""

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ha_sequencer.protocol.block import (
    SignedTx,
    compute_archive,
    decode_txs,
    encode_txs,
    genesis_archive,
    txs_hash,
)
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, NetworkParams
from ha_sequencer.protocol.messages import L2Tx
from ha_sequencer.protocol.state import (
    InvalidBlock,
    InvalidGenesis,
    L2Account,
    L2State,
    StateError,
    TxRejection,
    account_id,
    apply_block,
    genesis_state,
    state_root,
)
from params_fixtures import PARAMS, signed

KEYS = [Account.from_key(keccak(f"state-test-key-{i}".encode())) for i in range(5)]
ALICE, BOB, CAROL = KEYS[0], KEYS[1], KEYS[2]
FEE_RECIPIENT = keccak(b"proposer fee recipient")  # any bytes32, not necessarily an address
UINT256_MAX = 2**256 - 1


def apply(state, txs, fee_recipient=FEE_RECIPIENT):
    return apply_block(state, txs, params=PARAMS, fee_recipient=fee_recipient)


def test_account_id_pads_addresses():
    assert account_id(ALICE.address) == bytes(12) + bytes.fromhex(ALICE.address[2:])
    assert account_id(ALICE.address.lower()) == account_id(ALICE.address)
    assert account_id(FEE_RECIPIENT) == FEE_RECIPIENT


def test_genesis_state_adds_up_repeats():
    state = genesis_state([(ALICE.address, 100), (BOB.address, 5), (ALICE.address, 1), (CAROL.address, 0)])
    assert state.balance(ALICE.address) == 101
    assert state.balance(BOB.address) == 5
    assert state.account(CAROL.address) == L2Account(0, 0)
    assert account_id(CAROL.address) not in state  # empty accounts do not exist
    assert state.nonce(ALICE.address) == 0
    assert state.total_supply() == 106
    assert len(state) == 2


@pytest.mark.parametrize(
    ("allocation", "match"),
    [
        ([("0x1234", 1)], r"\[0\].*not an address"),
        ([(ALICE.address, 1), (BOB.address, -1)], r"\[1\].*not a uint256"),
        ([(ALICE.address, 2**256)], r"\[0\].*not a uint256"),
        ([(ALICE.address, UINT256_MAX), (BOB.address, 1)], "total supply exceeds uint256"),
    ],
)
def test_genesis_state_rejects_bad_allocations(allocation, match):
    with pytest.raises(InvalidGenesis, match=match):
        genesis_state(allocation)


def test_state_root_is_the_documented_commitment():
    a, b = account_id(ALICE.address), account_id(BOB.address)
    state = L2State({b: L2Account(7, 2), a: L2Account(5, 0), FEE_RECIPIENT: L2Account(0, 0)})

    def record(key, balance, nonce):
        return key + balance.to_bytes(32, "big") + nonce.to_bytes(32, "big")

    expected = keccak(b"".join(record(*r) for r in sorted([(a, 5, 0), (b, 7, 2)])))
    assert state_root(state) == state.root == expected
    assert L2State({a: L2Account(5, 0), b: L2Account(7, 2)}).root == expected  # insertion order is irrelevant
    assert L2State().root == keccak(b"")
    assert L2State({a: L2Account(5, 1), b: L2Account(7, 2)}).root != expected


def test_state_rejects_malformed_entries():
    with pytest.raises(StateError, match="32 bytes"):
        L2State({b"\x01" * 20: L2Account(1, 0)})
    with pytest.raises(StateError, match="uint256"):
        L2State({FEE_RECIPIENT: L2Account(-1, 0)})


def test_apply_block_moves_value_and_bumps_nonces():
    genesis = genesis_state([(ALICE.address, 1_000), (BOB.address, 50)])
    txs = [
        signed(ALICE, BOB.address, 100, 3, 0),
        signed(ALICE, CAROL.address, 10, 2, 1),
        signed(BOB, ALICE.address, 150, 0, 0),  # spends what it just received
    ]
    state, root = apply(genesis, txs)
    assert root == state.root
    assert state.account(ALICE.address) == L2Account(1_000 - 103 - 12 + 150, 2)
    assert state.account(BOB.address) == L2Account(50 + 100 - 150, 1)
    assert state.account(CAROL.address) == L2Account(10, 0)
    assert state.account(FEE_RECIPIENT) == L2Account(5, 0)
    assert state.total_supply() == genesis.total_supply()
    # The parent state is untouched: states are values.
    assert genesis.account(ALICE.address) == L2Account(1_000, 0)
    assert genesis.balance(FEE_RECIPIENT) == 0


def test_exact_balance_is_enough_and_self_transfer_pays_only_the_fee():
    state = genesis_state([(ALICE.address, 10)])
    state, _ = apply(state, [signed(ALICE, ALICE.address, 7, 3, 0)])
    assert state.account(ALICE.address) == L2Account(7, 1)
    # The sender as its own fee recipient: nothing leaves, the nonce still moves.
    state, _ = apply(state, [signed(ALICE, BOB.address, 5, 2, 1)], fee_recipient=account_id(ALICE.address))
    assert state.account(ALICE.address) == L2Account(2, 2)
    assert state.total_supply() == 10


def test_empty_block_keeps_the_state():
    genesis = genesis_state([(ALICE.address, 10)])
    state, root = apply(genesis, [])
    assert state == genesis and root == genesis.root


def _rejection(state, txs, fee_recipient=FEE_RECIPIENT):
    with pytest.raises(InvalidBlock) as err:
        apply(state, txs, fee_recipient)
    return err.value


def test_invalid_txs_name_index_and_reason():
    genesis = genesis_state([(ALICE.address, 100), (BOB.address, 100)])
    good = signed(ALICE, BOB.address, 10, 1, 0)

    err = _rejection(genesis, [good, signed(ALICE, BOB.address, 10, 1, 0)])  # replay
    assert (err.index, err.reason) == (1, TxRejection.NONCE_MISMATCH)
    assert "tx nonce 0, account nonce 1" in str(err)

    err = _rejection(genesis, [good, signed(ALICE, BOB.address, 10, 1, 2)])  # gap
    assert (err.index, err.reason) == (1, TxRejection.NONCE_MISMATCH)

    err = _rejection(genesis, [good, signed(BOB, ALICE.address, 110, 1, 0)])  # 111 > 100 + 10
    assert (err.index, err.reason) == (1, TxRejection.INSUFFICIENT_BALANCE)
    assert "cost 111, balance 110" in str(err)

    forged = SignedTx(L2Tx(BOB.address, ALICE.address, 1, 1, 0), good.signature)
    err = _rejection(genesis, [good, signed(BOB, ALICE.address, 1, 0, 0), forged])
    assert (err.index, err.reason) == (2, TxRejection.WRONG_SIGNER)

    other_chain = NetworkParams(**{**PARAMS.__dict__, "chain_id": 1})
    err = _rejection(genesis, [signed(ALICE, BOB.address, 1, 1, 0, params=other_chain)])
    assert (err.index, err.reason) == (0, TxRejection.WRONG_SIGNER)

    malformed = SignedTx(good.tx, good.signature[:64] + b"\x00")
    err = _rejection(genesis, [malformed])
    assert (err.index, err.reason) == (0, TxRejection.BAD_SIGNATURE)


def test_zero_value_tx_from_an_empty_account_is_valid():
    genesis = genesis_state([(ALICE.address, 1)])
    state, _ = apply(genesis, [signed(CAROL, ALICE.address, 0, 0, 0)])
    assert state.account(CAROL.address) == L2Account(0, 1)  # exists now: it has a nonce


def test_block_cap_and_fee_recipient_shape():
    genesis = genesis_state([(ALICE.address, 10)])
    with pytest.raises(StateError, match="fee recipient must be 32 bytes"):
        apply(genesis, [], fee_recipient=bytes(20))
    too_many = [signed(ALICE, BOB.address, 0, 0, 0)] * (MAX_TXS_PER_BLOCK + 1)
    err = _rejection(genesis, too_many)
    assert (err.index, err.reason) == (MAX_TXS_PER_BLOCK, TxRejection.TOO_MANY_TXS)


def test_archive_chain_from_genesis():
    allocation = [(ALICE.address, 1_000)]
    state, archive = genesis_state(allocation), genesis_archive(allocation)
    for slot, nonce in [(3, 0), (4, 1)]:
        data = encode_txs([signed(ALICE, BOB.address, 1, 1, nonce)])
        state, root = apply(state, decode_txs(data))
        archive = compute_archive(archive, slot, root, txs_hash(data))
    # Rebuilt from the same calldata, anyone gets the same archive; any change gives another.
    replay_state, replay_archive = genesis_state(allocation), genesis_archive(allocation)
    for slot, nonce in [(3, 0), (4, 1)]:
        data = encode_txs([signed(ALICE, BOB.address, 1, 1, nonce)])
        replay_state, root = apply(replay_state, decode_txs(data))
        replay_archive = compute_archive(replay_archive, slot, root, txs_hash(data))
    assert (replay_state, replay_archive) == (state, archive)
    assert compute_archive(archive, 5, state.root, txs_hash(b"")) != compute_archive(
        archive, 6, state.root, txs_hash(b"")
    )


# Random blocks of txs among a few funded keys: either the whole block applies or it is refused at
# the first bad tx; value is only ever moved, never made or lost.
_tx_spec = st.tuples(
    st.integers(0, 4),  # sender
    st.integers(0, 4),  # recipient
    st.integers(0, 600),  # amount
    st.integers(0, 20),  # fee
    st.integers(-1, 1),  # nonce offset from the expected one (0 = correct)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_tx_spec, max_size=8), min_size=1, max_size=4))
def test_blocks_conserve_supply_and_reject_atomically(blocks):
    state = genesis_state([(key.address, 1_000) for key in KEYS[:3]])
    supply = state.total_supply()
    for block in blocks:
        expected_nonces = {}
        txs = []
        for s, t, amount, fee, offset in block:
            key = KEYS[s]
            nonce = expected_nonces.get(s, state.nonce(key.address))
            txs.append(signed(key, KEYS[t].address, amount, fee, max(0, nonce + offset)))
            expected_nonces[s] = nonce + 1
        try:
            new_state, root = apply(state, txs)
        except InvalidBlock as err:
            assert 0 <= err.index < len(txs)
            assert isinstance(err.reason, TxRejection)
            # Everything before the bad tx applies on its own.
            prefix_state, _ = apply(state, txs[: err.index])
            assert prefix_state.total_supply() == supply
            continue
        assert root == new_state.root
        assert new_state.total_supply() == supply
        assert all(new_state.nonce(k.address) >= state.nonce(k.address) for k in KEYS)
        state = new_state

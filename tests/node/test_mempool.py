"""The mempool: admission checks and their JSON-RPC errors, eviction, block selection, pruning."""

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ha_sequencer.node.mempool import AddResult, Mempool, MempoolError, MempoolRejection
from ha_sequencer.protocol.block import TX_SIZE, SignedTx
from ha_sequencer.protocol.messages import L2Tx
from ha_sequencer.protocol.state import account_id, apply_block, check_tx, genesis_state
from params_fixtures import PARAMS, signed

KEYS = [Account.from_key(keccak(f"mempool-test-key-{i}".encode())) for i in range(6)]
ALICE, BOB, CAROL, DAVE = KEYS[:4]
FEE_RECIPIENT = keccak(b"fee recipient")


def rejection(pool, stx, state) -> MempoolError:
    with pytest.raises(MempoolError) as err:
        pool.add(stx, state)
    return err.value


@pytest.fixture
def state():
    return genesis_state([(ALICE.address, 1_000), (BOB.address, 1_000), (CAROL.address, 1_000)])


def test_add_accepts_and_indexes(state):
    pool = Mempool(PARAMS, 10)
    stx = signed(ALICE, BOB.address, 10, 1, 0)
    result = pool.add(stx, state)
    assert result == AddResult(tx_hash=stx.digest(PARAMS))
    assert len(pool) == 1 and stx.digest(PARAMS) in pool
    assert pool.get(stx.digest(PARAMS)) == stx
    assert pool.pending(ALICE.address) == [stx] and pool.pending() == [stx]
    assert pool.next_nonce(ALICE.address, state) == 1
    assert pool.next_nonce(BOB.address, state) == 0


def test_duplicate_is_already_known(state):
    pool = Mempool(PARAMS, 10)
    stx = signed(ALICE, BOB.address, 10, 1, 0)
    pool.add(stx, state)
    again = SignedTx.decode(stx.encode())  # a fresh object, as from gossip
    err = rejection(pool, again, state)
    assert err.rejection is MempoolRejection.ALREADY_KNOWN
    assert not err.rejection.peer_at_fault


def test_signature_must_be_the_senders(state):
    pool = Mempool(PARAMS, 10)
    good = signed(ALICE, BOB.address, 10, 1, 0)
    forged = SignedTx(L2Tx(BOB.address, ALICE.address, 10, 1, 0), good.signature)
    err = rejection(pool, forged, state)
    assert err.rejection is MempoolRejection.INVALID_SIGNATURE and err.rejection.peer_at_fault
    assert f"but the tx sender is {BOB.address}" in str(err)
    malformed = SignedTx(good.tx, good.signature[:64] + b"\x01")
    assert rejection(pool, malformed, state).rejection is MempoolRejection.INVALID_SIGNATURE
    assert len(pool) == 0


def test_nonce_window(state):
    pool = Mempool(PARAMS, 100, max_nonce_ahead=4)
    state, _ = apply_block(
        state, [signed(ALICE, BOB.address, 1, 0, 0)], params=PARAMS, fee_recipient=FEE_RECIPIENT
    )
    err = rejection(pool, signed(ALICE, BOB.address, 1, 0, 0), state)
    assert err.rejection is MempoolRejection.NONCE_TOO_LOW
    assert "nonce 0, account nonce 1" in err.detail
    pool.add(signed(ALICE, BOB.address, 1, 0, 4), state)  # 3 ahead: allowed, waits for the gap to fill
    err = rejection(pool, signed(ALICE, BOB.address, 1, 0, 5), state)
    assert err.rejection is MempoolRejection.NONCE_TOO_HIGH


def test_balance_covers_all_pending_txs_of_the_sender(state):
    pool = Mempool(PARAMS, 10)
    pool.add(signed(ALICE, BOB.address, 600, 5, 0), state)
    err = rejection(pool, signed(ALICE, BOB.address, 390, 6, 1), state)  # 605 + 396 > 1000
    assert err.rejection is MempoolRejection.INSUFFICIENT_BALANCE
    assert "balance 1000, pending cost 605 + this tx 396" in err.detail
    pool.add(signed(ALICE, BOB.address, 390, 5, 1), state)  # exactly 1000
    err = rejection(pool, signed(DAVE, BOB.address, 1, 0, 0), state)  # an unfunded account
    assert err.rejection is MempoolRejection.INSUFFICIENT_BALANCE


def test_replacement_needs_a_fee_bump(state):
    pool = Mempool(PARAMS, 10, replacement_bump_percent=10)
    first = signed(ALICE, BOB.address, 10, 100, 0)
    pool.add(first, state)
    err = rejection(pool, signed(ALICE, CAROL.address, 10, 109, 0), state)
    assert err.rejection is MempoolRejection.REPLACEMENT_UNDERPRICED and "replacing needs 110" in err.detail
    better = signed(ALICE, CAROL.address, 10, 110, 0)
    result = pool.add(better, state)
    assert result.replaced == first and result.evicted is None
    assert pool.pending(ALICE.address) == [better] and first.digest(PARAMS) not in pool
    # The replaced tx's cost no longer counts against the balance.
    pool.add(signed(ALICE, CAROL.address, 880, 0, 1), state)


def test_zero_fee_replacement_needs_at_least_one_more(state):
    pool = Mempool(PARAMS, 10)
    pool.add(signed(ALICE, BOB.address, 10, 0, 0), state)
    with pytest.raises(MempoolError):
        pool.add(signed(ALICE, CAROL.address, 10, 0, 0), state)
    pool.add(signed(ALICE, CAROL.address, 10, 1, 0), state)


def test_full_pool_evicts_the_cheapest_last_in_line_tx(state):
    pool = Mempool(PARAMS, 3)
    a0 = signed(ALICE, BOB.address, 1, 1, 0)  # cheapest overall, but not last in line: must stay
    a1 = signed(ALICE, BOB.address, 1, 5, 1)
    b0 = signed(BOB, ALICE.address, 1, 3, 0)
    for stx in (a0, a1, b0):
        pool.add(stx, state)
    err = rejection(pool, signed(CAROL, ALICE.address, 1, 3, 0), state)  # not better than the floor (3)
    assert err.rejection is MempoolRejection.POOL_FULL and "lowest evictable fee 3" in err.detail
    c0 = signed(CAROL, ALICE.address, 1, 4, 0)
    result = pool.add(c0, state)
    assert result.evicted == b0
    assert pool.pending() == [a0, a1, c0]
    # A sender never evicts its own predecessors; with no one else to evict, the pool is full.
    solo = Mempool(PARAMS, 1)
    solo.add(signed(ALICE, BOB.address, 1, 1, 0), state)
    assert rejection(solo, signed(ALICE, BOB.address, 1, 9, 1), state).rejection is MempoolRejection.POOL_FULL


def test_rpc_error_object(state):
    pool = Mempool(PARAMS, 10)
    err = rejection(pool, signed(DAVE, BOB.address, 5, 1, 0), state)
    assert err.to_rpc_error() == {
        "code": -32004,
        "message": "insufficient balance for amount + fee",
        "data": {"reason": "INSUFFICIENT_BALANCE", "detail": err.detail},
    }
    assert err.rpc_code == -32004
    assert len({r.rpc_code for r in MempoolRejection}) == len(MempoolRejection)
    assert all(-32099 <= r.rpc_code <= -32000 for r in MempoolRejection)


def test_select_orders_by_nonce_per_sender_and_fee_across_senders(state):
    pool = Mempool(PARAMS, 100)
    a = [signed(ALICE, DAVE.address, 1, fee, n) for n, fee in enumerate([1, 50, 2])]
    b = [signed(BOB, DAVE.address, 1, fee, n) for n, fee in enumerate([10, 9])]
    c_gapped = signed(CAROL, DAVE.address, 1, 100, 1)  # nonce 0 missing: not executable
    for stx in [a[2], b[1], a[0], c_gapped, a[1], b[0]]:
        pool.add(stx, state)
    block = pool.select(state)
    assert block == [b[0], b[1], a[0], a[1], a[2]]
    new_state, _ = apply_block(state, block, params=PARAMS, fee_recipient=FEE_RECIPIENT)
    assert pool.select(state, max_txs=2) == [b[0], b[1]]
    assert pool.select(state, max_bytes=3 * TX_SIZE + TX_SIZE - 1) == [b[0], b[1], a[0]]
    assert pool.select(state, max_txs=0) == []
    assert new_state.nonce(ALICE.address) == 3


def test_select_skips_txs_the_state_no_longer_allows(state):
    pool = Mempool(PARAMS, 100)
    pool.add(signed(ALICE, BOB.address, 900, 0, 0), state)
    pool.add(signed(ALICE, BOB.address, 50, 0, 1), state)
    pool.add(signed(BOB, CAROL.address, 5, 0, 0), state)
    # Elsewhere Alice spent most of her balance with a different tx at nonce 0.
    elsewhere = signed(ALICE, CAROL.address, 990, 0, 0)
    tip, _ = apply_block(state, [elsewhere], params=PARAMS, fee_recipient=FEE_RECIPIENT)
    block = pool.select(tip)
    assert [stx.sender for stx in block] == [BOB.address]
    apply_block(tip, block, params=PARAMS, fee_recipient=FEE_RECIPIENT)


def test_select_lets_a_sender_spend_what_an_earlier_tx_paid_in(state):
    pool = Mempool(PARAMS, 100)
    pool.add(signed(ALICE, DAVE.address, 500, 9, 0), state)
    # Dave has nothing at admission time, so the pool refuses his tx; fund him in a block first.
    tip, _ = apply_block(state, pool.select(state), params=PARAMS, fee_recipient=FEE_RECIPIENT)
    pool.on_block(tip, pool.pending())
    pool.add(signed(DAVE, ALICE.address, 400, 1, 0), tip)
    assert len(pool.select(tip)) == 1


def test_on_block_prunes_included_stale_and_unaffordable(state):
    pool = Mempool(PARAMS, 100)
    a = [signed(ALICE, BOB.address, 300, 0, n) for n in range(3)]
    b0 = signed(BOB, CAROL.address, 1, 0, 0)
    c = [signed(CAROL, BOB.address, 400, 0, n) for n in range(2)]
    for stx in a + [b0] + c:
        pool.add(stx, state)
    # The chain included a[0] and a different Bob tx at nonce 0; Carol spent 500 elsewhere.
    other_b0 = signed(BOB, ALICE.address, 2, 0, 0)
    carol_elsewhere = signed(CAROL, DAVE.address, 500, 0, 0)
    tip, _ = apply_block(state, [a[0], other_b0, carol_elsewhere], params=PARAMS, fee_recipient=FEE_RECIPIENT)
    dropped = pool.on_block(tip, [a[0], other_b0, carol_elsewhere])
    # Bob's stale nonce goes; Carol's c[0] (nonce 0) is stale, c[1] (nonce 1) still fits in 500.
    assert set(dropped) == {b0, c[0]}
    assert pool.pending() == [a[1], a[2], c[1]]
    # Alice has 702 (1000 - 300 + 2): a[1] and a[2] (600) both still fit.
    spend = signed(ALICE, DAVE.address, 650, 0, 1)
    tip2, _ = apply_block(tip, [spend], params=PARAMS, fee_recipient=FEE_RECIPIENT)
    dropped = pool.on_block(tip2, [spend])
    # a[1] is stale (nonce 1 used elsewhere); a[2] costs 300 but only 52 is left: dropped too.
    assert set(dropped) == {a[1], a[2]}
    assert pool.pending() == [c[1]]


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        Mempool(PARAMS, 0)


# Random traffic from a few keys (some txs invalid on arrival, some made invalid by blocks built
# elsewhere): every selected block applies, and value is conserved across blocks.
_op = st.tuples(
    st.integers(0, 4),  # sender (KEYS[4] is unfunded)
    st.integers(0, 5),  # recipient
    st.integers(0, 400),  # amount
    st.integers(0, 30),  # fee
    st.sampled_from([0, 0, 0, 0, 1, -1, 3]),  # nonce offset from the next free nonce
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.lists(_op, max_size=10), st.integers(0, 8), st.booleans()), min_size=1, max_size=6)
)
def test_selected_blocks_always_apply_and_conserve_supply(rounds):
    state = genesis_state([(key.address, 1_000) for key in KEYS[:4]])
    supply = state.total_supply()
    pool = Mempool(PARAMS, 12, max_nonce_ahead=3)
    for ops, max_txs, foreign_block in rounds:
        for s, t, amount, fee, offset in ops:
            key = KEYS[s]
            nonce = max(0, pool.next_nonce(key.address, state) + offset)
            try:
                pool.add(signed(key, KEYS[t].address, amount, fee, nonce), state)
            except MempoolError as err:
                assert isinstance(err.rejection, MempoolRejection)
        assert len(pool) <= 12
        if foreign_block:
            # Another proposer's block: a tx the pool never saw moves the first sender's nonce.
            key = KEYS[ops[0][0] if ops else 0]
            outside = signed(key, KEYS[5].address, 0, 0, state.nonce(key.address))
            block = [outside]
        else:
            block = pool.select(state, max_txs=max_txs)
            assert len(block) <= max_txs
            # Liveness: a sender's next tx valid on the tip stays valid whatever others do before it.
            heads_valid = any(
                check_tx(state, stx, PARAMS) is None
                for stx in pool.pending()
                if stx.tx.nonce == state.nonce(stx.sender)
            )
            assert bool(block) == (heads_valid and max_txs > 0)
        # The proposer may be one of the senders: the fee credit must not matter to validity.
        fee_recipient = account_id(KEYS[max_txs % len(KEYS)].address)
        state, _ = apply_block(state, block, params=PARAMS, fee_recipient=fee_recipient)
        pool.on_block(state, block)
        assert state.total_supply() == supply
        for stx in pool.pending():
            assert stx.tx.nonce >= state.nonce(stx.sender)


def test_min_fee_spam_policy(state):
    pool = Mempool(PARAMS, 10, min_fee=2)
    unfunded = Account.from_key(keccak(b"mempool-test-unfunded"))
    err = rejection(pool, signed(unfunded, BOB.address, 0, 0, 0), state)  # costs its sender nothing
    assert err.rejection is MempoolRejection.FEE_TOO_LOW and err.rpc_code == -32008
    assert "at least 2" in str(err)
    assert (
        rejection(pool, signed(ALICE, BOB.address, 10, 1, 0), state).rejection is MempoolRejection.FEE_TOO_LOW
    )
    pool.add(signed(ALICE, BOB.address, 10, 2, 0), state)
    assert len(pool) == 1
    with pytest.raises(ValueError):
        Mempool(PARAMS, 10, min_fee=-1)

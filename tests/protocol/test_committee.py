"""Committee sampling, proposer choice and quorum (pure; L1 parity is in tests/l1/test_l1_committee.py)."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ha_sequencer.protocol.committee import committee_for, epoch_seed, proposer_for, proposer_index, quorum

SEED = keccak(b"committee test seed")


def addresses(n: int) -> list[str]:
    return [f"0x{i:040x}" for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("n", "expected"), [(1, 1), (2, 2), (3, 3), (4, 3), (6, 5), (10, 7), (48, 33), (100, 67)]
)
def test_quorum(n: int, expected: int) -> None:
    assert quorum(n) == expected


def test_seed_is_keccak_of_abi_encoded_epoch_and_genesis_seed() -> None:
    assert epoch_seed(3, SEED) == keccak((3).to_bytes(32, "big") + SEED)
    with pytest.raises(ValueError):
        epoch_seed(3, b"short")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 120), size=st.integers(1, 64), epoch=st.integers(0, 10**6))
def test_committee_is_a_sample_without_replacement(n: int, size: int, epoch: int) -> None:
    active = addresses(n)
    committee = committee_for(epoch, active, size, SEED)
    assert len(committee) == min(n, size)
    assert len(set(committee)) == len(committee)
    assert set(committee) <= set(active)
    assert committee == committee_for(epoch, active, size, SEED)  # deterministic
    assert active == addresses(n)  # input untouched


def test_committees_vary_by_epoch_and_seed() -> None:
    active = addresses(100)
    by_epoch = {tuple(committee_for(e, active, 10, SEED)) for e in range(20)}
    assert len(by_epoch) == 20
    assert committee_for(0, active, 10, SEED) != committee_for(0, active, 10, keccak(b"other"))


def test_sampling_is_roughly_uniform() -> None:
    active = addresses(20)
    counts = dict.fromkeys(active, 0)
    for e in range(2000):
        for a in committee_for(e, active, 5, SEED):
            counts[a] += 1
    # Each member is expected 500 times; a wildly biased sampler would fall far outside this band.
    assert all(380 < c < 620 for c in counts.values()), counts


def test_proposer() -> None:
    committee = committee_for(4, addresses(10), 8, SEED)
    for slot in range(32, 40):
        idx = proposer_index(4, slot, epoch_seed(4, SEED), len(committee))
        assert (
            idx
            == int.from_bytes(
                keccak((4).to_bytes(32, "big") + slot.to_bytes(32, "big") + epoch_seed(4, SEED)), "big"
            )
            % 8
        )
        assert proposer_for(slot, 8, committee, SEED) == committee[idx]
    with pytest.raises(ValueError):
        proposer_index(0, 0, SEED, 0)

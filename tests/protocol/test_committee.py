"""Committee sampling, proposer choice and quorum (pure; L1 parity is in tests/l1/test_l1_committee.py)."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ha_sequencer.protocol.committee import (
    RegistryEntry,
    committee_for,
    epoch_seed,
    proposer_for,
    proposer_index,
    quorum,
)
from ha_sequencer.protocol.constants import COMMITTEE_DRAWS_PER_SEAT, uint256_word

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


def _classic_fisher_yates(epoch: int, active: list[str], size: int) -> list[str]:
    """The partial Fisher-Yates over the whole active set (the sampler before registry-position draws)."""
    members, n, seed = list(active), len(active), epoch_seed(epoch, SEED)
    for i in range(min(size, n)):
        j = i + int.from_bytes(keccak(seed + uint256_word(i)), "big") % (n - i)
        members[i], members[j] = members[j], members[i]
    return members[: min(size, n)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), size=st.integers(1, 64), epoch=st.integers(0, 10**6))
def test_with_every_entry_active_the_draws_are_the_classic_partial_fisher_yates(
    n: int, size: int, epoch: int
) -> None:
    active = addresses(n)
    assert committee_for(epoch, active, size, SEED) == _classic_fisher_yates(epoch, active, size)


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 8)), max_size=150),
    size=st.integers(1, 48),
    epoch=st.integers(0, 8),
)
def test_only_entries_active_in_the_epoch_are_seated_once(
    spans: list[tuple[int, int]], size: int, epoch: int
) -> None:
    registry = [
        RegistryEntry(a, start, start + length) for a, (start, length) in zip(addresses(len(spans)), spans)
    ]
    active = [e.attester for e in registry if e.active_in(epoch)]
    committee = committee_for(epoch, registry, size, SEED)
    assert len(set(committee)) == len(committee) <= size
    assert set(committee) <= set(active)
    if len(registry) <= size * COMMITTEE_DRAWS_PER_SEAT:  # every position may be drawn: no seat left empty
        assert len(committee) == min(size, len(active))


def test_draws_are_bounded_by_the_committee_not_the_registry() -> None:
    # 10,000 entries of which only the last 10 are active: at most 4 draws per seat, so seats may stay empty
    # (the price of a bounded cost; docs/committee-sampling.md).
    live = [f"0x{i:040x}" for i in range(20_000, 20_010)]
    registry = [RegistryEntry(a, 0, 1) for a in addresses(9_990)] + [RegistryEntry(a) for a in live]
    committee = committee_for(5, registry, 8, SEED)
    assert len(committee) < 8 and set(committee) <= set(live)

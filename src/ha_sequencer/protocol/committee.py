"""Committee and proposer selection (DESIGN.md: The network); mirrored exactly by Rollup.sol.

- seed(e) = keccak256(abi.encode(uint256 e, bytes32 genesisSeed))
- committee(e): partial Fisher–Yates over the active set (registration order): for i in 0..k-1,
  j = i + uint256(keccak256(abi.encode(seed(e), uint256 i))) % (N - i); swap(i, j); committee = first k,
  with k = min(committeeSize, N).
- proposer(s) = committee[uint256(keccak256(abi.encode(uint256 e, uint256 s, seed(e)))) % len(committee)].
- quorum(n) = floor(2n/3) + 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from ha_sequencer.protocol.constants import uint256_word


def epoch_seed(epoch: int, genesis_seed: bytes) -> bytes:
    """Randomness of `epoch`: keccak256(abi.encode(epoch, genesisSeed))."""
    if len(genesis_seed) != 32:
        raise ValueError(f"genesis_seed must be 32 bytes, got {len(genesis_seed)}")
    return keccak(uint256_word(epoch) + bytes(genesis_seed))


def committee_for(
    epoch: int, active_set: Sequence[str], committee_size: int, genesis_seed: bytes
) -> list[str]:
    """The committee of `epoch`: min(committee_size, len(active_set)) attesters drawn without replacement."""
    members = list(active_set)
    n = len(members)
    k = min(committee_size, n)
    seed = epoch_seed(epoch, genesis_seed)
    for i in range(k):
        j = i + int.from_bytes(keccak(seed + uint256_word(i)), "big") % (n - i)
        members[i], members[j] = members[j], members[i]
    return members[:k]


def proposer_index(epoch: int, slot: int, seed: bytes, committee_size: int) -> int:
    """Index into the committee (of actual length `committee_size`) of the proposer of `slot`."""
    if committee_size <= 0:
        raise ValueError("empty committee has no proposer")
    digest = keccak(uint256_word(epoch) + uint256_word(slot) + bytes(seed))
    return int.from_bytes(digest, "big") % committee_size


def proposer_for(slot: int, epoch_length: int, committee: Sequence[str], genesis_seed: bytes) -> str:
    """The proposer of `slot`, given its epoch's committee."""
    epoch = slot // epoch_length
    return committee[proposer_index(epoch, slot, epoch_seed(epoch, genesis_seed), len(committee))]


def quorum(n: int) -> int:
    """Attestations needed from a committee of `n`: floor(2n/3) + 1."""
    return 2 * n // 3 + 1

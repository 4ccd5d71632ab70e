"""Committee and proposer selection (DESIGN.md: The network); mirrored exactly by Rollup.sol.

- seed(e) = keccak256(abi.encode(uint256 e, bytes32 genesisSeed))
- committee(e): a partial Fisher–Yates over the registry's positions (registration order, every entry ever
  registered, N of them), never materialised: draw i (i = 0, 1, …) takes position
  j = i + uint256(keccak256(abi.encode(seed(e), uint256 i))) % (N - i), swaps it with position i, and seats
  the entry drawn when it is active in e. Draws stop when committeeSize seats are filled or after
  min(N, COMMITTEE_DRAWS_PER_SEAT × committeeSize) draws. With every entry active this is exactly the
  partial Fisher–Yates over the active set; docs/committee-sampling.md says why and what it costs.
- proposer(s) = committee[uint256(keccak256(abi.encode(uint256 e, uint256 s, seed(e)))) % len(committee)].
- quorum(n) = floor(2n/3) + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from ha_sequencer.protocol.constants import COMMITTEE_DRAWS_PER_SEAT, NEVER_EPOCH, uint256_word


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One registered attester as the contract's registry holds it (`Rollup.getRegistry`)."""

    attester: str
    activation_epoch: int = 0
    exit_epoch: int = NEVER_EPOCH

    def active_in(self, epoch: int) -> bool:
        """Part of the validator set of `epoch`."""
        return self.activation_epoch <= epoch < self.exit_epoch


def epoch_seed(epoch: int, genesis_seed: bytes) -> bytes:
    """Randomness of `epoch`: keccak256(abi.encode(epoch, genesisSeed))."""
    if len(genesis_seed) != 32:
        raise ValueError(f"genesis_seed must be 32 bytes, got {len(genesis_seed)}")
    return keccak(uint256_word(epoch) + bytes(genesis_seed))


def committee_for(
    epoch: int, registry: Sequence[str | RegistryEntry], committee_size: int, genesis_seed: bytes
) -> list[str]:
    """The committee of `epoch`: up to `committee_size` active attesters drawn without replacement.

    `registry` is every registered entry in registration order; a bare address is an entry active from
    epoch 0 that never exits (a genesis validator)."""
    entries = [RegistryEntry(e) if isinstance(e, str) else e for e in registry]
    n = len(entries)
    draws = min(n, committee_size * COMMITTEE_DRAWS_PER_SEAT)
    seed = epoch_seed(epoch, genesis_seed)
    moved: dict[int, int] = {}  # position -> entry index, for positions an earlier draw swapped
    committee: list[str] = []
    i = 0
    while i < draws and len(committee) < committee_size:
        j = i + int.from_bytes(keccak(seed + uint256_word(i)), "big") % (n - i)
        pick = moved.get(j, j)
        moved[j] = moved.get(i, i)
        entry = entries[pick]
        if entry.active_in(epoch):
            committee.append(entry.attester)
        i += 1
    return committee


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

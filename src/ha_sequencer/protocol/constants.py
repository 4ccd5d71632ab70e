"""Protocol v1 constants and the network parameters read from the deployed Rollup (DESIGN.md: The network)."""

from __future__ import annotations

from dataclasses import dataclass

# EIP-712 domain of every signed message (the contract hard-codes the same strings).
EIP712_NAME = "HASequencer"
EIP712_VERSION = "1"

# The validator set used for epoch e is the one registered before epoch e - ACTIVATION_DELAY_EPOCHS.
ACTIVATION_DELAY_EPOCHS = 2
# Exited stake stays slashable for this many epochs after the exit epoch before it can be withdrawn.
WITHDRAWAL_DELAY_EPOCHS = 2
# The contract tracks committee positions in a 256-bit bitmap.
MAX_COMMITTEE_SIZE = 256
# Registry positions drawn per committee seat at most: committee cost follows its size, not the registry's.
COMMITTEE_DRAWS_PER_SEAT = 4
# A registry entry's exit epoch while it has not initiated an exit (the contract's uint48 max).
NEVER_EPOCH = 2**48 - 1
# Share of a slashed amount paid to the reporter, in basis points (the rest stays locked in the contract).
SLASH_REPORTER_SHARE_BPS = 5_000
BPS = 10_000

# Size caps (gossip validation and block building).
MAX_TXS_PER_BLOCK = 512
MAX_TX_BYTES = 1_024
MAX_GOSSIP_MESSAGE_BYTES = 1 << 20

SIGNATURE_BYTES = 65
BYTES32 = 32
UINT256_MAX = 2**256 - 1  # every amount, fee, nonce and balance is a uint256, as on L1
# secp256k1 group order; signatures with s > N/2 are rejected (malleability), as on L1.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

# Devnet defaults (DESIGN.md, in brackets there).
DEVNET_SLOT_DURATION = 4
DEVNET_EPOCH_LENGTH = 8
DEVNET_COMMITTEE_SIZE = 48
WEI_PER_ETH = 10**18
DEVNET_MIN_STAKE = WEI_PER_ETH  # 1 ETH
DEVNET_SLASH_AMOUNT = WEI_PER_ETH // 10  # 0.1 ETH
ANVIL_CHAIN_ID = 31337


def uint256_word(value: int) -> bytes:
    """`value` as one 32-byte big-endian word, as Solidity's abi.encode writes a uint256."""
    return value.to_bytes(BYTES32, "big")


@dataclass(frozen=True)
class NetworkParams:
    """Everything the protocol needs to know about one deployed network; read from the Rollup contract."""

    chain_id: int
    rollup: str  # checksummed address of the Rollup contract
    genesis_time: int
    slot_duration: int
    epoch_length: int
    committee_size: int
    genesis_seed: bytes  # 32 bytes
    min_stake: int
    slash_amount: int

    def __post_init__(self) -> None:
        if self.slot_duration <= 0 or self.epoch_length <= 0:
            raise ValueError(
                f"slot_duration and epoch_length must be positive, got "
                f"{self.slot_duration} and {self.epoch_length}"
            )
        if not 0 < self.committee_size <= MAX_COMMITTEE_SIZE:
            raise ValueError(f"committee_size must be in 1..{MAX_COMMITTEE_SIZE}, got {self.committee_size}")
        if len(self.genesis_seed) != BYTES32:
            raise ValueError(f"genesis_seed must be 32 bytes, got {len(self.genesis_seed)}")

    def slot_at(self, timestamp: int | float) -> int:
        """Slot containing `timestamp`; negative before genesis."""
        return int((timestamp - self.genesis_time) // self.slot_duration)

    def epoch_of(self, slot: int) -> int:
        """Epoch containing `slot`."""
        return slot // self.epoch_length

    def slot_start(self, slot: int) -> int:
        """Unix time at which `slot` begins."""
        return self.genesis_time + slot * self.slot_duration

    def first_slot(self, epoch: int) -> int:
        """First slot of `epoch`."""
        return epoch * self.epoch_length

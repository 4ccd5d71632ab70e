"""Published vectors and Aztec's index layout for ETH (BIP44) and BN254 BLS derivation."""

from __future__ import annotations

import pytest
from keys_fixtures import ABANDON_MNEMONIC, ANVIL_MNEMONIC
from mnemonic import Mnemonic

from ha_sequencer.keys import bls_public_key, derive_bls_secret, derive_eth_key
from ha_sequencer.keys.bls import BN254_R, decompress_g1
from ha_sequencer.keys.derivation import (
    bls_path,
    eth_path,
    generate_mnemonic,
    normalize_mnemonic,
    publisher_address_index,
)
from ha_sequencer.keys.errors import MnemonicError
from ha_sequencer.keys.generate import NewKeysRequest, derive_validators

ANVIL_ADDRESSES = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
]
ABANDON_BLS_SK = 0x1DC2E5095A3B78B2BECEABC9A418087E6A9DC7BAC00E510C6C9E8A06AE2524E0
ABANDON_BLS_PK = bytes.fromhex("99b85154eae381ef1a1e4d220087bf487c009c73c26621ad46dfe6d589fa946b")


@pytest.mark.parametrize("index", range(4))
def test_anvil_mnemonic_gives_anvil_accounts(index: int) -> None:
    assert derive_eth_key(ANVIL_MNEMONIC, address_index=index).address == ANVIL_ADDRESSES[index]


def test_abandon_mnemonic_eth_vector() -> None:
    assert derive_eth_key(ABANDON_MNEMONIC).address == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


def test_abandon_mnemonic_bls_vector() -> None:
    sk = derive_bls_secret(ABANDON_MNEMONIC)
    assert sk == ABANDON_BLS_SK
    assert bls_public_key(sk) == ABANDON_BLS_PK


def test_bls_public_key_is_a_curve_point_with_parity_flag() -> None:
    x, y = decompress_g1(ABANDON_BLS_PK)
    assert x.to_bytes(32, "big")[1:] == ABANDON_BLS_PK[1:]
    assert y & 1 == 1  # the top bit of the vector is set: y is odd
    with pytest.raises(ValueError):
        bls_public_key(BN254_R)  # 0 mod r


def test_paths_follow_aztec() -> None:
    assert eth_path(1, 7) == "m/44'/60'/1'/0/7"
    assert bls_path(1, 7) == "m/12381/3600/1/0/7"
    # the BLS key moves with both indices
    keys = {
        derive_bls_secret(ABANDON_MNEMONIC, account_index=a, address_index=i) for a in (0, 1) for i in (0, 1)
    }
    assert len(keys) == 4


def test_seed_guide_command_layout() -> None:
    """`--address-index 0 --publisher-count 3`: attester at index 0, publishers at 1, 2, 3."""
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient="0x" + "11" * 32, publisher_count=3)
    (validator,) = derive_validators(request)
    assert validator.attester.address == ANVIL_ADDRESSES[0]
    assert [p.address for p in validator.publishers] == ANVIL_ADDRESSES[1:4]
    assert validator.bls_secret == derive_bls_secret(ANVIL_MNEMONIC, address_index=0)


def test_several_validators_layout() -> None:
    """C=2, P=2 from B=5: validators at 5, 6; publishers of i at 5 + 2 + 2i + j."""
    request = NewKeysRequest(
        mnemonic=ANVIL_MNEMONIC, fee_recipient="0x" + "11" * 32, address_index=5, count=2, publisher_count=2
    )
    derived = derive_validators(request)
    assert [v.attester.address for v in derived] == [
        derive_eth_key(ANVIL_MNEMONIC, address_index=5).address,
        derive_eth_key(ANVIL_MNEMONIC, address_index=6).address,
    ]
    for i, v in enumerate(derived):
        expected = [
            derive_eth_key(ANVIL_MNEMONIC, address_index=publisher_address_index(5, 2, 2, i, j)).address
            for j in range(2)
        ]
        assert [p.address for p in v.publishers] == expected
        assert v.bls_secret == derive_bls_secret(ANVIL_MNEMONIC, address_index=5 + i)
    assert publisher_address_index(5, 2, 2, 1, 1) == 10


def test_passphrase_changes_both_keys() -> None:
    assert (
        derive_eth_key(ABANDON_MNEMONIC, passphrase="x").address != derive_eth_key(ABANDON_MNEMONIC).address
    )
    assert derive_bls_secret(ABANDON_MNEMONIC, passphrase="x") != ABANDON_BLS_SK


def test_generated_mnemonic_is_24_valid_english_words() -> None:
    words = generate_mnemonic()
    assert len(words.split()) == 24
    assert Mnemonic("english").check(words)
    assert generate_mnemonic() != words


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "test test test",
        "test test test test test test test test test test test test",  # bad checksum
        "tost test test test test test test test test test test junk",  # not a word
    ],
)
def test_bad_mnemonics_are_rejected_without_echo(bad: str) -> None:
    with pytest.raises(MnemonicError) as info:
        derive_eth_key(bad)
    assert "tost" not in str(info.value) and "junk" not in str(info.value)


def test_mnemonic_whitespace_is_normalized() -> None:
    assert normalize_mnemonic("  " + ANVIL_MNEMONIC.replace(" ", "\n  ") + " ") == ANVIL_MNEMONIC

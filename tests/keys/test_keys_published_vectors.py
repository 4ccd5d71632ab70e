"""Published BIP39 and BIP32 vectors through our derivation functions (the anvil and Aztec vectors are in
test_keys_derivation.py)."""

from __future__ import annotations

from eth_account.hdaccount import key_from_seed

from ha_sequencer.keys.derivation import bip39_seed

ABANDON = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def test_bip39_seed_trezor_vector():
    # trezor/python-mnemonic vectors.json, English, entropy 00…00, passphrase "TREZOR"
    assert bip39_seed(ABANDON, "TREZOR").hex() == (
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a"
        "3c4ab7c81b2f001698e7463b04"
    )


def test_bip32_test_vector_1():
    # BIP-32 "Test vector 1": seed 000102…0f, chain m/0H/1/2H/2/1000000000, through the same primitive
    # `eth_key_from_seed` uses, so a change of HD library cannot silently change the keys
    seed = bytes(range(16))
    key = key_from_seed(seed, "m/0'/1/2'/2/1000000000")
    assert key.hex() == "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8"

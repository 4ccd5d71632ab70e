"""Keys: BIP39/BIP44 ETH and BN254 BLS derivation, Aztec-compatible keystores, encryption, fleet tools."""

from ha_sequencer.keys.bls import bls_public_key
from ha_sequencer.keys.derivation import derive_bls_secret, derive_eth_key
from ha_sequencer.keys.errors import KeystoreError
from ha_sequencer.keys.keystore import LoadedKeystore, PasswordSource, ValidatorKeys, load_keystore

__all__ = [
    "KeystoreError",
    "LoadedKeystore",
    "PasswordSource",
    "ValidatorKeys",
    "bls_public_key",
    "derive_bls_secret",
    "derive_eth_key",
    "load_keystore",
]

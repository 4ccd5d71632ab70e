"""Key derivation from a BIP39 mnemonic, exactly as Aztec's `validator-keys new` does it.

- ETH (secp256k1): BIP44 `m/44'/60'/{account}'/0/{address}` (viem `mnemonicToAccount`).
- BLS (BN254): `sk = int(HMAC-SHA512(key=b"Aztec bn254 key", msg=0x00 ‖ bip39_seed ‖ utf8(path))) mod r`,
  path `m/12381/3600/{account}/0/{address}`; if 0, append a counter byte 1, 2, … and retry
  (Aztec `foundation/crypto/bls`, `deriveBlsKeyFromMnemonic`).
- Indices of `new`: validator i at address index `B+i`; publisher j of validator i at `B + C + i*P + j`.
"""

from __future__ import annotations

import hashlib
import hmac

from eth_account import Account
from eth_account.hdaccount import key_from_seed
from eth_account.signers.local import LocalAccount
from mnemonic import Mnemonic

from ha_sequencer.keys.bls import BN254_R
from ha_sequencer.keys.errors import MnemonicError

BLS_DOMAIN_KEY = b"Aztec bn254 key"
BLS_MNEMONIC_PREFIX = b"\x00"  # Aztec uses 0x01 for raw input keying material (`--ikm`)
MNEMONIC_WORDS_GENERATED = 24
_ENGLISH = Mnemonic("english")


def eth_path(account_index: int = 0, address_index: int = 0) -> str:
    """The BIP44 Ethereum path `m/44'/60'/{account}'/0/{address}`."""
    _check_index("account index", account_index)
    _check_index("address index", address_index)
    return f"m/44'/60'/{account_index}'/0/{address_index}"


def bls_path(account_index: int = 0, address_index: int = 0) -> str:
    """The EIP-2334-style BLS path Aztec derives BN254 keys on: `m/12381/3600/{account}/0/{address}`."""
    _check_index("account index", account_index)
    _check_index("address index", address_index)
    return f"m/12381/3600/{account_index}/0/{address_index}"


def normalize_mnemonic(mnemonic: str) -> str:
    """Trim and collapse whitespace; `MnemonicError` (never echoing it) unless valid BIP39 English."""
    words = " ".join(mnemonic.split())
    if not words:
        raise MnemonicError("the mnemonic is empty")
    count = len(words.split(" "))
    if count not in (12, 15, 18, 21, 24):
        raise MnemonicError(f"a BIP39 mnemonic has 12, 15, 18, 21 or 24 words, this one has {count}")
    try:
        valid = _ENGLISH.check(words)
    except (ValueError, LookupError):
        valid = False
    if not valid:
        raise MnemonicError(
            "the mnemonic is not a valid BIP39 English mnemonic (unknown word or bad checksum)"
        )
    return words


def generate_mnemonic() -> str:
    """A fresh 24-word English mnemonic (256 bits of entropy from the OS)."""
    return _ENGLISH.generate(strength=256)


def bip39_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed of a (validated) mnemonic and optional passphrase."""
    return Mnemonic.to_seed(normalize_mnemonic(mnemonic), passphrase)


def eth_key_from_seed(seed: bytes, *, account_index: int = 0, address_index: int = 0) -> bytes:
    """The 32-byte secp256k1 key at `m/44'/60'/{account}'/0/{address}` of a BIP39 seed."""
    return key_from_seed(seed, eth_path(account_index, address_index))


def bls_secret_from_seed(seed: bytes, *, account_index: int = 0, address_index: int = 0) -> int:
    """The BN254 secret scalar at `m/12381/3600/{account}/0/{address}` of a BIP39 seed (Aztec's rule)."""
    data = BLS_MNEMONIC_PREFIX + seed + bls_path(account_index, address_index).encode("utf-8")
    for counter in range(256):
        msg = data if counter == 0 else data + bytes([counter])
        digest = hmac.new(BLS_DOMAIN_KEY, msg, hashlib.sha512).digest()
        sk = int.from_bytes(digest, "big") % BN254_R
        if sk:
            return sk
    raise ArithmeticError("no non-zero BN254 scalar after 256 tries")  # probability ~2^-64000


def derive_eth_key(
    mnemonic: str, *, passphrase: str = "", account_index: int = 0, address_index: int = 0
) -> LocalAccount:
    """The ETH account at BIP44 `m/44'/60'/{account_index}'/0/{address_index}` of a mnemonic."""
    seed = bip39_seed(mnemonic, passphrase)
    return Account.from_key(eth_key_from_seed(seed, account_index=account_index, address_index=address_index))


def derive_bls_secret(
    mnemonic: str, *, passphrase: str = "", account_index: int = 0, address_index: int = 0
) -> int:
    """The BN254 BLS secret key of a mnemonic at `m/12381/3600/{account_index}/0/{address_index}`."""
    seed = bip39_seed(mnemonic, passphrase)
    return bls_secret_from_seed(seed, account_index=account_index, address_index=address_index)


def validator_address_index(base: int, i: int) -> int:
    """Address index of validator i of `new --address-index base`."""
    return base + i


def publisher_address_index(base: int, count: int, publisher_count: int, i: int, j: int) -> int:
    """Address index of publisher j of validator i: `B + C + i*P + j` (Aztec `buildValidatorEntries`)."""
    return base + count + i * publisher_count + j


def _check_index(name: str, value: int) -> None:
    # BIP32 non-hardened/hardened indices are 31-bit
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValueError(f"{name} must be an integer in [0, 2^31), got {value!r}")

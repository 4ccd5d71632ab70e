"""Encrypted key files: JSON V3 for ETH keys, the EIP-2335 layout for BN254 BLS keys.

- ETH: Web3 Secret Storage (JSON V3) via eth-keyfile; written with scrypt n=2^17, r=8, p=1 (what Aztec's CLI,
  through ethers, writes); read with scrypt or pbkdf2. Passwords are NFKC-normalized as ethers does.
- BLS: Aztec's BN254 keystore (`foundation/crypto/bls/bn254_keystore`): EIP-2335 layout, version 4,
  `kdf` pbkdf2 (c=262144, hmac-sha256, dklen 32) or scrypt, `aes-128-ctr` with the first 16 bytes of the
  derived key, checksum `sha256(dk[16:32] ‖ ciphertext)`; passwords NFKD-normalized. Aztec reads pbkdf2 only,
  so pbkdf2 is what we write by default.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import eth_keyfile
from Crypto.Cipher import AES

from ha_sequencer.keys.bls import BN254_R, bls_public_key

KdfName = Literal["scrypt", "pbkdf2"]

ETH_SCRYPT_N = 2**17  # ethers' default, i.e. what `aztec validator-keys new --password` writes
BLS_PBKDF2_C = 262144  # Aztec's createBn254Keystore
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32


@dataclass(frozen=True)
class KdfStrength:
    """Work factors for writing encrypted files; defaults are standard strength (tests pass lighter ones)."""

    eth_scrypt_n: int = ETH_SCRYPT_N
    bls_pbkdf2_c: int = BLS_PBKDF2_C
    bls_scrypt_n: int = 2**18


STANDARD = KdfStrength()


class WrongPasswordError(Exception):
    """The password does not decrypt the file (MAC/checksum mismatch)."""


class NotAKeyFileError(Exception):
    """The document is not a key file of the expected kind; the message says which field is wrong."""


def encrypt_eth_key(private_key: bytes, password: str, *, strength: KdfStrength = STANDARD) -> dict[str, Any]:
    """A JSON V3 (scrypt) document holding a 32-byte secp256k1 key."""
    return eth_keyfile.create_keyfile_json(
        private_key, _nfkc(password), kdf="scrypt", iterations=strength.eth_scrypt_n
    )


def decrypt_eth_key(document: Any, password: str) -> bytes:
    """The 32-byte key of a JSON V3 document; `WrongPasswordError` or `NotAKeyFileError` otherwise."""
    if (
        not isinstance(document, dict)
        or document.get("version") != 3
        or not isinstance(document.get("crypto"), dict)
    ):
        raise NotAKeyFileError("not a JSON V3 key file (expected version 3 and a crypto object)")
    candidates = [_nfkc(password)]
    raw = password.encode("utf-8")
    if raw not in candidates:
        candidates.append(raw)  # files written by tools that do not normalize
    for candidate in candidates:
        try:
            return bytes(eth_keyfile.decode_keyfile_json(document, candidate))
        except (KeyError, TypeError, AttributeError) as exc:
            raise NotAKeyFileError(f"malformed JSON V3 key file (field {exc})") from None
        except ValueError as exc:
            if "MAC mismatch" in str(exc):
                continue
            raise NotAKeyFileError(f"malformed JSON V3 key file ({type(exc).__name__})") from None
        except NotImplementedError:
            raise NotAKeyFileError("unsupported JSON V3 key derivation function") from None
    raise WrongPasswordError("the password does not decrypt this key file (MAC mismatch)")


def encrypt_bls_key(
    secret: int,
    password: str,
    *,
    path: str,
    kdf: KdfName = "pbkdf2",
    strength: KdfStrength = STANDARD,
) -> dict[str, Any]:
    """An EIP-2335-layout document holding a BN254 secret (Aztec's BN254 keystore format)."""
    if not 0 < secret < BN254_R:
        raise ValueError("BLS secret out of range")
    salt = os.urandom(32)
    iv = os.urandom(16)
    pw = _nfkd(password)
    if kdf == "pbkdf2":
        params: dict[str, Any] = {
            "dklen": _DKLEN,
            "c": strength.bls_pbkdf2_c,
            "prf": "hmac-sha256",
            "salt": salt.hex(),
        }
    else:
        params = {
            "dklen": _DKLEN,
            "n": strength.bls_scrypt_n,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": salt.hex(),
        }
    dk = _kdf(kdf, params, pw)
    ciphertext = _aes_128_ctr(dk[:16], iv, secret.to_bytes(32, "big"))
    checksum = hashlib.sha256(dk[16:32] + ciphertext).digest()
    pubkey = "0x" + bls_public_key(secret).hex()
    return {
        "crypto": {
            "kdf": {"function": kdf, "params": params, "message": ""},
            "checksum": {"function": "sha256", "params": {}, "message": checksum.hex()},
            "cipher": {"function": "aes-128-ctr", "params": {"iv": iv.hex()}, "message": ciphertext.hex()},
        },
        "description": pubkey[2:],
        "pubkey": pubkey,
        "path": path,
        "uuid": str(uuid.uuid4()),
        "version": 4,
    }


def decrypt_bls_key(document: Any, password: str) -> int:
    """The BN254 secret of an EIP-2335-layout document; `WrongPasswordError`/`NotAKeyFileError` otherwise."""
    try:
        crypto = document["crypto"]
        kdf = crypto["kdf"]["function"]
        params = crypto["kdf"]["params"]
        if crypto["checksum"]["function"] != "sha256":
            raise NotAKeyFileError("unsupported checksum function (expected sha256)")
        if crypto["cipher"]["function"] != "aes-128-ctr":
            raise NotAKeyFileError("unsupported cipher (expected aes-128-ctr)")
        iv = bytes.fromhex(crypto["cipher"]["params"]["iv"])
        ciphertext = bytes.fromhex(crypto["cipher"]["message"])
        expected = bytes.fromhex(crypto["checksum"]["message"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAKeyFileError(f"not an EIP-2335 key file (missing or malformed field {exc})") from None
    if kdf not in ("pbkdf2", "scrypt"):
        raise NotAKeyFileError("unsupported key derivation function (expected pbkdf2 or scrypt)")
    try:
        dk = _kdf(kdf, params, _nfkd(password))
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAKeyFileError(f"malformed kdf parameters ({exc})") from None
    if not hmac.compare_digest(hashlib.sha256(dk[16:32] + ciphertext).digest(), expected):
        raise WrongPasswordError("the password does not decrypt this key file (checksum mismatch)")
    if len(ciphertext) != 32:
        raise NotAKeyFileError("the encrypted BLS secret is not 32 bytes")
    return int.from_bytes(_aes_128_ctr(dk[:16], iv, ciphertext), "big")


def dumps_key_file(document: dict[str, Any]) -> bytes:
    """Serialize a key file the way we write every JSON file: 2-space indent, trailing newline."""
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _kdf(kdf: str, params: dict[str, Any], password: bytes) -> bytes:
    salt = bytes.fromhex(params["salt"])
    dklen = int(params["dklen"])
    if dklen < 32:
        raise ValueError("dklen must be at least 32")
    if kdf == "pbkdf2":
        if params.get("prf", "hmac-sha256") != "hmac-sha256":
            raise ValueError("unsupported prf (expected hmac-sha256)")
        return hashlib.pbkdf2_hmac("sha256", password, salt, int(params["c"]), dklen)
    n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n * p + 2**24)


def _aes_128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(data)


def _nfkd(password: str) -> bytes:
    return unicodedata.normalize("NFKD", password).encode("utf-8")


def _nfkc(password: str) -> bytes:
    return unicodedata.normalize("NFKC", password).encode("utf-8")

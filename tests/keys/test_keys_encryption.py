"""Encrypted key files: JSON V3 (ETH) and Aztec's EIP-2335-layout BN254 keystore (BLS)."""

from __future__ import annotations

import copy
import hashlib
import json

import eth_keyfile
import pytest
from keys_fixtures import ABANDON_MNEMONIC

from ha_sequencer.keys import bls_public_key, derive_bls_secret
from ha_sequencer.keys.bls import BN254_R
from ha_sequencer.keys.encryption import (
    NotAKeyFileError,
    WrongPasswordError,
    decrypt_bls_key,
    decrypt_eth_key,
    encrypt_bls_key,
    encrypt_eth_key,
)

ETH_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")


def test_eth_json_v3_round_trip(light_kdf) -> None:
    document = encrypt_eth_key(ETH_KEY, "pässword", strength=light_kdf)
    assert document["version"] == 3 and document["crypto"]["kdf"] == "scrypt"
    assert document["address"].lower() == "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert ETH_KEY.hex() not in json.dumps(document)
    assert decrypt_eth_key(json.loads(json.dumps(document)), "pässword") == ETH_KEY
    with pytest.raises(WrongPasswordError):
        decrypt_eth_key(document, "wrong")


def test_eth_json_v3_written_by_other_tools_decrypts() -> None:
    # geth-style pbkdf2 files (eth-keyfile's default) are JSON V3 too
    document = eth_keyfile.create_keyfile_json(ETH_KEY, b"pw", kdf="pbkdf2", iterations=16)
    assert decrypt_eth_key(document, "pw") == ETH_KEY


def test_eth_non_key_files_are_named_as_such() -> None:
    with pytest.raises(NotAKeyFileError):
        decrypt_eth_key({"version": 4}, "pw")
    with pytest.raises(NotAKeyFileError):
        decrypt_eth_key({"version": 3, "crypto": {}}, "pw")


@pytest.mark.parametrize("kdf", ["pbkdf2", "scrypt"])
def test_bls_round_trip_in_aztec_layout(light_kdf, kdf) -> None:
    secret = derive_bls_secret(ABANDON_MNEMONIC)
    document = encrypt_bls_key(secret, "pw", path="m/12381/3600/0/0/0", kdf=kdf, strength=light_kdf)
    # the fields Aztec's bn254 keystore schema requires
    assert document["version"] == 4
    assert document["crypto"]["kdf"]["function"] == kdf
    assert document["crypto"]["cipher"]["function"] == "aes-128-ctr"
    assert document["crypto"]["checksum"]["function"] == "sha256"
    assert document["pubkey"] == "0x" + bls_public_key(secret).hex()
    assert document["description"] == document["pubkey"][2:]
    assert document["path"] == "m/12381/3600/0/0/0"
    assert f"{secret:064x}" not in json.dumps(document)
    assert decrypt_bls_key(document, "pw") == secret
    with pytest.raises(WrongPasswordError):
        decrypt_bls_key(document, "wrong")


def test_bls_checksum_is_sha256_of_key_half_and_ciphertext(light_kdf) -> None:
    """Recompute the EIP-2335 checksum independently of the module under test."""
    document = encrypt_bls_key(7, "pw", path="m", strength=light_kdf)
    params = document["crypto"]["kdf"]["params"]
    dk = hashlib.pbkdf2_hmac("sha256", b"pw", bytes.fromhex(params["salt"]), params["c"], params["dklen"])
    ciphertext = bytes.fromhex(document["crypto"]["cipher"]["message"])
    assert hashlib.sha256(dk[16:32] + ciphertext).hexdigest() == document["crypto"]["checksum"]["message"]


def test_bls_tampered_or_malformed_files(light_kdf) -> None:
    document = encrypt_bls_key(7, "pw", path="m", strength=light_kdf)
    tampered = copy.deepcopy(document)
    message = tampered["crypto"]["cipher"]["message"]
    tampered["crypto"]["cipher"]["message"] = ("0" if message[0] != "0" else "1") + message[1:]
    with pytest.raises(WrongPasswordError):
        decrypt_bls_key(tampered, "pw")
    broken = copy.deepcopy(document)
    del broken["crypto"]["kdf"]["params"]["salt"]
    with pytest.raises(NotAKeyFileError, match="salt"):
        decrypt_bls_key(broken, "pw")
    with pytest.raises(NotAKeyFileError):
        decrypt_bls_key([], "pw")
    with pytest.raises(ValueError):
        encrypt_bls_key(BN254_R, "pw", path="m", strength=light_kdf)

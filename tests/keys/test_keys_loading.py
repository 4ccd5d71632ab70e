"""Keystore loading: Aztec's examples, every malformed class with its specific message, resolution rules."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from keys_fixtures import ANVIL_MNEMONIC, FEE_RECIPIENT

from ha_sequencer.keys import KeystoreError, LoadedKeystore, PasswordSource, derive_eth_key, load_keystore
from ha_sequencer.keys.encryption import dumps_key_file, encrypt_bls_key, encrypt_eth_key
from ha_sequencer.keys.errors import (
    DecryptionError,
    DuplicateAttesterError,
    KeyFileError,
    KeyFormatError,
    KeystoreSchemaError,
    KeystoreSyntaxError,
    MissingPasswordError,
    MnemonicError,
    RemoteSignerUnsupportedError,
)
from ha_sequencer.keys.keystore import inspect_keystore

KEY_A = "0x" + "aa" * 32
KEY_B = "0x" + "bb" * 32
KEY_C = "0x" + "cc" * 32


def _address(key: str) -> str:
    from eth_account import Account

    return Account.from_key(key).address


def write(tmp_path: Path, document: Any, name: str = "keystore.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    path.chmod(0o600)
    return path


def v1(**validator: Any) -> dict[str, Any]:
    entry = {"attester": KEY_A, "feeRecipient": FEE_RECIPIENT}
    entry.update(validator)
    return {"schemaVersion": 1, "validators": [entry]}


# --- Aztec's examples ---------------------------------------------------------------------------------

COMPLETE = [
    "unversioned/simple-validator.json",
    "v1/validator-null.json",
    "v2/validator-with-top-level-defaults.json",
]
ALL_EXAMPLES = COMPLETE + [
    "v1/everything.json",
    "v1/multiple-validators-remote.json",
    "v1/prover-with-mnemonic-publisher.json",
    "v1/prover-with-publishers-and-funding-account.json",
]


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_every_aztec_example_passes_the_schema(aztec_examples: Path, name: str) -> None:
    report = inspect_keystore(aztec_examples / name)
    assert report.files[0].keystore is not None
    assert not any(isinstance(e, KeystoreSchemaError | KeystoreSyntaxError) for e in report.all_errors())


@pytest.mark.parametrize("name", COMPLETE)
def test_complete_aztec_examples_load(aztec_examples: Path, name: str) -> None:
    loaded = load_keystore(aztec_examples / name)
    assert loaded.validators
    for v in loaded.validators:
        assert v.publishers and v.coinbase and len(v.fee_recipient) == 32


def test_v2_top_level_defaults_resolve_like_aztec(aztec_examples: Path) -> None:
    loaded = load_keystore(aztec_examples / "v2/validator-with-top-level-defaults.json")
    first, second, third = loaded.validators
    top_publisher = _address("0x" + "0a" * 32)
    assert [p.address for p in first.publishers] == [top_publisher]
    assert [p.address for p in second.publishers] == [_address("0x" + "0b" * 32)]
    assert first.coinbase == "0x1111111111111111111111111111111111111111"
    assert third.coinbase == "0x2222222222222222222222222222222222222222"
    assert first.fee_recipient.hex() == "1234567890abcdef" * 4
    assert third.fee_recipient.hex() == "0bcdef" * 10 + "0bcd"


def test_everything_example_gets_specific_problems(aztec_examples: Path) -> None:
    errors = inspect_keystore(aztec_examples / "v1/everything.json").all_errors()
    kinds = {type(e) for e in errors}
    assert kinds == {RemoteSignerUnsupportedError, KeyFileError}
    missing = [e for e in errors if isinstance(e, KeyFileError)]
    assert {e.json_path for e in missing} == {"validators[0].publisher[3]", "validators[1].attester[2]"}
    assert any("/tmp/attester.json" in str(e) for e in missing)
    remote = [e for e in errors if isinstance(e, RemoteSignerUnsupportedError)]
    assert any("https://localhost:9200" in str(e) for e in remote)


def test_repeated_attester_example_is_a_duplicate_problem(aztec_examples: Path) -> None:
    errors = inspect_keystore(aztec_examples / "v1/multiple-validators-remote.json").all_errors()
    duplicates = [e for e in errors if isinstance(e, DuplicateAttesterError)]
    assert {e.json_path for e in duplicates} == {"validators[1].attester", "validators[2].attester"}
    assert "0x1234567890123456789012345678901234567890" in str(duplicates[0])


# --- malformed keystores: each class has its own message -------------------------------------------------


@pytest.mark.parametrize(
    ("document", "kind", "where", "words"),
    [
        (
            '{"schemaVersion": 1,\n  "validators": [\n    {"attester": "0x1"  "x": 1}]}',
            KeystoreSyntaxError,
            (3, 25),
            "invalid JSON",
        ),
        ('{"schemaVersion": 1, "schemaVersion": 2}', KeystoreSyntaxError, None, "appears twice"),
        ('{"schemaVersion": NaN}', KeystoreSyntaxError, None, "NaN"),
        ([], KeystoreSchemaError, "(root)", "JSON object"),
        ({"validators": []}, KeystoreSchemaError, "schemaVersion", "missing"),
        (
            {"schemaVersion": 3, "validators": []},
            KeystoreSchemaError,
            "schemaVersion",
            "unsupported schemaVersion 3",
        ),
        ({"schemaVersion": 1}, KeystoreSchemaError, "(root)", "validators or a prover"),
        (v1(extra=1), KeystoreSchemaError, "validators[0].extra", "unknown field 'extra'"),
        ({**v1(), "publisher": KEY_B}, KeystoreSchemaError, "publisher", "needs schemaVersion 2"),
        (
            {"schemaVersion": 1, "validators": [{"attester": KEY_A}]},
            KeystoreSchemaError,
            "validators[0].feeRecipient",
            "required field is missing",
        ),
        (
            {"schemaVersion": 2, "validators": [{"attester": KEY_A}]},
            KeystoreSchemaError,
            "(root)",
            "no feeRecipient",
        ),
        (v1(attester="0x1234"), KeystoreSchemaError, "validators[0].attester", "private key (0x + 64 hex"),
        (
            v1(attester={"eth": KEY_A, "bls": "0x12"}),
            KeystoreSchemaError,
            "validators[0].attester.bls",
            "private key",
        ),
        (v1(attester={"foo": 1}), KeystoreSchemaError, "validators[0].attester", "expected an account"),
        (v1(publisher=[KEY_B, 7]), KeystoreSchemaError, "validators[0].publisher[1]", "expected an account"),
        (
            v1(coinbase="0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            KeystoreSchemaError,
            "validators[0].coinbase",
            "EIP-55",
        ),
        (v1(feeRecipient="0x" + "ff" * 32), KeystoreSchemaError, "validators[0].feeRecipient", "modulus"),
        (v1(feeRecipient="0x1234"), KeystoreSchemaError, "validators[0].feeRecipient", "Aztec address"),
        (v1(remoteSigner="not a url"), KeystoreSchemaError, "validators[0].remoteSigner", "URL"),
        (
            v1(attester={"mnemonic": ANVIL_MNEMONIC, "addressIndex": -1}),
            KeystoreSchemaError,
            "validators[0].attester.addressIndex",
            "greater than or equal to 0",
        ),
        (
            v1(attester={"mnemonic": ANVIL_MNEMONIC, "addressCount": 0}),
            KeystoreSchemaError,
            "validators[0].attester.addressCount",
            "greater than or equal to 1",
        ),
        (v1(attester={"path": 5}), KeystoreSchemaError, "validators[0].attester.path", "expected a string"),
        (v1(attester="0x" + "00" * 32), KeyFormatError, "validators[0].attester", "secp256k1"),
        (
            v1(attester={"eth": KEY_A, "bls": "0x" + "00" * 32}),
            KeyFormatError,
            "validators[0].attester.bls",
            "0",
        ),
        (
            v1(attester="0x1111111111111111111111111111111111111111"),
            RemoteSignerUnsupportedError,
            "validators[0].attester",
            "no remoteSigner is configured",
        ),
        (
            v1(attester={"mnemonic": "test test test"}),
            MnemonicError,
            "validators[0].attester.mnemonic",
            "12, 15",
        ),
        (
            v1(attester={"path": "missing.json", "password": "pw"}),
            KeyFileError,
            "validators[0].attester",
            "not found",
        ),
    ],
)
def test_malformed_keystores_get_specific_messages(
    tmp_path: Path, document: Any, kind: type, where: Any, words: str
) -> None:
    path = write(tmp_path, document)
    with pytest.raises(KeystoreError) as info:
        load_keystore(path)
    error = info.value
    assert type(error) is kind, str(error)
    assert words in str(error)
    assert str(path) in str(error)
    if isinstance(where, tuple):
        assert (error.line, error.col) == where
        assert f"{path}:{where[0]}:{where[1]}:" in str(error)
    elif where is not None:
        assert error.json_path == where
    assert error.exit_code == 2
    for secret in (KEY_A[2:], KEY_B[2:], ANVIL_MNEMONIC):
        assert secret not in str(error)


def test_duplicate_attester_across_files_of_a_directory(tmp_path: Path) -> None:
    write(tmp_path, v1(), "a.json")
    write(tmp_path, v1(attester={"eth": KEY_A, "bls": KEY_C}), "b.json")
    with pytest.raises(DuplicateAttesterError) as info:
        load_keystore(tmp_path)
    assert "b.json" in str(info.value) and "a.json" in str(info.value)


def test_directory_merges_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, v1(attester=KEY_B), "2.json")
    write(tmp_path, v1(attester=KEY_A), "1.json")
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_keystore(tmp_path)
    assert loaded.attester_addresses == [_address(KEY_A), _address(KEY_B)]
    assert [s.name for s in loaded.sources] == ["1.json", "2.json"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no .json keystore files"):
        load_keystore(tmp_path)


def test_fallbacks_publisher_and_coinbase_to_attester(tmp_path: Path) -> None:
    (validator,) = load_keystore(write(tmp_path, v1())).validators
    assert validator.publisher_is_fallback
    assert [p.address for p in validator.publishers] == [_address(KEY_A)]
    assert validator.coinbase == _address(KEY_A)
    assert validator.bls_secret is None and validator.bls_public is None


def test_attester_list_and_mnemonic_config_expand(tmp_path: Path) -> None:
    document = v1(
        attester={"mnemonic": ANVIL_MNEMONIC, "addressIndex": 1, "addressCount": 2},
        publisher=[KEY_B, KEY_C],
    )
    loaded = load_keystore(write(tmp_path, document))
    assert loaded.attester_addresses == [
        derive_eth_key(ANVIL_MNEMONIC, address_index=1).address,
        derive_eth_key(ANVIL_MNEMONIC, address_index=2).address,
    ]
    # Aztec: coinbase falls back to the block's first attester
    assert {v.coinbase for v in loaded.validators} == {loaded.attester_addresses[0]}
    assert all(
        [p.address for p in v.publishers] == [_address(KEY_B), _address(KEY_C)] for v in loaded.validators
    )


def test_encrypted_key_files_relative_paths_and_passwords(tmp_path: Path, light_kdf: Any) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "eth.json").write_bytes(
        dumps_key_file(encrypt_eth_key(bytes.fromhex(KEY_A[2:]), "pw", strength=light_kdf))
    )
    bls_secret = 12345
    (keys / "bls.json").write_bytes(
        dumps_key_file(encrypt_bls_key(bls_secret, "pw", path="m/x", strength=light_kdf))
    )
    document = v1(
        attester={"eth": {"path": "keys/eth.json"}, "bls": {"path": "keys/bls.json", "password": "pw"}}
    )
    path = write(tmp_path, document)

    with pytest.raises(MissingPasswordError) as info:
        load_keystore(path)
    assert info.value.json_path == "validators[0].attester.eth"
    with pytest.raises(DecryptionError):
        load_keystore(path, passwords=PasswordSource(default="wrong"))
    loaded = load_keystore(path, passwords=PasswordSource(default="pw"))
    (validator,) = loaded.validators
    assert validator.attester.address == _address(KEY_A)
    assert validator.bls_secret == bls_secret

    # a different working directory must not matter: paths are relative to the keystore
    cwd = os.getcwd()
    try:
        os.chdir("/")
        assert load_keystore(path, passwords=PasswordSource(default="pw")).attester_addresses == [
            _address(KEY_A)
        ]
    finally:
        os.chdir(cwd)


def test_eth_key_directory_path(tmp_path: Path, light_kdf: Any) -> None:
    pubs = tmp_path / "publishers"
    pubs.mkdir()
    for n, key in enumerate((KEY_B, KEY_C)):
        (pubs / f"{n}.json").write_bytes(
            dumps_key_file(encrypt_eth_key(bytes.fromhex(key[2:]), "pw", strength=light_kdf))
        )
    loaded = load_keystore(write(tmp_path, v1(publisher={"path": str(pubs), "password": "pw"})))
    assert [p.address for p in loaded.validators[0].publishers] == [_address(KEY_B), _address(KEY_C)]
    shutil.copy(pubs / "0.json", pubs / "2.json")
    with pytest.raises(KeyFileError, match="same address"):
        load_keystore(tmp_path / "keystore.json")


def test_password_file_source(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    assert PasswordSource.from_file(tmp_path / "pw").password_for(tmp_path) == "secret"
    assert "secret" not in repr(PasswordSource.from_file(tmp_path / "pw"))


def test_reprs_never_show_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, v1(attester={"eth": KEY_A, "bls": KEY_C}))
    loaded: LoadedKeystore = load_keystore(path)
    text = repr(loaded) + repr(loaded.validators) + str(loaded.validators[0])
    # The inspection reports (`validator-keys check`, fleet checks) hold the raw document: never in a repr.
    report = inspect_keystore(path)
    text += repr(report) + repr(report.files) + repr(list(report.blocks()))
    for secret in (KEY_A[2:], KEY_C[2:], str(int(KEY_C, 16))):
        assert secret not in text
    assert _address(KEY_A) in text


def test_field_errors_carry_line_and_column(tmp_path: Path) -> None:
    document = v1(publisher=[KEY_B, "0x1234"])
    path = write(tmp_path, document)
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if '"0x1234"' in text)
    col = lines[line - 1].index('"0x1234"') + 1
    with pytest.raises(KeystoreSchemaError) as info:
        load_keystore(path)
    assert (info.value.line, info.value.col) == (line, col)
    assert str(info.value).startswith(f"{path}:{line}:{col}: validators[0].publisher[1]: ")


def test_positions_of_json_paths() -> None:
    from ha_sequencer.keys.positions import locate, parse_json_path

    text = '{"a": [1, {"b": "x"}],\n "c": {}}'
    assert locate(text, "a[1].b") == (1, 17)
    assert locate(text, "c.missing") == (2, 7)  # the object that lacks the field
    assert parse_json_path("validators[0].attester.eth") == ("validators", 0, "attester", "eth")
    assert parse_json_path("x[<a key of 66 characters>]") is None

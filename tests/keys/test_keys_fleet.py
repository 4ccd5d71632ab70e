"""The guide's Steps 1, 3-4 and the fleet lint: new → split → check, encrypted, and every check problem."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from keys_fixtures import ANVIL_MNEMONIC, AZTEC_EXAMPLES, FEE_RECIPIENT

from ha_sequencer.cli import main
from ha_sequencer.keys import PasswordSource, derive_bls_secret, derive_eth_key, load_keystore
from ha_sequencer.keys.bls import bls_public_key
from ha_sequencer.keys.discovery import insecure_keystore_files
from ha_sequencer.keys.errors import OutputExistsError
from ha_sequencer.keys.fleet import SplitError, check_fleet, split_keystore
from ha_sequencer.keys.generate import NewKeysRequest, write_new_keystore

ANVIL = [derive_eth_key(ANVIL_MNEMONIC, address_index=i).address for i in range(5)]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def guide_new(tmp_path: Path, capsys, *extra: str) -> Path:
    code, out, err = run(
        [
            "validator-keys",
            "new",
            "--fee-recipient",
            FEE_RECIPIENT,
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--address-index",
            "0",
            "--publisher-count",
            "3",
            "--data-dir",
            str(tmp_path / "ha-keys-temp"),
            *extra,
        ],
        capsys,
    )
    assert code == 0, err
    return tmp_path / "ha-keys-temp" / "key1.json"


def test_new_split_check_is_clean(tmp_path: Path, capsys) -> None:
    base = guide_new(tmp_path, capsys)
    assert oct(base.stat().st_mode & 0o777) == "0o600"
    assert oct(base.parent.stat().st_mode & 0o777) == "0o700"
    document = json.loads(base.read_text())
    (validator,) = document["validators"]
    assert set(validator) == {"attester", "publisher", "feeRecipient", "coinbase"}
    assert validator["coinbase"] == ANVIL[0]
    assert validator["attester"]["bls"] == "0x" + derive_bls_secret(ANVIL_MNEMONIC).to_bytes(32, "big").hex()

    code, out, err = run(["validator-keys", "split", str(base), "--out", str(tmp_path / "nodes")], capsys)
    assert code == 0, err
    nodes = [tmp_path / "nodes" / f"node{k}" / "keystore.json" for k in (1, 2, 3)]
    for k, node in enumerate(nodes, start=1):
        assert oct(node.stat().st_mode & 0o777) == "0o600"
        loaded = load_keystore(node)
        (v,) = loaded.validators
        assert v.attester.address == ANVIL[0]
        assert v.bls_public == bls_public_key(derive_bls_secret(ANVIL_MNEMONIC))
        assert [p.address for p in v.publishers] == [ANVIL[k]]
        assert ANVIL[k] in out

    code, out, err = run(["validator-keys", "check", *map(str, nodes)], capsys)
    assert code == 0, out + err
    assert "no problems found" in out
    assert base.exists()  # no --shred-source


def test_new_prints_addresses_never_private_keys(tmp_path: Path, capsys) -> None:
    code, out, err = run(
        [
            "validator-keys",
            "new",
            "--fee-recipient",
            FEE_RECIPIENT,
            "--publisher-count",
            "1",
            "--data-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0
    document = json.loads((tmp_path / "key1.json").read_text())
    secrets = [document["validators"][0]["attester"]["eth"][2:], document["validators"][0]["publisher"][2:]]
    for secret in secrets:
        assert secret not in out and secret not in err
    # a generated mnemonic is shown once, with the warning, on stderr
    assert "store it offline" in err
    words = [line.strip() for line in err.splitlines() if len(line.split()) == 24]
    assert len(words) == 1
    assert derive_eth_key(words[0]).address in out


def test_new_never_overwrites_and_picks_next_file(tmp_path: Path, capsys) -> None:
    guide_new(tmp_path, capsys)
    second = guide_new(tmp_path, capsys)  # same command again: key2.json
    assert second.name == "key1.json" and (second.parent / "key2.json").exists()
    code, _, err = run(
        [
            "validator-keys",
            "new",
            "--fee-recipient",
            FEE_RECIPIENT,
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--data-dir",
            str(tmp_path / "ha-keys-temp"),
            "--file",
            "key1.json",
        ],
        capsys,
    )
    assert code == 2 and "refusing to overwrite" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fee-recipient", "0x1234"], "--fee-recipient"),
        (
            ["--fee-recipient", FEE_RECIPIENT, "--publisher-count", "2", "--publishers", "0x" + "aa" * 32],
            "cannot be used together",
        ),
        (["--fee-recipient", FEE_RECIPIENT, "--publishers", "0x12"], "--publishers"),
        (["--fee-recipient", FEE_RECIPIENT, "--coinbase", "0x12"], "--coinbase"),
        (["--fee-recipient", FEE_RECIPIENT, "--mnemonic", "test test test"], "12, 15"),
    ],
)
def test_new_rejects_bad_flags(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code, _, err = run(["validator-keys", "new", "--data-dir", str(tmp_path), *args], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "key1.json").exists()


def test_new_with_publisher_keys_and_json(tmp_path: Path, capsys) -> None:
    key = "aa" * 32
    code, out, _ = run(
        [
            "validator-keys",
            "new",
            "--fee-recipient",
            FEE_RECIPIENT,
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--count",
            "2",
            "--publishers",
            key,
            "--coinbase",
            ANVIL[4].lower(),
            "--data-dir",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    document = json.loads(out)
    assert [v["publisher"] for v in document["validators"]] == ["0x" + key, "0x" + key]
    assert {v["coinbase"] for v in document["validators"]} == {ANVIL[4]}
    assert json.loads((tmp_path / "key1.json").read_text()) == document


def test_encrypted_round_trip(tmp_path: Path, light_kdf) -> None:
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=2)
    result = write_new_keystore(
        request, output=tmp_path / "base" / "key1.json", password="pw", strength=light_kdf
    )
    text = result.path.read_text()
    assert derive_eth_key(ANVIL_MNEMONIC).key.hex() not in text
    assert len(result.key_files) == 4 and all(
        oct(f.stat().st_mode & 0o777) == "0o600" for f in result.key_files
    )
    base = load_keystore(result.path)
    assert base.attester_addresses == [ANVIL[0]]
    assert base.validators[0].bls_secret == derive_bls_secret(ANVIL_MNEMONIC)

    outputs = split_keystore(result.path, tmp_path / "nodes", shred_source=True)
    assert not result.path.exists()
    for k, node in enumerate(outputs, start=1):
        document = json.loads(node.path.read_text())
        entry = document["validators"][0]
        # still encrypted: the node file references its own copies of the key files, by absolute path (Aztec's
        # node reads relative paths from its working directory)
        keys = node.path.parent.absolute() / "keys"
        assert Path(entry["attester"]["eth"]["path"]).parent == keys
        assert Path(entry["publisher"]["path"]).parent == keys
        assert Path(entry["publisher"]["path"]).exists()
        assert node.publisher == [ANVIL[k]]
    report = check_fleet([o.path for o in outputs])
    assert not report.findings

    # a node directory moved elsewhere still loads here, with a warning that Aztec would not find its keys
    moved = tmp_path / "elsewhere"
    shutil.move(str(outputs[0].path.parent), moved)
    assert load_keystore(moved / "keystore.json").attester_addresses == [ANVIL[0]]
    assert {f.code for f in check_fleet([moved]).warnings} == {"key-path"}


def test_split_names_key_files_where_the_node_folder_will_be_installed(tmp_path: Path, light_kdf) -> None:
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=2)
    base = write_new_keystore(request, output=tmp_path / "key1.json", password="pw", strength=light_kdf).path
    outputs = split_keystore(base, tmp_path / "nodes", install_dir=Path("/etc/ha-sequencer/{node}"))
    entry = json.loads(outputs[1].path.read_text())["validators"][0]
    assert entry["publisher"]["path"].startswith("/etc/ha-sequencer/node2/keys/keystore-eth-publisher_1_2_")
    assert entry["attester"]["bls"]["path"].startswith("/etc/ha-sequencer/node2/keys/keystore-bls-1_")
    # not installed yet: it loads from its own keys/ folder, and says Aztec would look in /etc/ha-sequencer
    report = check_fleet([o.path for o in outputs])
    assert not report.errors
    assert {f.code for f in report.warnings} == {"key-path"}
    assert load_keystore(outputs[1].path).validators[0].publishers[0].address == ANVIL[2]


def test_split_refusals(tmp_path: Path, capsys) -> None:
    base = guide_new(tmp_path, capsys)
    with pytest.raises(SplitError, match="only 3"):
        split_keystore(base, tmp_path / "nodes", nodes=4)
    outputs = split_keystore(base, tmp_path / "two", nodes=2)
    assert [o.publisher for o in outputs] == [[ANVIL[1]], [ANVIL[2]]]
    with pytest.raises(OutputExistsError):
        split_keystore(base, tmp_path / "two")
    lone = tmp_path / "lone.json"
    lone.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [{"attester": "0x" + "aa" * 32, "feeRecipient": FEE_RECIPIENT}],
            }
        )
    )
    with pytest.raises(SplitError, match="no publisher"):
        split_keystore(lone, tmp_path / "lone-nodes")
    assert not (tmp_path / "lone-nodes" / "node1").exists()


def _node(tmp_path: Path, name: str, attester: str, publisher: str | None, mode: int = 0o600) -> Path:
    entry = {"attester": attester, "feeRecipient": FEE_RECIPIENT}
    if publisher:
        entry["publisher"] = publisher
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"schemaVersion": 1, "validators": [entry]}))
    path.chmod(mode)
    return path


def _codes(report) -> dict[str, str]:
    return {f.code: f.severity for f in report.findings}


ATTESTER = "0x" + "a1" * 32
OTHER = "0x" + "a2" * 32
PUB1 = "0x" + "b1" * 32
PUB2 = "0x" + "b2" * 32


def test_check_finds_shared_publisher(tmp_path: Path) -> None:
    report = check_fleet([_node(tmp_path, "n1", ATTESTER, PUB1), _node(tmp_path, "n2", ATTESTER, PUB1)])
    assert _codes(report) == {"shared-publisher": "error"}
    assert "duplicate proposals" in report.errors[0].message


def test_check_finds_attesters_that_differ(tmp_path: Path) -> None:
    report = check_fleet([_node(tmp_path, "n1", ATTESTER, PUB1), _node(tmp_path, "n2", OTHER, PUB2)])
    assert _codes(report) == {"attesters-differ": "error"}


def test_check_finds_publisher_equal_to_attester(tmp_path: Path) -> None:
    report = check_fleet([_node(tmp_path, "n1", ATTESTER, ATTESTER)])
    assert _codes(report) == {"publisher-is-attester": "error"}


def test_check_fallback_publishers_across_nodes(tmp_path: Path) -> None:
    single = check_fleet([_node(tmp_path, "n1", ATTESTER, None)])
    assert _codes(single) == {"publisher-fallback": "warning"}
    fleet = check_fleet([_node(tmp_path, "n1", ATTESTER, None), _node(tmp_path, "n2", ATTESTER, None)])
    assert _codes(fleet)["shared-publisher"] == "error"


def test_check_file_modes(tmp_path: Path) -> None:
    readable_path = _node(tmp_path, "n1", ATTESTER, PUB1, mode=0o644)
    readable = check_fleet([readable_path])
    assert _codes(readable) == {"file-mode": "error"}
    message = readable.errors[0].message
    assert "node start` refuses it" in message and message.endswith(f"chmod 600 {readable_path}")
    writable = check_fleet([_node(tmp_path, "n2", ATTESTER, PUB1, mode=0o666)])
    assert _codes(writable) == {"file-mode": "error"}


def test_check_fails_on_the_keystore_files_node_start_refuses(tmp_path: Path, light_kdf) -> None:
    # a node directory: its keystore plus the encrypted key files `new --password` wrote beside it
    node = tmp_path / "node1"
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=1)
    result = write_new_keystore(request, output=node / "key1.json", password="pw", strength=light_kdf)
    assert not check_fleet([node]).errors
    beside = result.key_files[0]
    beside.chmod(0o640)
    assert insecure_keystore_files(node) == [beside]
    [error] = check_fleet([node]).errors
    assert (error.code, error.file) == ("file-mode", beside)
    assert error.message.endswith(f"chmod 600 {beside}")

    # a key file kept away from the keystore files is not something `node start` refuses: a warning
    beside.chmod(0o600)
    assert insecure_keystore_files(node) == []
    elsewhere = tmp_path / "keys" / "publisher.json"
    elsewhere.parent.mkdir()
    shutil.move(result.key_files[-1], elsewhere)
    document = json.loads(result.path.read_text())
    document["validators"][0]["publisher"]["path"] = str(elsewhere)
    result.path.write_text(json.dumps(document))
    elsewhere.chmod(0o644)
    assert {(f.code, f.severity, f.file) for f in check_fleet([node]).findings} == {
        ("key-file-skipped", "warning", beside),
        ("key-file-skipped", "warning", result.key_files[1]),
        ("file-mode", "warning", elsewhere),
    }


def test_check_cli_fails_on_a_readable_keystore(tmp_path: Path, capsys) -> None:
    keystore = _node(tmp_path, "n1", ATTESTER, PUB1, mode=0o644)
    code, out, err = run(["validator-keys", "check", str(keystore), "--json"], capsys)
    assert code == 1
    [problem] = json.loads(out)["problems"]
    assert (problem["severity"], problem["code"], problem["file"]) == ("error", "file-mode", str(keystore))
    assert f"chmod 600 {keystore}" in problem["message"]
    keystore.chmod(0o600)
    code, out, err = run(["validator-keys", "check", str(keystore)], capsys)
    assert code == 0, err


def test_check_encrypted_file_missing_or_wrong_password(tmp_path: Path, light_kdf) -> None:
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=1)
    result = write_new_keystore(request, output=tmp_path / "k.json", password="pw", strength=light_kdf)
    document = json.loads(result.path.read_text())
    document["validators"][0]["attester"]["bls"]["password"] = "wrong"
    os.unlink(document["validators"][0]["publisher"]["path"])
    result.path.chmod(0o600)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    broken.chmod(0o600)
    report = check_fleet([broken])
    assert {(f.code, f.json_path) for f in report.errors} == {
        ("decrypt", "validators[0].attester.bls"),
        ("key-file", "validators[0].publisher"),
    }
    assert "pw" not in json.dumps(report.to_json()).replace("password", "")


def test_check_cli_exit_codes_and_json(tmp_path: Path, capsys) -> None:
    good = _node(tmp_path, "n1", ATTESTER, PUB1)
    syntax = tmp_path / "n2.json"
    syntax.write_text('{"schemaVersion": 1,\n "validators": [}')
    syntax.chmod(0o600)
    code, out, err = run(["validator-keys", "check", str(good), str(syntax), "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    problem = next(p for p in report["problems"] if p["code"] == "syntax")
    assert (problem["line"], problem["col"]) == (2, 17)
    assert report["ok"] is False
    code, out, err = run(["validator-keys", "check", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "no such file" in " ".join(err.split())
    code, out, err = run(["validator-keys", "check", str(good), str(syntax)], capsys)
    assert code == 1 and "syntax" in out and "1 error(s)" in out


def _installed_example(tmp_path: Path, name: str) -> Path:
    """An Aztec example copied as an operator installs a keystore: mode 0600 (the shared copies are 0444)."""
    if not AZTEC_EXAMPLES.is_dir():
        pytest.fail(f"Aztec example keystores not found at {AZTEC_EXAMPLES}")
    path = tmp_path / Path(name).name
    shutil.copyfile(AZTEC_EXAMPLES / name, path)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "name",
    [
        "unversioned/simple-validator.json",
        "v1/validator-null.json",
        "v2/validator-with-top-level-defaults.json",
    ],
)
def test_check_complete_aztec_examples_have_no_errors(tmp_path: Path, capsys, name: str) -> None:
    code, out, err = run(["validator-keys", "check", str(_installed_example(tmp_path, name))], capsys)
    assert code == 0, out + err


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        # both examples also use one account as publisher and attester (a mnemonic-derived one in the first)
        ("v1/everything.json", {"remote-signer", "key-file", "publisher-is-attester"}),
        (
            "v1/multiple-validators-remote.json",
            {"remote-signer", "duplicate-attester", "publisher-is-attester"},
        ),
    ],
)
def test_check_incomplete_aztec_examples_get_specific_problems(
    tmp_path: Path, capsys, name: str, codes: set[str]
) -> None:
    path = _installed_example(tmp_path, name)
    code, out, err = run(["validator-keys", "check", "--json", str(path)], capsys)
    assert code == 1
    report = json.loads(out)
    assert {p["code"] for p in report["problems"] if p["severity"] == "error"} == codes


def test_password_source_for_split_and_check(tmp_path: Path, light_kdf) -> None:
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=2)
    result = write_new_keystore(request, output=tmp_path / "k.json", password="pw", strength=light_kdf)
    document = json.loads(result.path.read_text())
    for entry in (document["validators"][0]["attester"]["eth"], *document["validators"][0]["publisher"]):
        entry.pop("password")
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(document))
    stripped.chmod(0o600)
    assert {f.code for f in check_fleet([stripped]).errors} == {"no-password"}
    outputs = split_keystore(stripped, tmp_path / "nodes", passwords=PasswordSource(default="pw"))
    assert len(outputs) == 2
    assert not check_fleet([o.path for o in outputs], passwords=PasswordSource(default="pw")).findings


def test_directory_with_key_files_beside_the_keystore(tmp_path: Path, light_kdf) -> None:
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE_RECIPIENT, publisher_count=1)
    write_new_keystore(request, output=tmp_path / "key1.json", password="pw", strength=light_kdf)
    loaded = load_keystore(tmp_path)
    assert loaded.attester_addresses == [ANVIL[0]]
    assert {w.code for w in loaded.warnings} == {"key-file-skipped"}


def test_cli_encrypts_at_standard_strength(tmp_path: Path, capsys) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    code, out, err = run(
        [
            "validator-keys",
            "new",
            "--fee-recipient",
            FEE_RECIPIENT,
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--data-dir",
            str(tmp_path / "keys"),
            "--password-file",
            str(tmp_path / "pw"),
            "--passphrase",
            "extra",
        ],
        capsys,
    )
    assert code == 0, err
    assert "ignores --passphrase" in " ".join(err.split())
    entry = json.loads((tmp_path / "keys" / "key1.json").read_text())["validators"][0]["attester"]
    assert entry["eth"]["password"] == "s3cret"
    eth_file = json.loads(Path(entry["eth"]["path"]).read_text())
    bls_file = json.loads(Path(entry["bls"]["path"]).read_text())
    assert eth_file["crypto"]["kdfparams"]["n"] == 2**17  # what Aztec's CLI (ethers) writes
    assert bls_file["crypto"]["kdf"]["params"]["c"] == 262144  # Aztec's BN254 keystore
    loaded = load_keystore(tmp_path / "keys" / "key1.json")
    assert loaded.attester_addresses == [derive_eth_key(ANVIL_MNEMONIC, passphrase="extra").address]
    assert "s3cret" not in out + err

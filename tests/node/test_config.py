"""Node configuration: --ha-db parsing, flags, keystore permission check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ha_sequencer.node.app import KeystorePermissionError, check_keystore_permissions
from ha_sequencer.node.config import (
    ConfigError,
    build_config,
    parse_ha_db,
    parse_multiaddrs,
    parse_urls,
)


def test_parse_urls_and_multiaddrs() -> None:
    assert parse_urls("http://a:1, http://b:2", flag="--l1-rpc-urls") == ["http://a:1", "http://b:2"]
    with pytest.raises(ConfigError, match="--l1-rpc-urls"):
        parse_urls(" , ", flag="--l1-rpc-urls")
    with pytest.raises(ConfigError, match="not an http"):
        parse_urls("ftp://x", flag="--l1-rpc-urls")
    assert parse_multiaddrs("/ip4/127.0.0.1/tcp/1/p2p/16Uiu2") == ["/ip4/127.0.0.1/tcp/1/p2p/16Uiu2"]
    with pytest.raises(ConfigError, match="bootstrap"):
        parse_multiaddrs("/ip4/127.0.0.1/tcp/1")


def test_parse_ha_db(tmp_path: Path) -> None:
    default = parse_ha_db(None, tmp_path)
    assert default.kind == "sqlite" and default.url == f"sqlite:///{tmp_path.resolve()}/duties.sqlite"
    assert parse_ha_db("sqlite:///x/y.db", tmp_path).url == "sqlite:///x/y.db"
    pg = parse_ha_db("postgresql://ha:hunter2@db:5432/duties", tmp_path)
    assert pg.kind == "postgres" and "hunter2" not in pg.display and "hunter2" not in repr(pg)
    with pytest.raises(ConfigError, match="--ha-db"):
        parse_ha_db("mysql://x", tmp_path)


def _config(tmp_path: Path, keystore: Path, **overrides):
    kwargs = dict(
        keystore=keystore,
        l1_rpc_urls="http://127.0.0.1:8545",
        rollup="0x" + "ab" * 20,
        data_dir=tmp_path / "d",
        ha_db=None,
        node_id=None,
        network="devnet",
        host="127.0.0.1",
        port=8080,
        p2p_port=40400,
        p2p_host="127.0.0.1",
        bootstrap_nodes=None,
        allow_insecure_keystore=False,
        keystore_password_file=None,
        keystore_password="pw-not-shown",
    )
    kwargs.update(overrides)
    return build_config(**kwargs)


def test_build_config_validates_flags(tmp_path: Path) -> None:
    ks = tmp_path / "k.json"
    ks.write_text("{}")
    config = _config(tmp_path, ks)
    assert config.node_id.startswith("node-") and (tmp_path / "d").is_dir()
    assert "pw-not-shown" not in repr(config) and "8545" not in repr(config)
    with pytest.raises(ConfigError, match="--rollup"):
        _config(tmp_path, ks, rollup="0x1234")
    with pytest.raises(ConfigError, match="--keystore"):
        _config(tmp_path, tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="--port"):
        _config(tmp_path, ks, port=70000)


def test_keystore_permissions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ks = tmp_path / "keys"
    ks.mkdir()
    good, bad = ks / "a.json", ks / "b.json"
    for f in (good, bad):
        f.write_text("{}")
    os.chmod(good, 0o600)
    os.chmod(bad, 0o640)
    with pytest.raises(KeystorePermissionError, match=r"chmod 600 .*b\.json"):
        check_keystore_permissions(_config(tmp_path, ks))
    check_keystore_permissions(_config(tmp_path, ks, allow_insecure_keystore=True))
    assert "allow-insecure-keystore" in caplog.text
    os.chmod(bad, 0o600)
    check_keystore_permissions(_config(tmp_path, ks))


def test_encrypted_keystore_with_password_file(tmp_path: Path) -> None:
    import json

    from eth_account import Account

    from ha_sequencer.keys.encryption import KdfStrength, dumps_key_file, encrypt_eth_key
    from ha_sequencer.node.app import load_identities

    attester, publisher = Account.create(), Account.create()
    light = KdfStrength(eth_scrypt_n=2**4, bls_pbkdf2_c=2, bls_scrypt_n=2**4)
    for name, acct in (("attester.json", attester), ("publisher.json", publisher)):
        (tmp_path / name).write_bytes(
            dumps_key_file(encrypt_eth_key(bytes(acct.key), "correct horse", strength=light))
        )
    doc = {"schemaVersion": 1, "validators": [{
        "attester": {"path": str(tmp_path / "attester.json")},
        "publisher": {"path": str(tmp_path / "publisher.json")},
        "feeRecipient": "0x" + "00" * 12 + attester.address[2:].lower(),
    }]}  # fmt: skip
    ks = tmp_path / "keystore.json"
    ks.write_text(json.dumps(doc))
    os.chmod(ks, 0o600)
    pw = tmp_path / "password.txt"
    pw.write_text("correct horse\n")
    loaded = load_identities(_config(tmp_path, ks, keystore_password=None, keystore_password_file=pw))
    assert [v.attester.address for v in loaded.validators] == [attester.address]
    assert loaded.validators[0].publishers[0].address == publisher.address
    env_loaded = load_identities(_config(tmp_path, ks, keystore_password="correct horse"))
    assert env_loaded.validators[0].attester.address == attester.address


def test_fault_injection_requires_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ks = tmp_path / "k.json"
    ks.write_text("{}")
    monkeypatch.setenv("HA_GUARD_FAULTS", "after_claim:kill@3")
    with pytest.raises(ConfigError, match="--allow-fault-injection"):
        _config(tmp_path, ks)
    assert _config(tmp_path, ks, allow_fault_injection=True).allow_fault_injection
    monkeypatch.delenv("HA_GUARD_FAULTS")
    assert not _config(tmp_path, ks).allow_fault_injection

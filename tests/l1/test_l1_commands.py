"""`ha-sequencer l1 deploy / register / build` end to end against a real anvil."""

from __future__ import annotations

import json

from eth_account import Account
from eth_utils import keccak
from typer.testing import CliRunner

from ha_sequencer.cli import app
from ha_sequencer.errors import InputError
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.protocol.block import genesis_archive

runner = CliRunner()


def test_deploy_and_register(module_anvil, tmp_path) -> None:
    key_file = tmp_path / "deployer.key"
    deployer = module_anvil.accounts[0]
    key_file.write_text("0x" + bytes(deployer.key).hex() + "\n")
    funded = module_anvil.accounts[7].address
    result = runner.invoke(
        app,
        [
            "l1",
            "deploy",
            "--rpc-url",
            module_anvil.rpc_url,
            "--private-key-file",
            str(key_file),
            "--slot-duration",
            "12",
            "--epoch-length",
            "4",
            "--committee-size",
            "16",
            "--min-stake",
            "0.5",
            "--fund",
            f"{funded}=1000",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    deployed = json.loads(result.output)
    assert deployed["slotDuration"] == 12 and deployed["committeeSize"] == 16
    assert deployed["minStake"] == str(5 * 10**17)
    assert "0x" + bytes(deployer.key).hex() not in result.output
    client = RollupClient([module_anvil.rpc_url], deployed["rollup"])
    assert client.genesis_allocation() == [(funded, 1000)]
    assert client.tips().archive == genesis_archive([(funded, 1000)])

    attesters = [Account.from_key(keccak(f"cli attester {i}".encode())) for i in range(2)]
    keystore = tmp_path / "key1.json"
    keystore.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [
                    {"attester": "0x" + bytes(a.key).hex(), "feeRecipient": "0x" + "00" * 31 + "01"}
                    for a in attesters
                ],
                "fundingAccount": "0x" + bytes(module_anvil.accounts[5].key).hex(),
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "l1",
            "register",
            "--keystore",
            str(keystore),
            "--rpc-url",
            module_anvil.rpc_url,
            "--rollup",
            deployed["rollup"],
            "--stake",
            "0.75",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["attester"] for r in rows] == [a.address for a in attesters]
    for a in attesters:
        info = client.validator(a.address)
        assert info.stake == 75 * 10**16 and info.withdrawer == module_anvil.accounts[5].address
    assert client.active_attesters(10) == [a.address for a in attesters]


def test_deploy_rejects_bad_key_file(module_anvil, tmp_path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key but maybe a secret\n")
    result = runner.invoke(
        app, ["l1", "deploy", "--rpc-url", module_anvil.rpc_url, "--private-key-file", str(bad)]
    )
    assert isinstance(result.exception, InputError) and result.exception.exit_code == 2
    assert "--private-key-file" in str(result.exception)
    assert "maybe a secret" not in (result.output + str(result.exception))


def test_a_key_pasted_as_an_address_is_not_echoed(module_anvil, tmp_path) -> None:
    key_file = tmp_path / "deployer.key"
    key_file.write_text(module_anvil.accounts[0].key.hex() + "\n")
    pasted = module_anvil.accounts[5].key.hex()
    for flag, value in (("--withdrawer", pasted), ("--fund", f"{pasted}=5")):
        args = ["l1", "deploy", "--rpc-url", module_anvil.rpc_url, "--private-key-file", str(key_file)]
        result = runner.invoke(app, [*args, flag, value])
        assert isinstance(result.exception, InputError) and flag in str(result.exception)
        assert pasted.removeprefix("0x") not in (result.output + str(result.exception))


def test_build_check_passes() -> None:
    result = runner.invoke(app, ["l1", "build", "--check"])
    assert result.exit_code == 0 and "match" in result.output

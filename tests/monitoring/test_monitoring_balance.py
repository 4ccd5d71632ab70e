"""`ha-sequencer balance` on a real anvil: states, exit codes, node names, the numbers of `cast balance`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.cli import main
from ha_sequencer.keys.encryption import KdfStrength, encrypt_eth_key
from ha_sequencer.keys.fleet import split_keystore

ETH = 10**18
ROOT = Path(__file__).resolve().parents[2]
CAST = ROOT / "node_modules/@foundry-rs/cast-linux-amd64/bin/cast"
FEE = "0x" + "11" * 32


def key(label: str):
    return Account.from_key(keccak(label.encode()))


ATTESTER = key("balance attester")
PUBS = [key(f"balance publisher {i}") for i in range(3)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> dict[str, Path]:
    """node1, node2 from a real split of a base keystore; node3 with an encrypted publisher key file."""
    tmp = tmp_path_factory.mktemp("fleet")
    base = tmp / "key1.json"
    base.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [
                    {
                        "attester": "0x" + ATTESTER.key.hex().removeprefix("0x"),
                        "publisher": ["0x" + p.key.hex().removeprefix("0x") for p in PUBS[:2]],
                        "feeRecipient": FEE,
                    }
                ],
            }
        )
    )
    split_keystore(base, tmp / "nodes")
    node3 = tmp / "nodes" / "node3"
    (node3 / "keys").mkdir(parents=True)
    document = encrypt_eth_key(bytes(PUBS[2].key), "pw", strength=KdfStrength(eth_scrypt_n=2**4))
    (node3 / "keys" / "publisher.json").write_text(json.dumps(document))
    (node3 / "keystore.json").write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [
                    {
                        "attester": "0x" + ATTESTER.key.hex().removeprefix("0x"),
                        "publisher": {"path": "keys/publisher.json"},  # no password: none needed here
                        "feeRecipient": FEE,
                    }
                ],
            }
        )
    )
    return {"node1": tmp / "nodes/node1", "node2": tmp / "nodes/node2/keystore.json", "node3": node3}


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["balance", *args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, " ".join(err.split())  # errors: the CLI's console wraps lines


def cast_balance(rpc_url: str, address: str, *flags: str) -> str:
    done = subprocess.run(  # noqa: S603 - the repo's own cast binary
        [str(CAST), "balance", address, "--rpc-url", rpc_url, *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_states_exit_codes_and_cast_numbers(module_anvil, fleet, capsys) -> None:
    url = module_anvil.rpc_url
    balances = [3 * ETH + 123456789, 12 * ETH // 100, ETH // 10]  # OK, WARN, exactly the minimum (WARN)
    for p, wei in zip(PUBS, balances, strict=True):
        module_anvil.set_balance(p.address, wei)
    paths = [str(fleet[n]) for n in ("node1", "node2", "node3")]
    code, out, _ = run(capsys, *[a for p in paths for a in ("--keystore", p)], "--rpc-url", url, "--json")
    assert code == 0
    doc = json.loads(out)
    rows = doc["publishers"]
    assert [(r["address"], r["node"], r["state"]) for r in rows] == [
        (PUBS[0].address, "node1", "OK"),
        (PUBS[1].address, "node2", "WARN"),
        (PUBS[2].address, "node3", "WARN"),
    ]
    for r in rows:  # the same numbers as `cast balance`, in wei and in ether
        assert r["balanceWei"] == cast_balance(url, r["address"])
        assert r["balanceEth"] == cast_balance(url, r["address"], "--ether")
    assert rows[0]["balanceEth"] == "3.000000000123456789" and doc["ok"] is True

    module_anvil.set_balance(PUBS[1].address, ETH // 10 - 1)  # one wei below the minimum
    code, out, _ = run(capsys, "--keystore", paths[0], "--keystore", paths[1], "--rpc-url", url)
    assert code == 1
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "0x" in line}
    assert "node1" in lines[PUBS[0].address] and "OK" in lines[PUBS[0].address]
    assert "node2" in lines[PUBS[1].address] and "CRITICAL" in lines[PUBS[1].address]
    assert cast_balance(url, PUBS[1].address, "-e") in lines[PUBS[1].address]

    # thresholds are flags: lower ones make the same balances pass
    code, out, _ = run(
        capsys, "--address", PUBS[1].address, "--rpc-url", url, "--min", "0.05", "--warn", "0.06", "--json"
    )
    assert code == 0 and json.loads(out)["publishers"][0]["state"] == "OK"
    assert json.loads(out)["publishers"][0]["node"] == "-"


def test_usage_errors_exit_2(module_anvil, fleet, capsys) -> None:
    url = module_anvil.rpc_url
    code, _, err = run(capsys, "--rpc-url", url)
    assert code == 2 and "give --keystore PATH and/or --address ADDR" in err
    code, _, err = run(capsys, "--address", "0x1234", "--rpc-url", url)
    assert code == 2 and "--address: '0x1234' is not an Ethereum address" in err
    code, _, err = run(
        capsys, "--address", PUBS[0].address, "--rpc-url", url, "--min", "0.2", "--warn", "0.1"
    )
    assert code == 2 and "below the minimum" in err
    code, _, err = run(capsys, "--keystore", str(fleet["node1"] / "missing.json"), "--rpc-url", url)
    assert code == 2 and "missing.json" in err
    for p in PUBS:
        assert p.key.hex().removeprefix("0x") not in err

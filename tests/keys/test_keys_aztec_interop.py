"""Keystores move between Aztec's node and ours, checked with Aztec's own loader (@aztec/node-keystore 4.1.2).

Ours → Aztec: keystores as `validator-keys new` writes them, `split` by the CLI, plain and `--password`,
loaded by Aztec's `KeystoreManager` and BN254 keystore code from a working directory that is not the node
folder (Aztec resolves relative key paths against it), give the same attester, BLS public key, publishers,
fee recipient and coinbase as our loader; also after the node folder is copied to the `--install-dir` it was
split for.
Aztec → ours: keystores written with Aztec's tooling (JSON V3 files via @ethersproject/wallet, BN254
keystores via createBn254Keystore), with absolute paths and with paths relative to the node's working
directory, load in ours as in Aztec's.
The packages come from scripts/ensure-aztec.sh (a cache outside node_modules); each node script takes ~2 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from keys_fixtures import ANVIL_MNEMONIC

from ha_sequencer.keys import load_keystore
from ha_sequencer.keys.encryption import KdfStrength
from ha_sequencer.keys.generate import NewKeysRequest, write_new_keystore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "aztec"
FEE = "0x" + "00" * 31 + "2a"


@pytest.fixture(scope="session")
def aztec_modules() -> Path:
    """node_modules holding Aztec's packages (installed into the cache on first use)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "ensure-aztec.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1]) / "node_modules"


def aztec_load(modules: Path, keystore: Path | str, cwd: Path) -> dict[str, Any]:
    """What Aztec's node would run with this keystore, started in `cwd`."""
    result = subprocess.run(
        ["node", str(SCRIPTS / "load_keystore.mjs"), str(modules), str(keystore)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    doc = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {"ok": False}
    assert doc["ok"], f"Aztec's loader failed in {cwd}: {doc.get('error')} {result.stderr[-2000:]}"
    return doc


def ours(keystore: Path) -> list[dict[str, Any]]:
    """The same facts from our loader, in the node script's shape."""
    return [
        {
            "attesters": [v.attester.address.lower()],
            "bls": ["0x" + v.bls_public.hex() if v.bls_public else None],
            "publishers": [p.address.lower() for p in v.publishers],
            "feeRecipient": "0x" + v.fee_recipient.hex(),
            "coinbase": v.coinbase.lower(),
        }
        for v in load_keystore(keystore).validators
    ]


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _split(tmp_path: Path, light_kdf: KdfStrength, password: str | None, *extra: object) -> list[Path]:
    """`validator-keys split` (the CLI) of a base keystore as `new` writes it (light work factors: a test)."""
    work = tmp_path / "keys-machine"
    request = NewKeysRequest(mnemonic=ANVIL_MNEMONIC, fee_recipient=FEE, publisher_count=3)
    write_new_keystore(request, output=work / "base" / "key1.json", password=password, strength=light_kdf)
    flags = ["--password", password] if password else []
    split = cli("validator-keys", "split", "base/key1.json", "--out", "nodes", *flags, *extra, cwd=work)
    assert split.returncode == 0, split.stderr
    return sorted((work / "nodes").glob("node*/keystore.json"))


@pytest.mark.parametrize("password", [None, "correct horse"], ids=["plain", "password"])
def test_split_keystores_load_in_aztecs_loader_from_any_directory(
    aztec_modules: Path, tmp_path: Path, light_kdf: KdfStrength, password: str | None
) -> None:
    keystores = _split(tmp_path, light_kdf, password)
    assert len(keystores) == 3
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    publishers = set()
    for keystore in keystores:
        expected = ours(keystore)
        assert aztec_load(aztec_modules, keystore, cwd=elsewhere)["validators"] == expected
        publishers.update(expected[0]["publishers"])
    inside = aztec_load(aztec_modules, keystores[0].name, cwd=keystores[0].parent)
    assert inside["validators"] == ours(keystores[0])
    assert len(publishers) == 3  # one distinct publisher per node, the same attester and BLS key everywhere


def test_a_node_folder_copied_to_its_install_dir_loads_in_aztec(
    aztec_modules: Path, tmp_path: Path, light_kdf: KdfStrength
) -> None:
    host = tmp_path / "host-root" / "etc" / "ha-sequencer"
    keystores = _split(tmp_path, light_kdf, "pw", "--install-dir", f"{host}/{{node}}")
    expected = ours(keystores[1])  # from the staging folder: our loader finds the keys beside it
    installed = host / "node2"
    shutil.copytree(keystores[1].parent, installed)
    assert aztec_load(aztec_modules, installed / "keystore.json", cwd=tmp_path)["validators"] == expected
    assert ours(installed / "keystore.json") == expected


@pytest.mark.parametrize("style", ["absolute", "relative"])
def test_keystores_written_by_aztecs_tooling_load_in_ours_as_in_aztecs(
    aztec_modules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    node_dir = tmp_path / "aztec-node"
    written = subprocess.run(
        ["node", str(SCRIPTS / "write_keystore.mjs"), str(aztec_modules), str(node_dir), style],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    keystore = node_dir / "keystore.json"
    # an Aztec node with relative key paths runs from its node folder: so does ours, to read them as it does
    monkeypatch.chdir(node_dir)
    expected = aztec_load(aztec_modules, keystore, cwd=node_dir)["validators"]
    assert ours(keystore) == expected
    assert expected[0]["bls"][0] is not None and len(expected[0]["publishers"]) == 2
    check = cli("validator-keys", "check", keystore, cwd=node_dir)
    assert check.returncode == 0, check.stdout + check.stderr

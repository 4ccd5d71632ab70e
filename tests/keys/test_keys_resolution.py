"""Aztec's resolution rules on a keystore held in memory: key files come from the injected reader."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from keys_fixtures import FEE_RECIPIENT

from ha_sequencer.keys import bls_public_key
from ha_sequencer.keys.encryption import KdfStrength, dumps_key_file, encrypt_bls_key, encrypt_eth_key
from ha_sequencer.keys.errors import KeyFileError, MissingPasswordError
from ha_sequencer.keys.report import FileReport
from ha_sequencer.keys.resolution import KeyFileReader, KeyPath, resolve_file, resolve_key_path
from ha_sequencer.keys.schema import parse_keystore

# nothing exists here on disk: every file the resolver reads has to come through the reader
KEYSTORE = Path("/in-memory/node1/keystore.json")
KEYS = KEYSTORE.parent / "keys"
ATTESTER = Account.from_key("0x" + "a1" * 32)
PUBLISHER = Account.from_key("0x" + "b1" * 32)
DIR_PUBLISHERS = [Account.from_key("0x" + "c1" * 32), Account.from_key("0x" + "c2" * 32)]
BLS_SECRET = 123456789
COINBASE_TOP = "0x" + "11" * 20
COINBASE_OWN = "0x" + "22" * 20


class MemoryKeyFiles:
    """Key files as a dict of path → text; a directory is any path that some file sits in."""

    def __init__(self, files: dict[Path, str]) -> None:
        self.files = files
        self.read: list[Path] = []

    def exists(self, path: Path) -> bool:
        return path in self.files or self.json_files(path) is not None

    def json_files(self, path: Path) -> list[Path] | None:
        children = sorted(p for p in self.files if p.parent == path)
        return [p for p in children if p.suffix.lower() == ".json"] if children else None

    def size(self, path: Path) -> int:
        return len(self.files[path].encode("utf-8"))

    def read_text(self, path: Path) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        self.read.append(path)
        return self.files[path]


class OnePassword:
    def __init__(self, password: str) -> None:
        self.password = password

    def password_for(self, key_file: Path) -> str | None:
        return self.password


def _eth_file(account, password: str, strength: KdfStrength) -> str:
    return dumps_key_file(encrypt_eth_key(bytes(account.key), password, strength=strength)).decode()


def _resolve(document: dict, files: KeyFileReader, passwords=None) -> FileReport:
    report = FileReport(file=KEYSTORE, keystore=parse_keystore(document, file=KEYSTORE))
    resolve_file(report, files=files, passwords=passwords)
    return report


def test_resolution_runs_on_an_in_memory_reader(light_kdf: KdfStrength) -> None:
    files = MemoryKeyFiles(
        {
            KEYS / "attester.json": _eth_file(ATTESTER, "entry-less", light_kdf),
            KEYS / "bls.json": dumps_key_file(
                encrypt_bls_key(BLS_SECRET, "pw", path="m/12381/3600/0/0/0", strength=light_kdf)
            ).decode(),
            KEYS / "publisher.json": _eth_file(PUBLISHER, "pw", light_kdf),
            # read in name order; the README is not a key file
            KEYS / "pubs" / "b.json": _eth_file(DIR_PUBLISHERS[1], "pw", light_kdf),
            KEYS / "pubs" / "a.json": _eth_file(DIR_PUBLISHERS[0], "pw", light_kdf),
            KEYS / "pubs" / "README": "not a key file",
        }
    )
    document = {
        "schemaVersion": 2,
        "publisher": {"path": "keys/publisher.json", "password": "pw"},
        "coinbase": COINBASE_TOP,
        "feeRecipient": FEE_RECIPIENT,
        "validators": [
            {  # everything from the top level: publisher, coinbase, feeRecipient
                "attester": {
                    "eth": {"path": "keys/attester.json"},  # no password: the lookup supplies it
                    "bls": {"path": "keys/bls.json", "password": "pw"},
                },
            },
            {
                "attester": "0x" + "a2" * 32,
                "publisher": {"path": "keys/pubs", "password": "pw"},
                "coinbase": COINBASE_OWN,
            },
        ],
    }
    report = _resolve(document, files, OnePassword("entry-less"))

    assert report.errors == []
    # relative paths found only beside the keystore: loaded, with a warning that Aztec's node would not
    assert {w.code for w in report.warnings} == {"key-path"}
    first, second = report.blocks
    assert first.attesters[0].eth.address == ATTESTER.address
    assert first.attesters[0].bls_public == bls_public_key(BLS_SECRET)
    assert first.attesters[0].bls_key_file == KEYS / "bls.json"
    assert first.publisher_source == "top-level"
    assert [p.address for p in first.publishers] == [PUBLISHER.address]
    assert first.coinbase.lower() == COINBASE_TOP and first.fee_recipient == bytes.fromhex(FEE_RECIPIENT[2:])
    assert second.publisher_source == "validator"
    assert [p.address for p in second.publishers] == [a.address for a in DIR_PUBLISHERS]
    assert second.coinbase.lower() == COINBASE_OWN
    assert KEYS / "pubs" / "README" not in files.read


def test_in_memory_problems_name_the_entry(light_kdf: KdfStrength) -> None:
    files = MemoryKeyFiles({KEYS / "publisher.json": _eth_file(PUBLISHER, "pw", light_kdf)})
    document = {
        "schemaVersion": 1,
        "validators": [
            {
                "attester": {"path": "keys/gone.json", "password": "pw"},
                "publisher": {"path": "keys/publisher.json"},
                "feeRecipient": FEE_RECIPIENT,
            }
        ],
    }
    report = _resolve(document, files)

    assert {(type(e), e.json_path) for e in report.errors} == {
        (KeyFileError, "validators[0].attester"),
        (MissingPasswordError, "validators[0].publisher"),
    }
    assert all(e.file == KEYSTORE for e in report.errors)
    assert [a.eth.account for a in report.blocks[0].attesters] == [None]


def test_key_paths_resolve_as_aztec_reads_them_then_where_they_moved_with_the_keystore() -> None:
    files = MemoryKeyFiles(
        {
            KEYS / "a.json": "{}",
            Path("only-here.json"): "{}",
            Path("keys/a.json"): "{}",
            Path("/abs/k.json"): "{}",
            KEYSTORE.parent / "keys" / "moved.json": "{}",
        }
    )
    # Aztec's reading first: relative to the working directory, absolute as written
    assert resolve_key_path(KEYSTORE, "keys/a.json", files) == KeyPath(Path("keys/a.json"), as_aztec=True)
    assert resolve_key_path(KEYSTORE, "only-here.json", files) == KeyPath(
        Path("only-here.json"), as_aztec=True
    )
    assert resolve_key_path(KEYSTORE, "/abs/k.json", files) == KeyPath(Path("/abs/k.json"), as_aztec=True)
    # then the file moved with its keystore: beside it, or in its keys/ folder before installation
    beside = MemoryKeyFiles({KEYS / "a.json": "{}"})
    assert resolve_key_path(KEYSTORE, "keys/a.json", beside) == KeyPath(KEYS / "a.json", as_aztec=False)
    moved = KeyPath(KEYSTORE.parent / "keys" / "moved.json", as_aztec=False)
    assert resolve_key_path(KEYSTORE, "/etc/ha-sequencer/keys/moved.json", files) == moved
    # nowhere: the error names the path beside the keystore (relative) or as written (absolute)
    assert resolve_key_path(KEYSTORE, "nowhere.json", files).path == KEYSTORE.parent / "nowhere.json"
    assert resolve_key_path(KEYSTORE, "/etc/x/nowhere.json", files).path == Path("/etc/x/nowhere.json")

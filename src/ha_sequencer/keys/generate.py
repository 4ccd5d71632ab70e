"""`validator-keys new`: build an Aztec-layout keystore from a mnemonic and write it (and its key files).

Output layout as Aztec's CLI writes it (`cli/src/cmds/validator_keys/shared.ts`): schemaVersion 1, one
`validators[]` entry per validator with `attester: {eth, bls}`, `publisher` (one key, or a list when there
are several), `feeRecipient`, `coinbase` (the attester address unless given). With a password, ETH keys go to
JSON V3 files and BLS keys to EIP-2335-layout files, referenced as `{path, password}`. Key-file names carry
addresses or public keys, never key material.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ha_sequencer.keys.bls import bls_public_key
from ha_sequencer.keys.derivation import (
    bip39_seed,
    bls_path,
    bls_secret_from_seed,
    eth_key_from_seed,
    publisher_address_index,
    validator_address_index,
)
from ha_sequencer.keys.encryption import (
    STANDARD,
    KdfStrength,
    dumps_key_file,
    encrypt_bls_key,
    encrypt_eth_key,
)
from ha_sequencer.keys.errors import OutputExistsError
from ha_sequencer.keys.files import write_private_file
from ha_sequencer.keys.keystore import load_keystore
from ha_sequencer.keys.schema import parse_keystore

DEFAULT_FILE_PATTERN = "key{n}.json"


@dataclass(frozen=True)
class NewKeysRequest:
    """What `new` derives: C validators from address index B, each with P publishers (or given keys)."""

    mnemonic: str = field(repr=False)
    fee_recipient: str
    passphrase: str = field(default="", repr=False)
    account_index: int = 0
    address_index: int = 0
    count: int = 1
    publisher_count: int = 0
    publisher_keys: tuple[str, ...] = field(default=(), repr=False)
    coinbase: str | None = None


@dataclass(frozen=True)
class ValidatorSummary:
    """The public side of one generated validator: what `new` prints."""

    attester: str
    bls_public: str
    publishers: list[str]


@dataclass(frozen=True, eq=False)
class _Derived:
    attester: LocalAccount = field(repr=False)
    bls_secret: int = field(repr=False)
    bls_public: bytes
    publishers: list[LocalAccount] = field(repr=False)
    bls_path: str


@dataclass(frozen=True)
class NewKeystoreResult:
    """Where `new` wrote the keystore, the files it wrote, and the public summary."""

    path: Path
    document: dict[str, Any] = field(repr=False)
    summaries: list[ValidatorSummary]
    key_files: list[Path]


def next_keystore_path(data_dir: Path, file: str | None) -> Path:
    """`--file` (absolute, or inside data_dir), else the first free `keyN.json` in data_dir."""
    if file:
        candidate = Path(file).expanduser()
        path = candidate if candidate.is_absolute() else data_dir / candidate
        if path.exists():
            raise OutputExistsError(
                f"{path}: already exists; refusing to overwrite it (choose another --file)"
            )
        return path
    n = 1
    while (data_dir / DEFAULT_FILE_PATTERN.format(n=n)).exists():
        n += 1
    return data_dir / DEFAULT_FILE_PATTERN.format(n=n)


def derive_validators(request: NewKeysRequest) -> list[_Derived]:
    """Derive every attester (ETH + BLS) and publisher of a request (Aztec's index layout)."""
    seed = bip39_seed(request.mnemonic, request.passphrase)
    given = [Account.from_key(bytes.fromhex(k[2:])) for k in request.publisher_keys]
    out = []
    for i in range(request.count):
        index = validator_address_index(request.address_index, i)
        attester = Account.from_key(
            eth_key_from_seed(seed, account_index=request.account_index, address_index=index)
        )
        secret = bls_secret_from_seed(seed, account_index=request.account_index, address_index=index)
        if given:
            publishers = list(given)
        else:
            publishers = [
                Account.from_key(
                    eth_key_from_seed(
                        seed,
                        account_index=request.account_index,
                        address_index=publisher_address_index(
                            request.address_index, request.count, request.publisher_count, i, j
                        ),
                    )
                )
                for j in range(request.publisher_count)
            ]
        out.append(
            _Derived(
                attester=attester,
                bls_secret=secret,
                bls_public=bls_public_key(secret),
                publishers=publishers,
                bls_path=bls_path(request.account_index, index),
            )
        )
    return out


def write_new_keystore(
    request: NewKeysRequest,
    *,
    output: Path,
    password: str | None = None,
    key_dir: Path | None = None,
    strength: KdfStrength = STANDARD,
) -> NewKeystoreResult:
    """Derive, optionally encrypt, and write a new keystore; nothing existing is overwritten."""
    output = output.absolute()
    if output.exists():
        raise OutputExistsError(f"{output}: already exists; refusing to overwrite it")
    derived = derive_validators(request)
    key_dir = (key_dir or output.parent).absolute()
    pending: list[tuple[Path, bytes]] = []  # key files, written before the keystore that references them
    validators = []
    for i, v in enumerate(derived):
        eth: Any = _hex(v.attester.key)
        bls: Any = "0x" + v.bls_secret.to_bytes(32, "big").hex()
        publishers: list[Any] = [_hex(p.key) for p in v.publishers]
        if password is not None:
            eth = _encrypted_eth(pending, key_dir, f"attester_{i + 1}", v.attester, password, strength)
            bls_file = key_dir / f"keystore-bls-{i + 1}_{v.bls_public.hex()[:16]}.json"
            document = encrypt_bls_key(v.bls_secret, password, path=v.bls_path, strength=strength)
            pending.append((bls_file, dumps_key_file(document)))
            bls = {"path": str(bls_file), "password": password}
            publishers = [
                _encrypted_eth(pending, key_dir, f"publisher_{i + 1}_{j + 1}", p, password, strength)
                for j, p in enumerate(v.publishers)
            ]
        entry: dict[str, Any] = {"attester": {"eth": eth, "bls": bls}}
        if publishers:
            entry["publisher"] = publishers[0] if len(publishers) == 1 else publishers
        entry["feeRecipient"] = request.fee_recipient
        entry["coinbase"] = request.coinbase or v.attester.address
        validators.append(entry)
    document = {"schemaVersion": 1, "validators": validators}
    parse_keystore(document, file=output)  # never write something our own loader (or Aztec's) would reject

    for path, _ in pending:
        if path.exists():
            raise OutputExistsError(f"{path}: already exists; refusing to overwrite it")
    written: list[Path] = []
    try:
        for path, data in pending:
            write_private_file(path, data)
            written.append(path)
        write_private_file(output, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
        written.append(output)
        if password is None:
            loaded = load_keystore(output)
            expected = [v.attester.address for v in derived]
            if loaded.attester_addresses != expected:  # pragma: no cover - a bug guard, never a user error
                raise RuntimeError("the written keystore does not load back to the derived attesters")
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    summaries = [
        ValidatorSummary(v.attester.address, "0x" + v.bls_public.hex(), [p.address for p in v.publishers])
        for v in derived
    ]
    return NewKeystoreResult(output, document, summaries, [p for p, _ in pending])


def _encrypted_eth(
    pending: list[tuple[Path, bytes]],
    key_dir: Path,
    label: str,
    account: LocalAccount,
    password: str,
    strength: KdfStrength,
) -> dict[str, str]:
    path = key_dir / f"keystore-eth-{label}_{account.address[2:10].lower()}.json"
    pending.append((path, dumps_key_file(encrypt_eth_key(bytes(account.key), password, strength=strength))))
    return {"path": str(path), "password": password}


def _hex(key: bytes) -> str:
    return "0x" + bytes(key).hex()

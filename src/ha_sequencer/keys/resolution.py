"""Aztec's resolution rules: a validated keystore's entries turned into accounts and keys.

Follows Aztec's node (`node-keystore/src/keystore_manager.ts`): publisher → v2 top-level publisher → the
attester; coinbase → v2 top-level coinbase → the block's first attester address; feeRecipient → v2 top-level
feeRecipient. `{path, password}` paths are absolute, or relative to the keystore's directory (falling back to
the working directory, which is what Aztec uses); an ETH `path` may be a directory of JSON V3 files. Remote
signers and bare addresses are valid schema but ha-sequencer signs with local keys only, so they are reported
as problems. Key files are read through an injected `KeyFileReader`, so the rules run on disk or in memory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from eth_account import Account
from eth_utils.address import to_checksum_address

from ha_sequencer.keys.bls import BN254_R, bls_public_key
from ha_sequencer.keys.derivation import bip39_seed, eth_key_from_seed
from ha_sequencer.keys.encryption import (
    NotAKeyFileError,
    WrongPasswordError,
    decrypt_bls_key,
    decrypt_eth_key,
)
from ha_sequencer.keys.errors import (
    DecryptionError,
    KeyFileError,
    KeyFormatError,
    KeystoreError,
    KeystoreSchemaError,
    MissingPasswordError,
    MnemonicError,
    RemoteSignerUnsupportedError,
    show_path,
)
from ha_sequencer.keys.report import FileReport, Finding
from ha_sequencer.keys.resolved import ResolvedAccount, ResolvedAttester, ResolvedBlock
from ha_sequencer.keys.schema import (
    AttesterPair,
    EncryptedKeyFile,
    MnemonicConfig,
    PrivateKey,
    RemoteSignerAccount,
    RemoteSignerConfigObject,
    Secret,
)
from ha_sequencer.redact import redact_endpoint

MAX_KEY_FILE_BYTES = 4 * 1024 * 1024
NODE_KEYS_DIR = "keys"  # a node folder's key files: NODE/keys/NAME beside NODE/keystore.json
MAX_ACCOUNTS_PER_MNEMONIC_CONFIG = 1024


class KeyFileReader(Protocol):
    """The files that `{path, password}` entries point at (OSError or UnicodeDecodeError when unreadable)."""

    def exists(self, path: Path) -> bool:
        """True when `path` is a file or a directory."""
        ...

    def json_files(self, path: Path) -> list[Path] | None:
        """A directory's `.json` files in name order; None when `path` is not a directory."""
        ...

    def size(self, path: Path) -> int:
        """The file's size in bytes."""
        ...

    def read_text(self, path: Path) -> str:
        """The file's UTF-8 text."""
        ...


class PasswordLookup(Protocol):
    """Passwords for key files whose keystore entry has none."""

    def password_for(self, key_file: Path) -> str | None:
        """The password to try for `key_file`, if any."""
        ...


def resolve_file(report: FileReport, *, files: KeyFileReader, passwords: PasswordLookup | None) -> None:
    """Resolve the validated keystore of `report` into its blocks and funding account, recording problems."""
    _Resolver(report, files, passwords).resolve()


@dataclass(frozen=True)
class KeyPath:
    """Where a `{path}` entry's file is, and whether Aztec's node would read that same file."""

    path: Path
    as_aztec: bool


def resolve_key_path(keystore_file: Path, raw_path: str, files: KeyFileReader) -> KeyPath:
    """Where a `{path}` points, read as Aztec's node reads it: absolute as written, relative to the working
    directory. When that finds nothing, two fallbacks for key files that moved with their keystore: a
    relative path beside the keystore (what `split` wrote before it wrote absolute paths), and an absolute
    `…/keys/NAME` in the keystore's own `keys/` (a node folder split with `--install-dir`, not installed yet).
    """
    candidate = Path(os.path.expanduser(raw_path))
    if files.exists(candidate):
        return KeyPath(candidate, as_aztec=True)
    if not candidate.is_absolute():
        return KeyPath(keystore_file.parent / candidate, as_aztec=False)
    moved = keystore_file.parent / candidate.parent.name / candidate.name
    if candidate.parent.name == NODE_KEYS_DIR and files.exists(moved):
        return KeyPath(moved, as_aztec=False)
    return KeyPath(candidate, as_aztec=True)


class _Resolver:
    """Turns one validated keystore into resolved blocks, recording problems on the file report."""

    def __init__(self, report: FileReport, files: KeyFileReader, passwords: PasswordLookup | None) -> None:
        self.report = report
        self.file = report.file
        self.files = files
        self.passwords = passwords
        self.keystore = report.keystore

    def resolve(self) -> None:
        ks = self.keystore
        assert ks is not None
        top_publisher = getattr(ks, "publisher", None)
        top_coinbase = getattr(ks, "coinbase", None)
        top_fee = getattr(ks, "feeRecipient", None)
        if not ks.validators:
            self.warn("no-validators", "no validators: nothing for ha-sequencer to run", "validators")
        if ks.prover is not None:
            self.warn("ignored", "the prover configuration is not used by ha-sequencer (ignored)", "prover")
        if ks.slasher is not None:
            self.warn("ignored", "the slasher configuration is not used by ha-sequencer (ignored)", "slasher")
        if ks.fundingAccount is not None:
            resolved = self.accounts(ks.fundingAccount, "fundingAccount", ks.remoteSigner, optional=True)
            self.report.funding = resolved[0] if resolved else None
        for i, validator in enumerate(ks.validators or []):
            base = f"validators[{i}]"
            remote = validator.remoteSigner or ks.remoteSigner
            attesters = self.attesters(validator.attester, f"{base}.attester", remote)
            if validator.publisher is not None:
                publishers = self.accounts(validator.publisher, f"{base}.publisher", remote)
                source: Literal["validator", "top-level", "attester"] = "validator"
            elif top_publisher is not None:
                publishers = self.accounts(top_publisher, "publisher", ks.remoteSigner)
                source = "top-level"
            else:
                publishers = []
                source = "attester"
                self.warn(
                    "publisher-fallback",
                    "no publisher: the attester key also pays for L1 transactions "
                    "(give each node its own publisher)",
                    base,
                )
            fee = validator.feeRecipient or top_fee
            coinbase = validator.coinbase or top_coinbase
            if coinbase is None and attesters and attesters[0].eth.address:
                coinbase = attesters[0].eth.address
            funding = self.report.funding
            if validator.fundingAccount is not None:
                resolved = self.accounts(
                    validator.fundingAccount, f"{base}.fundingAccount", remote, optional=True
                )
                funding = resolved[0] if resolved else None
            self.report.blocks.append(
                ResolvedBlock(
                    index=i,
                    json_path=base,
                    attesters=attesters,
                    publishers=publishers,
                    publisher_source=source,
                    fee_recipient=bytes.fromhex(fee[2:]) if fee else None,
                    coinbase=coinbase,
                    funding=funding,
                )
            )

    # --- attesters -------------------------------------------------------------------------------------

    def attesters(self, cfg: Any, path: str, remote: Any) -> list[ResolvedAttester]:
        if isinstance(cfg, MnemonicConfig):
            return [
                ResolvedAttester(eth=a, bls_secret=None, bls_public=None) for a in self.mnemonic(cfg, path)
            ]
        if isinstance(cfg, list):
            out: list[ResolvedAttester] = []
            for j, item in enumerate(cfg):
                out.extend(self.attester(item, f"{path}[{j}]", remote))
            return out
        return self.attester(cfg, path, remote)

    def attester(self, cfg: Any, path: str, remote: Any) -> list[ResolvedAttester]:
        if isinstance(cfg, AttesterPair):
            eth = self.account(cfg.eth, f"{path}.eth", remote)
            if len(eth) != 1:
                if eth:
                    self.error(
                        KeystoreSchemaError, "an attester's eth key file path must be one file", f"{path}.eth"
                    )
                return []
            if cfg.bls is None:
                return [ResolvedAttester(eth=eth[0], bls_secret=None, bls_public=None)]
            secret, public, key_file, password = self.bls(cfg.bls, f"{path}.bls")
            return [
                ResolvedAttester(
                    eth=eth[0],
                    bls_secret=secret,
                    bls_public=public,
                    bls_json_path=f"{path}.bls",
                    bls_key_file=key_file,
                    bls_password=password,
                )
            ]
        return [
            ResolvedAttester(eth=a, bls_secret=None, bls_public=None) for a in self.account(cfg, path, remote)
        ]

    def bls(self, cfg: Any, path: str) -> tuple[int | None, bytes | None, Path | None, Secret | None]:
        if isinstance(cfg, PrivateKey):
            secret = cfg.to_int() % BN254_R
            if secret == 0:
                self.error(KeyFormatError, "the BLS private key is 0 modulo the BN254 group order", path)
                return None, None, None, None
            return secret, bls_public_key(secret), None, None
        assert isinstance(cfg, EncryptedKeyFile)
        key_file = self.key_path(cfg.path, path)
        document = self.key_document(key_file, path)
        if document is None:
            return None, None, key_file, cfg.password
        declared = _declared_bls_public(document)
        password = self.password(cfg, key_file, path)
        if password is None:
            return None, declared, key_file, cfg.password
        try:
            secret = decrypt_bls_key(document, password)
        except WrongPasswordError as exc:
            self.error(DecryptionError, f"{show_path(key_file)}: {exc}", path)
            return None, declared, key_file, cfg.password
        except NotAKeyFileError as exc:
            self.error(KeyFileError, f"{show_path(key_file)}: {exc}", path)
            return None, declared, key_file, cfg.password
        if not 0 < secret < BN254_R:
            self.error(
                KeyFormatError, f"{show_path(key_file)}: the decrypted BLS key is not in [1, r-1]", path
            )
            return None, declared, key_file, cfg.password
        public = bls_public_key(secret)
        if declared is not None and declared != public:
            self.error(
                KeyFileError, f"{show_path(key_file)}: its pubkey does not match the decrypted BLS key", path
            )
            return None, declared, key_file, cfg.password
        return secret, public, key_file, cfg.password

    # --- ETH accounts ------------------------------------------------------------------------------------

    def accounts(
        self, cfg: Any, path: str, remote: Any = None, *, optional: bool = False
    ) -> list[ResolvedAccount]:
        if isinstance(cfg, MnemonicConfig):
            return self.mnemonic(cfg, path)
        if isinstance(cfg, list):
            out: list[ResolvedAccount] = []
            for j, item in enumerate(cfg):
                out.extend(self.account(item, f"{path}[{j}]", remote, optional=optional))
            return out
        return self.account(cfg, path, remote, optional=optional)

    def account(self, cfg: Any, path: str, remote: Any, *, optional: bool = False) -> list[ResolvedAccount]:
        if isinstance(cfg, PrivateKey):
            try:
                local = Account.from_key(cfg.to_bytes())
            except (ValueError, TypeError):
                self.error(KeyFormatError, "not a valid secp256k1 private key (must be in [1, n-1])", path)
                return []
            return [ResolvedAccount(local.address, local, path, "key")]
        if isinstance(cfg, str | RemoteSignerAccount):
            address = cfg if isinstance(cfg, str) else cfg.address
            url = cfg.remoteSignerUrl if isinstance(cfg, RemoteSignerAccount) else None
            url = url or _remote_url(remote)
            where = (
                f"remote signer {redact_endpoint(url)}"
                if url
                else "a remote signer, and no remoteSigner is configured"
            )
            message = (
                f"account {address} is held by {where}; ha-sequencer signs with local keys only "
                "(use a private key or a {path, password} key file)"
            )
            if optional:
                self.warn("remote-signer", message + "; ignored", path)
            else:
                self.error(RemoteSignerUnsupportedError, message, path)
            return [ResolvedAccount(address, None, path, "remote")]
        assert isinstance(cfg, EncryptedKeyFile)
        key_path = self.key_path(cfg.path, path)
        key_files = self.files.json_files(key_path)
        if key_files is not None:
            if not key_files:
                self.error(KeyFileError, f"{show_path(key_path)}: no .json key files in this directory", path)
                return []
            out = [self.eth_key_file(cfg, f, path) for f in key_files]
            seen: dict[str, Path] = {}
            for account in out:
                if account.address and account.address in seen and account.key_file:
                    self.error(
                        KeyFileError,
                        f"{show_path(key_path)}: {seen[account.address].name} and {account.key_file.name} "
                        f"hold the same address {account.address}",
                        path,
                    )
                elif account.address and account.key_file:
                    seen[account.address] = account.key_file
            return out
        return [self.eth_key_file(cfg, key_path, path)]

    def eth_key_file(self, cfg: EncryptedKeyFile, key_file: Path, path: str) -> ResolvedAccount:
        document = self.key_document(key_file, path)
        declared = _declared_eth_address(document)
        unresolved = ResolvedAccount(declared, None, path, "file", key_file, cfg.password)
        if document is None:
            return unresolved
        password = self.password(cfg, key_file, path)
        if password is None:
            return unresolved
        try:
            key = decrypt_eth_key(document, password)
            local = Account.from_key(key)
        except WrongPasswordError as exc:
            self.error(DecryptionError, f"{show_path(key_file)}: {exc}", path)
            return unresolved
        except NotAKeyFileError as exc:
            self.error(KeyFileError, f"{show_path(key_file)}: {exc}", path)
            return unresolved
        except (ValueError, TypeError):
            self.error(
                KeyFormatError, f"{show_path(key_file)}: the decrypted key is not a valid secp256k1 key", path
            )
            return unresolved
        if declared is not None and declared != local.address:
            self.error(
                KeyFileError,
                f"{show_path(key_file)}: its address field does not match the decrypted key",
                path,
            )
        return ResolvedAccount(local.address, local, path, "file", key_file, cfg.password)

    def mnemonic(self, cfg: MnemonicConfig, path: str) -> list[ResolvedAccount]:
        total = cfg.accountCount * cfg.addressCount
        if total > MAX_ACCOUNTS_PER_MNEMONIC_CONFIG:
            self.error(
                KeystoreSchemaError,
                f"this mnemonic config derives {total} accounts; at most {MAX_ACCOUNTS_PER_MNEMONIC_CONFIG} "
                "are supported",
                path,
            )
            return []
        if cfg.accountIndex + cfg.accountCount > 2**31 or cfg.addressIndex + cfg.addressCount > 2**31:
            self.error(KeystoreSchemaError, "indices must stay below 2^31 (BIP32)", path)
            return []
        try:
            seed = bip39_seed(cfg.mnemonic.reveal())
        except MnemonicError as exc:
            self.error(MnemonicError, exc.message, f"{path}.mnemonic")
            return []
        out = []
        for account_index in range(cfg.accountIndex, cfg.accountIndex + cfg.accountCount):
            for address_index in range(cfg.addressIndex, cfg.addressIndex + cfg.addressCount):
                key = eth_key_from_seed(seed, account_index=account_index, address_index=address_index)
                local = Account.from_key(key)
                out.append(ResolvedAccount(local.address, local, path, "mnemonic"))
        return out

    # --- helpers -----------------------------------------------------------------------------------------

    def key_path(self, raw: str, path: str) -> Path:
        found = resolve_key_path(self.file, raw, self.files)
        if not found.as_aztec and self.files.exists(found.path):
            self.warn(
                "key-path",
                f"{show_path(Path(raw))} is read from {show_path(found.path)}; Aztec's node reads paths as "
                "written (relative ones from its working directory) and would not find it there: give the "
                "absolute path where the file is installed (`validator-keys split` writes those)",
                path,
            )
        return found.path

    def key_document(self, key_file: Path, path: str) -> Any:
        if not self.files.exists(key_file):
            self.error(KeyFileError, f"key file not found: {show_path(key_file)}", path)
            return None
        try:
            if self.files.size(key_file) > MAX_KEY_FILE_BYTES:
                self.error(KeyFileError, f"{show_path(key_file)}: too large to be a key file", path)
                return None
            return json.loads(self.files.read_text(key_file))
        except (OSError, UnicodeDecodeError) as exc:
            self.error(
                KeyFileError, f"cannot read key file {show_path(key_file)} ({exc.__class__.__name__})", path
            )
        except json.JSONDecodeError as exc:
            self.error(
                KeyFileError, f"{show_path(key_file)}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", path
            )
        except RecursionError:
            self.error(KeyFileError, f"{show_path(key_file)}: the JSON is nested too deeply", path)
        return None

    def password(self, cfg: EncryptedKeyFile, key_file: Path, path: str) -> str | None:
        if cfg.password is not None:
            return cfg.password.reveal()
        supplied = self.passwords.password_for(key_file) if self.passwords else None
        if supplied is None:
            self.error(
                MissingPasswordError,
                f'{show_path(key_file)}: no password (add "password" to the entry or pass --password)',
                path,
            )
        return supplied

    def error(self, kind: type[KeystoreError], message: str, path: str) -> None:
        self.report.errors.append(kind(message, file=self.file, json_path=path))

    def warn(self, code: str, message: str, path: str) -> None:
        self.report.warnings.append(Finding("warning", code, message, self.file, path))


def _remote_url(remote: Any) -> str | None:
    if isinstance(remote, RemoteSignerConfigObject):
        return remote.remoteSignerUrl
    return remote if isinstance(remote, str) else None


def _declared_eth_address(document: Any) -> str | None:
    if isinstance(document, dict) and isinstance(document.get("address"), str):
        body = document["address"].lower().removeprefix("0x")
        if len(body) == 40 and all(c in "0123456789abcdef" for c in body):
            return to_checksum_address("0x" + body)
    return None


def _declared_bls_public(document: Any) -> bytes | None:
    if isinstance(document, dict) and isinstance(document.get("pubkey"), str):
        body = document["pubkey"].lower().removeprefix("0x")
        if len(body) == 64:
            try:
                return bytes.fromhex(body)
            except ValueError:
                return None
    return None

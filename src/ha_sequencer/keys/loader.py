"""Loading keystores: read (line/col on syntax errors), validate (JSON path on schema errors), resolve keys.

A path is one keystore file or a directory of `.json` keystore files, merged as one node's keys (an attester
may appear only once). Resolution follows Aztec's node (`node-keystore/src/keystore_manager.ts`):
publisher → v2 top-level publisher → the attester; coinbase → v2 top-level coinbase → the block's first
attester address; feeRecipient → v2 top-level feeRecipient. `{path, password}` paths are absolute, or relative
to the keystore's directory (falling back to the working directory, which is what Aztec uses); an ETH `path`
may be a directory of JSON V3 files. Remote signers and bare addresses are valid schema but ha-sequencer signs
with local keys only, so they are reported as problems. `inspect_keystore` collects every problem (for
`check`); `load_keystore` raises the first one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

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
    DuplicateAttesterError,
    KeyFileError,
    KeyFormatError,
    KeystoreError,
    KeystoreSchemaError,
    KeystoreSyntaxError,
    MissingPasswordError,
    MnemonicError,
    RemoteSignerUnsupportedError,
    show_name,
    show_path,
)
from ha_sequencer.keys.positions import locate
from ha_sequencer.keys.schema import (
    AttesterPair,
    EncryptedKeyFile,
    Keystore,
    MnemonicConfig,
    PrivateKey,
    RemoteSignerAccount,
    RemoteSignerConfigObject,
    Secret,
    parse_keystore,
)

MAX_KEYSTORE_BYTES = 4 * 1024 * 1024
MAX_ACCOUNTS_PER_MNEMONIC_CONFIG = 1024
Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class PasswordSource:
    """Passwords for encrypted key files whose keystore entry has no `password` (one for all, for now)."""

    default: str | None = field(default=None, repr=False)

    def password_for(self, key_file: Path) -> str | None:
        """The password to try for `key_file`, if any."""
        return self.default

    @classmethod
    def from_file(cls, path: Path) -> PasswordSource:
        """The first line of a password file (its trailing newline removed)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(
                f"cannot read the password file ({exc.__class__.__name__})", file=path
            ) from None
        return cls(default=text.splitlines()[0] if text else "")


@dataclass(frozen=True)
class Finding:
    """One problem `check` reports: severity, a short code, where, and what."""

    severity: Severity
    code: str
    message: str
    file: Path | None = None
    json_path: str | None = None
    line: int | None = None
    col: int | None = None

    @classmethod
    def from_error(cls, error: KeystoreError, severity: Severity = "error") -> Finding:
        """A finding from a `KeystoreError` (same location, same message)."""
        return cls(severity, error.code, error.message, error.file, error.json_path, error.line, error.col)

    def where(self) -> str:
        """`file:line:col` or `file` plus the JSON path, for tables and messages."""
        text = str(self.file) if self.file else ""
        if self.line is not None:
            text += f":{self.line}:{self.col or 1}"
        if self.json_path:
            text += f" {self.json_path}" if text else self.json_path
        return text


@dataclass(frozen=True, eq=False)
class ResolvedAccount:
    """An ETH account found in a keystore: its address when known, its local key when there is one."""

    address: str | None
    account: LocalAccount | None = field(repr=False)
    json_path: str
    kind: Literal["key", "mnemonic", "file", "remote"]
    key_file: Path | None = field(default=None, repr=False)  # user-written: may be a pasted key
    password: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class ResolvedAttester:
    """An attester: its ETH account and its BN254 key (if any)."""

    eth: ResolvedAccount
    bls_secret: int | None = field(repr=False)
    bls_public: bytes | None
    bls_json_path: str | None = None
    bls_key_file: Path | None = field(default=None, repr=False)
    bls_password: Secret | None = field(default=None, repr=False)


@dataclass(eq=False)
class ResolvedBlock:
    """One `validators[i]` block after resolution."""

    index: int
    json_path: str
    attesters: list[ResolvedAttester]
    publishers: list[ResolvedAccount]
    publisher_source: Literal["validator", "top-level", "attester"]
    fee_recipient: bytes | None
    coinbase: str | None
    funding: ResolvedAccount | None


@dataclass(frozen=True, eq=False)
class ValidatorKeys:
    """Everything a node needs to act as one attester: local keys only."""

    attester: LocalAccount
    bls_secret: int | None
    bls_public: bytes | None
    publishers: list[LocalAccount]
    fee_recipient: bytes
    coinbase: str
    source: Path
    json_path: str = ""
    funding_account: LocalAccount | None = None
    publisher_is_fallback: bool = False

    def __repr__(self) -> str:
        bls = "0x" + self.bls_public.hex() if self.bls_public else None
        pubs = [p.address for p in self.publishers]
        return (
            f"ValidatorKeys(attester={self.attester.address}, bls_public={bls}, publishers={pubs}, "
            f"fee_recipient=0x{self.fee_recipient.hex()}, coinbase={self.coinbase}, source={self.source})"
        )


@dataclass(frozen=True, eq=False)
class LoadedKeystore:
    """One node's keys, merged from a file or a directory of files."""

    validators: list[ValidatorKeys]
    funding_account: LocalAccount | None
    sources: list[Path]
    warnings: list[Finding] = field(default_factory=list)

    @property
    def attester_addresses(self) -> list[str]:
        """Checksummed attester addresses, in keystore order."""
        return [v.attester.address for v in self.validators]

    @property
    def publisher_accounts(self) -> list[LocalAccount]:
        """Distinct publisher accounts across validators, in keystore order."""
        seen: dict[str, LocalAccount] = {}
        for v in self.validators:
            for p in v.publishers:
                seen.setdefault(p.address, p)
        return list(seen.values())

    def __repr__(self) -> str:
        return (
            f"LoadedKeystore(attesters={self.attester_addresses}, sources={[str(s) for s in self.sources]})"
        )


@dataclass(eq=False)
class FileReport:
    """One keystore file: its raw JSON, its validated schema, its resolved blocks and its problems."""

    file: Path
    raw: Any = field(default=None, repr=False)  # the document as read: private keys, mnemonics, passwords
    keystore: Keystore | None = None
    blocks: list[ResolvedBlock] = field(default_factory=list)
    funding: ResolvedAccount | None = None
    errors: list[KeystoreError] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


@dataclass(eq=False)
class NodeReport:
    """One node's keystore path (file or directory) with every file's report and cross-file problems."""

    path: Path
    files: list[FileReport] = field(default_factory=list)
    errors: list[KeystoreError] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def all_errors(self) -> list[KeystoreError]:
        """Every error of the node, file by file, then cross-file errors."""
        return [e for f in self.files for e in f.errors] + self.errors

    def all_warnings(self) -> list[Finding]:
        """Every warning of the node."""
        return [w for f in self.files for w in f.warnings] + self.warnings

    def blocks(self) -> Iterator[tuple[FileReport, ResolvedBlock]]:
        """Every resolved validator block with its file."""
        for report in self.files:
            for block in report.blocks:
                yield report, block


def load_keystore(path: Path, *, passwords: PasswordSource | None = None) -> LoadedKeystore:
    """Load one node's keys from a keystore file or directory; raise the first problem (`KeystoreError`)."""
    report = inspect_keystore(Path(path), passwords=passwords)
    errors = report.all_errors()
    if errors:
        raise errors[0]
    return loaded_from_report(report)


def loaded_from_report(report: NodeReport) -> LoadedKeystore:
    """The `LoadedKeystore` of an error-free report."""
    validators: list[ValidatorKeys] = []
    funding: LocalAccount | None = None
    for file_report, block in report.blocks():
        for attester in block.attesters:
            attester_account = attester.eth.account
            assert attester_account is not None  # an unresolved attester is an error in the report
            if block.publisher_source == "attester":
                publishers = [attester_account]
            else:
                publishers = [p.account for p in block.publishers if p.account is not None]
            validators.append(
                ValidatorKeys(
                    attester=attester_account,
                    bls_secret=attester.bls_secret,
                    bls_public=attester.bls_public,
                    publishers=publishers,
                    fee_recipient=block.fee_recipient or bytes(32),
                    coinbase=block.coinbase or attester_account.address,
                    source=file_report.file,
                    json_path=attester.eth.json_path,
                    funding_account=block.funding.account if block.funding else None,
                    publisher_is_fallback=block.publisher_source == "attester",
                )
            )
    for file_report in report.files:
        if funding is None and file_report.funding is not None:
            funding = file_report.funding.account
    return LoadedKeystore(
        validators=validators,
        funding_account=funding,
        sources=[f.file for f in report.files],
        warnings=report.all_warnings(),
    )


def keystore_files(path: Path) -> list[Path]:
    """The keystore files of a path: the file itself, or a directory's `.json` files in name order."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json" and p.is_file())
        if not files:
            raise KeyFileError("no .json keystore files in this directory", file=path)
        return files
    if not path.exists():
        raise KeyFileError("keystore not found", file=path)
    return [path]


def inspect_keystore(path: Path, *, passwords: PasswordSource | None = None) -> NodeReport:
    """Read, validate and resolve one node's keystore path, collecting every problem instead of stopping."""
    report = NodeReport(path=Path(path))
    try:
        files = keystore_files(report.path)
    except KeystoreError as exc:
        report.errors.append(exc)
        return report
    in_directory = report.path.is_dir()
    for file in files:
        file_report = inspect_file(file, passwords=passwords)
        if in_directory and _is_key_file(file_report.raw):
            # `new --password` puts key files beside the keystore; they are not keystores themselves
            report.warnings.append(
                Finding("warning", "key-file-skipped", "an encrypted key file, skipped", file)
            )
            continue
        report.files.append(file_report)
    if not report.files and not report.errors:
        report.errors.append(
            KeyFileError("no keystore files in this directory (only key files)", file=report.path)
        )
    _check_unique_attesters(report)
    _check_single_prover(report)
    _with_positions(report)
    return report


def _is_key_file(raw: Any) -> bool:
    return isinstance(raw, dict) and "crypto" in raw and "schemaVersion" not in raw


def inspect_file(file: Path, *, passwords: PasswordSource | None = None) -> FileReport:
    """Read, validate and resolve one keystore file."""
    report = FileReport(file=file)
    try:
        report.raw = read_json_document(file)
        report.keystore = parse_keystore(report.raw, file=file)
    except KeystoreError as exc:
        report.errors.append(exc)
        _with_positions(report)
        return report
    except RecursionError:
        report.errors.append(
            KeystoreSchemaError("the JSON is nested too deeply", file=file, json_path="(root)")
        )
        return report
    _Resolver(report, passwords).resolve()
    _with_positions(report)
    return report


def _with_positions(report: FileReport | NodeReport) -> None:
    """Give field-level errors the line and column of their field in the keystore file."""
    texts: dict[Path, str | None] = {}
    for n, error in enumerate(report.errors):
        if error.line is not None or error.json_path is None or error.file is None:
            continue
        if error.file not in texts:
            try:
                texts[error.file] = error.file.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                texts[error.file] = None
        text = texts[error.file]
        if text is None:
            continue
        where = locate(text, error.json_path)
        if where is not None:
            report.errors[n] = type(error)(
                error.message, file=error.file, json_path=error.json_path, line=where[0], col=where[1]
            )


def read_json_document(file: Path) -> Any:
    """Parse a JSON file: syntax errors carry line and column; duplicate keys and NaN/Infinity are errors."""
    try:
        size = file.stat().st_size
        if size > MAX_KEYSTORE_BYTES:
            raise KeystoreSyntaxError(
                f"file is {size} bytes; a keystore is at most {MAX_KEYSTORE_BYTES}", file=file
            )
        data = file.read_bytes()
    except KeystoreError:
        raise
    except OSError as exc:
        raise KeyFileError(
            f"cannot read the file ({exc.strerror or exc.__class__.__name__})", file=file
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise KeystoreSyntaxError("the file is not UTF-8 text", file=file, line=line, col=col) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise KeystoreSyntaxError(
            f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, col=exc.colno
        ) from None
    except _JsonContentError as exc:
        raise KeystoreSyntaxError(str(exc), file=file) from None
    except RecursionError:
        raise KeystoreSyntaxError("the JSON is nested too deeply", file=file) from None


class _JsonContentError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # ambiguous: JSON.parse keeps the last one, a human usually meant both
            raise _JsonContentError(f"invalid JSON: the key {show_name(key)} appears twice in one object")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _JsonContentError(f"invalid JSON: {name} is not a JSON number")


def resolve_key_path(keystore_file: Path, raw_path: str) -> Path:
    """Where a `{path}` points: absolute, else beside the keystore, else relative to the working directory."""
    candidate = Path(os.path.expanduser(raw_path))
    if candidate.is_absolute():
        return candidate
    beside = keystore_file.parent / candidate
    if beside.exists() or not candidate.exists():
        return beside
    return candidate


class _Resolver:
    """Turns one validated keystore into resolved blocks, recording problems on the file report."""

    def __init__(self, report: FileReport, passwords: PasswordSource | None) -> None:
        self.report = report
        self.file = report.file
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
        key_file = resolve_key_path(self.file, cfg.path)
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
            where = f"remote signer {url}" if url else "a remote signer, and no remoteSigner is configured"
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
        key_path = resolve_key_path(self.file, cfg.path)
        if key_path.is_dir():
            files = sorted(p for p in key_path.iterdir() if p.suffix.lower() == ".json" and p.is_file())
            if not files:
                self.error(KeyFileError, f"{show_path(key_path)}: no .json key files in this directory", path)
                return []
            out = [self.eth_key_file(cfg, f, path) for f in files]
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

    def key_document(self, key_file: Path, path: str) -> Any:
        if not key_file.exists():
            self.error(KeyFileError, f"key file not found: {show_path(key_file)}", path)
            return None
        try:
            if key_file.stat().st_size > MAX_KEYSTORE_BYTES:
                self.error(KeyFileError, f"{show_path(key_file)}: too large to be a key file", path)
                return None
            return json.loads(key_file.read_text(encoding="utf-8"))
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


def _check_unique_attesters(report: NodeReport) -> None:
    seen: dict[str, tuple[Path, str]] = {}
    for file_report, block in report.blocks():
        for attester in block.attesters:
            address = attester.eth.address
            if address is None:
                continue
            if address in seen:
                first_file, first_path = seen[address]
                first = first_path if first_file == file_report.file else f"{first_file} {first_path}"
                report.errors.append(
                    DuplicateAttesterError(
                        f"attester {address} appears more than once (also at {first}); "
                        "an attester may appear only once in a node's keystores",
                        file=file_report.file,
                        json_path=attester.eth.json_path,
                    )
                )
            else:
                seen[address] = (file_report.file, attester.eth.json_path)


def _check_single_prover(report: NodeReport) -> None:
    with_prover = [f for f in report.files if f.keystore is not None and f.keystore.prover is not None]
    if len(with_prover) > 1:
        report.errors.append(
            KeystoreSchemaError(
                f"a prover is configured in {len(with_prover)} files "
                f"({', '.join(f.file.name for f in with_prover)}); "
                "only one prover configuration is allowed",
                file=with_prover[1].file,
                json_path="prover",
            )
        )

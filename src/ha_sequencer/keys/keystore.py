"""Loading one node's keystore: discover its files, read and validate them, resolve their keys.

A path is one keystore file or a directory of `.json` keystore files, merged as one node's keys (an attester
may appear only once). `inspect_keystore` collects every problem (for `check`); `load_keystore` raises the
first one. Discovery lives in `discovery`, the report types in `report`, Aztec's resolution rules in
`resolution`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from ha_sequencer.keys.discovery import (
    DISK_KEY_FILES,
    is_key_file,
    keystore_files,
    parse_json_text,
    read_keystore_text,
)
from ha_sequencer.keys.errors import (
    DuplicateAttesterError,
    KeyFileError,
    KeystoreError,
    KeystoreSchemaError,
)
from ha_sequencer.keys.report import FileReport, Finding, NodeReport
from ha_sequencer.keys.resolution import resolve_file
from ha_sequencer.keys.schema import parse_keystore


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
        if in_directory and is_key_file(file_report.raw):
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
    report.add_positions()
    return report


def inspect_file(file: Path, *, passwords: PasswordSource | None = None) -> FileReport:
    """Read, validate and resolve one keystore file."""
    report = FileReport(file=file)
    try:
        report.text = read_keystore_text(file)
        report.raw = parse_json_text(report.text, file=file)
        report.keystore = parse_keystore(report.raw, file=file)
    except KeystoreError as exc:
        report.errors.append(exc)
        report.add_positions()
        return report
    except RecursionError:
        report.errors.append(
            KeystoreSchemaError("the JSON is nested too deeply", file=file, json_path="(root)")
        )
        return report
    resolve_file(report, files=DISK_KEY_FILES, passwords=passwords)
    report.add_positions()
    return report


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

"""What inspecting a keystore found: per file and per node, every problem with its file, JSON path, line:col.

`inspect_keystore` collects every problem instead of stopping at the first, so `validator-keys check` can list
them all; field-level errors get the line and column of their field in the keystore's text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ha_sequencer.keys.errors import KeystoreError
from ha_sequencer.keys.positions import locate
from ha_sequencer.keys.resolved import ResolvedAccount, ResolvedBlock
from ha_sequencer.keys.schema import Keystore

Severity = Literal["error", "warning"]


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


@dataclass(eq=False)
class FileReport:
    """One keystore file: its text and JSON, its validated schema, its resolved blocks and its problems."""

    file: Path
    # the file as read and as parsed: both may hold private keys, mnemonics and passwords
    text: str | None = field(default=None, repr=False)
    raw: Any = field(default=None, repr=False)
    keystore: Keystore | None = None
    blocks: list[ResolvedBlock] = field(default_factory=list)
    funding: ResolvedAccount | None = None
    errors: list[KeystoreError] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def add_positions(self) -> None:
        """Give field-level errors the line and column of their field in this file."""
        texts = {self.file: self.text} if self.text is not None else {}
        self.errors = _located(self.errors, texts)


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

    def add_positions(self) -> None:
        """Give cross-file errors the line and column of their field in the file they name."""
        texts = {f.file: f.text for f in self.files if f.text is not None}
        self.errors = _located(self.errors, texts)


def _located(errors: list[KeystoreError], texts: Mapping[Path, str]) -> list[KeystoreError]:
    out = []
    for error in errors:
        text = texts.get(error.file) if error.file is not None else None
        if error.line is not None or error.json_path is None or text is None:
            out.append(error)
            continue
        where = locate(text, error.json_path)
        if where is None:
            out.append(error)
            continue
        line, col = where
        out.append(type(error)(error.message, file=error.file, json_path=error.json_path, line=line, col=col))
    return out

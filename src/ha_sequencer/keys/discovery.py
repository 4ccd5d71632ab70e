"""Which files form a node's keystore, and reading them from disk.

A keystore path is one keystore file or a directory of `.json` keystore files, merged as one node's keys.
Keystore JSON is read strictly (duplicate keys and NaN/Infinity are errors) and syntax errors carry the line
and column. A keystore file that group or others may read is insecure: `node start` refuses it and
`validator-keys check` fails on it. `DiskKeyFiles` is how resolution reads the key files that
`{path, password}` entries point at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ha_sequencer.keys.errors import KeyFileError, KeystoreError, KeystoreSyntaxError, show_name
from ha_sequencer.keys.files import loose_permissions

MAX_KEYSTORE_BYTES = 4 * 1024 * 1024


def keystore_files(path: Path) -> list[Path]:
    """The keystore files of a path: the file itself, or a directory's `.json` files in name order."""
    if path.is_dir():
        files = _json_files(path)
        if not files:
            raise KeyFileError("no .json keystore files in this directory", file=path)
        return files
    if not path.exists():
        raise KeyFileError("keystore not found", file=path)
    return [path]


def insecure_keystore_files(path: Path) -> list[Path]:
    """The keystore files of a path that group or others may read or write: `node start` refuses them."""
    try:
        files = keystore_files(path)
    except KeyFileError:
        return []  # nothing to protect; loading the keystore reports why
    return [f for f in files if loose_permissions(f) is not None]


def is_key_file(raw: Any) -> bool:
    """True for an encrypted key file (JSON V3 or EIP-2335), which may sit beside keystores in a directory."""
    return isinstance(raw, dict) and "crypto" in raw and "schemaVersion" not in raw


def read_keystore_text(file: Path) -> str:
    """A keystore file's text (at most `MAX_KEYSTORE_BYTES`, UTF-8 with an optional BOM)."""
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
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise KeystoreSyntaxError("the file is not UTF-8 text", file=file, line=line, col=col) from None


def parse_json_text(text: str, *, file: Path) -> Any:
    """Parse keystore JSON: syntax errors carry line:col; duplicate keys and NaN/Infinity are errors."""
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


class DiskKeyFiles:
    """Key files on disk: what `inspect_keystore` resolves `{path, password}` entries against."""

    def exists(self, path: Path) -> bool:
        """True when `path` is a file or a directory."""
        return path.exists()

    def json_files(self, path: Path) -> list[Path] | None:
        """A directory's `.json` files in name order; None when `path` is not a directory."""
        return _json_files(path) if path.is_dir() else None

    def size(self, path: Path) -> int:
        """The file's size in bytes."""
        return path.stat().st_size

    def read_text(self, path: Path) -> str:
        """The file's UTF-8 text."""
        return path.read_text(encoding="utf-8")


DISK_KEY_FILES = DiskKeyFiles()


def _json_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".json" and p.is_file())


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

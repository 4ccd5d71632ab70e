"""The keys package's errors: each says what is wrong and where (file, JSON path, line/col), no secret."""

from __future__ import annotations

import re
from pathlib import Path

from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError, InputError

_LONG_HEX = re.compile(r"(0x)?[0-9a-fA-F]{64,}")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$")


def redact(text: str) -> str:
    """Replace every run of 64+ hex digits (what a private key looks like) by `<redacted>`."""
    return _LONG_HEX.sub("<redacted>", text)


def show_name(name: object) -> str:
    """A JSON key for a message: quoted when it looks like a field name, else only its length."""
    if isinstance(name, str) and _IDENTIFIER.match(name):
        return repr(name)
    return f"<a key of {len(str(name))} characters>"


def show_path(path: object) -> str:
    """A user-written file path for a message, hidden when it looks like key material or a mnemonic."""
    text = str(path)
    if len(text.split()) >= 6:
        return "<a path that looks like a mnemonic>"
    return redact(text)


class KeystoreError(InputError):
    """A keystore (or a key file it references) is unusable; exit code 2."""

    code = "keystore"

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        json_path: str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        message = redact(message)  # a safety net: no message ever carries something shaped like a key
        self.message = message
        self.file = Path(file) if file is not None else None
        self.json_path = redact(json_path) if json_path else json_path
        self.line = line
        self.col = col
        super().__init__(self.location_prefix() + message)

    def location_prefix(self) -> str:
        """`file:line:col: ` or `file: json.path: `, whichever parts are known."""
        parts = ""
        if self.file is not None:
            parts = str(self.file)
            if self.line is not None:
                parts += f":{self.line}:{self.col or 1}"
            parts += ": "
        if self.json_path:
            parts += f"{self.json_path}: "
        return parts


class KeystoreSyntaxError(KeystoreError):
    """The file is not valid JSON (with line and column)."""

    code = "syntax"


class KeystoreSchemaError(KeystoreError):
    """The JSON does not follow Aztec's keystore schema (with the field's JSON path)."""

    code = "schema"


class KeyFormatError(KeystoreError):
    """A key is well-formed hex but not a usable key (out of the curve's range, zero)."""

    code = "key-format"


class KeyFileError(KeystoreError):
    """A referenced key file is missing, unreadable or not a key file."""

    code = "key-file"


class MissingPasswordError(KeystoreError):
    """An encrypted key file has no password in the keystore and none was supplied."""

    code = "no-password"


class DecryptionError(KeystoreError):
    """An encrypted key file did not decrypt (wrong password or corrupted file)."""

    code = "decrypt"


class RemoteSignerUnsupportedError(KeystoreError):
    """The account is held by a remote signer (or a bare address); ha-sequencer signs with local keys only."""

    code = "remote-signer"


class DuplicateAttesterError(KeystoreError):
    """One attester appears twice in what one node would load."""

    code = "duplicate-attester"


class MnemonicError(KeystoreError):
    """A mnemonic is not a valid BIP39 English mnemonic."""

    code = "mnemonic"


class OutputExistsError(InputError):
    """A file the command would write already exists; nothing is ever overwritten."""


class FleetProblemsFound(HASequencerError):
    """`validator-keys check` found problems (exit code 1)."""

    exit_code = EXIT_FAILURE_FOUND

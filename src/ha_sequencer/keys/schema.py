"""Aztec's keystore schema (versions 1 and 2) as strict pydantic models.

Learned from Aztec `yarn-project/node-keystore/src/schemas.ts`: strict objects (unknown keys rejected);
a private key is `0x` + 64 hex; an ETH account is a private key, an address (remote signer), `{address,
remoteSignerUrl?, certPath?, certPass?}` or `{path, password?}`; "accounts" are one account, a list, or a
mnemonic config `{mnemonic, addressIndex=0, accountIndex=0, addressCount=1, accountCount=1}`; an attester
is an ETH account or `{eth, bls?}`; `null` means absent. v1 requires `feeRecipient` on each validator; v2
adds top-level `publisher`, `coinbase`, `feeRecipient` defaults and requires a feeRecipient per validator or
at the top. Either version needs `validators` or `prover`. Union members are chosen by shape, so errors name
what was meant.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from ha_sequencer.keys.bls import BN254_R
from ha_sequencer.keys.errors import KeystoreSchemaError, show_name

SUPPORTED_SCHEMA_VERSIONS = (1, 2)
_KEY_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDRESS_RE = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_AZTEC_ADDRESS_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_LOOSE_KEY_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")  # as typed on a command line or kept in a key file
_TAG_PREFIX = "~"  # union tags appear in pydantic's error locations; they are not JSON keys


class Secret:
    """A secret string (private key, mnemonic, password) that never shows in repr, str or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; only for deriving, decrypting and writing key material."""
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))

    @classmethod
    def _validate(cls, value: str) -> Secret:
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls._validate, core_schema.str_schema(strict=True)
        )


class PrivateKey(Secret):
    """A 32-byte private key written `0x` + 64 hex digits (ETH secp256k1 or BN254 BLS)."""

    __slots__ = ()

    @classmethod
    def _validate(cls, value: str) -> PrivateKey:
        if not _KEY_RE.match(value):
            raise PydanticCustomError(
                "private_key",
                "expected a private key (0x + 64 hex digits) or an address (0x + 40 hex digits); "
                "got a string of {length} characters",
                {"length": len(value)},
            )
        return cls(value.lower())

    def to_bytes(self) -> bytes:
        """The key's 32 bytes."""
        return bytes.fromhex(self._value[2:])

    def to_int(self) -> int:
        """The key as a big-endian integer."""
        return int(self._value, 16)


def _eth_address(value: str) -> str:
    if not _ADDRESS_RE.match(value):
        raise PydanticCustomError("eth_address", "expected an Ethereum address (0x + 40 hex digits)")
    body = value[2:] if value.startswith("0x") else value
    mixed = body != body.lower() and body != body.upper()
    if mixed and not is_checksum_address("0x" + body):
        raise PydanticCustomError(
            "eth_address_checksum", "the address has mixed case but an invalid EIP-55 checksum"
        )
    return to_checksum_address("0x" + body)


def _fee_recipient(value: str) -> str:
    if not _AZTEC_ADDRESS_RE.match(value):
        raise PydanticCustomError("aztec_address", "expected an Aztec address (0x + 64 hex digits, 32 bytes)")
    body = value[2:] if value.startswith("0x") else value
    if int(body, 16) >= BN254_R:
        raise PydanticCustomError(
            "aztec_address_range", "an Aztec address must be below the BN254 field modulus"
        )
    return "0x" + body.lower()


def _url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise PydanticCustomError("url", "expected a URL such as https://host:port")
    return value


def normalize_eth_address(value: str) -> str:
    """The checksummed form of an Ethereum address; ValueError when malformed or wrongly checksummed."""
    try:
        return _eth_address(value)
    except PydanticCustomError as exc:
        raise ValueError(exc.message()) from None


def is_private_key_hex(value: str) -> bool:
    """Whether `value` is a private key written as 64 hex digits, `0x` optional (CLI flags, key files)."""
    return _LOOSE_KEY_RE.match(value) is not None


def normalize_fee_recipient(value: str) -> str:
    """`0x` + 64 lowercase hex of an Aztec address; ValueError when malformed or not below the modulus."""
    try:
        return _fee_recipient(value)
    except PydanticCustomError as exc:
        raise ValueError(exc.message()) from None


EthAddress = Annotated[str, Field(strict=True), AfterValidator(_eth_address)]
FeeRecipient = Annotated[str, Field(strict=True), AfterValidator(_fee_recipient)]
Url = Annotated[str, Field(strict=True), AfterValidator(_url)]
Index = Annotated[int, Field(strict=True, ge=0)]
Count = Annotated[int, Field(strict=True, ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


class EncryptedKeyFile(_Strict):
    """`{path, password?}`: a JSON V3 (ETH) or EIP-2335-layout (BLS) file, or for ETH a directory of them."""

    path: str = Field(repr=False)  # hidden: a key pasted where its path belongs must not reach a repr
    password: Secret | None = None


class RemoteSignerAccount(_Strict):
    """`{address, remoteSignerUrl?, certPath?, certPass?}`: an account held by a remote signer."""

    address: EthAddress
    remoteSignerUrl: Url | None = None
    certPath: str | None = None
    certPass: Secret | None = None


class RemoteSignerConfigObject(_Strict):
    """`{remoteSignerUrl, certPath?, certPass?}`: a default remote signer."""

    remoteSignerUrl: Url
    certPath: str | None = None
    certPass: Secret | None = None


class MnemonicConfig(_Strict):
    """`{mnemonic, addressIndex, accountIndex, addressCount, accountCount}`: BIP44 accounts of a mnemonic."""

    mnemonic: Secret
    addressIndex: Index = 0
    accountIndex: Index = 0
    addressCount: Count = 1
    accountCount: Count = 1

    @model_validator(mode="after")
    def _non_empty(self) -> MnemonicConfig:
        if not self.mnemonic.reveal().strip():
            raise PydanticCustomError("mnemonic_empty", "the mnemonic cannot be empty")
        return self


def _tag(name: str) -> str:
    return _TAG_PREFIX + name


def _account_shape(value: Any) -> str | None:
    if isinstance(value, str):
        return _tag("address") if _ADDRESS_RE.match(value) else _tag("key")
    if isinstance(value, dict):
        if "path" in value:
            return _tag("file")
        if "address" in value:
            return _tag("remote")
    return None


_ACCOUNT_FORMS = (
    "expected an account: a private key (0x + 64 hex), an address, "
    "{address, remoteSignerUrl} or {path, password}"
)

EthAccount = Annotated[
    Annotated[PrivateKey, Tag(_tag("key"))]
    | Annotated[EthAddress, Tag(_tag("address"))]
    | Annotated[RemoteSignerAccount, Tag(_tag("remote"))]
    | Annotated[EncryptedKeyFile, Tag(_tag("file"))],
    Discriminator(_account_shape, custom_error_type="account_form", custom_error_message=_ACCOUNT_FORMS),
]


def _accounts_shape(value: Any) -> str | None:
    if isinstance(value, list):
        return _tag("list")
    if isinstance(value, dict) and "mnemonic" in value:
        return _tag("mnemonic")
    return _tag("one") if _account_shape(value) else None


EthAccounts = Annotated[
    Annotated[EthAccount, Tag(_tag("one"))]
    | Annotated[list[EthAccount], Tag(_tag("list"))]
    | Annotated[MnemonicConfig, Tag(_tag("mnemonic"))],
    Discriminator(
        _accounts_shape,
        custom_error_type="accounts_form",
        custom_error_message=_ACCOUNT_FORMS + ", a list of accounts, or {mnemonic, ...}",
    ),
]


def _bls_shape(value: Any) -> str | None:
    if isinstance(value, str):
        return _tag("key")
    if isinstance(value, dict):
        return _tag("file")
    return None


BlsAccount = Annotated[
    Annotated[PrivateKey, Tag(_tag("key"))] | Annotated[EncryptedKeyFile, Tag(_tag("file"))],
    Discriminator(
        _bls_shape,
        custom_error_type="bls_form",
        custom_error_message="expected a BLS private key (0x + 64 hex) or {path, password}",
    ),
]


class AttesterPair(_Strict):
    """`{eth, bls?}`: an attester's ETH account and optional BN254 BLS key."""

    eth: EthAccount
    bls: BlsAccount | None = None


def _attester_shape(value: Any) -> str | None:
    if isinstance(value, dict) and "eth" in value:
        return _tag("pair")
    return _tag("single") if _account_shape(value) else None


AttesterAccount = Annotated[
    Annotated[EthAccount, Tag(_tag("single"))] | Annotated[AttesterPair, Tag(_tag("pair"))],
    Discriminator(
        _attester_shape,
        custom_error_type="attester_form",
        custom_error_message=_ACCOUNT_FORMS + ", or {eth, bls}",
    ),
]


def _attesters_shape(value: Any) -> str | None:
    if isinstance(value, list):
        return _tag("list")
    if isinstance(value, dict) and "mnemonic" in value:
        return _tag("mnemonic")
    return _tag("one") if _attester_shape(value) else None


AttesterAccounts = Annotated[
    Annotated[AttesterAccount, Tag(_tag("one"))]
    | Annotated[list[AttesterAccount], Tag(_tag("list"))]
    | Annotated[MnemonicConfig, Tag(_tag("mnemonic"))],
    Discriminator(
        _attesters_shape,
        custom_error_type="attesters_form",
        custom_error_message=_ACCOUNT_FORMS + ", {eth, bls}, a list of these, or {mnemonic, ...}",
    ),
]


def _remote_config_shape(value: Any) -> str | None:
    if isinstance(value, str):
        return _tag("url")
    if isinstance(value, dict):
        return _tag("object")
    return None


RemoteSignerConfig = Annotated[
    Annotated[Url, Tag(_tag("url"))] | Annotated[RemoteSignerConfigObject, Tag(_tag("object"))],
    Discriminator(
        _remote_config_shape,
        custom_error_type="remote_signer_form",
        custom_error_message="expected a remote signer URL or {remoteSignerUrl, certPath?, certPass?}",
    ),
]


class ProverWithId(_Strict):
    """`{id, publisher}`: a prover identity and its publishers (ha-sequencer does not run provers)."""

    id: EthAddress
    publisher: EthAccounts


def _prover_shape(value: Any) -> str | None:
    if isinstance(value, dict) and "id" in value:
        return _tag("with-id")
    return _tag("account") if _account_shape(value) else None


Prover = Annotated[
    Annotated[EthAccount, Tag(_tag("account"))] | Annotated[ProverWithId, Tag(_tag("with-id"))],
    Discriminator(
        _prover_shape,
        custom_error_type="prover_form",
        custom_error_message=_ACCOUNT_FORMS + ", or {id, publisher}",
    ),
]


class ValidatorV1(_Strict):
    """One validator block of a v1 keystore (feeRecipient required)."""

    attester: AttesterAccounts
    coinbase: EthAddress | None = None
    publisher: EthAccounts | None = None
    feeRecipient: FeeRecipient
    remoteSigner: RemoteSignerConfig | None = None
    fundingAccount: EthAccount | None = None


class ValidatorV2(_Strict):
    """One validator block of a v2 keystore (feeRecipient may come from the top level)."""

    attester: AttesterAccounts
    coinbase: EthAddress | None = None
    publisher: EthAccounts | None = None
    feeRecipient: FeeRecipient | None = None
    remoteSigner: RemoteSignerConfig | None = None
    fundingAccount: EthAccount | None = None


def _needs_validators_or_prover(validators: object, prover: object) -> None:
    if validators is None and prover is None:
        raise PydanticCustomError(
            "empty_keystore", "a keystore must have validators or a prover configuration"
        )


class KeystoreV1(_Strict):
    """Schema version 1."""

    schemaVersion: Literal[1]
    validators: list[ValidatorV1] | None = None
    slasher: EthAccounts | None = None
    remoteSigner: RemoteSignerConfig | None = None
    prover: Prover | None = None
    fundingAccount: EthAccount | None = None

    @model_validator(mode="after")
    def _content(self) -> KeystoreV1:
        _needs_validators_or_prover(self.validators, self.prover)
        return self


class KeystoreV2(_Strict):
    """Schema version 2: adds top-level publisher, coinbase and feeRecipient defaults."""

    schemaVersion: Literal[2]
    validators: list[ValidatorV2] | None = None
    slasher: EthAccounts | None = None
    remoteSigner: RemoteSignerConfig | None = None
    prover: Prover | None = None
    fundingAccount: EthAccount | None = None
    publisher: EthAccounts | None = None
    coinbase: EthAddress | None = None
    feeRecipient: FeeRecipient | None = None

    @model_validator(mode="after")
    def _content(self) -> KeystoreV2:
        _needs_validators_or_prover(self.validators, self.prover)
        if self.validators and self.feeRecipient is None:
            missing = [i for i, v in enumerate(self.validators) if v.feeRecipient is None]
            if missing:
                raise PydanticCustomError(
                    "fee_recipient_missing",
                    "validators{where} have no feeRecipient and there is no top-level feeRecipient",
                    {"where": "".join(f"[{i}]" for i in missing[:5])},
                )
        return self


Keystore = KeystoreV1 | KeystoreV2
_ADAPTERS: dict[int, TypeAdapter[Any]] = {1: TypeAdapter(KeystoreV1), 2: TypeAdapter(KeystoreV2)}
_V2_ONLY_TOP_LEVEL = ("publisher", "coinbase", "feeRecipient")


def parse_keystore(document: Any, *, file: Any = None) -> Keystore:
    """Validate a parsed JSON document against schema 1 or 2; `KeystoreSchemaError` names the field."""
    if not isinstance(document, dict):
        raise KeystoreSchemaError("a keystore must be a JSON object", file=file, json_path="(root)")
    if "schemaVersion" not in document:
        raise KeystoreSchemaError(
            "schemaVersion is missing (expected 1 or 2)", file=file, json_path="schemaVersion"
        )
    version = document["schemaVersion"]
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        shown = repr(version) if isinstance(version, int | float) else f"a {type(version).__name__}"
        raise KeystoreSchemaError(
            f"unsupported schemaVersion {shown} (expected 1 or 2)", file=file, json_path="schemaVersion"
        )
    try:
        return _ADAPTERS[version].validate_python(document)
    except ValidationError as exc:
        raise schema_error(exc, version=version, file=file) from None


def schema_error(exc: ValidationError, *, version: int, file: Any = None) -> KeystoreSchemaError:
    """The first problem of a pydantic error as a `KeystoreSchemaError` (never echoes the input)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    path = json_path(first["loc"])
    message = _describe(first, version)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    error = KeystoreSchemaError(message, file=file, json_path=path)
    error.all_problems = [(json_path(e["loc"]), _describe(e, version)) for e in errors]  # type: ignore[attr-defined]
    return error


def json_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`validators[0].attester.eth` from a pydantic location, dropping union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(_TAG_PREFIX):
            continue
        elif isinstance(part, str) and not show_name(part).startswith("'"):
            out += f"[{show_name(part)}]"  # not shaped like a field name: maybe a secret pasted as a key
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _describe(error: Any, version: int) -> str:
    kind = error["type"]
    loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith(_TAG_PREFIX))]
    field = loc[-1] if loc else None
    if kind == "extra_forbidden":
        if len(loc) == 1 and field in _V2_ONLY_TOP_LEVEL and version == 1:
            return f"unknown field {field!r}: a top-level {field} needs schemaVersion 2"
        return f"unknown field {show_name(field)} (the schema is strict)"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "expected a JSON object"
    if kind == "list_type":
        return "expected a list"
    if kind == "string_type":
        return "expected a string"
    if kind in ("int_type", "int_from_float"):
        return "expected an integer"
    return str(error["msg"])

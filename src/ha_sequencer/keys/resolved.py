"""What resolving a keystore yields: its accounts, attesters and validator blocks (Aztec's precedence rules in
`resolution`; the reports in `report` hold these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eth_account.signers.local import LocalAccount

from ha_sequencer.keys.schema import Secret


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

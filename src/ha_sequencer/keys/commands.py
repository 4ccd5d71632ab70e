"""`ha-sequencer validator-keys new / split / check` (flags named as `aztec validator-keys` names them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ha_sequencer.cli_options import KeyFilePassword, KeyFilePasswordFile
from ha_sequencer.errors import InputError
from ha_sequencer.keys.derivation import generate_mnemonic, normalize_mnemonic
from ha_sequencer.keys.errors import FleetProblemsFound, KeystoreError
from ha_sequencer.keys.files import loose_permissions
from ha_sequencer.keys.fleet import check_fleet, split_keystore
from ha_sequencer.keys.generate import NewKeysRequest, next_keystore_path, write_new_keystore
from ha_sequencer.keys.keystore import PasswordSource
from ha_sequencer.keys.schema import is_private_key_hex, normalize_eth_address, normalize_fee_recipient

_ENV = "HA_SEQUENCER_"
DEFAULT_DATA_DIR = Path("~/.ha-sequencer/keystore")

app = typer.Typer(
    help="Validator keystores compatible with Aztec's: generate, split per node, lint a fleet.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)


def _password(password: str | None, password_file: Path | None) -> str | None:
    if password is not None and password_file is not None:
        raise InputError("--password and --password-file are mutually exclusive")
    if password_file is not None:
        return PasswordSource.from_file(password_file).default
    return password


def _normalize_fee_recipient(value: str) -> str:
    try:
        return normalize_fee_recipient(value.strip())
    except ValueError:
        raise InputError(
            "--fee-recipient: expected an Aztec address: 0x + 64 hex digits, below the BN254 modulus"
        ) from None


def _normalize_coinbase(value: str) -> str:
    try:
        return normalize_eth_address(value.strip())
    except ValueError:
        raise InputError(
            "--coinbase: expected an Ethereum address (0x + 40 hex digits, valid EIP-55 if mixed case)"
        ) from None


def _normalize_publishers(value: str) -> tuple[str, ...]:
    from eth_account import Account

    keys = []
    for n, raw in enumerate(part.strip() for part in value.split(",")):
        if not is_private_key_hex(raw):
            raise InputError(f"--publishers: key {n + 1} is not a private key (0x + 64 hex digits)")
        key = "0x" + raw.removeprefix("0x").lower()
        try:
            Account.from_key(key)
        except ValueError:
            raise InputError(f"--publishers: key {n + 1} is not a valid secp256k1 private key") from None
        keys.append(key)
    return tuple(keys)


@app.command("new")
def new(
    fee_recipient: str = typer.Option(
        ...,
        "--fee-recipient",
        envvar=f"{_ENV}FEE_RECIPIENT",
        help="Aztec address (0x + 64 hex) that receives the fees.",
    ),
    mnemonic: str | None = typer.Option(
        None,
        "--mnemonic",
        envvar=f"{_ENV}MNEMONIC",
        show_default=False,
        help="BIP39 mnemonic to derive from; absent: a new 24-word mnemonic is generated and shown once "
        "(prefer the env var: it keeps the mnemonic out of the process list).",
    ),
    passphrase: str = typer.Option(
        "",
        "--passphrase",
        envvar=f"{_ENV}MNEMONIC_PASSPHRASE",
        show_default=False,
        help="Optional BIP39 passphrase. Note: Aztec's CLI accepts but ignores it, so keys made with a "
        "passphrase differ from `aztec validator-keys new`.",
    ),
    account_index: int = typer.Option(0, "--account-index", min=0, help="BIP44 account index (ETH and BLS)."),
    address_index: int = typer.Option(
        0, "--address-index", min=0, help="Base address index B (ETH and BLS)."
    ),
    count: int = typer.Option(
        1, "--count", min=1, help="Number of validators C (at address indices B..B+C-1)."
    ),
    publisher_count: int | None = typer.Option(
        None,
        "--publisher-count",
        min=0,
        help="Publishers per validator P, derived at B + C + i*P + j (default 0: the attester pays gas).",
    ),
    publishers: str | None = typer.Option(
        None,
        "--publishers",
        help="Comma-separated publisher private keys for all validators (instead of --publisher-count).",
    ),
    coinbase: str | None = typer.Option(
        None, "--coinbase", help="Coinbase address for proposals (default: each attester's address)."
    ),
    data_dir: Path = typer.Option(
        DEFAULT_DATA_DIR,
        "--data-dir",
        envvar=f"{_ENV}KEYS_DIR",
        help="Directory for the keystore (created 0700).",
    ),
    file: str | None = typer.Option(
        None, "--file", help="Keystore file name (default key1.json, else the next free keyN.json)."
    ),
    password: str | None = typer.Option(
        None,
        "--password",
        envvar=f"{_ENV}KEYSTORE_PASSWORD",
        show_default=False,
        help="Encrypt keys into JSON V3 (ETH) and EIP-2335 (BLS) files referenced as {path, password}.",
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from the first line of this file."
    ),
    encrypted_keystore_dir: Path | None = typer.Option(
        None, "--encrypted-keystore-dir", help="Where encrypted key files go (default: beside the keystore)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the keystore JSON to stdout (it holds the keys)."
    ),
) -> None:
    """Generate validator keys (ETH attester, BN254 BLS, publishers) into an Aztec-compatible keystore."""
    if publishers is not None and publisher_count:
        raise InputError("--publishers and --publisher-count cannot be used together")
    secret = _password(password, password_file)
    generated = mnemonic is None
    words = generate_mnemonic() if mnemonic is None else normalize_mnemonic(mnemonic)
    request = NewKeysRequest(
        mnemonic=words,
        fee_recipient=_normalize_fee_recipient(fee_recipient),
        passphrase=passphrase,
        account_index=account_index,
        address_index=address_index,
        count=count,
        publisher_count=publisher_count or 0,
        publisher_keys=_normalize_publishers(publishers) if publishers else (),
        coinbase=_normalize_coinbase(coinbase) if coinbase else None,
    )
    directory = data_dir.expanduser()
    output = next_keystore_path(directory, file)
    loose = loose_permissions(output.parent) if output.parent.is_dir() else None
    if loose is not None:
        _err.print(
            f"note: {output.parent} is accessible by group/others (mode {loose:04o}); keys are written 0600, "
            "but a 0700 directory is safer",
            markup=False,
            highlight=False,
        )
    if generated:
        _show_mnemonic_once(words)
    if passphrase:
        _err.print(
            "note: Aztec's `validator-keys new` ignores --passphrase; these keys differ from its keys."
        )
    result = write_new_keystore(
        request,
        output=output,
        password=secret,
        key_dir=encrypted_keystore_dir.expanduser() if encrypted_keystore_dir else None,
    )
    if as_json:
        sys.stdout.write(json.dumps(result.document, indent=2) + "\n")
        out = _err
    else:
        out = _out
    out.print(f"Wrote validator keystore to {result.path}", markup=False, highlight=False)
    for path in result.key_files:
        out.print(f"Wrote key file {path}", markup=False, highlight=False)
    for i, summary in enumerate(result.summaries, start=1):
        lines = [f"acc{i}:", "  attester:", f"    eth: {summary.attester}", f"    bls: {summary.bls_public}"]
        if summary.publishers:
            lines.append("  publisher:")
            lines.extend(f"    - {address}" for address in summary.publishers)
        out.print("\n".join(lines), markup=False, highlight=False)


def _show_mnemonic_once(words: str) -> None:
    _err.print(
        "\nNEW MNEMONIC: write it down and store it offline. It is shown only this once; it is the only way "
        "to "
        "recover these keys, and anyone who has it controls them.\n",
        style="bold yellow",
    )
    typer.echo(f"    {words}\n", err=True)  # plain: one line, never wrapped


@app.command("split")
def split(
    base: Path = typer.Argument(..., help="The base keystore made by `new` (one file)."),
    out: Path = typer.Option(..., "--out", help="Output directory: OUT/node1/keystore.json … OUT/nodeN/."),
    nodes: int | None = typer.Option(
        None, "--nodes", min=1, help="Number of nodes N (default: the number of publishers per validator)."
    ),
    shred_source: bool = typer.Option(
        False, "--shred-source", help="Overwrite and delete BASE after every output validated."
    ),
    password: KeyFilePassword = None,
    password_file: KeyFilePasswordFile = None,
    install_dir: Path | None = typer.Option(
        None,
        "--install-dir",
        help="Where each node folder will be on its host; {node} stands for node1, node2, … (e.g. "
        "/etc/ha-sequencer/{node}). Encrypted key files are named by absolute path under it, as Aztec's node "
        "needs. Default: where the folders are written.",
    ),
) -> None:
    """One keystore per node: the same attester(s) everywhere, exactly one distinct publisher per node."""
    secret = _password(password, password_file)
    if install_dir is not None and not install_dir.expanduser().is_absolute():
        raise InputError(f"--install-dir: must be an absolute path, got {install_dir}")
    outputs = split_keystore(
        base,
        out.expanduser(),
        nodes=nodes,
        shred_source=shred_source,
        passwords=PasswordSource(default=secret) if secret is not None else None,
        install_dir=install_dir.expanduser() if install_dir is not None else None,
    )
    for node in outputs:
        typer.echo(
            f"node{node.node}: {node.path}  attester(s) {', '.join(node.attesters)}  "
            f"publisher {', '.join(node.publisher)}"
        )
    if shred_source:
        typer.echo(f"shredded {base}")


@app.command("check")
def check(
    paths: list[Path] = typer.Argument(..., help="Node keystores (a file or a directory per node)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail the check too."),
    password: KeyFilePassword = None,
    password_file: KeyFilePasswordFile = None,
) -> None:
    """Lint a fleet: syntax, schema, key formats, key files, same attesters, unique publishers, file modes.

    Exit 0 when clean, 1 when problems were found, 2 when an input is unusable.
    """
    for path in paths:
        if not path.exists():
            raise KeystoreError("no such file or directory", file=path)
    secret = _password(password, password_file)
    report = check_fleet(paths, passwords=PasswordSource(default=secret) if secret is not None else None)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        _print_report(report)
    failing = report.errors or (strict and report.warnings)
    if failing:
        raise FleetProblemsFound(
            f"{len(report.errors)} error(s), {len(report.warnings)} warning(s) in {len(paths)} path(s)"
        )


def cells(finding) -> tuple[str, str, str, str]:
    """The table row of a finding."""
    return finding.severity, finding.code, finding.where(), finding.message


def _print_report(report) -> None:
    for node in report.nodes:
        attesters = sorted({a.eth.address for _, b in node.blocks() for a in b.attesters if a.eth.address})
        typer.echo(f"{node.path}: {len(attesters)} attester(s)")
    if not report.findings:
        _out.print("no problems found", style="green")
        return
    table = Table(show_lines=False)
    for column in ("severity", "problem", "where", "message"):
        table.add_column(column, overflow="fold")
    for finding in report.findings:
        style = "red" if finding.severity == "error" else "yellow"
        table.add_row(*(Text(cell) for cell in cells(finding)), style=style)
    _out.print(table)
    _out.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")

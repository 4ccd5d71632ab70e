"""`ha-sequencer balance` (publisher funds against thresholds) and `ha-sequencer monitor` (duties on L1)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ha_sequencer.cli_options import L1RpcUrl, RollupAddress
from ha_sequencer.errors import EXIT_FAILURE_FOUND, InputError
from ha_sequencer.monitoring.eth import format_eth
from ha_sequencer.monitoring.funds import checksum_addresses
from ha_sequencer.monitoring.thresholds import DEFAULT_MIN_ETH, DEFAULT_WARN_ETH, FundsState, Thresholds

_ENV = "HA_SEQUENCER_"
DEFAULT_MONITOR_SLOTS = 32
FOLLOW_POLL_MIN_S = 0.25
FOLLOW_POLL_MAX_S = 2.0
_STATE_STYLE = {"OK": "green", "WARN": "yellow", "CRITICAL": "bold red"}
_TOLERATED_KEYSTORE_ERRORS = ("MissingPasswordError", "DecryptionError", "RemoteSignerUnsupportedError")


def _console() -> Console:
    console = Console()
    # piped output: wide enough that a full address and an 18-decimal balance never wrap
    return console if console.is_terminal else Console(width=160)


def node_name(path: Path) -> str:
    """The node a keystore belongs to: its directory (`nodes/node1`, `nodes/node1/keystore.json` → node1)."""
    path = path.expanduser()
    if path.is_dir():
        return path.resolve().name
    if path.stem == "keystore" or path.stem.startswith("keystore"):
        return path.resolve().parent.name
    return path.stem


@dataclass(frozen=True)
class PublisherRow:
    """One publisher of one node."""

    address: str
    node: str
    source: str


def keystore_publishers(path: Path) -> list[PublisherRow]:
    """Publisher addresses of a node's keystore (file or directory); no password needed for known addresses.

    Encrypted key files declare their address, and remote-signer publishers are addresses already, so the
    balances can be read without decrypting anything. A publisher that falls back to the attester is listed
    under the attester's address (it pays the gas).
    """
    from ha_sequencer.keys.errors import KeystoreError
    from ha_sequencer.keys.keystore import inspect_keystore

    report = inspect_keystore(path.expanduser())
    fatal: list[KeystoreError] = [
        e for e in report.all_errors() if type(e).__name__ not in _TOLERATED_KEYSTORE_ERRORS
    ]
    if fatal:
        raise fatal[0]
    node = node_name(path)
    rows: list[PublisherRow] = []
    for file_report, block in report.blocks():
        accounts = (
            block.publishers if block.publisher_source != "attester" else [a.eth for a in block.attesters]
        )
        for account in accounts:
            if account.address is None:
                raise InputError(
                    f"{file_report.file}: {account.json_path}: the publisher's address is unknown "
                    "(an encrypted key file without an address field); pass it with --address"
                )
            rows.append(PublisherRow(account.address, node, str(file_report.file)))
    if not rows:
        raise InputError(f"{path}: no publishers (no validators in this keystore)")
    return rows


def balance(
    *,
    keystore: list[Path] = typer.Option(
        [],
        "--keystore",
        envvar=f"{_ENV}KEYSTORE",
        help="A node's keystore file or directory (repeat for each node); its publishers are checked.",
    ),
    address: list[str] = typer.Option([], "--address", help="A publisher address to check (repeatable)."),
    rpc_url: L1RpcUrl,
    min_eth: str = typer.Option(
        DEFAULT_MIN_ETH,
        "--min",
        envvar=f"{_ENV}MIN_BALANCE",
        help="ETH below which a publisher is CRITICAL (exit 1).",
    ),
    warn_eth: str = typer.Option(
        DEFAULT_WARN_ETH, "--warn", envvar=f"{_ENV}WARN_BALANCE", help="ETH below which a publisher is WARN."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Publisher balances against thresholds: OK / WARN / CRITICAL; exit 1 if any is below --min."""
    from ha_sequencer.monitoring.l1 import L1Wallet

    thresholds = Thresholds.from_eth(min_eth, warn_eth)
    rows = [r for path in keystore for r in keystore_publishers(path)]
    rows += [PublisherRow(a, "-", "--address") for a in checksum_addresses(address)]
    if not rows:
        raise InputError("nothing to check: give --keystore PATH and/or --address ADDR")
    wallet = L1Wallet(rpc_url)
    balances: dict[str, int] = {}
    for row in rows:
        if row.address not in balances:
            balances[row.address] = wallet.balance(row.address)
    states = [thresholds.state(balances[r.address]) for r in rows]
    critical = any(s == FundsState.CRITICAL for s in states)
    if as_json:
        document = {
            "minEth": format_eth(thresholds.min_wei),
            "warnEth": format_eth(thresholds.warn_wei),
            "ok": not critical,
            "publishers": [
                {
                    "address": r.address,
                    "node": r.node,
                    "source": r.source,
                    "balanceWei": str(balances[r.address]),
                    "balanceEth": format_eth(balances[r.address]),
                    "state": str(s),
                }
                for r, s in zip(rows, states, strict=True)
            ],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        table = Table(title=f"publishers (min {min_eth} ETH, warn {warn_eth} ETH)")
        table.add_column("publisher", no_wrap=True)
        table.add_column("node", no_wrap=True)
        table.add_column("balance (ETH)", justify="right", no_wrap=True)
        table.add_column("state", no_wrap=True)
        for r, s in zip(rows, states, strict=True):
            table.add_row(r.address, r.node, format_eth(balances[r.address]), f"[{_STATE_STYLE[s]}]{s}[/]")
        _console().print(table)
    if critical:
        raise typer.Exit(EXIT_FAILURE_FOUND)


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "[bold red]NO[/]")


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def monitor(
    *,
    attester: str = typer.Option(..., "--attester", envvar=f"{_ENV}ATTESTER", help="The attester address."),
    rpc_url: L1RpcUrl,
    rollup: RollupAddress,
    slots: int = typer.Option(
        DEFAULT_MONITOR_SLOTS, "--slots", min=1, help="How many finished slots to look back over."
    ),
    follow: bool = typer.Option(False, "--follow", help="Keep watching new slots until interrupted."),
    as_json: bool = typer.Option(False, "--json", help="JSON (with --follow: one JSON object per line)."),
) -> None:
    """From L1 alone: each slot the attester was due, proposed or not, attested or not; totals and rates."""
    from web3.exceptions import BadFunctionCallOutput, ContractLogicError

    from ha_sequencer.l1.client import RollupClient
    from ha_sequencer.monitoring.duties import DutyMonitor
    from ha_sequencer.monitoring.l1 import L1Wallet

    (attester_address,) = checksum_addresses([attester], "--attester")
    (rollup_address,) = checksum_addresses([rollup], "--rollup")
    try:
        duty_monitor = DutyMonitor(RollupClient([rpc_url], rollup_address), L1Wallet(rpc_url))
    except (BadFunctionCallOutput, ContractLogicError):
        raise InputError(f"--rollup {rollup_address}: no Rollup contract answers at this address") from None
    report = duty_monitor.last_slots(attester_address, slots)
    if as_json and not follow:
        typer.echo(json.dumps({"rollup": rollup_address, **report.as_json()}, indent=2))
        return
    if not follow:
        _print_report(report, slots)
        return
    _follow(duty_monitor, report, as_json)


def _print_report(report, slots: int) -> None:
    console = _console()
    table = Table(
        title=f"attester {report.attester}: slots {report.from_slot}…{report.to_slot} ({slots} slots)"
    )
    for column in ("slot", "epoch", "role", "block on L1", "proposed", "attested"):
        table.add_column(column, no_wrap=True)
    for d in report.duties:
        table.add_row(*_row(d))
    console.print(table)
    console.print(_totals_line(report.totals))


def _row(d) -> tuple[str, ...]:
    role = "proposer" if d.proposer else "committee"
    return (str(d.slot), str(d.epoch), role, "yes" if d.block else "no", _mark(d.proposed), _mark(d.attested))


def _totals_line(t) -> str:
    return (
        f"{t.slots} slots: proposed {t.proposed}/{t.proposer_duties} ({_pct(t.proposal_rate)}), "
        f"attested {t.attested}/{t.attestation_duties} ({_pct(t.attestation_rate)}; "
        f"{t.slots_without_block} due slot(s) without a block on L1, "
        f"{_pct(t.attestation_rate_in_blocks)} of slots with a block)"
    )


def _follow(duty_monitor, report, as_json: bool) -> None:
    console = _console()
    totals = report.totals
    for d in report.duties:
        if as_json:
            typer.echo(json.dumps({"attester": report.attester, **d.as_json()}))
        else:
            console.print(" ".join(_row(d)))
    next_slot = report.to_slot + 1
    try:
        while True:
            current = duty_monitor.current_slot()
            if current > next_slot:
                chunk = duty_monitor.report(report.attester, next_slot, current - 1)
                totals = totals + chunk.totals
                for d in chunk.duties:
                    if as_json:
                        typer.echo(json.dumps({"attester": report.attester, **d.as_json()}))
                    else:
                        console.print(" ".join(_row(d)))
                next_slot = current
            # poll L1's clock rather than ours: a devnet's L1 time may run ahead of the wall clock
            time.sleep(max(FOLLOW_POLL_MIN_S, min(FOLLOW_POLL_MAX_S, duty_monitor.params.slot_duration / 4)))
    except KeyboardInterrupt:
        if as_json:
            typer.echo(json.dumps({"attester": report.attester, "totals": totals.as_json()}))
        else:
            console.print(_totals_line(totals))

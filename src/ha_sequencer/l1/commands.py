"""`ha-sequencer l1 build / deploy / register`: compile the contract, deploy a Rollup, stake validators."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address

from ha_sequencer.cli_options import L1RpcUrl
from ha_sequencer.errors import InputError
from ha_sequencer.keys.errors import redact
from ha_sequencer.keys.schema import is_private_key_hex
from ha_sequencer.protocol.constants import (
    DEVNET_COMMITTEE_SIZE,
    DEVNET_EPOCH_LENGTH,
    DEVNET_MIN_STAKE,
    DEVNET_SLASH_AMOUNT,
    DEVNET_SLOT_DURATION,
    WEI_PER_ETH,
)

_ENV = "HA_SEQUENCER_"

app = typer.Typer(
    help="L1: compile the Rollup contract, deploy it, register validators.", no_args_is_help=True
)


def _read_key(path: Path, flag: str) -> LocalAccount:
    try:
        raw = path.expanduser().read_text().strip()
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot read ({exc.strerror})") from None
    if not is_private_key_hex(raw):
        raise InputError(f"{flag} {path}: expected one private key, 0x + 64 hex digits")
    try:
        return Account.from_key(raw)
    except ValueError:
        raise InputError(f"{flag} {path}: not a valid secp256k1 private key") from None


def _eth_to_wei(value: str, flag: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InputError(f"{flag}: {value!r} is not a number of ETH") from None
    wei = amount * WEI_PER_ETH
    if amount < 0 or wei != wei.to_integral_value():
        raise InputError(f"{flag}: {value!r} must be a non-negative amount with at most 18 decimals")
    return int(wei)


def _address(value: str, flag: str) -> str:
    if not is_address(value):
        # redact: a private key pasted where an address belongs never reaches the message
        raise InputError(f"{flag}: {redact(repr(value))} is not an Ethereum address")
    return to_checksum_address(value)


def _allocation(entries: list[str]) -> list[tuple[str, int]]:
    out = []
    for n, entry in enumerate(entries, 1):
        address, sep, amount = entry.partition("=")
        if not sep or not amount.strip().isdigit():
            raise InputError(
                f"--fund #{n}: expected ADDRESS=AMOUNT (L2 units, an integer), got {redact(repr(entry))}"
            )
        out.append((_address(address.strip(), f"--fund #{n}"), int(amount)))
    return out


@app.command("build")
def build_cmd(
    check: bool = typer.Option(
        False, "--check", help="Only compare the committed artifacts; exit 1 if stale."
    ),
) -> None:
    """Compile contracts/*.sol with solcjs into artifacts/*.json (ABI + bytecode)."""
    from ha_sequencer.l1.build import ARTIFACTS_DIR, build, compile_sources, render

    if check:
        stale = [
            name
            for name, artifact in compile_sources().items()
            if not (ARTIFACTS_DIR / f"{name}.json").is_file()
            or (ARTIFACTS_DIR / f"{name}.json").read_text() != render(artifact)
        ]
        if stale:
            typer.echo(f"stale artifacts: {', '.join(stale)} (run `ha-sequencer l1 build`)", err=True)
            raise typer.Exit(1)
        typer.echo("artifacts match the sources")
        return
    for path in build():
        typer.echo(str(path))


@app.command("deploy")
def deploy_cmd(
    rpc_url: L1RpcUrl,
    private_key_file: Path = typer.Option(
        ...,
        "--private-key-file",
        envvar=f"{_ENV}PRIVATE_KEY_FILE",
        help="File with the deployer's key (0x…64 hex).",
    ),
    slot_duration: int = typer.Option(
        DEVNET_SLOT_DURATION,
        "--slot-duration",
        envvar=f"{_ENV}SLOT_DURATION",
        help="Seconds per slot.",
        min=1,
    ),
    epoch_length: int = typer.Option(
        DEVNET_EPOCH_LENGTH, "--epoch-length", envvar=f"{_ENV}EPOCH_LENGTH", help="Slots per epoch.", min=1
    ),
    committee_size: int = typer.Option(
        DEVNET_COMMITTEE_SIZE,
        "--committee-size",
        envvar=f"{_ENV}COMMITTEE_SIZE",
        help="Attesters per committee (at most 256).",
        min=1,
        max=256,
    ),
    min_stake: str = typer.Option(
        str(Decimal(DEVNET_MIN_STAKE) / WEI_PER_ETH),
        "--min-stake",
        envvar=f"{_ENV}MIN_STAKE",
        help="Minimum stake in ETH.",
    ),
    slash_amount: str = typer.Option(
        str(Decimal(DEVNET_SLASH_AMOUNT) / WEI_PER_ETH),
        "--slash-amount",
        envvar=f"{_ENV}SLASH_AMOUNT",
        help="ETH slashed per equivocation.",
    ),
    genesis_time: int | None = typer.Option(
        None,
        "--genesis-time",
        envvar=f"{_ENV}GENESIS_TIME",
        help="Unix time of slot 0 (default: the deployment block).",
    ),
    genesis_seed: str | None = typer.Option(
        None,
        "--genesis-seed",
        envvar=f"{_ENV}GENESIS_SEED",
        help="32-byte hex committee seed (default: random).",
    ),
    fund: list[str] = typer.Option([], "--fund", help="L2 genesis balance ADDRESS=AMOUNT (repeatable)."),
    genesis_keystore: list[Path] = typer.Option(
        [],
        "--genesis-keystore",
        help="Keystore whose attesters are staked by the deployer, active from epoch 0.",
    ),
    withdrawer: str | None = typer.Option(
        None, "--withdrawer", help="Withdrawer of genesis validators (default: the deployer)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the network parameters as JSON."),
) -> None:
    """Deploy a Rollup; prints its address (or the network parameters with --json)."""
    from ha_sequencer.keys import load_keystore
    from ha_sequencer.l1.client import RollupClient
    from ha_sequencer.l1.deploy import GenesisValidator, deploy_rollup

    deployer = _read_key(private_key_file, "--private-key-file")
    seed = None
    if genesis_seed is not None:
        try:
            seed = bytes.fromhex(genesis_seed.removeprefix("0x"))
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise InputError("--genesis-seed: expected 32 bytes of hex")
    owner = _address(withdrawer, "--withdrawer") if withdrawer else deployer.address
    validators = [
        GenesisValidator(v.attester.address, owner, v.bls_public or bytes(32))
        for path in genesis_keystore
        for v in load_keystore(path).validators
    ]
    address = deploy_rollup(
        rpc_url,
        deployer,
        slot_duration=slot_duration,
        epoch_length=epoch_length,
        committee_size=committee_size,
        min_stake=_eth_to_wei(min_stake, "--min-stake"),
        slash_amount=_eth_to_wei(slash_amount, "--slash-amount"),
        genesis_time=genesis_time,
        genesis_seed=seed,
        genesis_allocation=_allocation(fund),
        genesis_validators=validators,
    )
    if not as_json:
        typer.echo(address)
        return
    p = RollupClient([rpc_url], address).params()
    typer.echo(
        json.dumps(
            {
                "rollup": p.rollup,
                "chainId": p.chain_id,
                "genesisTime": p.genesis_time,
                "slotDuration": p.slot_duration,
                "epochLength": p.epoch_length,
                "committeeSize": p.committee_size,
                "genesisSeed": "0x" + p.genesis_seed.hex(),
                "minStake": str(p.min_stake),
                "slashAmount": str(p.slash_amount),
                "genesisValidators": len(validators),
            },
            indent=2,
        )
    )


@app.command("register")
def register_cmd(
    *,
    keystore: Path = typer.Option(
        ..., "--keystore", envvar=f"{_ENV}KEYSTORE", help="Keystore file or directory."
    ),
    rpc_url: L1RpcUrl,
    rollup: str = typer.Option(..., "--rollup", envvar=f"{_ENV}ROLLUP", help="Rollup contract address."),
    stake: str | None = typer.Option(
        None,
        "--stake",
        envvar=f"{_ENV}STAKE",
        help="Stake per attester in ETH (default: the contract's minimum).",
    ),
    funder_key_file: Path | None = typer.Option(
        None,
        "--funder-key-file",
        envvar=f"{_ENV}FUNDER_KEY_FILE",
        help="Key paying the stake (default: the keystore's fundingAccount).",
    ),
    withdrawer: str | None = typer.Option(
        None, "--withdrawer", help="Withdrawer address (default: the funder)."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        envvar=f"{_ENV}KEYSTORE_PASSWORD_FILE",
        help="Password for encrypted key files.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the registrations as JSON."),
) -> None:
    """Stake every attester of a keystore on the Rollup (active two epochs later)."""
    from ha_sequencer.keys import PasswordSource, load_keystore
    from ha_sequencer.l1.client import RollupClient

    passwords = PasswordSource.from_file(password_file) if password_file else None
    loaded = load_keystore(keystore, passwords=passwords)
    if funder_key_file is not None:
        funder = _read_key(funder_key_file, "--funder-key-file")
    elif loaded.funding_account is not None:
        funder = loaded.funding_account
    else:
        raise InputError(f"--keystore {keystore}: no fundingAccount; pass --funder-key-file")
    client = RollupClient([rpc_url], _address(rollup, "--rollup"))
    amount = _eth_to_wei(stake, "--stake") if stake is not None else client.params().min_stake
    owner = _address(withdrawer, "--withdrawer") if withdrawer else funder.address
    rows = []
    for v in loaded.validators:
        tx = client.deposit(funder, v.attester.address, owner, v.bls_public or bytes(32), amount)
        client.wait_receipt(tx, 60)
        info = client.validator(v.attester.address)
        rows.append(
            {
                "attester": v.attester.address,
                "withdrawer": owner,
                "stake": str(info.stake),
                "activationEpoch": info.activation_epoch,
                "tx": "0x" + tx.hex(),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            typer.echo(
                f"{row['attester']} staked {Decimal(row['stake']) / WEI_PER_ETH} ETH, active from epoch "
                f"{row['activationEpoch']} (tx {row['tx']})"
            )

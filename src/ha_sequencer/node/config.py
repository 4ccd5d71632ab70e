"""The node's configuration: flags/env parsed once into a frozen `NodeConfig` (DESIGN.md: Node)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ha_sequencer.errors import InputError
from ha_sequencer.ha.faults import FAULT_ENV, parse_faults
from ha_sequencer.monitoring.alerts import check_webhook_url
from ha_sequencer.monitoring.eth import parse_eth
from ha_sequencer.monitoring.service import FundsSettings
from ha_sequencer.monitoring.thresholds import Thresholds
from ha_sequencer.redact import redact_dsn, redact_endpoint

DEFAULT_HTTP_PORT = 8080
DEFAULT_P2P_PORT = 40400
DEFAULT_NETWORK = "devnet"
HA_DB_FILENAME = "duties.sqlite"
P2P_KEY_FILENAME = "p2p-key"

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class ConfigError(InputError):
    """A flag or environment value the node cannot use (exit 2)."""


def parse_urls(value: str, *, flag: str) -> list[str]:
    """Split a comma-separated list of http(s)/ws URLs, rejecting empty or malformed entries."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"{flag}: at least one URL is required")
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ConfigError(f"{flag}: not an http(s) URL: {redact_endpoint(u)!r}")
    return urls


def parse_multiaddrs(value: str | None) -> list[str]:
    """Split a comma-separated list of libp2p multiaddrs (each must carry a /p2p/ peer id)."""
    if not value:
        return []
    out = [m.strip() for m in value.split(",") if m.strip()]
    for m in out:
        if not m.startswith("/") or "/p2p/" not in m:
            raise ConfigError(f"--bootstrap-nodes: not a multiaddr with /p2p/<peer id>: {m!r}")
    return out


# Spam policy: the protocol takes any fee, a node's mempool and gossip relay take at least this (L2 units).
# Zero-fee txs cost a sender nothing, so an unfunded key could fill every mempool and gossip link for free.
DEFAULT_MIN_TX_FEE = 1


@dataclass(frozen=True)
class HaDb:
    """Where the duty store lives: `kind` is "sqlite" or "postgres"; `url` is what `ha.open_store` takes."""

    kind: str
    url: str = field(repr=False)

    @property
    def display(self) -> str:
        """The URL safe to log (credentials removed)."""
        if self.kind == "sqlite":
            return self.url
        return redact_dsn(self.url)


def parse_ha_db(value: str | None, data_dir: Path) -> HaDb:
    """`sqlite:///path`, `postgresql://…` (or `postgres://…`); default a SQLite file in the data dir."""
    if not value:
        return HaDb("sqlite", f"sqlite:///{(data_dir / HA_DB_FILENAME).resolve()}")
    if value.startswith("sqlite:///"):
        if len(value) <= len("sqlite:///"):
            raise ConfigError("--ha-db: sqlite URL needs a path, e.g. sqlite:///var/lib/ha/duties.sqlite")
        return HaDb("sqlite", value)
    if value.startswith(("postgresql://", "postgres://")):
        return HaDb("postgres", value)
    raise ConfigError(f"--ha-db: expected sqlite:///PATH or postgresql://…, got {redact_dsn(value)!r}")


def check_address(value: str, *, flag: str) -> str:
    """A 0x-prefixed 20-byte hex address."""
    if not _ADDRESS.match(value):
        raise ConfigError(f"{flag}: not a 20-byte hex address: {value!r}")
    return value


def default_node_id() -> str:
    """A short random node id (stable ids should be passed with --node-id)."""
    return f"node-{secrets.token_hex(3)}"


def check_funds(funds: FundsSettings) -> FundsSettings:
    """The funds flags checked now, so a bad amount or webhook stops `node start` with exit 2, not later."""
    try:
        Thresholds.from_eth(funds.min_eth, funds.warn_eth, flags=("--min-balance", "--warn-balance"))
        amount = parse_eth(funds.topup_amount_eth, "--topup-amount")
        if funds.topup_threshold_eth is not None:
            parse_eth(funds.topup_threshold_eth, "--topup-threshold")
            if amount <= 0:
                raise ConfigError(f"--topup-amount: must be positive (got {funds.topup_amount_eth!r})")
        if not funds.check_interval_s > 0:
            raise ConfigError(f"--balance-check-interval: must be positive (got {funds.check_interval_s})")
        if funds.alert_webhook:
            check_webhook_url(funds.alert_webhook)
    except ConfigError:
        raise
    except InputError as exc:
        message = str(exc)
        if not message.startswith("--"):  # the thresholds' order check does not know the flags' names
            message = f"--warn-balance/--min-balance: {message}"
        raise ConfigError(message) from None
    return funds


@dataclass(frozen=True)
class NodeConfig:
    """Everything `node start` needs, validated; secrets never in repr."""

    keystore: Path
    l1_rpc_urls: tuple[str, ...] = field(repr=False)
    rollup: str
    data_dir: Path
    ha_db: HaDb
    node_id: str
    network: str = DEFAULT_NETWORK
    # a multi-host store whose primary has no synchronous standby is refused unless this is set
    ha_db_allow_async: bool = False
    host: str = "127.0.0.1"
    port: int = DEFAULT_HTTP_PORT
    p2p_port: int = DEFAULT_P2P_PORT
    p2p_host: str = "127.0.0.1"
    p2p_announce_port: int = 0  # 0: peers are told the listen port
    bootstrap_nodes: tuple[str, ...] = ()
    allow_insecure_keystore: bool = False
    keystore_password_file: Path | None = None
    keystore_password: str | None = field(default=None, repr=False)
    lease_s: float | None = None
    doppelganger_slots: int = 0
    min_tx_fee: int = DEFAULT_MIN_TX_FEE
    # the guard's fault points (a test and chaos facility) honour HA_GUARD_FAULTS only with this flag
    allow_fault_injection: bool = False
    # publisher balance thresholds, top-ups and the alert webhook
    funds: FundsSettings = FundsSettings()

    @property
    def l1_urls_display(self) -> list[str]:
        """The L1 URLs safe for logs."""
        return [redact_endpoint(u) for u in self.l1_rpc_urls]

    @property
    def p2p_key_path(self) -> Path:
        """The persisted secp256k1 libp2p identity key."""
        return self.data_dir / P2P_KEY_FILENAME


def build_config(
    *,
    keystore: Path,
    l1_rpc_urls: str,
    rollup: str,
    data_dir: Path,
    ha_db: str | None,
    node_id: str | None,
    network: str,
    host: str,
    port: int,
    p2p_port: int,
    p2p_host: str,
    bootstrap_nodes: str | None,
    allow_insecure_keystore: bool,
    keystore_password_file: Path | None,
    keystore_password: str | None,
    lease_s: float | None = None,
    doppelganger_slots: int = 0,
    min_tx_fee: int = DEFAULT_MIN_TX_FEE,
    funds: FundsSettings | None = None,
    ha_db_allow_async: bool = False,
    allow_fault_injection: bool = False,
    p2p_announce_port: int = 0,
) -> NodeConfig:
    """Validate raw flag values into a NodeConfig (raises ConfigError naming the flag)."""
    if not keystore.exists():
        raise ConfigError(f"--keystore: {keystore} does not exist")
    check_address(rollup, flag="--rollup")
    for flag, p in (("--port", port), ("--p2p-port", p2p_port), ("--p2p-announce-port", p2p_announce_port)):
        if not 0 <= p <= 65535:
            raise ConfigError(f"{flag}: {p} is not a TCP port")
    if doppelganger_slots < 0:
        raise ConfigError(f"--doppelganger-slots: must be 0 or more, got {doppelganger_slots}")
    if min_tx_fee < 0:
        raise ConfigError(f"--min-tx-fee: must be 0 or more, got {min_tx_fee}")
    if os.environ.get(FAULT_ENV) and not allow_fault_injection:
        raise ConfigError(
            f"{FAULT_ENV} is set: fault injection makes the duty guard kill or fail itself on purpose "
            "(tests and chaos runs only); unset it, or pass --allow-fault-injection"
        )
    if allow_fault_injection and os.environ.get(FAULT_ENV):
        try:
            parse_faults(os.environ[FAULT_ENV])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if keystore_password_file is not None and not keystore_password_file.is_file():
        raise ConfigError(f"--keystore-password-file: {keystore_password_file} is not a file")
    data_dir.mkdir(parents=True, exist_ok=True)
    return NodeConfig(
        keystore=keystore,
        l1_rpc_urls=tuple(parse_urls(l1_rpc_urls, flag="--l1-rpc-urls")),
        rollup=rollup,
        data_dir=data_dir,
        ha_db=parse_ha_db(ha_db, data_dir),
        node_id=node_id or default_node_id(),
        network=network,
        host=host,
        port=port,
        p2p_port=p2p_port,
        p2p_host=p2p_host,
        p2p_announce_port=p2p_announce_port,
        bootstrap_nodes=tuple(parse_multiaddrs(bootstrap_nodes)),
        allow_insecure_keystore=allow_insecure_keystore,
        keystore_password_file=keystore_password_file,
        keystore_password=keystore_password,
        lease_s=lease_s,
        doppelganger_slots=doppelganger_slots,
        min_tx_fee=min_tx_fee,
        allow_fault_injection=allow_fault_injection,
        funds=check_funds(funds or FundsSettings()),
        ha_db_allow_async=ha_db_allow_async,
    )

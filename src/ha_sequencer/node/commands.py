"""`ha-sequencer node …`: run a sequencer node."""

from __future__ import annotations

from pathlib import Path

import typer

from ha_sequencer.cli_options import RollupAddress
from ha_sequencer.monitoring.funds import DEFAULT_CHECK_INTERVAL_S, DEFAULT_TOPUP_AMOUNT_ETH
from ha_sequencer.monitoring.service import FundsSettings
from ha_sequencer.monitoring.thresholds import DEFAULT_MIN_ETH, DEFAULT_WARN_ETH
from ha_sequencer.node.config import (
    DEFAULT_HTTP_PORT,
    DEFAULT_MIN_TX_FEE,
    DEFAULT_NETWORK,
    DEFAULT_P2P_PORT,
    build_config,
)

app = typer.Typer(help="Run a sequencer node.", no_args_is_help=True)

_ENV = "HA_SEQUENCER_"


@app.callback()
def _node() -> None:
    """Run a sequencer node."""


@app.command("start")
def start(
    *,
    keystore: Path = typer.Option(
        ...,
        "--keystore",
        envvar=f"{_ENV}KEYSTORE",
        help="Keystore file or directory of keystore .json files.",
    ),
    l1_rpc_urls: str = typer.Option(
        ...,
        "--l1-rpc-urls",
        envvar=f"{_ENV}L1_RPC_URLS",
        help="L1 JSON-RPC URLs, comma-separated (failover order).",
    ),
    rollup: RollupAddress,
    data_dir: Path = typer.Option(
        Path("./ha-sequencer-data"), "--data-dir", envvar=f"{_ENV}DATA_DIR", help="Node data directory."
    ),
    port: int = typer.Option(
        DEFAULT_HTTP_PORT, "--port", envvar=f"{_ENV}PORT", help="HTTP port for /status, /metrics, JSON-RPC."
    ),
    host: str = typer.Option("127.0.0.1", "--host", envvar=f"{_ENV}HOST", help="HTTP bind address."),
    p2p_port: int = typer.Option(
        DEFAULT_P2P_PORT, "--p2p-port", envvar=f"{_ENV}P2P_PORT", help="libp2p TCP port."
    ),
    p2p_host: str = typer.Option(
        "127.0.0.1", "--p2p-host", envvar=f"{_ENV}P2P_HOST", help="libp2p bind address."
    ),
    p2p_announce_port: int = typer.Option(
        0,
        "--p2p-announce-port",
        envvar=f"{_ENV}P2P_ANNOUNCE_PORT",
        help="The TCP port peers are told to dial when a proxy or NAT forwards it to --p2p-port "
        "(default: --p2p-port).",
    ),
    bootstrap_nodes: str = typer.Option(
        "", "--bootstrap-nodes", envvar=f"{_ENV}BOOTSTRAP_NODES", help="Peer multiaddrs, comma-separated."
    ),
    ha_db: str = typer.Option(
        "",
        "--ha-db",
        envvar=f"{_ENV}HA_DB",
        help="Duty store: sqlite:///PATH or postgresql://… (default: SQLite file in the data dir).",
    ),
    ha_db_allow_async: bool = typer.Option(
        False,
        "--ha-db-allow-async",
        envvar=f"{_ENV}HA_DB_ALLOW_ASYNC",
        help="Start although the --ha-db URL names several hosts and the primary has no synchronous standby "
        "(a failover may then forget recorded duties: a double-signing risk).",
    ),
    node_id: str = typer.Option(
        "", "--node-id", envvar=f"{_ENV}NODE_ID", help="This node's id (logs, duty store)."
    ),
    network: str = typer.Option(DEFAULT_NETWORK, "--network", envvar=f"{_ENV}NETWORK", help="Network name."),
    keystore_password_file: Path | None = typer.Option(
        None,
        "--keystore-password-file",
        envvar=f"{_ENV}KEYSTORE_PASSWORD_FILE",
        help="File holding the password of encrypted keys.",
    ),
    keystore_password: str | None = typer.Option(
        None,
        "--keystore-password",
        envvar=f"{_ENV}KEYSTORE_PASSWORD",
        help="Password of encrypted keys (prefer the env var or a file).",
        show_default=False,
    ),
    allow_insecure_keystore: bool = typer.Option(
        False,
        "--allow-insecure-keystore",
        envvar=f"{_ENV}ALLOW_INSECURE_KEYSTORE",
        help="Start even if a keystore file is readable by group/others (loud warning).",
    ),
    lease: float | None = typer.Option(
        None,
        "--duty-lease",
        envvar=f"{_ENV}DUTY_LEASE",
        help="Seconds before an unfinished duty may be adopted.",
    ),
    doppelganger_slots: int = typer.Option(
        0,
        "--doppelganger-slots",
        min=0,
        envvar=f"{_ENV}DOPPELGANGER_SLOTS",
        help="When no twin is live in the duty store at start, listen this many slots before the first "
        "signature: a signature of our attesters seen meanwhile halts instead (0: off).",
    ),
    min_tx_fee: int = typer.Option(
        DEFAULT_MIN_TX_FEE,
        "--min-tx-fee",
        min=0,
        envvar=f"{_ENV}MIN_TX_FEE",
        help="Spam policy: the lowest L2 fee a tx must pay to enter this node's mempool or be relayed "
        "by its gossip (blocks of other proposers are taken whatever their fees).",
    ),
    allow_fault_injection: bool = typer.Option(
        False,
        "--allow-fault-injection",
        envvar=f"{_ENV}ALLOW_FAULT_INJECTION",
        help="Honour HA_GUARD_FAULTS (the duty guard kills or fails itself on purpose: tests and chaos runs "
        "only). Without this flag a node refuses to start while HA_GUARD_FAULTS is set.",
    ),
    log_level: str = typer.Option("INFO", "--log-level", envvar=f"{_ENV}LOG_LEVEL", help="Log level."),
    min_balance: str = typer.Option(
        DEFAULT_MIN_ETH,
        "--min-balance",
        envvar=f"{_ENV}MIN_BALANCE",
        help="ETH below which a publisher is CRITICAL (error log, /status reason, alert).",
    ),
    warn_balance: str = typer.Option(
        DEFAULT_WARN_ETH,
        "--warn-balance",
        envvar=f"{_ENV}WARN_BALANCE",
        help="ETH below which a publisher is WARN (warning log, alert).",
    ),
    topup_threshold: str | None = typer.Option(
        None,
        "--topup-threshold",
        envvar=f"{_ENV}TOPUP_THRESHOLD",
        show_default=False,
        help="Top a publisher up from the keystore's fundingAccount below this many ETH (off unless set).",
    ),
    topup_amount: str = typer.Option(
        DEFAULT_TOPUP_AMOUNT_ETH,
        "--topup-amount",
        envvar=f"{_ENV}TOPUP_AMOUNT",
        help="ETH sent per top-up.",
    ),
    balance_check_interval: float = typer.Option(
        DEFAULT_CHECK_INTERVAL_S,
        "--balance-check-interval",
        envvar=f"{_ENV}BALANCE_CHECK_INTERVAL",
        min=0.1,
        help="Seconds between publisher balance checks.",
    ),
    alert_webhook: str | None = typer.Option(
        None,
        "--alert-webhook",
        envvar=f"{_ENV}ALERT_WEBHOOK",
        show_default=False,
        help="POST JSON alerts here: low balance, node unhealthy, refused signature, missed duty.",
    ),
) -> None:
    """Run a node until SIGTERM/SIGINT (exit 0)."""
    from ha_sequencer.node.app import run_node, setup_logging

    setup_logging(log_level)
    config = build_config(
        keystore=keystore,
        l1_rpc_urls=l1_rpc_urls,
        rollup=rollup,
        data_dir=data_dir,
        ha_db=ha_db or None,
        ha_db_allow_async=ha_db_allow_async,
        node_id=node_id or None,
        network=network,
        host=host,
        port=port,
        p2p_port=p2p_port,
        p2p_host=p2p_host,
        p2p_announce_port=p2p_announce_port,
        bootstrap_nodes=bootstrap_nodes or None,
        allow_insecure_keystore=allow_insecure_keystore,
        keystore_password_file=keystore_password_file,
        keystore_password=keystore_password,
        lease_s=lease,
        doppelganger_slots=doppelganger_slots,
        min_tx_fee=min_tx_fee,
        allow_fault_injection=allow_fault_injection,
        funds=FundsSettings(
            min_eth=min_balance,
            warn_eth=warn_balance,
            check_interval_s=balance_check_interval,
            topup_threshold_eth=topup_threshold,
            topup_amount_eth=topup_amount,
            alert_webhook=alert_webhook or None,
        ),
    )
    run_node(config)

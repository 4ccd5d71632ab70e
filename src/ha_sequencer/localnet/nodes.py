"""A local network on one machine: anvil, the Rollup with genesis validators, keystores, N node processes.

Reusable by tests, the devnet and `bench pipeline`. Keys are fresh random keys (test networks only);
keystores are written 0600 in the Aztec schema; each node is a real `ha-sequencer node start` OS process whose
peer key is created up front so every node can list all the others as bootstrap peers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ha_sequencer.errors import HASequencerError
from ha_sequencer.ha.faults import FAULT_ENV
from ha_sequencer.keys.bls import bls_public_key
from ha_sequencer.keys.files import write_private_file
from ha_sequencer.l1.anvil import Anvil, free_port
from ha_sequencer.l1.deploy import GenesisValidator, deploy_rollup
from ha_sequencer.l1.fees import DEFAULT_PRIORITY_FEE_WEI, TRANSFER_GAS, latest_base_fee, max_fee_per_gas
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of
from ha_sequencer.protocol.block import SignedTx, sign_tx
from ha_sequencer.protocol.constants import NetworkParams

PUBLISHER_FUNDING_WEI = 50 * 10**18
HA_DB_ENV = "HA_SEQUENCER_HA_DB"  # `node start --ha-db` from the environment (a URL may hold a password)
BLS_ORDER = 21888242871839275222246405745257275088548364400416034343698204186575808495617


class LocalnetError(HASequencerError):
    """The local network could not be set up or a node misbehaved (names the node)."""

    exit_code = 1


@dataclass(frozen=True)
class LocalValidator:
    """One test validator: attester (ETH + BLS) and its publishers; keys are never in repr."""

    attester: LocalAccount = field(repr=False)
    bls_secret: int = field(repr=False)
    publishers: tuple[LocalAccount, ...] = field(repr=False)
    fee_recipient: bytes = b""

    @property
    def address(self) -> str:
        """The attester address."""
        return self.attester.address

    def __repr__(self) -> str:
        return f"LocalValidator({self.address}, publishers={[p.address for p in self.publishers]})"


def generate_validators(count: int, publishers_each: int = 1) -> list[LocalValidator]:
    """Fresh random validators (attester + BLS + publishers); the fee recipient is the attester's id."""
    out = []
    for _ in range(count):
        attester = Account.create()
        bls = int.from_bytes(os.urandom(32), "big") % (BLS_ORDER - 1) + 1
        publishers = tuple(Account.create() for _ in range(publishers_each))
        out.append(LocalValidator(attester, bls, publishers, bytes(12) + bytes.fromhex(attester.address[2:])))
    return out


def keystore_document(entries: Sequence[tuple[LocalValidator, Sequence[int]]]) -> dict[str, Any]:
    """A schemaVersion 1 keystore: each validator with the publishers at the given indexes."""
    validators = []
    for v, publisher_indexes in entries:
        pubs = [v.publishers[i].key.hex() for i in publisher_indexes]
        validators.append(
            {
                "attester": {
                    "eth": _hex_key(v.attester),
                    "bls": "0x" + v.bls_secret.to_bytes(32, "big").hex(),
                },
                "publisher": [_with_0x(p) for p in pubs] if len(pubs) != 1 else _with_0x(pubs[0]),
                "feeRecipient": "0x" + v.fee_recipient.hex(),
            }
        )
    return {"schemaVersion": 1, "validators": validators}


def _hex_key(account: LocalAccount) -> str:
    return _with_0x(account.key.hex())


def _with_0x(h: str) -> str:
    return h if h.startswith("0x") else "0x" + h


def write_keystore(path: Path, document: dict[str, Any]) -> Path:
    """Write a keystore file with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, json.dumps(document, indent=2).encode())
    return path


def fund_accounts(rpc_url: str, funder: LocalAccount, addresses: Sequence[str], amount_wei: int) -> None:
    """Send `amount_wei` to each address from `funder` and wait for the last transfer."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    chain_id = w3.eth.chain_id
    base = latest_base_fee(w3)
    last = None
    for i, address in enumerate(addresses):
        tx = {
            "type": 2,
            "chainId": chain_id,
            "to": Web3.to_checksum_address(address),
            "value": amount_wei,
            "gas": TRANSFER_GAS,
            "nonce": nonce + i,
            "maxFeePerGas": max_fee_per_gas(base, DEFAULT_PRIORITY_FEE_WEI),
            "maxPriorityFeePerGas": DEFAULT_PRIORITY_FEE_WEI,
        }
        last = w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction)
    if last is not None:
        w3.eth.wait_for_transaction_receipt(last, timeout=30, poll_latency=0.05)


def signed_transfer(
    params: NetworkParams, sender: LocalAccount, to: str, amount: int, fee: int, nonce: int
) -> SignedTx:
    """An L2 transfer signed by `sender` (for tests, benchmarks and the devnet)."""
    return sign_tx(sender, params, to=Web3.to_checksum_address(to), amount=amount, fee=fee, nonce=nonce)


def _entry_command() -> list[str]:
    """The `ha-sequencer node start` command of this interpreter's environment."""
    return [sys.executable, "-m", "ha_sequencer.cli", "node", "start"]


@dataclass
class NodeProcess:
    """One `ha-sequencer node start` process of the local network."""

    name: str
    data_dir: Path
    keystore: Path
    http_port: int
    p2p_port: int
    peer_id: str
    ha_db: str | None = None
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def multiaddr(self) -> str:
        """The node's libp2p address with its peer id."""
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    @property
    def url(self) -> str:
        """The node's HTTP base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        """Where the node's stdout/stderr go."""
        return self.data_dir / "node.log"

    def command(self, l1_urls: Sequence[str], rollup: str, bootstrap: Sequence[str]) -> list[str]:
        """The command line that starts this node."""
        cmd = [
            *_entry_command(),
            "--keystore", str(self.keystore),
            "--l1-rpc-urls", ",".join(l1_urls),
            "--rollup", rollup,
            "--data-dir", str(self.data_dir),
            "--port", str(self.http_port),
            "--p2p-port", str(self.p2p_port),
            "--node-id", self.name,
            "--network", "localnet",
        ]  # fmt: skip
        if bootstrap:
            cmd += ["--bootstrap-nodes", ",".join(bootstrap)]
        if self.extra_env.get(FAULT_ENV):
            cmd.append("--allow-fault-injection")
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        """The process environment: the duty store URL rides here, not on argv (`ps` shows argv)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(HA_DB_ENV, None)  # not inherited: without `ha_db` the node keeps its own SQLite file
        if self.ha_db:
            env[HA_DB_ENV] = self.ha_db
        return {**env, **self.extra_env}

    def start(self, l1_urls: Sequence[str], rollup: str, bootstrap: Sequence[str]) -> None:
        """Spawn the process (logs appended to `log_path`)."""
        if self.running:
            raise LocalnetError(f"node {self.name} is already running (pid {self.pid})")
        log = open(self.log_path, "ab")  # noqa: SIM115 — owned by the child for its lifetime
        try:
            self.proc = subprocess.Popen(
                self.command(l1_urls, rollup, bootstrap),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        """The process id (LocalnetError if the node was never started)."""
        if self.proc is None:
            raise LocalnetError(f"node {self.name} was never started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait; SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def status(self, timeout: float = 3.0) -> tuple[int, dict[str, Any]]:
        """GET /status → (HTTP code, JSON)."""
        r = httpx.get(f"{self.url}/status", timeout=timeout)
        return r.status_code, r.json()

    def rpc(self, method: str, params: Any = None, timeout: float = 5.0) -> dict[str, Any]:
        """One JSON-RPC call; returns the whole response object (result or error)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params if params is not None else []}
        return httpx.post(self.url + "/", json=body, timeout=timeout).json()

    def metrics(self, timeout: float = 3.0) -> str:
        """GET /metrics text."""
        return httpx.get(f"{self.url}/metrics", timeout=timeout).text

    def log_text(self) -> str:
        """The node's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class LocalNet:
    """anvil + Rollup + node processes under `workdir` (context manager stops everything)."""

    def __init__(
        self,
        workdir: Path,
        *,
        slot_duration: int = 3,
        epoch_length: int = 8,
        committee_size: int = 48,
        anvil: Anvil | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.slot_duration = slot_duration
        self.epoch_length = epoch_length
        self.committee_size = committee_size
        self._own_anvil = anvil is None
        self.anvil = anvil
        self.rollup: str | None = None
        self.nodes: dict[str, NodeProcess] = {}
        self.users: list[LocalAccount] = []
        self.l1_urls: list[str] = []

    def __enter__(self) -> LocalNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node, then anvil (if we started it)."""
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.stop(timeout=10)
        if self._own_anvil and self.anvil is not None:
            self.anvil.stop()

    def deploy(
        self, validators: Sequence[LocalValidator], *, users: int = 4, user_balance: int = 10**21
    ) -> str:
        """Start anvil if needed, deploy the Rollup with `validators` active from genesis, fund publishers."""
        if self.anvil is None:
            self.anvil = Anvil()
        funder = self.anvil.accounts[0]
        self.users = [Account.create() for _ in range(users)]
        self.rollup = deploy_rollup(
            self.anvil.rpc_url,
            funder,
            slot_duration=self.slot_duration,
            epoch_length=self.epoch_length,
            committee_size=self.committee_size,
            genesis_allocation=[(u.address, user_balance) for u in self.users],
            genesis_validators=[
                GenesisValidator(v.address, v.address, bls_public_key(v.bls_secret)) for v in validators
            ],
        )
        publishers = sorted({p.address for v in validators for p in v.publishers})
        fund_accounts(self.anvil.rpc_url, self.anvil.accounts[1], publishers, PUBLISHER_FUNDING_WEI)
        self.l1_urls = [self.anvil.rpc_url]
        return self.rollup

    def add_node(
        self,
        name: str,
        entries: Sequence[tuple[LocalValidator, Sequence[int]]],
        *,
        ha_db: str | None = None,
        extra_args: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
    ) -> NodeProcess:
        """Prepare a node: data dir, 0600 keystore, peer key, ports (not started)."""
        if name in self.nodes:
            raise LocalnetError(f"node {name} exists")
        data_dir = self.workdir / name
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keystore = write_keystore(data_dir / "keystore.json", keystore_document(entries))
        peer_id = peer_id_of(load_or_create_peer_key(data_dir / "p2p-key"))
        node = NodeProcess(
            name,
            data_dir,
            keystore,
            free_port(),
            free_port(),
            peer_id,
            ha_db,
            list(extra_args),
            extra_env or {},
        )
        self.nodes[name] = node
        return node

    def start(self, names: Sequence[str] | None = None, *, l1_urls: Sequence[str] | None = None) -> None:
        """Start nodes (all by default); each bootstraps from every other node of the network."""
        if self.rollup is None:
            raise LocalnetError("deploy() first")
        for name in names or list(self.nodes):
            node = self.nodes[name]
            bootstrap = [n.multiaddr for n in self.nodes.values() if n.name != name]
            node.start(l1_urls or self.l1_urls, self.rollup, bootstrap)

    def wait_ready(self, names: Sequence[str] | None = None, timeout: float = 60.0) -> None:
        """Wait until each node answers /status with 200 (raises with the node's log tail on timeout)."""
        deadline = time.monotonic() + timeout
        for name in names or list(self.nodes):
            node = self.nodes[name]
            while True:
                if not node.running:
                    raise LocalnetError(
                        f"node {name} exited ({node.proc.returncode if node.proc else None}):\n"
                        f"{node.log_text()[-3000:]}"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    code, _ = node.status()
                    if code == 200:
                        break
                if time.monotonic() > deadline:
                    raise LocalnetError(
                        f"node {name} not healthy after {timeout:.0f} s:\n{node.log_text()[-3000:]}"
                    )
                time.sleep(0.25)

"""`devnet up`: a whole HA network on one machine, set up the way an operator would (DESIGN.md workflow 1-7).

anvil → keys with the real `validator-keys new` and `split` commands (a fresh mnemonic handed to them through
the environment, never written anywhere) → `validator-keys check` of the HA fleet → deploy the Rollup with the
validators registered at genesis → fund every publisher → one `node start` OS process per node, each with its
own data dir, ports and log; the HA identity's nodes share one duty store (SQLite file, or `--ha-db`).
Stopping: SIGTERM to every node (they finish the duty in hand), then anvil; the state file goes away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mnemonic import Mnemonic

from ha_sequencer.devnet.defaults import (
    DEFAULT_DIR,
    DEFAULT_EPOCH_LENGTH,
    DEFAULT_HA_NODES,
    DEFAULT_SLOT_DURATION,
    DEFAULT_VALIDATORS,
)
from ha_sequencer.devnet.prometheus import CONFIG_NAME as PROMETHEUS_CONFIG
from ha_sequencer.devnet.prometheus import DIRNAME as PROMETHEUS_DIR
from ha_sequencer.devnet.prometheus import SCRAPE_INTERVAL, DevnetPrometheus
from ha_sequencer.devnet.state import (
    DevnetError,
    DevnetState,
    NodeEntry,
    StoreClusterEntry,
    load_state,
    locked,
    pid_alive,
    pid_matches,
    state_path,
    stop_pid,
    write_ha_db_url,
    write_state,
)
from ha_sequencer.devnet.store_cluster import clear as clear_store_cluster
from ha_sequencer.devnet.store_cluster import (
    node_url,
    remove_data,
    start_cluster,
    stop_cluster,
    stop_recorded,
)
from ha_sequencer.errors import InputError
from ha_sequencer.keys.derivation import derive_eth_key
from ha_sequencer.keys.files import ensure_private_dir
from ha_sequencer.keys.keystore import load_keystore
from ha_sequencer.l1.anvil import Anvil, free_port
from ha_sequencer.l1.deploy import GenesisValidator, deploy_rollup
from ha_sequencer.localnet.nodes import HA_DB_ENV, PUBLISHER_FUNDING_WEI, NodeProcess, fund_accounts
from ha_sequencer.localnet.store_cluster import StoreCluster
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of
from ha_sequencer.protocol.committee import quorum
from ha_sequencer.protocol.constants import MAX_COMMITTEE_SIZE
from ha_sequencer.redact import redact_dsn

MAX_HA_NODES = 15  # publishers of validator i are derived at 16*i + 1 … 16*i + P
ADDRESS_STRIDE = 16
USER_BALANCE = 10**21
READY_TIMEOUT_S = 180.0
KEYS_TIMEOUT_S = 120.0
NETWORK_NAME = "devnet"
SUPERVISOR_MARKER = ("ha-sequencer", "ha_sequencer", "pytest")  # how the supervisor may have been run
MNEMONIC_ENV = "HA_SEQUENCER_MNEMONIC"
SUPERVISOR_HA_DB_ENV = "HA_SEQUENCER_DEVNET_HA_DB"  # read by `devnet up --ha-db`
# Variables that may carry the duty store's password: read once by `devnet up`, then dropped from its
# environment so that no process it starts (anvil, Prometheus, key tools, nodes) inherits them; the HA nodes
# alone get the URL back, explicitly.
DUTY_STORE_ENVS = (SUPERVISOR_HA_DB_ENV, HA_DB_ENV)


def cli_command() -> list[str]:
    """How to run the `ha-sequencer` CLI of this installation."""
    return [sys.executable, "-m", "ha_sequencer.cli"]


@dataclass(frozen=True)
class DevnetConfig:
    """What `devnet up` builds."""

    directory: Path = DEFAULT_DIR
    validators: int = DEFAULT_VALIDATORS
    ha_nodes: int = DEFAULT_HA_NODES
    slot_duration: int = DEFAULT_SLOT_DURATION
    epoch_length: int = DEFAULT_EPOCH_LENGTH
    committee_size: int | None = None  # default: every validator (at most MAX_COMMITTEE_SIZE)
    ha_db: str | None = field(default=None, repr=False)
    users: int = 4
    load_rate: float = 1.0
    duty_lease_s: float | None = None
    prometheus: bool = False  # a real Prometheus scraping every node with deploy/prometheus/alerts.yml
    store_cluster: bool = False  # the duty store on 3 Patroni/PostgreSQL + 3 etcd members (data under DIR)

    def validate(self) -> None:
        """Raise InputError naming the bad option."""
        if self.validators < 1:
            raise InputError(f"--validators: need at least 1, got {self.validators}")
        if not 1 <= self.ha_nodes <= MAX_HA_NODES:
            raise InputError(f"--ha-nodes: must be 1…{MAX_HA_NODES}, got {self.ha_nodes}")
        if self.slot_duration < 2:
            raise InputError(f"--slot-duration: at least 2 s, got {self.slot_duration}")
        if self.epoch_length < 1:
            raise InputError(f"--epoch-length: at least 1, got {self.epoch_length}")
        size = self.committee
        if not 1 <= size <= min(self.validators, MAX_COMMITTEE_SIZE):
            raise InputError(
                f"--committee-size: must be 1…{min(self.validators, MAX_COMMITTEE_SIZE)}, got {size}"
            )
        if self.ha_db and not self.ha_db.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise InputError(
                f"--ha-db: expected sqlite:///PATH or postgresql://…, got {redact_dsn(self.ha_db)!r}"
            )
        if self.ha_db and self.store_cluster:
            raise InputError(
                "--store-cluster and --ha-db: choose one (the cluster is the HA nodes' duty store)"
            )

    @property
    def committee(self) -> int:
        """The committee size used."""
        return self.committee_size or min(self.validators, 48)


@dataclass
class ValidatorPlan:
    """One validator of the devnet and the nodes that run it."""

    index: int
    attester: str
    publishers_count: int
    base_keystore: Path
    node_keystores: list[Path] = field(default_factory=list)
    bls_public: bytes = b""
    publishers: list[str] = field(default_factory=list)

    @property
    def ha(self) -> bool:
        """Validator 0 is the HA identity."""
        return self.index == 0

    def node_name(self, j: int) -> str:
        """Name of the j-th node (1-based) of this validator."""
        return f"ha{j}" if self.ha else f"v{self.index}"


def drop_inherited_secrets() -> None:
    """Forget the duty store variables (`DUTY_STORE_ENVS`): children inherit nothing they do not need."""
    for name in DUTY_STORE_ENVS:
        os.environ.pop(name, None)


def node_env(entry: NodeEntry, ha_db_url: str | None) -> dict[str, str]:
    """A node's environment: the HA nodes alone get the duty store URL (here, not in argv: it may hold a
    password); no node gets the mnemonic."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in (MNEMONIC_ENV, *DUTY_STORE_ENVS):
        env.pop(name, None)
    if entry.ha and ha_db_url:
        env[HA_DB_ENV] = ha_db_url
    return env


def spawn_node(entry: NodeEntry, ha_db_url: str | None) -> subprocess.Popen[bytes]:
    """Start one node as its own OS process (own session: a terminal's Ctrl-C reaches only the supervisor)."""
    with open(entry.log, "ab") as log:
        return subprocess.Popen(
            entry.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=node_env(entry, ha_db_url),
            start_new_session=True,
        )


def node_status(entry: NodeEntry, timeout: float = 1.5) -> tuple[int | None, dict[str, Any]]:
    """GET /status → (HTTP code or None when unreachable, JSON or {})."""
    try:
        r = httpx.get(f"{entry.url}/status", timeout=timeout)
        return r.status_code, r.json()
    except (httpx.HTTPError, ValueError):
        return None, {}


def all_statuses(nodes: Sequence[NodeEntry], timeout: float = 1.5) -> dict[str, tuple[int | None, dict]]:
    """/status of every node, fetched in parallel."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        results = pool.map(lambda n: node_status(n, timeout), nodes)
        return {n.name: r for n, r in zip(nodes, results, strict=True)}


def log_tail(path: str | Path, chars: int = 2500) -> str:
    """The end of a log file."""
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Devnet:
    """One devnet, owned by this (supervisor) process."""

    def __init__(self, config: DevnetConfig, *, say: Callable[[str], None] = print) -> None:
        config.validate()
        self.config = config
        self.dir = Path(config.directory).resolve()
        self.say = say
        self.anvil: Anvil | None = None
        self.state: DevnetState | None = None
        self.plans: list[ValidatorPlan] = []
        self.users: list[LocalAccount] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ha_db_url = ""
        self.prometheus: DevnetPrometheus | None = None
        self.store_cluster: StoreCluster | None = None
        self.store_cluster_entry: StoreClusterEntry | None = None
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------------------------------

    def up(self) -> DevnetState:
        """Start everything and wait until every node is healthy (stops what it started on failure)."""
        try:
            return self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> DevnetState:
        started = time.monotonic()
        if self.config.prometheus:
            DevnetPrometheus.preflight()
        self._prepare_dir()
        self.say(f"devnet directory {self.dir}")
        self.anvil = Anvil()
        self.anvil.start()
        self.say(f"L1: anvil at {self.anvil.rpc_url} (pid {self.anvil.pid})")
        self._make_keys()
        self.users = [Account.create() for _ in range(self.config.users)]
        deployer = self.anvil.accounts[0]
        rollup = deploy_rollup(
            self.anvil.rpc_url,
            deployer,
            slot_duration=self.config.slot_duration,
            epoch_length=self.config.epoch_length,
            committee_size=self.config.committee,
            genesis_allocation=[(u.address, USER_BALANCE) for u in self.users],
            genesis_validators=[
                GenesisValidator(p.attester, deployer.address, p.bls_public) for p in self.plans
            ],
        )
        self.say(
            f"L1: Rollup {rollup} deployed; {len(self.plans)} validators registered at genesis "
            f"(committee {self.config.committee}, quorum {quorum(self.config.committee)}, "
            f"slot {self.config.slot_duration} s, epoch {self.config.epoch_length} slots)"
        )
        publishers = [a for p in self.plans for a in p.publishers]
        fund_accounts(self.anvil.rpc_url, self.anvil.accounts[1], publishers, PUBLISHER_FUNDING_WEI)
        self.say(f"L1: funded {len(publishers)} publishers with {PUBLISHER_FUNDING_WEI // 10**18} ETH each")
        if self.config.store_cluster:
            self.store_cluster, self.store_cluster_entry = start_cluster(self.dir, self.say)
            self.ha_db_url = node_url(self.store_cluster)
        else:
            self.ha_db_url = self.config.ha_db or f"sqlite:///{self.dir / 'ha-duties.sqlite'}"
        write_ha_db_url(self.dir, self.ha_db_url)
        self.state = self._plan_nodes(rollup)
        self.state.store_cluster = self.store_cluster_entry
        with locked(self.dir):
            write_state(self.state)
        for entry in self.state.nodes:
            self._start(entry)
        if self.config.prometheus:
            self._start_prometheus(self.state)
        with locked(self.dir):
            write_state(self.state)
        self.say(f"nodes: {len(self.state.nodes)} processes started; waiting until each /status says ok …")
        self.wait_healthy(self.state.nodes, READY_TIMEOUT_S)
        self.state.ready = True
        with locked(self.dir):
            write_state(self.state)
        self.say(f"devnet ready in {time.monotonic() - started:.0f} s")
        return self.state

    def _prepare_dir(self) -> None:
        path = state_path(self.dir)
        if path.exists():
            try:
                old = load_state(self.dir)
            except InputError:
                old = None
            if old is not None and pid_matches(old.supervisor_pid, SUPERVISOR_MARKER):
                raise DevnetError(
                    f"a devnet is already running from {self.dir} (supervisor pid {old.supervisor_pid}); "
                    f"stop it with `ha-sequencer devnet down --dir {self.dir}`"
                )
            if old is not None and any(pid_alive(n.pid) for n in old.nodes):
                raise DevnetError(
                    f"processes of an earlier devnet in {self.dir} are still running; "
                    f"run `ha-sequencer devnet down --dir {self.dir}` first"
                )
        ensure_private_dir(self.dir)
        # an earlier run's keys, node data and logs: a devnet always starts from a fresh chain
        for sub in ("keys", "nodes", "watcher"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        clear_store_cluster(self.dir)
        for name in (
            "devnet.json",
            "ha-db.url",
            "ha-duties.sqlite",
            "ha-duties.sqlite-wal",
            "ha-duties.sqlite-shm",
        ):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()

    def _make_keys(self) -> None:
        """Run `validator-keys new`, `split` and `check` as an operator would (DESIGN.md steps 1, 3-4)."""
        keys_dir = self.dir / "keys"
        ensure_private_dir(keys_dir)
        words = Mnemonic("english").generate(strength=256)
        env = {**os.environ, MNEMONIC_ENV: words}
        log_path = self.dir / "keys" / "keys.log"
        plans = []
        for i in range(self.config.validators):
            attester = derive_eth_key(words, address_index=ADDRESS_STRIDE * i).address
            pubs = self.config.ha_nodes if i == 0 else 1
            plans.append(ValidatorPlan(i, attester, pubs, keys_dir / f"validator{i}.json"))
        del words  # only the child processes' environment held it
        self._run_parallel(
            [
                [
                    *cli_command(),
                    "validator-keys",
                    "new",
                    "--fee-recipient",
                    "0x" + "00" * 12 + p.attester[2:].lower(),
                    "--address-index",
                    str(ADDRESS_STRIDE * p.index),
                    "--publisher-count",
                    str(p.publishers_count),
                    "--data-dir",
                    str(keys_dir),
                    "--file",
                    p.base_keystore.name,
                ]  # fmt: skip
                for p in plans
            ],
            env,
            log_path,
            "validator-keys new",
        )
        env.pop(MNEMONIC_ENV)
        self._run_parallel(
            [
                [
                    *cli_command(),
                    "validator-keys",
                    "split",
                    str(p.base_keystore),
                    "--out",
                    str(keys_dir / f"validator{p.index}"),
                    "--shred-source",
                ]  # fmt: skip
                for p in plans
            ],
            env,
            log_path,
            "validator-keys split",
        )
        for p in plans:
            p.node_keystores = [
                keys_dir / f"validator{p.index}" / f"node{j}" / "keystore.json"
                for j in range(1, p.publishers_count + 1)
            ]
            for ks in p.node_keystores:
                loaded = load_keystore(ks)
                v = loaded.validators[0]
                if v.attester.address != p.attester:
                    raise DevnetError(f"{ks}: attester {v.attester.address}, expected {p.attester}")
                p.bls_public = v.bls_public or b""
                p.publishers.append(v.publishers[0].address)
        ha = plans[0]
        self._run_parallel(
            [[*cli_command(), "validator-keys", "check", *map(str, ha.node_keystores)]],
            env,
            log_path,
            "validator-keys check",
        )
        self.plans = plans
        self.say(
            f"keys: {len(plans)} validators made with `validator-keys new` + `split`; HA identity "
            f"{ha.attester} "
            f"on {len(ha.node_keystores)} nodes (fleet checked with `validator-keys check`)"
        )

    def _run_parallel(
        self, commands: list[list[str]], env: dict[str, str], log_path: Path, what: str
    ) -> None:
        with open(log_path, "ab") as log:
            procs = [
                subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
                for cmd in commands
            ]
            failed = []
            for proc in procs:
                try:
                    code = proc.wait(KEYS_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                if code != 0:
                    failed.append(code)
        if failed:
            raise DevnetError(f"`{what}` failed (exit {failed[0]}); see {log_path}:\n{log_tail(log_path)}")

    def _plan_nodes(self, rollup: str) -> DevnetState:
        assert self.anvil is not None
        nodes: list[NodeEntry] = []
        nodes_dir = self.dir / "nodes"
        for p in self.plans:
            for j, keystore in enumerate(p.node_keystores, start=1):
                name = p.node_name(j)
                data_dir = nodes_dir / name
                ensure_private_dir(data_dir)
                peer_id = peer_id_of(load_or_create_peer_key(data_dir / "p2p-key"))
                proc = NodeProcess(name, data_dir, keystore, free_port(), free_port(), peer_id)
                nodes.append(
                    NodeEntry(
                        name=name,
                        validator=p.attester,
                        ha=p.ha,
                        pid=None,
                        http_port=proc.http_port,
                        p2p_port=proc.p2p_port,
                        peer_id=peer_id,
                        data_dir=str(data_dir),
                        keystore=str(keystore),
                        log=str(data_dir / "node.log"),
                        publisher=p.publishers[j - 1],
                        argv=[],
                    )
                )
        for entry in nodes:
            bootstrap = [n.multiaddr for n in nodes if n.name != entry.name]
            proc = NodeProcess(
                entry.name,
                Path(entry.data_dir),
                Path(entry.keystore),
                entry.http_port,
                entry.p2p_port,
                entry.peer_id,
            )
            argv = proc.command([self.anvil.rpc_url], rollup, bootstrap)
            argv[argv.index("--network") + 1] = NETWORK_NAME
            if self.config.duty_lease_s is not None:
                argv += ["--duty-lease", str(self.config.duty_lease_s)]
            entry.argv = argv
        return DevnetState(
            directory=str(self.dir),
            supervisor_pid=os.getpid(),
            anvil_pid=self.anvil.pid,
            l1_rpc_url=self.anvil.rpc_url,
            rollup=rollup,
            chain_id=int(self.anvil.rpc("eth_chainId"), 16),
            slot_duration=self.config.slot_duration,
            epoch_length=self.config.epoch_length,
            committee_size=self.config.committee,
            ha_attester=self.plans[0].attester,
            ha_db=redact_dsn(self.ha_db_url) if not self.ha_db_url.startswith("sqlite") else self.ha_db_url,
            ha_db_kind="sqlite" if self.ha_db_url.startswith("sqlite") else "postgres",
            validators=[p.attester for p in self.plans],
            nodes=nodes,
        )

    def _start_prometheus(self, state: DevnetState) -> None:
        self.prometheus = DevnetPrometheus(self.dir)
        self.prometheus.start(state.nodes)
        state.prometheus_pid, state.prometheus_url = self.prometheus.pid, self.prometheus.url
        self.prometheus.wait_ready()
        self.say(
            f"Prometheus at {self.prometheus.url} scraping {len(state.nodes)} nodes every "
            f"{SCRAPE_INTERVAL} with deploy/prometheus/alerts.yml (alerts: {self.prometheus.url}/alerts)"
        )

    def _start(self, entry: NodeEntry) -> None:
        proc = spawn_node(entry, self.ha_db_url)
        self.procs[entry.name] = proc
        entry.pid = proc.pid

    def wait_healthy(self, nodes: Sequence[NodeEntry], timeout: float) -> None:
        """Wait until every node answers /status 200 (DevnetError with the node's log tail otherwise)."""
        deadline = time.monotonic() + timeout
        pending = {n.name: n for n in nodes}
        while pending:
            for name, entry in list(pending.items()):
                if not pid_alive(entry.pid):
                    self.reap()
                    raise DevnetError(
                        f"node {name} exited during start-up; log {entry.log}:\n{log_tail(entry.log)}"
                    )
                code, _ = node_status(entry)
                if code == 200:
                    del pending[name]
            if pending and time.monotonic() > deadline:
                name, entry = next(iter(pending.items()))
                code, doc = node_status(entry)
                raise DevnetError(
                    f"node {name} not healthy after {timeout:.0f} s (HTTP {code}, "
                    f"reasons {doc.get('reasons')}); "
                    f"log {entry.log}:\n{log_tail(entry.log)}"
                )
            time.sleep(0.5)

    def reap(self) -> None:
        """Collect exited children (no zombies while the devnet runs)."""
        for proc in self.procs.values():
            proc.poll()

    def current_nodes(self) -> list[NodeEntry]:
        """The nodes as the state file has them now (failover-test may have restarted some)."""
        try:
            state = load_state(self.dir)
        except InputError:
            return list(self.state.nodes) if self.state else []
        if self.state is not None:
            self.state.nodes = state.nodes
        return state.nodes

    def down(self) -> None:
        """Stop every node (SIGTERM, in parallel; SIGKILL after 15 s), then anvil; remove the state file."""
        if self._stopped:
            return
        self._stopped = True
        nodes = self.current_nodes()
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            results = list(pool.map(lambda n: (n.name, stop_pid(n.pid, n.data_dir)), nodes))
        self.reap()
        for name, result in results:
            if result != "not running":
                self.say(f"node {name}: {result}")
        if self.prometheus is not None:
            self.say(f"Prometheus: {self.prometheus.stop()}")
        if self.anvil is not None:
            self.anvil.stop()
            self.say("L1: anvil stopped")
        if self.store_cluster is not None:
            stop_cluster(self.store_cluster, self.store_cluster_entry)
            self.say("store cluster: etcd, Patroni and PostgreSQL stopped")
        with contextlib.suppress(FileNotFoundError):
            state_path(self.dir).unlink()


def down_from_state(directory: Path, say: Callable[[str], None] = print, timeout: float = 40.0) -> int:
    """`devnet down`: stop the supervisor (it stops the rest), then anything it left behind; count stopped."""
    state = load_state(directory)
    stopped = 0
    if pid_matches(state.supervisor_pid, SUPERVISOR_MARKER):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        say(f"supervisor pid {state.supervisor_pid}: SIGTERM")
        stopped += 1
        deadline = time.monotonic() + timeout
        while pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_matches(state.supervisor_pid, SUPERVISOR_MARKER):
            with contextlib.suppress(ProcessLookupError):  # it may exit right now
                os.kill(state.supervisor_pid, signal.SIGKILL)  # `down` must leave nothing running
            say(
                f"supervisor pid {state.supervisor_pid}: still running {timeout:.0f} s after SIGTERM, SIGKILL"
            )
    # the supervisor may have been killed: nodes and anvil by pid, if they are still ours
    try:
        nodes = load_state(directory).nodes
    except InputError:
        nodes = state.nodes
    for n in nodes:
        result = stop_pid(n.pid, n.data_dir)
        if result != "not running":
            say(f"node {n.name}: {result}")
            stopped += 1
    prometheus_config = str(Path(directory).resolve() / PROMETHEUS_DIR / PROMETHEUS_CONFIG)
    if stop_pid(state.prometheus_pid, prometheus_config) != "not running":
        say("Prometheus stopped")
        stopped += 1
    port = state.l1_rpc_url.rsplit(":", 1)[-1]
    if stop_pid(state.anvil_pid, port) != "not running":
        say("L1: anvil stopped")
        stopped += 1
    if state.store_cluster is not None:
        left = stop_recorded(state.store_cluster)
        remove_data(state.store_cluster)
        if left:
            say(f"store cluster: {left} process(es) stopped")
            stopped += left
    with contextlib.suppress(FileNotFoundError):
        state_path(directory).unlink()
    return stopped

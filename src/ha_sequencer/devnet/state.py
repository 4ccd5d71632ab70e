"""The devnet state file: where a running devnet's processes, ports and files are (never a private key).

`devnet up` writes `DIR/devnet.json` (mode 0600, atomic replace); `devnet down`, `devnet status` and
`failover-test` read it to find the devnet; `failover-test` rewrites a node's pid after restarting it. The
duty store URL may carry a database password, so it lives in its own 0600 file; the state has it redacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ha_sequencer.errors import HASequencerError, InputError
from ha_sequencer.keys.files import write_private_file

STATE_FILENAME = "devnet.json"
HA_DB_URL_FILENAME = "ha-db.url"
LOCK_FILENAME = "devnet.lock"
STATE_VERSION = 1


class DevnetError(HASequencerError):
    """The devnet could not be started, or a process of it misbehaved (names the process and its log)."""

    exit_code = 1


class DevnetNotFound(InputError):
    """No devnet state file in the given directory (exit 2)."""


@dataclass
class NodeEntry:
    """One node process of the devnet."""

    name: str
    validator: str  # the attester address this node runs
    ha: bool  # one of the HA identity's nodes
    pid: int | None
    http_port: int
    p2p_port: int
    peer_id: str
    data_dir: str
    keystore: str
    log: str
    publisher: str
    argv: list[str]

    @property
    def url(self) -> str:
        """The node's HTTP base URL (/status, /metrics, JSON-RPC)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def multiaddr(self) -> str:
        """The node's libp2p address with its peer id."""
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"


@dataclass
class StoreClusterEntry:
    """`devnet up --store-cluster`: where its etcd and Patroni members run (pids to stop them by)."""

    directory: str  # the cluster's data (DIR/store-cluster, or where that symlink points)
    names: list[str]  # Patroni members
    pg_ports: list[int]
    api_ports: list[int]  # Patroni REST APIs: /cluster names the primary
    patroni_pids: dict[str, int]
    etcd_pids: list[int]


@dataclass
class DevnetState:
    """Everything needed to find, inspect and stop a devnet."""

    directory: str
    supervisor_pid: int
    anvil_pid: int | None
    l1_rpc_url: str
    rollup: str
    chain_id: int
    slot_duration: int
    epoch_length: int
    committee_size: int
    ha_attester: str
    ha_db: str  # redacted for display; the full URL is in HA_DB_URL_FILENAME
    ha_db_kind: str
    validators: list[str]
    nodes: list[NodeEntry] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    prometheus_pid: int | None = None  # `devnet up --prometheus`
    prometheus_url: str | None = None
    store_cluster: StoreClusterEntry | None = None  # `devnet up --store-cluster`
    version: int = STATE_VERSION

    @property
    def path(self) -> Path:
        """The state file."""
        return Path(self.directory) / STATE_FILENAME

    def node(self, name: str) -> NodeEntry:
        """The node called `name` (InputError listing the names otherwise)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise InputError(f"no node {name!r} in the devnet at {self.directory} ({', '.join(self.node_names)})")

    @property
    def node_names(self) -> list[str]:
        """All node names, in start order."""
        return [n.name for n in self.nodes]

    @property
    def ha_nodes(self) -> list[NodeEntry]:
        """The nodes of the HA identity."""
        return [n for n in self.nodes if n.ha]

    def ha_db_url(self) -> str:
        """The duty store URL of the HA nodes (read from its 0600 file)."""
        path = Path(self.directory) / HA_DB_URL_FILENAME
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise DevnetNotFound(f"{path}: cannot read the duty store URL ({exc.strerror})") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to the state file."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any], source: Path) -> DevnetState:
        """Parse a state document (DevnetNotFound naming the file when it is not one)."""
        try:
            if doc.get("version") != STATE_VERSION:
                raise DevnetNotFound(
                    f"{source}: state version {doc.get('version')!r}, expected {STATE_VERSION}"
                )
            nodes = [NodeEntry(**n) for n in doc.get("nodes", [])]
            cluster = doc.get("store_cluster")
            store_cluster = StoreClusterEntry(**cluster) if cluster else None
            return cls(**{**doc, "nodes": nodes, "store_cluster": store_cluster})
        except TypeError as exc:
            raise DevnetNotFound(f"{source}: not a devnet state file ({exc})") from None


def state_path(directory: Path) -> Path:
    """Where the state file of a devnet directory is."""
    return Path(directory) / STATE_FILENAME


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the devnet's lock file (serialises read-modify-write of the state across processes)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(Path(directory) / LOCK_FILENAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_state(state: DevnetState) -> None:
    """Atomically replace the state file (0600)."""
    path = state.path
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    write_private_file(tmp, json.dumps(state.to_json(), indent=2).encode())
    os.replace(tmp, path)


def write_ha_db_url(directory: Path, url: str) -> None:
    """Store the duty store URL (may hold a password) in its own 0600 file."""
    path = Path(directory) / HA_DB_URL_FILENAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    write_private_file(path, url.encode())


def load_state(directory: Path) -> DevnetState:
    """Read the state of the devnet in `directory` (DevnetNotFound if there is none)."""
    path = state_path(directory)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevnetNotFound(
            f"no devnet in {directory}: {path} does not exist (start one with `ha-sequencer devnet up`)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DevnetNotFound(f"{path}: cannot read the devnet state ({exc})") from None
    return DevnetState.from_json(doc, path)


def update_node_pid(directory: Path, name: str, pid: int | None) -> None:
    """Record a node's new pid (after a restart by `failover-test`)."""
    with locked(directory):
        state = load_state(directory)
        state.node(name).pid = pid
        write_state(state)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_matches(pid: int | None, marker: str | tuple[str, ...]) -> bool:
    """Whether `pid` is alive and its command line contains (one of) `marker` (guards against reused pids)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    markers = (marker,) if isinstance(marker, str) else marker
    return any(m in cmdline for m in markers)


def signal_pid(pid: int | None, signum: int, marker: str) -> bool:
    """Send `signum` to `pid` if it is still the process we started (command line holds `marker`)."""
    if not pid_matches(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)  # type: ignore[arg-type]
        return True
    return False


def wait_gone(pid: int | None, timeout: float) -> bool:
    """Wait until `pid` has exited (reaping it if it is our child); True if gone in time."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # type: ignore[arg-type]
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_pid(pid: int | None, marker: str, *, timeout: float = 15.0) -> str:
    """SIGTERM, wait, then SIGKILL; returns what happened ("stopped", "killed", "not running")."""
    if not signal_pid(pid, signal.SIGTERM, marker):
        return "not running"
    if wait_gone(pid, timeout):
        return "stopped"
    signal_pid(pid, signal.SIGKILL, marker)
    wait_gone(pid, 5.0)
    return "killed"

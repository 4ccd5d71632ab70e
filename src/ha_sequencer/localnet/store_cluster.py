"""A replicated duty store on loopback: 3 etcd members and 3 Patroni-managed PostgreSQL members (strict
synchronous mode), all on free ports, data under one directory (tests, benchmarks, drills).

Patroni's timing is tuned for fast failover (`TTL_S`, `LOOP_WAIT_S`, `RETRY_TIMEOUT_S`): the leader key lives
`TTL_S` seconds without a refresh, so a killed primary is replaced about `TTL_S` after its last refresh.
Shorter is not allowed (Patroni raises a ttl below 20 s to 20); the cost of short settings is more DCS traffic
(one loop a second) and a leader that demotes itself sooner when etcd is slow — on loopback, neither matters.

As root, Patroni (and so PostgreSQL, whose initdb refuses root) runs as the `postgres` user on directories
chowned to it. Durability is off (`fsync=off`): these members hold throwaway data; replication is not off,
and a commit still waits for the synchronous standby.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import yaml

from ha_sequencer.errors import HASequencerError
from ha_sequencer.localnet.postgres import find_pg_bin, free_port

MEMBERS = 3
TTL_S = 20  # Patroni's minimum: the leader key expires this long after the last refresh of a dead primary
LOOP_WAIT_S = 1  # each member's HA loop: a failover starts at most this long after the key expires
RETRY_TIMEOUT_S = 3  # DCS and PostgreSQL operations retried this long before the leader demotes itself
START_TIMEOUT_S = 90
DB_NAME = "ha_duties"
PG_USER = "postgres"  # trust authentication on loopback
LEADER_ROLES = ("leader", "master", "primary")


class StoreClusterError(HASequencerError):
    """The cluster could not be set up or did not reach the expected state (message names which)."""


@dataclass(frozen=True)
class Member:
    """One cluster member as Patroni's REST API reports it."""

    name: str
    role: str  # leader | sync_standby | replica
    state: str  # running | streaming | …
    port: int
    lag: int | None


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


PATRONI_VENV_ENV = "HA_SEQUENCER_PATRONI_VENV"
DEFAULT_PATRONI_VENV = "/opt/ha-sequencer/patroni-venv"  # scripts/ensure-store-cluster.sh installs it as root


def _patroni_bin() -> str:
    # As root, Patroni runs as `postgres`, which cannot use an interpreter under /root: the script's own venv.
    candidates = [Path(os.environ.get(PATRONI_VENV_ENV, DEFAULT_PATRONI_VENV)) / "bin" / "patroni"]
    if os.geteuid() != 0:
        candidates.append(Path(sys.executable).with_name("patroni"))
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("patroni")
    if found is None:
        raise StoreClusterError("patroni not found: run scripts/ensure-store-cluster.sh")
    return found


def _etcd_bin() -> str:
    found = shutil.which("etcd")
    if found is None:
        raise StoreClusterError("etcd not found: run scripts/ensure-store-cluster.sh (Debian etcd-server)")
    return found


class StoreCluster:
    """`with StoreCluster() as c:` → `c.url` (every member), `c.leader()`, `c.kill_member(name)`."""

    def __init__(self, base_dir: Path | None = None, *, scope: str | None = None) -> None:
        self._own_dir = base_dir is None
        self.base = Path(tempfile.mkdtemp(prefix="ha-store-cluster-")) if base_dir is None else base_dir
        self.scope = scope or f"hasq-{secrets.token_hex(4)}"
        self._as_root = os.geteuid() == 0
        self.etcd_client_ports = [free_port() for _ in range(MEMBERS)]
        self.etcd_peer_ports = [free_port() for _ in range(MEMBERS)]
        self.pg_ports = [free_port() for _ in range(MEMBERS)]
        self.api_ports = [free_port() for _ in range(MEMBERS)]
        self.names = [f"pg{i}" for i in range(MEMBERS)]
        self._etcd: list[_Proc] = []
        self._patroni: dict[str, _Proc] = {}

    # -- addresses -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The duty store's URL naming every member (the node adds target_session_attrs=read-write)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.pg_ports)
        return f"postgresql://{PG_USER}@{hosts}/{DB_NAME}"

    def member_url(self, name: str, dbname: str = DB_NAME) -> str:
        """One member only (a standby, or an isolated old primary)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.pg_ports[self.names.index(name)]}/{dbname}"

    @property
    def etcd_endpoints(self) -> list[str]:
        """`127.0.0.1:port` of each etcd member's client URL."""
        return [f"127.0.0.1:{p}" for p in self.etcd_client_ports]

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> StoreCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then the Patroni members; wait for a leader, a synchronous standby and the database."""
        self.base.mkdir(parents=True, exist_ok=True)
        self._start_etcd()
        for name in self.names:
            self.start_member(name)
        self.wait_healthy()
        self._create_database()

    def _start_etcd(self) -> None:
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.etcd_peer_ports))
        for i in range(MEMBERS):
            data = self.base / f"etcd{i}"
            cmd = [
                _etcd_bin(),
                f"--name=e{i}",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_client_ports[i]}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_client_ports[i]}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_ports[i]}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_ports[i]}",
                f"--initial-cluster={initial}",
                f"--initial-cluster-token={self.scope}",
                "--initial-cluster-state=new",
                "--heartbeat-interval=100",
                "--election-timeout=1000",
            ]
            self._etcd.append(self._spawn(f"etcd{i}", cmd, as_postgres=False))
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in self.etcd_client_ports:
            while not _http_ok(f"http://127.0.0.1:{port}/health"):
                self._check_alive(self._etcd)
                if time.monotonic() > deadline:
                    raise StoreClusterError(f"etcd on port {port} not healthy in {START_TIMEOUT_S} s")
                time.sleep(0.2)

    def _config(self, name: str) -> dict[str, Any]:
        i = self.names.index(name)
        return {
            "scope": self.scope,
            "name": name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.api_ports[i]}",
                "connect_address": f"127.0.0.1:{self.api_ports[i]}",
            },
            "etcd3": {"hosts": self.etcd_endpoints},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL_S,
                    "loop_wait": LOOP_WAIT_S,
                    "retry_timeout": RETRY_TIMEOUT_S,
                    "maximum_lag_on_failover": 1 << 20,
                    # A commit returns only once a synchronous standby has it, and with `strict` no commit
                    # returns at all when none is left: an acknowledged record survives any failover.
                    "synchronous_mode": True,
                    "synchronous_mode_strict": True,
                    "postgresql": {
                        "use_pg_rewind": False,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "max_connections": 100,
                            "wal_keep_size": "128MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_ports[i]}",
                "connect_address": f"127.0.0.1:{self.pg_ports[i]}",
                "data_dir": str(self.base / name / "data"),
                "bin_dir": str(find_pg_bin("postgres").parent),
                "pgpass": str(self.base / name / "pgpass"),
                "authentication": {
                    "superuser": {"username": PG_USER, "password": secrets.token_hex(8)},
                    "replication": {"username": "replicator", "password": secrets.token_hex(8)},
                },
                "parameters": {
                    "unix_socket_directories": str(self.base / name),
                    "fsync": "off",
                    "full_page_writes": "off",
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
        }

    def start_member(self, name: str) -> None:
        """Start (or restart) one Patroni member; it rejoins as a replica if another member leads."""
        home = self.base / name
        home.mkdir(parents=True, exist_ok=True)
        config = home / "patroni.yml"
        config.write_text(yaml.safe_dump(self._config(name)))
        if self._as_root:
            for path in (self.base, home, config):
                shutil.chown(path, user="postgres", group="postgres")
        self._patroni[name] = self._spawn(name, [_patroni_bin(), str(config)], as_postgres=True)

    def _spawn(self, name: str, cmd: Sequence[str], *, as_postgres: bool) -> _Proc:
        log = self.base / f"{name}.log"
        env = dict(os.environ)
        user: int | None = None
        group: int | None = None
        groups: list[int] | None = None
        if as_postgres and self._as_root:
            pw = pwd.getpwnam("postgres")
            user, group, groups = pw.pw_uid, pw.pw_gid, []
            env["HOME"] = str(self.base)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                cwd=self.base,
                user=user,
                group=group,
                extra_groups=groups,
            )
        return _Proc(name, popen, log)

    def _check_alive(self, procs: Sequence[_Proc]) -> None:
        for p in procs:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace")[-800:] if p.log.exists() else ""
                raise StoreClusterError(f"{p.name} exited ({p.popen.returncode}): {tail}")

    # -- state -----------------------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        """The cluster as any live member's REST API reports it (empty if none answers)."""
        live = [
            port
            for name, port in zip(self.names, self.api_ports, strict=True)
            if (proc := self._patroni.get(name)) is not None and proc.popen.poll() is None
        ]
        return cluster_members(live)

    def leader(self) -> str | None:
        """The name of the member Patroni says leads (and runs), if any."""
        return leader_of(self.members())

    @property
    def etcd_pids(self) -> list[int]:
        """The etcd members' pids."""
        return [p.popen.pid for p in self._etcd]

    @property
    def patroni_pids(self) -> dict[str, int]:
        """Each running Patroni member's pid."""
        return {name: p.popen.pid for name, p in self._patroni.items()}

    def data_dir(self, name: str) -> Path:
        """A member's PostgreSQL data directory."""
        return self.base / name / "data"

    def sync_standbys(self) -> list[str]:
        """Members Patroni lists as synchronous standbys, streaming."""
        return [m.name for m in self.members() if m.role == "sync_standby" and m.state == "streaming"]

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S, *, members: int = MEMBERS) -> str:
        """Wait for a leader, a streaming synchronous standby and `members` members in all; the leader."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive(self._etcd)
            listed = self.members()
            leader = self.leader()
            ok = [m for m in listed if m.state in ("running", "streaming")]
            if leader is not None and self.sync_standbys() and len(ok) >= members and self._writable(leader):
                return leader
            if time.monotonic() > deadline:
                raise StoreClusterError(f"cluster not healthy in {timeout_s:g} s: {listed}")
            time.sleep(0.25)

    def _writable(self, name: str) -> bool:
        try:
            with psycopg.connect(self.member_url(name, "postgres"), connect_timeout=2) as conn:
                row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
                return row is not None and bool(row[0])
        except psycopg.Error:
            return False

    def wait_new_leader(self, old: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """Wait until a member other than `old` leads and accepts writes; its name."""
        deadline = time.monotonic() + timeout_s
        while True:
            leader = self.leader()
            if leader is not None and leader != old and self._writable(leader):
                return leader
            if time.monotonic() > deadline:
                raise StoreClusterError(f"no new leader in {timeout_s:g} s: {self.members()}")
            time.sleep(0.1)

    def _create_database(self) -> None:
        leader = self.leader()
        assert leader is not None
        with psycopg.connect(self.member_url(leader, "postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        # a synchronous commit is flushed on the standby, not yet replayed: wait until every member has it
        deadline = time.monotonic() + START_TIMEOUT_S
        for name in self.names:
            while not self._has_database(name):
                if time.monotonic() > deadline:
                    raise StoreClusterError(f"database {DB_NAME} not replayed on {name}")
                time.sleep(0.1)

    def _has_database(self, name: str) -> bool:
        try:
            with psycopg.connect(self.member_url(name), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    # -- faults ----------------------------------------------------------------------------------------------
    def patroni_pid(self, name: str) -> int:
        """The pid of a member's Patroni (to freeze it: cut from etcd, its PostgreSQL still running)."""
        proc = self._patroni.get(name)
        if proc is None:
            raise StoreClusterError(f"member {name} is not running")
        return proc.popen.pid

    def kill_member(self, name: str) -> None:
        """kill -9 a member's Patroni and its PostgreSQL (every process of its session)."""
        proc = self._patroni.pop(name, None)
        if proc is None:
            return
        kill_member_processes(proc.popen.pid, self.data_dir(name))
        proc.popen.wait(timeout=10)

    def stop(self) -> None:
        """Stop every member and etcd; remove the directory if this cluster made it."""
        for name in list(self._patroni):
            with contextlib.suppress(Exception):
                self.kill_member(name)
        for proc in self._etcd:
            with contextlib.suppress(Exception):
                _kill_tree(proc.popen.pid)
                proc.popen.wait(timeout=10)
        self._etcd = []
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)


def cluster_members(api_ports: Sequence[int]) -> list[Member]:
    """The cluster as the first answering Patroni REST API (of `api_ports`) reports it; [] if none answers."""
    for port in api_ports:
        doc = _http_json(f"http://127.0.0.1:{port}/cluster")
        if doc is None:
            continue
        out: list[Member] = []
        for m in doc.get("members", []):
            lag = m.get("lag")
            out.append(
                Member(
                    name=str(m["name"]),
                    role=str(m.get("role", "")),
                    state=str(m.get("state", "")),
                    port=int(m.get("port", 0)),
                    lag=lag if isinstance(lag, int) else None,
                )
            )
        return out
    return []


def leader_of(members: Sequence[Member]) -> str | None:
    """The running leader's name among `members`, if any."""
    for m in members:
        if m.role in LEADER_ROLES and m.state == "running":
            return m.name
    return None


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in a data directory's postmaster.pid (None if there is none)."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_member_processes(patroni_pid: int, data_dir: Path) -> None:
    """kill -9 one member: its Patroni (with its children) and its PostgreSQL (postmaster and backends)."""
    pg = postmaster_pid(data_dir)
    _kill_tree(patroni_pid)
    if pg is not None and _is_postmaster_of(pg, data_dir):  # a stale file may name a reused pid
        _kill_tree(pg)


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    with contextlib.suppress(psutil.Error):
        return str(data_dir) in " ".join(psutil.Process(pid).cmdline())
    return False


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)


def _http_ok(url: str) -> bool:
    return _http_json(url) is not None


def _http_json(url: str) -> dict[str, Any] | None:
    try:
        doc = httpx.get(url, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None

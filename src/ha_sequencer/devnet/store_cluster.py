"""`devnet up --store-cluster`: the HA nodes' duty store on 3 Patroni-managed PostgreSQL members and 3 etcd
members on loopback (`localnet.store_cluster`), data under the devnet directory.

The nodes get the multi-host URL with `target_session_attrs=read-write`, so after a failover they reach the
new primary without a restart. The URL holds no password (trust authentication on loopback); Patroni's
generated superuser and replication passwords stay in its config files (0700 directories), never in argv or
environment.

As root, Patroni and PostgreSQL run as `postgres`, which must be able to reach the data: when a directory
above the devnet's is closed to it (a 0700 home or pytest directory), the data goes to a temporary directory
owned by `postgres` and DIR/store-cluster is a symlink to it, removed with it on `devnet down`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ha_sequencer.devnet.state import StoreClusterEntry, stop_pid
from ha_sequencer.localnet.store_cluster import (
    StoreCluster,
    cluster_members,
    leader_of,
    postmaster_pid,
)

DIRNAME = "store-cluster"
READ_WRITE = "target_session_attrs=read-write"


def start_cluster(devnet_dir: Path, say: Callable[[str], None]) -> tuple[StoreCluster, StoreClusterEntry]:
    """Start the cluster under `devnet_dir` and wait until it has a primary and a synchronous standby."""
    base = _data_dir(devnet_dir)
    cluster = StoreCluster(base)
    say(f"store cluster: starting 3 etcd and 3 Patroni/PostgreSQL members under {devnet_dir / DIRNAME} …")
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    entry = StoreClusterEntry(
        directory=str(base),
        names=list(cluster.names),
        pg_ports=list(cluster.pg_ports),
        api_ports=list(cluster.api_ports),
        patroni_pids=cluster.patroni_pids,
        etcd_pids=cluster.etcd_pids,
    )
    say(f"store cluster: {describe(entry)}")
    return cluster, entry


def node_url(cluster: StoreCluster) -> str:
    """The duty store URL the HA nodes get: every member, read-write sessions only."""
    return f"{cluster.url}?{READ_WRITE}"


def describe(entry: StoreClusterEntry) -> str:
    """One line: each member's role, port and lag, the primary first (for the live view and logs)."""
    members = cluster_members(entry.api_ports)
    if not members:
        return "no member answers (Patroni REST APIs on ports " + ", ".join(map(str, entry.api_ports)) + ")"
    leader = leader_of(members)
    parts = []
    for m in sorted(members, key=lambda m: m.name != leader):
        role = "PRIMARY" if m.name == leader else m.role
        lag = f", lag {m.lag} B" if m.lag else ""
        parts.append(f"{m.name} {role} :{m.port} ({m.state}{lag})")
    if leader is None:
        parts.insert(0, "NO PRIMARY")
    return "; ".join(parts)


def primary(entry: StoreClusterEntry) -> str | None:
    """The member that leads now, if any."""
    return leader_of(cluster_members(entry.api_ports))


def stop_cluster(cluster: StoreCluster | None, entry: StoreClusterEntry | None) -> None:
    """Stop the cluster (by its object when this process started it, else by the recorded pids); remove a
    temporary data directory and the symlink to it."""
    if cluster is not None:
        cluster.stop()
    elif entry is not None:
        stop_recorded(entry)
    if entry is not None:
        remove_data(entry)


def stop_recorded(entry: StoreClusterEntry) -> int:
    """Stop what a (killed) supervisor left of the cluster, by pid, checking each command line; how many."""
    stopped = 0
    base = entry.directory
    for name, pid in entry.patroni_pids.items():
        data = Path(base) / name / "data"
        pg = postmaster_pid(data)
        stopped += stop_pid(pid, str(Path(base) / name / "patroni.yml")) != "not running"
        stopped += pg is not None and stop_pid(pg, str(data)) != "not running"
    for i, pid in enumerate(entry.etcd_pids):
        stopped += stop_pid(pid, str(Path(base) / f"etcd{i}")) != "not running"
    return stopped


def remove_data(entry: StoreClusterEntry) -> None:
    """Remove a temporary data directory (as root) and DIR/store-cluster's symlink to it."""
    base = Path(entry.directory)
    if base.name != DIRNAME:  # the temporary directory of a root run; the symlink sits in the devnet dir
        shutil.rmtree(base, ignore_errors=True)


def clear(devnet_dir: Path) -> None:
    """Remove an earlier run's cluster data (or symlink)."""
    path = devnet_dir / DIRNAME
    if path.is_symlink():
        with contextlib.suppress(OSError):
            target = path.resolve()
            if target.name.startswith("ha-devnet-store-"):
                shutil.rmtree(target, ignore_errors=True)
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _data_dir(devnet_dir: Path) -> Path:
    path = devnet_dir / DIRNAME
    clear(devnet_dir)
    if os.geteuid() != 0 or _reachable_by_postgres(devnet_dir):
        path.mkdir(mode=0o700)
        return path
    real = Path(tempfile.mkdtemp(prefix="ha-devnet-store-"))
    path.symlink_to(real)
    return real


def _reachable_by_postgres(directory: Path) -> bool:
    """Whether the `postgres` user can traverse every directory down to `directory`."""
    pw = pwd.getpwnam("postgres")
    path = directory.resolve()
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == pw.pw_gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True

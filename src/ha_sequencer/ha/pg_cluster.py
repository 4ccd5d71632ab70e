"""The PostgreSQL servers behind a duty-store URL: which hosts it names, and whether the one we write to is a
primary whose commits a synchronous standby acknowledges (docs/duty-store-ha.md).

A URL may name several hosts (`postgresql://h1:5432,h2:5432,h3:5432/db`): libpq tries them in order and, with
`target_session_attrs=read-write`, keeps only a server that accepts writes, so a node follows a Patroni
failover to the new primary without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ha_sequencer.ha.errors import NoSynchronousStandby, ReadOnlyServer, StoreUnreachable, StoreURLError

WRITABLE_SESSION_ATTRS = ("read-write", "primary")  # what libpq must ask of a server we record duties on
DEFAULT_SESSION_ATTRS = "read-write"
ALLOW_ASYNC_FLAG = "--ha-db-allow-async"


def _conninfo(url: str) -> dict[str, Any]:
    return conninfo_to_dict(url)


def hosts_of(url: str) -> list[str]:
    """The `host:port` pairs a PostgreSQL URL names, in libpq's order (5432 when no port is given)."""
    info = _conninfo(url)
    hosts = str(info.get("host") or "localhost").split(",")
    ports = str(info.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [f"{h}:{p or '5432'}" for h, p in zip(hosts, ports, strict=False)]


def session_attrs(url: str, where: str) -> str:
    """The `target_session_attrs` to connect with: read-write unless the URL asks for `primary`."""
    info = _conninfo(url)
    asked = info.get("target_session_attrs")
    if asked is None:
        return DEFAULT_SESSION_ATTRS
    if asked not in WRITABLE_SESSION_ATTRS:
        raise StoreURLError(
            f"duty store {where}: target_session_attrs={asked} could reach a standby; the duty store is "
            f"written on the primary only (use target_session_attrs=read-write, or leave it out)"
        )
    return str(asked)


@dataclass(frozen=True)
class PrimaryReplication:
    """What the primary says about its replication: the synchronous standby setting, the standbys in sync."""

    host: str
    synchronous_standby_names: str
    sync_standbys: tuple[str, ...]


_REPLICATION = """
SELECT inet_server_addr()::text, inet_server_port(), current_setting('synchronous_standby_names'),
       coalesce(array_agg(application_name ORDER BY application_name)
                FILTER (WHERE sync_state IN ('sync', 'quorum')), '{}')
FROM pg_stat_replication
"""


def check_writable_primary(
    url: str, kwargs: dict[str, Any], *, where: str, require_sync: bool
) -> PrimaryReplication:
    """Connect as the store does; refuse read-only servers (exit 2) and, with `require_sync`, a primary
    without a synchronous standby. Raises `StoreUnreachable` naming the hosts tried when nothing answers."""
    hosts = ", ".join(hosts_of(url))
    try:
        with psycopg.Connection.connect(url, **kwargs) as conn:
            row = conn.execute(_REPLICATION).fetchone()
    except psycopg.OperationalError as exc:
        _raise_read_only_or_unreachable(url, kwargs, where, hosts, exc)
    assert row is not None
    replication = PrimaryReplication(
        host=f"{row[0]}:{row[1]}", synchronous_standby_names=str(row[2]), sync_standbys=tuple(row[3])
    )
    if require_sync and (not replication.synchronous_standby_names or not replication.sync_standbys):
        raise NoSynchronousStandby(
            f"duty store {where}: the primary ({replication.host}) has no synchronous standby "
            f"(synchronous_standby_names={replication.synchronous_standby_names!r}, standbys in sync: "
            f"{len(replication.sync_standbys)}). A failover to an asynchronous standby can lose the last "
            "recorded duties and let a slot be signed twice. Run Patroni with synchronous_mode and "
            "synchronous_mode_strict (and give this role pg_monitor to see pg_stat_replication), or pass "
            f"{ALLOW_ASYNC_FLAG} to accept that risk"
        )
    return replication


def _raise_read_only_or_unreachable(
    url: str, kwargs: dict[str, Any], where: str, hosts: str, exc: psycopg.OperationalError
) -> NoReturn:
    # libpq says only "connection failed" when every server it reached was read-only: ask any server again.
    try:
        any_server: dict[str, Any] = {**kwargs, "target_session_attrs": "any"}
        with psycopg.Connection.connect(url, **any_server) as conn:
            read_only = conn.execute("SELECT current_setting('transaction_read_only') = 'on'").fetchone()
    except psycopg.OperationalError:
        raise StoreUnreachable(f"duty store {where} unreachable (hosts tried: {hosts}): {exc}") from exc
    if read_only is not None and read_only[0]:
        raise ReadOnlyServer(
            f"duty store {where}: read-only server: every reachable host ({hosts}) is a standby or "
            "read-only; duties are recorded on the primary only. Name the primary (or every member of the "
            "cluster) in the URL"
        ) from exc
    raise StoreUnreachable(f"duty store {where} (hosts tried: {hosts}): {exc}") from exc


@dataclass(frozen=True)
class HostState:
    """One host of a multi-host URL as it answers for itself (`ha-db status`)."""

    host: str
    role: str  # primary | standby | unreachable
    standbys: tuple[tuple[str, str, int | None], ...] = ()  # on the primary: (name, sync_state, lag bytes)
    error: str | None = None


_STANDBYS = """
SELECT application_name, coalesce(sync_state, '?'),
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
FROM pg_stat_replication ORDER BY application_name
"""


def cluster_state(url: str, kwargs: dict[str, Any]) -> list[HostState]:
    """Each host of the URL asked on its own: primary (with its standbys' sync state and replay lag) or
    standby; a host that does not answer is listed as unreachable, with libpq's reason."""
    out: list[HostState] = []
    for hostport in hosts_of(url):
        host, _, port = hostport.rpartition(":")
        one: dict[str, Any] = {**kwargs, "host": host, "port": port, "target_session_attrs": "any"}
        try:
            with psycopg.Connection.connect(url, **one) as conn:
                standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if standby is not None and standby[0]:
                    out.append(HostState(hostport, "standby"))
                    continue
                rows = conn.execute(_STANDBYS).fetchall()
        except psycopg.Error as exc:
            out.append(HostState(hostport, "unreachable", error=str(exc).strip().splitlines()[0]))
            continue
        standbys = tuple((str(r[0]), str(r[1]), None if r[2] is None else int(r[2])) for r in rows)
        out.append(HostState(hostport, "primary", standbys))
    return out

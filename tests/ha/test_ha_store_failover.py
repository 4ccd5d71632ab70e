"""The PostgreSQL store toward a replicated cluster, on one real server: multi-host URLs, read-only servers
refused, the synchronous-standby check, and a record whose COMMIT is in doubt (its connection cut by a proxy
after the server got it). The cluster itself (Patroni + etcd, a real failover) is in test_store_cluster.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.errors import EXIT_USAGE
from ha_sequencer.ha import postgres_store
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import NoSynchronousStandby, ReadOnlyServer, StoreUnreachable, StoreURLError
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import (
    Adopted,
    DutyStatus,
    DutyType,
    NewSignature,
    Refused,
    SameData,
    StoreUnavailable,
    signature_of,
)
from ha_sequencer.ha.pg_cluster import hosts_of
from ha_sequencer.ha.postgres_store import PostgresDutyStore
from ha_sequencer.ha.store import DutyKey
from ha_sequencer.localnet.proxy import TcpProxy

pytestmark = pytest.mark.postgres

ATTESTER = Account.from_key(keccak(b"store failover attester"))
ROLLUP = "0x" + "42" * 20


def _sign(digest: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, ATTESTER.key).signature)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hostport(url: str) -> tuple[str, int, str, str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return (
        str(info.get("host", "127.0.0.1")),
        int(info.get("port", 5432)),
        str(info.get("user", "postgres")),
        str(info["dbname"]),
    )


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[str, TcpProxy]]:
    host, port, user, db = _hostport(pg_url)
    proxy = TcpProxy(host, port)
    yield f"postgresql://{user}@127.0.0.1:{proxy.port}/{db}", proxy
    proxy.close()


def test_a_multi_host_url_skips_a_dead_host_and_names_every_host(pg_url: str) -> None:
    host, port, user, db = _hostport(pg_url)
    dead = _free_port()
    url = f"postgresql://{user}:s3cret@127.0.0.1:{dead},{host}:{port}/{db}"
    assert hosts_of(url) == [f"127.0.0.1:{dead}", f"{host}:{port}"]
    store = open_store(url, migrate=True)
    guard = DutyGuard(store, node_id="n1", rollup=ROLLUP)
    out = guard.sign_duty(ATTESTER.address, 1, DutyType.ATTESTATION, keccak(b"a"), b"p", _sign)
    assert isinstance(out, NewSignature)
    store.close()
    # nothing answers: the error names every host tried, never the password
    gone = f"postgresql://{user}:s3cret@127.0.0.1:{dead},127.0.0.1:{_free_port()}/{db}"
    with pytest.raises(Exception) as info:
        open_store(gone)
    assert f"127.0.0.1:{dead}" in str(info.value) and "s3cret" not in str(info.value)


def test_a_read_only_server_is_refused_with_exit_2(pg_url: str, pg_admin_url: str) -> None:
    host, port, user, db = _hostport(pg_url)
    open_store(pg_url, migrate=True).close()
    # the server reports itself read-only at connect, as a hot standby does (libpq's read-write check)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" SET default_transaction_read_only = on')
    with pytest.raises(ReadOnlyServer) as info:
        open_store(pg_url)
    assert "read-only server" in str(info.value) and f"{host}:{port}" in str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    with pytest.raises(StoreURLError):
        PostgresDutyStore(pg_url + "?target_session_attrs=any")


def test_a_multi_host_store_needs_a_synchronous_standby(pg_url: str) -> None:
    host, port, user, db = _hostport(pg_url)
    url = f"postgresql://{user}@127.0.0.1:{_free_port()},{host}:{port}/{db}"
    with pytest.raises(NoSynchronousStandby) as info:
        open_store(url, migrate=True, require_sync=True)
    assert "--ha-db-allow-async" in str(info.value) and "signed twice" in str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    open_store(url, migrate=True).close()  # what --ha-db-allow-async does: no check


def _in_doubt_guard(
    url: str, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch, *, forward: bool
) -> DutyGuard:
    """A guard whose first record for slot 7 is cut: after the server got it (`forward`), or before."""
    armed = [True]

    def hook(point: str, slot: int) -> None:
        if point == "before_record" and slot == 7 and armed[0]:
            armed[0] = False
            if forward:
                proxy.cut_after_next_request()
            else:
                proxy.cut()

    # One connection per pool: a loaded machine once grew the record pool to two during the warm-up, and the
    # record then ran on a connection that had run it once, so its first bytes were psycopg's separate
    # prepare round trip, cut before the record itself reached the server (CI, 2026-12-01).
    monkeypatch.setattr(postgres_store, "POOL_MAX", 1)
    monkeypatch.setattr(postgres_store, "CLAIM_POOL_MAX", 1)
    store = open_store(url, migrate=True)
    guard = DutyGuard(store, node_id="n1", rollup=ROLLUP, lease_s=0.2, fault_hook=hook)
    # warm both pools and prepare the statements (psycopg prepares on the second run, in its own round trip),
    # so the next bytes sent are the record's execution itself
    for slot in (5, 6):
        digest = keccak(b"w%d" % slot)
        warm = guard.sign_duty(ATTESTER.address, slot, DutyType.ATTESTATION, digest, b"", _sign)
        assert isinstance(warm, NewSignature)
    return guard


def _row(guard: DutyGuard, slot: int):
    """The stored row, once the store answers again (the pool's one connection reconnects with a backoff)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return guard.store.fetch(DutyKey(ROLLUP, ATTESTER.address.lower(), slot, "attestation")).row
        except StoreUnreachable:
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.05)


def test_a_record_committed_with_its_answer_lost_releases_nothing_then_only_the_stored_one(
    proxied: tuple[str, TcpProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, proxy = proxied
    guard = _in_doubt_guard(url, proxy, monkeypatch, forward=True)
    ours, other = keccak(b"ours"), keccak(b"other")
    first = guard.sign_duty(ATTESTER.address, 7, DutyType.ATTESTATION, ours, b"ours", _sign)
    assert isinstance(first, StoreUnavailable) and signature_of(first) is None
    proxy.restore()
    deadline = time.monotonic() + 10
    while (row := _row(guard, 7)) is None or row.status is not DutyStatus.SIGNED:
        assert time.monotonic() < deadline, "the in-doubt record did not commit"
        time.sleep(0.05)

    # it did commit: a different message is refused, the same one gets the stored signature back (a pooled
    # connection the cut left broken may answer StoreUnavailable once more: that signs nothing, ask again)
    def answer(digest: bytes, payload: bytes) -> object:
        until = time.monotonic() + 10
        while isinstance(
            out := guard.sign_duty(ATTESTER.address, 7, DutyType.ATTESTATION, digest, payload, _sign),
            StoreUnavailable,
        ):
            assert signature_of(out) is None and time.monotonic() < until, (
                f"the store did not come back: {out}"
            )
            time.sleep(0.05)
        return out

    assert answer(other, b"x") == Refused(ours)
    assert answer(ours, b"ours") == SameData(_sign(ours))
    guard.store.close()


def test_a_record_lost_before_the_server_got_it_leaves_only_the_stored_digest_to_sign(
    proxied: tuple[str, TcpProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, proxy = proxied
    guard = _in_doubt_guard(url, proxy, monkeypatch, forward=False)
    ours, other = keccak(b"ours"), keccak(b"other")
    first = guard.sign_duty(ATTESTER.address, 7, DutyType.ATTESTATION, ours, b"ours", _sign)
    assert isinstance(first, StoreUnavailable) and signature_of(first) is None
    proxy.restore()
    row = _row(guard, 7)
    assert row is not None and row.status is DutyStatus.SIGNING and row.digest == ours
    # the next attempt, even for another message, can only finish the stored one (after the lease)
    deadline = time.monotonic() + 10
    while True:
        out = guard.sign_duty(ATTESTER.address, 7, DutyType.ATTESTATION, other, b"x", _sign)
        if not isinstance(out, StoreUnavailable):
            break
        assert time.monotonic() < deadline, f"the store did not come back: {out}"
        time.sleep(0.1)
    assert out == Adopted(_sign(ours), b"ours")
    guard.store.close()


def test_ha_db_status_lists_each_host_of_a_multi_host_url(pg_url: str) -> None:
    host, port, user, db = _hostport(pg_url)
    dead = _free_port()
    url = f"postgresql://{user}@{host}:{port},127.0.0.1:{dead}/{db}"
    open_store(url, migrate=True).close()
    done = subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", "ha-db", "status", "--db", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    cluster = json.loads(done.stdout)["cluster"]
    assert [(h["host"], h["role"]) for h in cluster] == [
        (f"{host}:{port}", "primary"),
        (f"127.0.0.1:{dead}", "unreachable"),
    ]
    assert cluster[0]["standbys"] == [] and "refused" in cluster[1]["error"].lower()

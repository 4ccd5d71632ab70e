"""Duty deadlines against real frozen stores: a PostgreSQL behind a paused TCP proxy and a locked SQLite file.

No signature for a duty leaves after its deadline, even when a hung store call returns late; a store that is
unavailable for less than the time left is retried and costs nothing.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import (
    DeadlinePassed,
    DutyStatus,
    DutyType,
    NewSignature,
    outcome_label,
)
from ha_sequencer.ha.store import DutyKey
from ha_sequencer.localnet.proxy import TcpProxy
from ha_sequencer.monitoring.alerts import NullAlerter
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.deadlines import ATTESTATION_DEADLINE, duty_deadline, sign_within
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.scheduler import Identity, Scheduler
from ha_sequencer.protocol.messages import Attestation, attestation_digest, sign_digest
from ha_sequencer.protocol.wire import attestation_payload
from params_fixtures import PARAMS

ATTESTER = Account.from_key(keccak(b"deadline test attester"))
ROLLUP = "0x" + "42" * 20
LIMIT_S = 60  # a safety net against a hang, never a timing assertion


def _sign(digest: bytes) -> bytes:
    return sign_digest(ATTESTER, digest)


def _outcomes(guard: DutyGuard, outcome: str) -> float:
    value = guard.metrics.registry.get_sample_value(
        "hasq_ha_duty_outcomes_total",
        {"duty_type": "attestation", "node_id": guard.node_id, "outcome": outcome},
    )
    return value or 0.0


def _wait_until(predicate, limit_s: float = LIMIT_S) -> None:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < limit_s, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def proxied_pg(pg_admin_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh, migrated database reached through a TCP proxy the test may pause or cut."""
    name = f"ha_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    proxy = TcpProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    user = info.get("user", "postgres")
    url = f"postgresql://{user}@127.0.0.1:{proxy.port}/{name}"
    open_store(url, migrate=True).close()
    try:
        yield url, proxy
    finally:
        proxy.close()
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _hold_lock(path: str, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    held.set()
    release.wait(LIMIT_S)
    conn.execute("COMMIT")
    conn.close()


def test_a_claim_stuck_on_a_locked_sqlite_file_past_the_deadline_signs_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "duties.sqlite")
    store = open_store(f"sqlite:///{path}", migrate=True)
    guard = DutyGuard(store, node_id="n1", rollup=ROLLUP)
    used: list[bytes] = []

    def sign(digest: bytes) -> bytes:
        used.append(digest)
        return _sign(digest)

    held, release = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(path, held, release))
    locker.start()
    held.wait(LIMIT_S)
    deadline = time.time() + 0.3
    # the lock goes after the deadline, well inside the store's busy timeout: the claim then succeeds
    threading.Timer(0.8, release.set).start()
    digest = keccak(b"locked")
    outcome = guard.sign_duty(
        ATTESTER.address, 5, DutyType.ATTESTATION, digest, b"p", sign, deadline=deadline
    )
    locker.join()
    assert outcome == DeadlinePassed(deadline)
    assert used == []  # the key was not even used
    # the claim stands (a peer could adopt it: it may sign only this digest), nothing was recorded
    row = store.fetch(DutyKey(ROLLUP, ATTESTER.address.lower(), 5, "attestation")).row
    assert row is not None and row.status is DutyStatus.SIGNING and row.digest == digest
    # and a call for the same duty after its deadline does not even reach the store
    again = guard.sign_duty(ATTESTER.address, 5, DutyType.ATTESTATION, digest, b"p", sign, deadline=deadline)
    assert again == DeadlinePassed(deadline) and used == []
    store.close()


def test_a_record_that_commits_after_the_deadline_releases_no_signature(tmp_path: Path) -> None:
    path = str(tmp_path / "duties.sqlite")
    store = open_store(f"sqlite:///{path}", migrate=True)
    held, release = threading.Event(), threading.Event()
    lockers: list[threading.Thread] = []

    def freeze_before_record(point: str, slot: int) -> None:
        if point == "before_record":  # signed in time; the store freezes just before the record
            t = threading.Thread(target=_hold_lock, args=(path, held, release))
            t.start()
            lockers.append(t)
            held.wait(LIMIT_S)

    guard = DutyGuard(store, node_id="n1", rollup=ROLLUP, fault_hook=freeze_before_record)
    deadline = time.time() + 0.5
    threading.Timer(1.0, release.set).start()
    digest = keccak(b"late record")
    outcome = guard.sign_duty(
        ATTESTER.address, 6, DutyType.ATTESTATION, digest, b"p", _sign, deadline=deadline
    )
    lockers[0].join()
    assert outcome == DeadlinePassed(deadline)
    # the record did commit (late): the stored signature is the only one this duty can ever carry
    row = store.fetch(DutyKey(ROLLUP, ATTESTER.address.lower(), 6, "attestation")).row
    assert row is not None and row.status is DutyStatus.SIGNED and row.signature == _sign(digest)
    store.close()


@pytest.mark.postgres
def test_a_frozen_postgres_cannot_hold_a_duty_past_its_deadline(proxied_pg: tuple[str, TcpProxy]) -> None:
    url, proxy = proxied_pg
    guard = DutyGuard(open_store(url), node_id="n1", rollup=ROLLUP)
    digest = keccak(b"frozen")
    assert guard.healthy
    proxy.pause()

    async def attempt() -> tuple[object, int]:
        with trio.fail_after(LIMIT_S):
            return await sign_within(
                guard,
                ATTESTER.address,
                9,
                DutyType.ATTESTATION,
                digest,
                b"p",
                _sign,
                deadline=time.time() + 0.5,
                now=time.time,
            )

    outcome, attempts = trio.run(attempt)
    # returned while the store is still frozen: the hung call was abandoned at the deadline
    assert isinstance(outcome, DeadlinePassed) and attempts == 1
    assert _outcomes(guard, "new_signature") == 0
    proxy.resume()
    # the abandoned call finishes now that the store answers; what it got is not a released signature
    _wait_until(lambda: sum(_outcomes(guard, o) for o in ("deadline_passed", "store_unavailable")) >= 1)
    assert _outcomes(guard, "new_signature") == 0 and _outcomes(guard, "same_data") == 0
    guard.store.close()


@pytest.mark.postgres
def test_a_store_outage_shorter_than_the_time_left_costs_nothing(proxied_pg: tuple[str, TcpProxy]) -> None:
    url, proxy = proxied_pg
    guard = DutyGuard(open_store(url), node_id="n1", rollup=ROLLUP)
    assert guard.healthy
    proxy.cut()
    threading.Timer(1.5, proxy.restore).start()
    digest = keccak(b"outage")

    async def attempt() -> tuple[object, int]:
        with trio.fail_after(LIMIT_S):
            return await sign_within(
                guard,
                ATTESTER.address,
                10,
                DutyType.ATTESTATION,
                digest,
                b"p",
                _sign,
                deadline=time.time() + 30,
                now=time.time,
            )

    outcome, attempts = trio.run(attempt)
    assert outcome == NewSignature(_sign(digest))
    assert attempts > 1 and _outcomes(guard, "store_unavailable") == attempts - 1
    guard.store.close()


@pytest.mark.postgres
def test_the_scheduler_releases_no_attestation_after_its_deadline(proxied_pg: tuple[str, TcpProxy]) -> None:
    url, proxy = proxied_pg
    guard = DutyGuard(open_store(url), node_id="n1", rollup=PARAMS.rollup)
    assert guard.healthy
    # a live slot of 2 s that has just begun: its attestation deadline is 1.4 s away
    start = time.time()
    params = dataclasses.replace(PARAMS, genesis_time=int(start) - 100 * 2, slot_duration=2)
    timing = SlotTiming(params.genesis_time, params.slot_duration)
    clock = SlotClock(timing)
    slot = clock.current_slot() + 1
    deadline = duty_deadline(timing, slot, DutyType.ATTESTATION)
    assert deadline == timing.slot_start(slot) + ATTESTATION_DEADLINE * 2
    gossiped: list[tuple[str, bytes]] = []

    async def publish(topic: str, data: bytes) -> None:
        gossiped.append((topic, data))

    scheduler = Scheduler(
        params=params,
        clock=clock,
        chain=Chain(params, []),
        sync=None,  # type: ignore[arg-type]
        committees=None,  # type: ignore[arg-type]
        mempool=None,  # type: ignore[arg-type]
        guard=guard,
        publisher=None,  # type: ignore[arg-type]
        metrics=NodeMetrics(),
        identities=[Identity.from_account(ATTESTER, bytes(32))],
        publish_gossip=publish,
        alerts=NullAlerter(),
    )
    identity = scheduler.identities[ATTESTER.address]
    archive = b"\x17" * 32
    digest = attestation_digest(params, Attestation(slot, archive))

    async def attest() -> None:
        await clock.wait_for_slot(slot)
        proxy.pause()  # the store freezes as the duty starts
        with trio.fail_after(LIMIT_S):
            await scheduler._attest_one(identity, slot, digest, attestation_payload(slot, archive))

    trio.run(attest)
    assert time.time() >= deadline and gossiped == []
    proxy.resume()
    _wait_until(lambda: sum(_outcomes(guard, o) for o in ("deadline_passed", "store_unavailable")) >= 1)
    assert gossiped == [] and _outcomes(guard, "new_signature") == 0
    labels = {"duty": "attestation", "outcome": outcome_label(DeadlinePassed(deadline))}
    assert scheduler.metrics.duties.labels(**labels)._value.get() == 1  # type: ignore[attr-defined]
    guard.store.close()

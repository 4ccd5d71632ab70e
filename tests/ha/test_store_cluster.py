"""The duty store on a real Patroni + etcd cluster (3 + 3 members on loopback, strict synchronous mode).

- a standby named alone is refused: exit 2, "read-only server";
- three HA nodes (each its own store on the multi-host URL, its own pools) race for the same identity's duties
  every slot; the primary is killed (kill -9 of its Patroni and its PostgreSQL): every node goes on without a
  restart, 0 equivocations, and every released signature is the one the new primary holds;
- split brain: the new primary's Patroni is frozen (SIGSTOP: nothing demotes its PostgreSQL, harsher than a
  network cut, after which Patroni would demote it itself) and a new leader is elected; a node pointed
  straight at the isolated old primary claims there but its record never gets a synchronous standby's
  acknowledgement, so it releases no signature.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import psycopg
import pytest
import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import ReadOnlyServer
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import DutyType, signature_of
from ha_sequencer.ha.store import DutyKey
from ha_sequencer.localnet.store_cluster import StoreCluster
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.deadlines import duty_deadline, sign_within

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ATTESTER = Account.from_key(keccak(b"store cluster attester"))
ROLLUP = "0x" + "42" * 20
SLOT_S = 2
NODES = ("ha1", "ha2", "ha3")


def _sign(digest: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, ATTESTER.key).signature)


@pytest.fixture(scope="module")
def cluster() -> Iterator[StoreCluster]:
    with StoreCluster() as c:
        yield c


@dataclass(frozen=True)
class Released:
    node: str
    slot: int
    duty: DutyType
    digest: bytes
    signature: bytes
    at: float


def _digest(node: str, slot: int, duty: DutyType) -> bytes:
    # each twin builds its own block (different proposals); attestations of one slot are the same vote
    mine = node if duty is DutyType.BLOCK_PROPOSAL else ""
    return keccak(f"{slot}|{duty.value}|{mine}".encode())


class RacingNode:
    """One HA node's duty loop: every slot, the identity's proposal and attestation through its own guard."""

    def __init__(self, name: str, url: str, timing: SlotTiming, released: list[Released]) -> None:
        self.name = name
        self.guard = DutyGuard(open_store(url, require_sync=True), node_id=name, rollup=ROLLUP)
        self.clock = SlotClock(timing)
        self.timing = timing
        self.released = released
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: trio.run(self._run), name=name)

    async def _run(self) -> None:
        slot = self.clock.current_slot() + 1
        while not self.stop.is_set():
            await self.clock.wait_for_slot(slot)
            async with trio.open_nursery() as n:
                for duty in DutyType:
                    n.start_soon(self._duty, slot, duty)
            slot = max(slot + 1, self.clock.current_slot())

    async def _duty(self, slot: int, duty: DutyType) -> None:
        digest = _digest(self.name, slot, duty)
        outcome, _ = await sign_within(
            self.guard,
            ATTESTER.address,
            slot,
            duty,
            digest,
            digest,
            _sign,
            deadline=duty_deadline(self.timing, slot, duty),
            now=time.time,
        )
        signature = signature_of(outcome)
        if signature is not None:
            # an adopted duty carries the stored payload (= its digest here), never ours
            signed = getattr(outcome, "payload", digest)
            self.released.append(Released(self.name, slot, duty, signed, signature, time.time()))


def test_a_standby_alone_is_refused_with_exit_2(cluster: StoreCluster) -> None:
    standby = cluster.sync_standbys()[0]
    with pytest.raises(ReadOnlyServer) as info:
        open_store(cluster.member_url(standby))
    assert "read-only server" in str(info.value)
    done = subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", "ha-db", "migrate", "--db", cluster.member_url(standby)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 2, done.stderr
    assert "read-only server" in done.stderr
    # the whole cluster: one primary whose synchronous standby is the one refused above
    open_store(cluster.url, migrate=True).close()
    status = subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", "ha-db", "status", "--db", cluster.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert status.returncode == 0, status.stderr
    hosts = json.loads(status.stdout)["cluster"]
    primaries = [h for h in hosts if h["role"] == "primary"]
    assert len(primaries) == 1 and sum(h["role"] == "standby" for h in hosts) == 2
    assert {"name": standby, "sync_state": "sync"} in [
        {k: s[k] for k in ("name", "sync_state")} for s in primaries[0]["standbys"]
    ]


def test_the_identity_goes_on_across_a_primary_kill_with_no_equivocation(cluster: StoreCluster) -> None:
    open_store(cluster.url, migrate=True, require_sync=True).close()
    timing = SlotTiming(int(time.time()) - 1000 * SLOT_S, SLOT_S)
    released: list[Released] = []
    nodes = [RacingNode(n, cluster.url, timing, released) for n in NODES]
    for node in nodes:
        node.thread.start()
    try:
        _wait(lambda: len(released) >= 6, 30, "signatures before the kill")
        old = cluster.leader()
        assert old is not None
        killed_at = time.time()
        cluster.kill_member(old)
        new = cluster.wait_new_leader(old)
        _wait(lambda: {r.node for r in released if r.at > killed_at} == set(NODES), 60, "every node resumed")
        # a few more slots on the new primary
        resumed_slot = timing.slot_at(time.time())
        _wait(lambda: any(r.slot > resumed_slot + 2 for r in released), 30, "slots after the failover")
    finally:
        for node in nodes:
            node.stop.set()
        for node in nodes:
            node.thread.join(timeout=30)

    after = [r for r in released if r.at > killed_at]
    first = min(r.at for r in after) - killed_at
    kill_slot = timing.slot_at(killed_at)
    first_slot = min(r.slot for r in after)
    proposals = {r.slot for r in released if r.duty is DutyType.BLOCK_PROPOSAL}
    missed = [s for s in range(kill_slot, first_slot) if s not in proposals]
    print(
        f"\nfailover: primary {old} killed, new primary {new}; first guarded signature {first:.1f} s after "
        f"the kill; proposal duties missed: {len(missed)} (slots of {SLOT_S} s)"
    )
    # 0 equivocations: one digest per duty among everything any node released
    digests: dict[tuple[int, DutyType], set[bytes]] = defaultdict(set)
    for r in released:
        digests[(r.slot, r.duty)].add(r.digest)
        assert r.signature == _sign(r.digest)
    assert all(len(d) == 1 for d in digests.values()), {k: v for k, v in digests.items() if len(v) > 1}
    # every released signature is the one the surviving cluster holds for its duty
    store = open_store(cluster.url)
    try:
        for (slot, duty), (digest,) in digests.items():
            row = store.fetch(DutyKey(ROLLUP, ATTESTER.address.lower(), slot, duty.value)).row
            assert row is not None and row.digest == digest and row.signature == _sign(digest), (slot, duty)
    finally:
        store.close()
        for node in nodes:
            node.guard.store.close()


def test_an_isolated_old_primary_releases_no_signature(cluster: StoreCluster) -> None:
    old = cluster.leader()
    assert old is not None and cluster.sync_standbys(), cluster.members()
    patroni = psutil.Process(cluster.patroni_pid(old))
    patroni.send_signal(signal.SIGSTOP)  # its PostgreSQL stays a running primary; nothing will demote it
    try:
        new = cluster.wait_new_leader(old)
        store = open_store(cluster.member_url(old))  # straight at the isolated old primary: it still writes
        guard = DutyGuard(store, node_id="isolated", rollup=ROLLUP)
        slot = 10_000_000 + int(time.time())
        outcomes = []

        async def attempt() -> None:
            for i, duty in enumerate(DutyType):
                outcome, _ = await sign_within(
                    guard,
                    ATTESTER.address,
                    slot + i,
                    duty,
                    keccak(b"isolated %d" % i),
                    b"",
                    _sign,
                    deadline=time.time() + 3,
                    now=time.time,
                )
                outcomes.append(outcome)

        trio.run(attempt)
        print(f"\nsplit brain: old primary {old} isolated, new primary {new}: {outcomes}")
        assert outcomes and all(signature_of(o) is None for o in outcomes)
        # the node did reach the old primary: its claim is there (claims do not wait for the standby), and the
        # record's commit, visible there too, waits for an acknowledgement that never comes
        with psycopg.connect(cluster.member_url(old)) as conn:
            found = conn.execute(
                "SELECT status FROM duties WHERE node_id = 'isolated' AND slot = %s", (slot,)
            ).fetchone()
        assert found is not None
        fresh = open_store(cluster.url)
        try:
            row = fresh.fetch(DutyKey(ROLLUP, ATTESTER.address.lower(), slot, "block_proposal")).row
            assert row is None or row.signature is None  # the new primary holds no signature for it
        finally:
            fresh.close()
    finally:
        patroni.send_signal(signal.SIGCONT)


def _wait(predicate, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {limit_s} s"
        time.sleep(0.05)

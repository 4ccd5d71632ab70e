"""End to end HA: one identity on 3 node processes sharing a duty store (SQLite, PostgreSQL) + 3 validators.

Every slot from the one an HA node is SIGKILLed in (between claiming a duty and signing it) has a block, and
each duty a twin adopts is on L1 exactly as stored (the proposal's digest, or the HA attester among the
attesters); each of the HA identity's duties has exactly one digest (store rows,
signatures released in every node's log, no equivocation seen on gossip); no `Slashed` event ever on L1.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from web3 import Web3

from ha_sequencer.l1.build import load_artifact
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import LocalNet, generate_validators
from ha_sequencer.protocol.messages import Attestation, attestation_digest, proposal_digest

pytestmark = pytest.mark.slow

SLOT = 3
KILL_AFTER_SLOTS = 4  # ha0 dies this many slots after the rest of the network is up
SLOTS_AFTER_KILL = 12  # every one of them must have a block

_RELEASED = re.compile(r"slot (\d+): (0x[0-9a-fA-F]{40}) (proposed|attested) (0x[0-9a-f]{12})")


def _duty_rows(url: str, attester: str) -> list[tuple]:
    query = "SELECT slot, duty_type, digest, status, adopted_from, node_id FROM duties WHERE attester = {}"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(query.format("?"), (attester,)).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query.format("%s"), (attester,)).fetchall()


def _active_halts(url: str) -> list[tuple]:
    query = "SELECT attester, reason FROM halts WHERE resumed_at IS NULL"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(query).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def pg_database(pg_admin_url):
    """A fresh PostgreSQL database for the shared duty store, dropped afterwards."""
    import psycopg

    name = f"hasq_node_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(pg_admin_url)._replace(path=f"/{name}"))
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ha_net(request):
    workdir = Path(tempfile.mkdtemp(prefix="hasq-ha-e2e-"))
    validators = generate_validators(4, publishers_each=3)
    ha, singles = validators[0], validators[1:]
    if request.param == "sqlite":
        store = f"sqlite:///{workdir / 'shared-duties.sqlite'}"
    else:
        store = request.getfixturevalue("pg_database")
    net = LocalNet(workdir, slot_duration=SLOT, epoch_length=8, committee_size=4)
    try:
        net.deploy(validators, users=1)
        for j in (1, 2):
            net.add_node(f"ha{j}", [(ha, [j])], ha_db=store)
        for i, v in enumerate(singles):
            net.add_node(f"v{i}", [(v, [0])])
        net.start()
        net.wait_ready(timeout=90)
        # ha0 joins last and dies (SIGKILL from the guard's fault hook) just after claiming a duty a few
        # slots after it is up: relative to now, so a slow start on a loaded machine cannot kill it early
        kill_slot = RollupClient(net.l1_urls, net.rollup).params().slot_at(time.time()) + KILL_AFTER_SLOTS
        net.add_node(
            "ha0", [(ha, [0])], ha_db=store, extra_env={"HA_GUARD_FAULTS": f"after_claim:kill@{kill_slot}+"}
        )
        net.start(["ha0"])
        net.wait_ready(["ha0"], timeout=90)
        net.kill_slot = kill_slot
        net.ha = ha
        net.store_url = store
        yield net
    finally:
        net.close()
        for node in net.nodes.values():
            print(f"----- {node.name} log tail -----\n{node.log_text()[-2000:]}")
        shutil.rmtree(workdir, ignore_errors=True)


def test_ha_identity_never_misses_and_never_equivocates(ha_net) -> None:
    net = ha_net
    client = RollupClient(net.l1_urls, net.rollup)
    params = client.params()
    ha_address = net.ha.address
    ha_publishers = {p.address for p in net.ha.publishers}

    # mid-run, one HA node dies between claiming a duty and signing it; a twin must adopt and finish it
    killed_at = None
    deadline = time.monotonic() + SLOT * (KILL_AFTER_SLOTS + SLOTS_AFTER_KILL + 16)
    while time.monotonic() < deadline:
        if killed_at is None and not net.nodes["ha0"].running:
            killed_at = params.slot_at(time.time())
            assert net.nodes["ha0"].proc.returncode == -9
        if killed_at is not None and params.slot_at(time.time()) > killed_at + SLOTS_AFTER_KILL + 1:
            break
        time.sleep(SLOT / 3)
    assert killed_at is not None, "ha0 was never killed by its fault hook"
    events = client.block_proposed_events(0)
    by_slot = {e.slot: e for e in events}
    # the HA identity proposed some of these blocks (it is one of 4 committee members)
    assert any(e.proposer == ha_address for e in events)
    assert all(e.publisher in ha_publishers for e in events if e.proposer == ha_address)

    # one row per duty in the shared store, all signed, and one digest per (slot, duty)
    rows = _duty_rows(net.store_url, ha_address.lower())
    assert rows, "the HA identity signed nothing"
    # the duty ha0 died holding was adopted by a twin and signed with the digest ha0 had stored
    adopted = [r for r in rows if r[4] is not None]
    assert adopted and all(r[4] == "ha0" and r[5] in ("ha1", "ha2") for r in adopted), adopted
    died_in = min(r[0] for r in adopted)  # the slot of the duty ha0 held when it died
    assert net.kill_slot <= died_in <= killed_at
    # a block in EVERY slot from the one ha0 died in: the kill cost the network nothing
    missing = [s for s in range(died_in, killed_at + SLOTS_AFTER_KILL + 1) if s not in by_slot]
    assert not missing, f"slots without a block after the kill: {missing} (blocks: {sorted(by_slot)})"
    # and each adopted duty is on L1 exactly as stored: the proposal's digest, or the HA attester among
    # the attesters of the block its stored attestation digest names
    for slot, duty_type, digest, _status, _from, _node in adopted:
        e = by_slot[slot]
        if duty_type == "block_proposal":
            assert e.proposer == ha_address and proposal_digest(params, e.proposal) == bytes(digest), slot
        else:
            assert ha_address in e.attesters, (slot, e.attesters)
            assert attestation_digest(params, Attestation(slot, e.proposal.archive)) == bytes(digest), slot
    stored = {}
    for slot, duty_type, digest, status, _from, _node in rows:
        stored[(slot, duty_type)] = bytes(digest)
        assert status == "signed", (slot, duty_type, status)
    # what landed on L1 is exactly what the store let the identity sign: its proposals' digests, and the
    # archive its attestations signed (the block's archive) for every block it attested
    for e in events:
        if e.proposer == ha_address:
            assert stored[(e.slot, "block_proposal")] == proposal_digest(params, e.proposal), e.slot
        if ha_address in e.attesters:
            signed = stored[(e.slot, "attestation")]
            assert signed == attestation_digest(params, Attestation(e.slot, e.proposal.archive)), e.slot

    # every signature a node released for the identity carries the one archive of its duty
    released = defaultdict(set)
    for node in net.nodes.values():
        text = node.log_text()
        assert "equivocated" not in text, node.name
        for slot, attester, kind, archive in _RELEASED.findall(text):
            if attester == ha_address:
                released[(int(slot), kind)].add(archive)
    assert released, "no HA signature released"
    assert all(len(a) == 1 for a in released.values()), released

    # the survivors kept both duty kinds going after the kill
    assert any(kind == "attested" and slot > killed_at for slot, kind in released)

    # no false halt: kill -9 mid-duty, adoption and the restarts halted nothing (every message seen is ours)
    assert _active_halts(net.store_url) == [], "the kill switch halted the fleet on its own messages"

    # and L1 never saw slashing evidence
    w3 = Web3(Web3.HTTPProvider(net.l1_urls[0]))
    rollup = w3.eth.contract(address=net.rollup, abi=load_artifact("Rollup")["abi"])
    assert rollup.events.Slashed.get_logs(from_block=0) == []

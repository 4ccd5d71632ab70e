"""Gossip between real OS processes: mesh delivery, HA dedup, REJECT stops at the first hop, restart."""

from __future__ import annotations

import json
import os
import stat

import pytest
from p2p_peers import PeerProcess, PeerSpec, wait_until

from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, MAX_BYTES_BY_TOPIC, PROPOSAL_TOPIC, TX_TOPIC

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def payload(**fields) -> bytes:
    return json.dumps(fields, sort_keys=True).encode()


@pytest.fixture
def spawn():
    procs: list[PeerProcess] = []

    def start(spec: PeerSpec, bootstrap: list[PeerSpec]) -> PeerProcess:
        proc = PeerProcess(spec, [b.multiaddr for b in bootstrap])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.close()


def count(stats: dict, topic: str, verdict: str) -> float:
    return stats["counts"][f"{topic}|{verdict}"]


def test_mesh_of_four_any_start_order_delivers_once_and_survives_restart(tmp_path, spawn):
    specs = [PeerSpec(tmp_path, name) for name in "abcd"]
    # Started last-to-first: every peer's bootstrap list names peers that are not up yet.
    procs = {}
    for spec in reversed(specs):
        procs[spec.name] = spawn(spec, [s for s in specs if s is not spec])
    for p in procs.values():
        assert p.wait_ready()["peer_id"] == p.spec.peer_id
    a, b, c, d = (procs[n] for n in "abcd")
    for p in procs.values():
        wait_until(
            lambda p=p: len(p.stats()["topic_peers"][TX_TOPIC]) == 3, what=f"{p.spec.name} sees 3 peers"
        )

    # Each peer publishes; every other peer receives exactly once, the publisher never gets its own back.
    for p in procs.values():
        assert p.publish(TX_TOPIC, payload(n=p.spec.name))
    for p in procs.values():
        expected = sorted(payload(n=q.spec.name) for q in procs.values() if q is not p)
        wait_until(
            lambda p=p, e=expected: sorted(p.received(TX_TOPIC)) == e, what=f"{p.spec.name} receives 3"
        )
        assert {m["from"] for m in p.messages} == {q.spec.peer_id for q in procs.values() if q is not p}

    # Two HA nodes gossip the same bytes: content ids make it one message everywhere.
    shared = payload(kind="attestation", slot=7)
    a.publish(ATTESTATION_TOPIC, shared)
    b.publish(ATTESTATION_TOPIC, shared)
    for p in (c, d):
        wait_until(lambda p=p: shared in p.received(ATTESTATION_TOPIC), what="shared attestation")
    marker = payload(kind="marker")
    a.publish(ATTESTATION_TOPIC, marker)  # once this arrives, any duplicate would have too
    for p in (c, d):
        wait_until(lambda p=p: marker in p.received(ATTESTATION_TOPIC), what="marker")
        assert p.received(ATTESTATION_TOPIC).count(shared) == 1
    # The same bytes again from a node that has seen them is a no-op.
    assert a.publish(ATTESTATION_TOPIC, shared) is False

    # kill -9 one peer, publish while it is down, restart it with the same key and port.
    key_bytes = d.spec.key.read_bytes()
    d.kill()
    down = payload(n="while d is down")
    a.publish(TX_TOPIC, down)
    wait_until(
        lambda: down in b.received(TX_TOPIC) and down in c.received(TX_TOPIC), what="delivery without d"
    )
    d2 = spawn(d.spec, [s for s in specs if s is not d.spec])
    assert d2.wait_ready()["peer_id"] == d.spec.peer_id
    assert d.spec.key.read_bytes() == key_bytes
    assert stat.S_IMODE(os.stat(d.spec.key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d.spec.key.parent).st_mode) == 0o700
    wait_until(lambda: d.spec.peer_id in a.stats()["topic_peers"][TX_TOPIC], what="a sees d again")
    wait_until(lambda: len(d2.stats()["topic_peers"][TX_TOPIC]) == 3, what="d2 sees 3 peers")
    after = payload(n="after restart")
    a.publish(TX_TOPIC, after)
    wait_until(lambda: after in d2.received(TX_TOPIC), what="restarted d receives")
    for p in (a, b, c, d2):
        assert p.stats()["internal_errors"] == 0


def test_rejected_messages_stop_at_the_first_hop_and_are_counted(tmp_path, spawn):
    # A line a - b - c: b is the only way from a to c.
    a_spec, b_spec, c_spec = (PeerSpec(tmp_path, n) for n in "abc")
    a = spawn(a_spec, [])
    b = spawn(b_spec, [a_spec])
    c = spawn(c_spec, [b_spec])
    for p in (a, b, c):
        p.wait_ready()
    wait_until(lambda: len(b.stats()["topic_peers"][PROPOSAL_TOPIC]) == 2, what="b sees a and c")
    assert a_spec.peer_id not in c.stats()["peers"]
    first = payload(n="first")
    a.publish(TX_TOPIC, first)
    wait_until(lambda: first in c.received(TX_TOPIC), what="relay a -> b -> c")

    # a misbehaves: it bypasses its own checks (publish_raw) and sends b what b must not relay.
    a.publish(TX_TOPIC, b"x" * (MAX_BYTES_BY_TOPIC[TX_TOPIC] + 1), raw=True)  # over the cap
    a.publish(ATTESTATION_TOPIC, payload(kind="invalid"), raw=True)  # the node's check says REJECT
    a.publish(PROPOSAL_TOPIC, bytes(range(256)), raw=True)  # garbage: not decodable
    a.publish(PROPOSAL_TOPIC, payload(kind="raise"), raw=True)  # the validator raises
    a.publish(ATTESTATION_TOPIC, payload(kind="ignore"), raw=True)  # IGNORE: not relayed either
    last = payload(n="last")
    a.publish(TX_TOPIC, last)
    wait_until(lambda: last in c.received(TX_TOPIC), what="b still relays valid messages")

    wait_until(lambda: count(b.stats(), PROPOSAL_TOPIC, "reject") == 2, what="b counts 2 proposal rejects")
    bs = b.stats()
    assert count(bs, TX_TOPIC, "reject") == 1
    assert count(bs, ATTESTATION_TOPIC, "reject") == 1
    assert count(bs, ATTESTATION_TOPIC, "ignore") == 1
    assert count(bs, TX_TOPIC, "accept") == 2
    assert bs["internal_errors"] == 0
    assert sorted(b.received()) == sorted([first, last])

    cs = c.stats()
    assert sorted(c.received()) == sorted([first, last])
    assert all(
        count(cs, t, v) == 0
        for t in (TX_TOPIC, PROPOSAL_TOPIC, ATTESTATION_TOPIC)
        for v in ("reject", "ignore")
    )
    for p in (a, b, c):
        assert p.proc.poll() is None

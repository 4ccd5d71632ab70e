"""End to end: 4 validators, 4 node processes, real anvil, real gossip (issue 5 tests).

One network serves the module (started once, ~2 minutes of slots): blocks every slot with a quorum, L2 txs
through node_sendTx landing equally on every node, /status fields and L1 failover, L1 outage → 503, malformed
gossip dropped and counted, a restarted node syncing from L1 before it attests.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import trio

from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import LocalNet, generate_validators, signed_transfer
from ha_sequencer.localnet.proxy import TcpProxy
from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC
from ha_sequencer.protocol.committee import quorum
from ha_sequencer.protocol.messages import (
    Attestation,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    encode_attestation,
    encode_signed_block,
)

pytestmark = pytest.mark.slow

SLOT = 3  # seconds: the shortest that stays reliable with 5 node processes + anvil on 2 loaded cores
DEAD_URL = "http://operator:s3cret-token@127.0.0.1:9/"  # discard port: connection refused; credentials


def longest_run(slots: list[int]) -> tuple[int, int]:
    """(length, first slot) of the longest run of consecutive slots."""
    best = (0, 0)
    run_start, prev = None, None
    for s in sorted(set(slots)):
        if prev is None or s != prev + 1:
            run_start = s
        prev = s
        length = s - run_start + 1
        if length > best[0]:
            best = (length, run_start)
    return best


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def net():
    # not under pytest's basetemp: concurrent pytest sessions on this machine prune each other's old basetemps
    workdir = Path(tempfile.mkdtemp(prefix="hasq-net4-e2e-"))
    validators = generate_validators(4)
    with LocalNet(workdir, slot_duration=SLOT, epoch_length=8, committee_size=4) as network:
        network.deploy(validators, users=3)
        for i, v in enumerate(validators):
            network.add_node(f"n{i}", [(v, [0])])
        proxy = TcpProxy("127.0.0.1", network.anvil.port)
        # n1 lists a dead URL first: it must fail over and stay healthy
        network.start(["n0", "n2", "n3"])
        network.start(["n1"], l1_urls=[DEAD_URL, network.anvil.rpc_url])
        network.validators = validators
        network.proxy = proxy
        network.client = RollupClient([network.anvil.rpc_url], network.rollup)
        network.params = network.client.params()
        network.started_slot = network.params.slot_at(time.time())
        try:
            network.wait_ready(timeout=90)
            yield network
        finally:
            proxy.close()
            for node in network.nodes.values():
                print(f"----- {node.name} log tail -----\n{node.log_text()[-2500:]}")
    shutil.rmtree(workdir, ignore_errors=True)


def test_status_fields_and_failover(net) -> None:
    for name, node in net.nodes.items():
        if name not in ("n0", "n1", "n2", "n3"):
            continue
        code, status = node.status()
        assert code == 200, status
        assert status["status"] == "ok" and status["reasons"] == []
        assert status["nodeId"] == name
        assert status["network"] == "localnet"
        assert status["attesters"] == [net.validators[int(name[1])].address]
        assert status["publishers"] == [net.validators[int(name[1])].publishers[0].address]
        assert status["role"] in ("proposer", "committee", "idle")
        assert isinstance(status["slot"], int) and status["slot"] >= net.started_slot
        assert status["sync"]["synced"] is True
        assert status["l1"]["healthy"] is True
        assert status["ha"]["store"] == "sqlite" and status["ha"]["healthy"] is True
        assert status["peers"] >= 1
    # failover: n1's first URL is dead, yet it is healthy and the dead endpoint is reported as such
    _, status = net.nodes["n1"].status()
    endpoints = status["l1"]["endpoints"]
    assert endpoints[0]["url"].startswith("http://***@127.0.0.1:9") and endpoints[0]["healthy"] is False
    assert endpoints[1]["healthy"] is True
    # start-up log: who we are, never a key or an L1 credential
    for name, node in net.nodes.items():
        v = net.validators[int(name[1])]
        log = node.log_text()
        assert f"node {name} starting" in log and f"attester {v.address}" in log
        assert v.publishers[0].address in log and net.rollup in log and "duty store: sqlite" in log
        for secret in (v.attester.key.hex().removeprefix("0x"), v.publishers[0].key.hex().removeprefix("0x")):
            assert secret not in log
        assert "s3cret-token" not in log
    assert "s3cret-token" not in str(net.nodes["n1"].status()[1])
    # metrics are served and include the node's series
    text = net.nodes["n0"].metrics()
    for series in (
        "hasq_slot",
        "hasq_duties_total",
        "hasq_sync_height",
        "hasq_store_healthy",
        "ha_duty_outcomes_total",
        "hasq_gossip_messages_total",
    ):
        assert series in text


def test_blocks_every_slot_with_quorum_and_txs_land(net) -> None:
    users = net.users
    params = net.params
    # a few transfers through different nodes' JSON-RPC, while blocks are being produced
    sent = []
    for i, (sender, receiver) in enumerate(
        [(users[0], users[1]), (users[1], users[2]), (users[0], users[2])]
    ):
        nonce = sum(1 for s, _, _ in sent if s == sender.address)
        stx = signed_transfer(params, sender, receiver.address, amount=1_000 + i, fee=7, nonce=nonce)
        node = net.nodes[f"n{i % 4}"]
        reply = node.rpc("node_sendTx", ["0x" + stx.encode().hex()])
        assert "result" in reply, reply
        sent.append((sender.address, receiver.address, 1_000 + i))
    # JSON-RPC errors are clear: a replayed tx, and garbage
    dup = net.nodes["n0"].rpc("node_sendTx", ["0x" + stx.encode().hex()])
    assert dup["error"]["code"] < 0 and dup["error"]["message"]
    bad = net.nodes["n0"].rpc("node_sendTx", ["0x1234"])
    assert bad["error"]["code"] == -32602
    unknown = net.nodes["n0"].rpc("node_nope", [])
    assert unknown["error"]["code"] == -32601

    def run_length():
        events = net.client.block_proposed_events(0)
        return longest_run([e.slot for e in events])[0] >= 20 and events

    events = wait_for(run_length, timeout=SLOT * 40, what="20 consecutive slots with a block", interval=SLOT)
    length, first = longest_run([e.slot for e in events])
    assert length >= 20
    for e in events:
        assert len(set(e.attesters)) >= quorum(4), e
    # every tx landed; every node reports the same tip, archive and balances
    included = [t for e in events for t in range(len(e.txs) // 201)]
    assert len(included) >= 3

    def same_tip():
        tips = {}
        for node in net.nodes.values():
            if not node.running:
                continue
            _, st = node.status()
            tips[node.name] = (st["sync"]["blockNumber"], st["sync"]["archive"])
        return len(set(tips.values())) == 1 and tips

    wait_for(same_tip, timeout=SLOT * 3, what="all nodes on the same tip", interval=0.3)
    genesis = 10**21
    expected = {
        users[0].address: genesis - 1_000 - 7 - 1_002 - 7,
        users[1].address: genesis + 1_000 - 1_001 - 7,
        users[2].address: genesis + 1_001 + 1_002,
    }
    for node in net.nodes.values():
        for address, balance in expected.items():
            reply = node.rpc("node_getBalance", [address])
            assert int(reply["result"]["balance"]) == balance, (node.name, reply)
    block = net.nodes["n2"].rpc("node_getBlock", ["latest"])["result"]
    assert block["number"] >= 20 and len(block["archive"]) == 66
    number = net.nodes["n3"].rpc("node_getBlockNumber", [])["result"]
    assert number >= block["number"] - 1


async def _inject_gossip(target_multiaddr: str, key_path: Path, params, validators) -> None:
    """Connect a hostile peer to one node and publish malformed messages on every topic."""
    config = GossipConfig(heartbeat_interval_s=0.3)
    async with GossipNode(key_path, 0, [target_multiaddr], config=config) as peer:
        for topic in (TX_TOPIC, PROPOSAL_TOPIC, ATTESTATION_TOPIC):
            await peer.subscribe(topic)
        await peer.wait_for_topic_peers(ATTESTATION_TOPIC, 1, timeout_s=20)
        await trio.sleep(1.5)  # mesh grafting on the next heartbeats
        slot = params.slot_at(time.time())
        wrong_signer = validators[0].attester
        archive = bytes(range(32))
        # garbage bytes on every topic
        for topic in (TX_TOPIC, PROPOSAL_TOPIC, ATTESTATION_TOPIC):
            await peer.publish(topic, b"\x01garbage" + bytes(40))
        # oversized messages, sent below GossipNode.publish (which refuses them locally), like a hostile peer
        await peer._pubsub.publish(ATTESTATION_TOPIC, b"\x01" + bytes(5_000))
        await peer._pubsub.publish(TX_TOPIC, b"\x01" + bytes(3_000))
        # an attestation with a signature that is not by a committee member (random key)
        from eth_account import Account

        stranger = Account.create()
        att = Attestation(slot, archive)
        sig = sign_digest(stranger, attestation_digest(params, att))
        await peer.publish(ATTESTATION_TOPIC, encode_attestation(SignedAttestation(slot, archive, sig)))
        # an attestation with a corrupted signature
        good = sign_digest(wrong_signer, attestation_digest(params, att))
        corrupted = good[:10] + bytes([good[10] ^ 0xFF]) + good[11:64] + bytes([29])
        await peer.publish(ATTESTATION_TOPIC, encode_attestation(SignedAttestation(slot, archive, corrupted)))
        # a proposal for a slot far from now (ignored) and one signed by the wrong proposer
        for s in (slot + 50, slot):
            block = Block(s, bytes(32), archive, bytes(32), b"")
            psig = sign_digest(stranger, proposal_digest(params, block.proposal))
            await peer.publish(PROPOSAL_TOPIC, encode_signed_block(SignedBlock(block, psig)))
        await trio.sleep(2.0)


def _counter(text: str, topic: str, verdict: str) -> float:
    m = re.search(
        rf'hasq_gossip_messages_total\{{topic="{re.escape(topic)}",verdict="{verdict}"\}} ([0-9.e+]+)',
        text,
    )
    return float(m.group(1)) if m else 0.0


def test_malformed_gossip_is_dropped_and_counted(net, tmp_path: Path) -> None:
    target = net.nodes["n0"]
    before = target.metrics()
    trio.run(_inject_gossip, target.multiaddr, tmp_path / "hostile-key", net.params, net.validators)
    after = target.metrics()
    for topic in (TX_TOPIC, PROPOSAL_TOPIC, ATTESTATION_TOPIC):
        assert _counter(after, topic, "reject") >= _counter(before, topic, "reject") + 1, topic
    # garbage + oversized + stranger + corrupted on attestations, garbage + wrong proposer on proposals
    assert _counter(after, ATTESTATION_TOPIC, "reject") >= _counter(before, ATTESTATION_TOPIC, "reject") + 4
    assert _counter(after, TX_TOPIC, "reject") >= _counter(before, TX_TOPIC, "reject") + 2
    assert _counter(after, PROPOSAL_TOPIC, "reject") >= _counter(before, PROPOSAL_TOPIC, "reject") + 2
    assert _counter(after, PROPOSAL_TOPIC, "ignore") >= _counter(before, PROPOSAL_TOPIC, "ignore") + 1
    assert target.running
    code, status = target.status()
    assert code == 200, status


def test_restarted_node_syncs_before_attesting(net) -> None:
    node = net.nodes["n2"]
    attester = net.validators[2].address
    assert node.stop(timeout=20) == 0, node.log_text()[-2000:]
    assert "stopped cleanly" in node.log_text()
    # the others keep going (quorum is 3 of 4) while n2 is down
    height_down = net.client.tips().block_number
    wait_for(lambda: net.client.tips().block_number >= height_down + 2, SLOT * 8, "blocks while n2 is down")
    log_offset = len(node.log_text())
    height_at_restart = net.client.tips().block_number
    net.start(["n2"])
    net.wait_ready(["n2"], timeout=60)

    def synced_same_archive():
        _, mine = node.status()
        _, other = net.nodes["n0"].status()
        return mine["sync"]["synced"] and mine["sync"]["archive"] == other["sync"]["archive"] and mine

    wait_for(synced_same_archive, SLOT * 4, "n2 synced to n0's archive", interval=0.3)

    def attested_again():
        log = node.log_text()[log_offset:]
        return f"{attester} attested" in log and log

    log = wait_for(attested_again, SLOT * 12, "n2 attesting again")
    # it replayed the blocks it missed from L1 before its first attestation
    first_attest = log.index(f"{attester} attested")
    assert f"sync: block {height_at_restart} " in log[:first_attest]


def test_l1_outage_turns_status_503_then_recovers(net) -> None:
    extra = generate_validators(1)[0]  # not registered: a node with no duties, only watching L1
    node = net.add_node("watcher", [(extra, [0])])
    net.anvil.set_balance(extra.publishers[0].address, 10**18)  # an unfunded publisher is a /status reason
    net.start(["watcher"], l1_urls=[net.proxy.url])
    net.wait_ready(["watcher"], timeout=60)
    net.proxy.cut()

    def unhealthy():
        code, status = node.status()
        return code == 503 and any(r.startswith("l1_unreachable") for r in status["reasons"]) and status

    status = wait_for(unhealthy, 20, "503 with l1_unreachable", interval=0.3)
    assert status["status"] == "unhealthy" and status["l1"]["healthy"] is False
    assert node.running
    net.proxy.restore()
    wait_for(lambda: node.status()[0] == 200, 20, "recovery to 200", interval=0.3)
    assert node.stop() == 0

"""A seeded gossip fuzz: two hostile peers flood a node running the real gossip checks with junk, invalid,
mutated and replayed copies of real messages; an honest peer behind it receives exactly the genuine
messages (nothing invalid relayed, nothing genuine lost).

Topology: attacker1, attacker2 → victim (GossipChecks) → observer. The seed is printed;
`HASQ_GOSSIP_FUZZ_SEED=<seed>` replays a run."""

from __future__ import annotations

import os
import random

import pytest
import trio
from eth_account import Account

from ha_sequencer.localnet.nodes import signed_transfer
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.gossip_checks import GossipChecks
from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC
from ha_sequencer.p2p.validation import Verdict
from ha_sequencer.protocol.committee import proposer_for
from ha_sequencer.protocol.messages import Attestation, attestation_digest, proposal_digest, sign_digest
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    encode_attestation,
    encode_signed_block,
    encode_tx_message,
)
from params_fixtures import PARAMS

pytestmark = pytest.mark.timeout(120)
FAST = GossipConfig(heartbeat_interval_s=0.2, reconnect_max_s=0.5)
ACCOUNTS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]
SLOT = 20
TOPICS = (PROPOSAL_TOPIC, ATTESTATION_TOPIC, TX_TOPIC)
HOSTILE = 1500


def accept(data: bytes, from_peer: str) -> Verdict:
    return Verdict.ACCEPT


def _checks() -> GossipChecks:
    cache = CommitteeCache(PARAMS)
    cache.put(PARAMS.epoch_of(SLOT), [a.address for a in ACCOUNTS])
    return GossipChecks(PARAMS, cache, lambda: SLOT, min_tx_fee=1)


def _genuine(rng: random.Random) -> dict[str, list[bytes]]:
    addr = proposer_for(SLOT, PARAMS.epoch_length, [a.address for a in ACCOUNTS], PARAMS.genesis_seed)
    proposer = next(a for a in ACCOUNTS if a.address == addr)
    stx = signed_transfer(PARAMS, ACCOUNTS[2], ACCOUNTS[3].address, amount=9, fee=2, nonce=0)
    block = Block(SLOT, rng.randbytes(32), rng.randbytes(32), rng.randbytes(32), stx.encode())
    proposal = encode_signed_block(
        SignedBlock(block, sign_digest(proposer, proposal_digest(PARAMS, block.proposal)))
    )
    archive = block.archive
    attestations = [
        encode_attestation(
            SignedAttestation(
                SLOT, archive, sign_digest(a, attestation_digest(PARAMS, Attestation(SLOT, archive)))
            )
        )
        for a in ACCOUNTS
    ]
    txs = [
        encode_tx_message(
            signed_transfer(
                PARAMS, a, ACCOUNTS[0].address, amount=rng.randrange(100), fee=1 + n, nonce=n
            ).encode()
        )
        for n, a in enumerate(ACCOUNTS)
    ]
    return {PROPOSAL_TOPIC: [proposal], ATTESTATION_TOPIC: attestations, TX_TOPIC: txs}


def _hostile(rng: random.Random, genuine: dict[str, list[bytes]]) -> list[tuple[str, bytes]]:
    """Junk, mutated copies of genuine messages, cross-topic copies and cheap txs, in a seeded order."""
    out: list[tuple[str, bytes]] = []
    for n in range(HOSTILE):
        topic = rng.choice(TOPICS)
        real = rng.choice(genuine[topic])
        kind = rng.randrange(6)
        if kind == 0:
            data = rng.randbytes(rng.randrange(1, 400))
        elif kind in (1, 2):  # flip bytes of a real message
            mutated = bytearray(real)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] ^= rng.randrange(1, 256)
            data = bytes(mutated)
        elif kind == 3:  # cut or extend a real message
            data = real[: rng.randrange(1, len(real))] if rng.random() < 0.5 else real + rng.randbytes(3)
        elif kind == 4:  # a real message on another topic
            data = rng.choice(genuine[rng.choice([t for t in TOPICS if t != topic])])
        else:  # a well-signed tx under the fee minimum, from an unfunded key
            topic = TX_TOPIC
            key = Account.from_key(rng.randbytes(32))
            data = encode_tx_message(signed_transfer(PARAMS, key, ACCOUNTS[0].address, 0, 0, n).encode())
        out.append((topic, data))
    return out


def test_gossip_fuzz_nothing_invalid_relayed_nothing_genuine_lost(tmp_path) -> None:
    seed = int(os.environ.get("HASQ_GOSSIP_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
    print(f"HASQ_GOSSIP_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    genuine = _genuine(rng)
    hostile = _hostile(rng, genuine)
    genuine_set = {(t, d) for t, ds in genuine.items() for d in ds}
    received: set[tuple[str, bytes]] = set()

    async def main() -> None:
        checks = _checks()
        validators = {
            PROPOSAL_TOPIC: checks.check_proposal,
            ATTESTATION_TOPIC: checks.check_attestation,
            TX_TOPIC: checks.check_tx,
        }
        async with GossipNode(tmp_path / "victim", 0, config=FAST) as victim:
            for topic in TOPICS:
                await victim.subscribe(topic, validators[topic])
            async with (
                GossipNode(tmp_path / "observer", 0, [victim.multiaddr], config=FAST) as observer,
                GossipNode(tmp_path / "a1", 0, [victim.multiaddr], config=FAST) as attacker1,
                GossipNode(tmp_path / "a2", 0, [victim.multiaddr], config=FAST) as attacker2,
            ):
                for node in (observer, attacker1, attacker2):
                    for topic in TOPICS:
                        await node.subscribe(topic, accept)
                with trio.fail_after(30):
                    for node in (observer, attacker1, attacker2):
                        for topic in TOPICS:
                            await node.wait_for_topic_peers(topic, 1)
                    assert len(observer.topic_peers(TX_TOPIC)) == 1  # only the victim: nothing bypasses it

                async def collect() -> None:
                    async for msg in observer.messages:
                        received.add((msg.topic, msg.data))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(collect)
                    for i, (topic, data) in enumerate(hostile):
                        await (attacker1 if i % 2 else attacker2).publish(topic, data)
                        if i % 100 == 0:
                            await trio.sleep(0)  # a flood, not a stall
                    for topic, datas in genuine.items():  # the genuine ones, replayed by both attackers
                        for data in datas:
                            await attacker1.publish(topic, data)
                            await attacker2.publish(topic, data)
                    with trio.move_on_after(30):
                        while not genuine_set <= received:
                            await trio.sleep(0.1)
                    await trio.sleep(1.0)  # anything else still in flight arrives too
                    nursery.cancel_scope.cancel()
                rejected = sum(victim.metrics.value(t, Verdict.REJECT) for t in TOPICS)
                print(f"victim rejected {rejected:.0f}, observer received {len(received)}")

    trio.run(main)
    assert received <= genuine_set, (seed, sorted(d[:40].hex() for _, d in received - genuine_set))
    assert received == genuine_set, (seed, len(genuine_set - received))

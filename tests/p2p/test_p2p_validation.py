"""Protocol-agnostic validation: verdicts, size caps, duplicates, validator failures, counters."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ha_sequencer.p2p.topics import (
    ALL_TOPICS,
    ATTESTATION_TOPIC,
    MAX_BYTES_BY_TOPIC,
    MAX_RPC_BYTES,
    PROPOSAL_TOPIC,
    TX_TOPIC,
    max_bytes,
)
from ha_sequencer.p2p.validation import GossipMetrics, SeenCache, TopicGate, Verdict, decoding, message_id
from ha_sequencer.protocol.constants import MAX_GOSSIP_MESSAGE_BYTES, MAX_TX_BYTES


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(check=None, cap: int = 100, clock=None) -> TopicGate:
    seen = SeenCache(ttl_s=10, clock=clock or FakeClock())
    return TopicGate(TX_TOPIC, cap, check, GossipMetrics(), seen)


def test_topics_and_caps_come_from_protocol_constants():
    assert ALL_TOPICS == ("/hasq/1/tx", "/hasq/1/proposal", "/hasq/1/attestation")
    assert max_bytes(TX_TOPIC) == MAX_TX_BYTES
    assert max_bytes(PROPOSAL_TOPIC) < MAX_GOSSIP_MESSAGE_BYTES <= MAX_RPC_BYTES
    assert max_bytes(ATTESTATION_TOPIC) == MAX_BYTES_BY_TOPIC[ATTESTATION_TOPIC]
    with pytest.raises(KeyError, match="/hasq/1/nope"):
        max_bytes("/hasq/1/nope")


def test_message_id_is_a_content_hash_per_topic():
    assert message_id(TX_TOPIC, b"abc") == message_id(TX_TOPIC, b"abc")
    assert message_id(TX_TOPIC, b"abc") != message_id(TX_TOPIC, b"abd")
    assert message_id(TX_TOPIC, b"abc") != message_id(PROPOSAL_TOPIC, b"abc")
    assert len(message_id(TX_TOPIC, b"")) == 32


def test_size_cap_and_empty_payload_are_rejected_before_the_check():
    calls = []
    g = gate(lambda d, p: calls.append(d) or Verdict.ACCEPT, cap=10)
    assert g(b"x" * 11, "peer") is Verdict.REJECT
    assert g(b"", "peer") is Verdict.REJECT
    assert g(b"x" * 10, "peer") is Verdict.ACCEPT
    assert calls == [b"x" * 10]


def test_duplicates_are_ignored_and_rejects_remembered_but_ignores_are_not():
    verdicts = {b"good": Verdict.ACCEPT, b"bad": Verdict.REJECT, b"later": Verdict.IGNORE}
    calls = []

    def check(data: bytes, from_peer: str) -> Verdict:
        calls.append(data)
        return verdicts[data]

    g = gate(check)
    assert g(b"good", "p1") is Verdict.ACCEPT
    assert g(b"good", "p2") is Verdict.IGNORE  # same bytes from an HA twin: duplicate
    assert g(b"bad", "p1") is Verdict.REJECT
    assert g(b"bad", "p1") is Verdict.REJECT
    assert g(b"later", "p1") is Verdict.IGNORE
    verdicts[b"later"] = Verdict.ACCEPT  # e.g. the proposal it refers to has arrived meanwhile
    assert g(b"later", "p1") is Verdict.ACCEPT
    assert calls == [b"good", b"bad", b"later", b"later"]
    m = g.metrics
    assert m.value(TX_TOPIC, Verdict.ACCEPT) == 2
    assert m.value(TX_TOPIC, Verdict.REJECT) == 2
    assert m.value(TX_TOPIC, Verdict.IGNORE) == 2


def test_validator_exceptions_and_non_verdicts_are_rejects():
    def boom(data: bytes, from_peer: str) -> Verdict:
        raise ValueError("bug")

    assert gate(boom)(b"x", "p") is Verdict.REJECT
    assert gate(lambda d, p: True)(b"x", "p") is Verdict.REJECT  # a bool is not a Verdict


def test_decoding_rejects_garbage_and_passes_the_value():
    seen = []
    validator = decoding(json.loads, lambda obj, peer: seen.append((obj, peer)) or Verdict.ACCEPT)
    assert validator(b"\xff\x00garbage", "p") is Verdict.REJECT
    assert validator(b'{"slot": 3}', "p") is Verdict.ACCEPT
    assert seen == [({"slot": 3}, "p")]


def test_seen_cache_expires_and_is_bounded():
    clock = FakeClock()
    cache = SeenCache(ttl_s=5, max_entries=2, clock=clock)
    cache.put(b"a", Verdict.ACCEPT)
    clock.now += 3
    cache.put(b"b", Verdict.REJECT)
    assert cache.get(b"a") is Verdict.ACCEPT and len(cache) == 2
    clock.now += 2.5
    assert cache.get(b"a") is None and cache.get(b"b") is Verdict.REJECT
    cache.put(b"c", Verdict.ACCEPT)
    cache.put(b"d", Verdict.ACCEPT)
    assert len(cache) == 2 and cache.get(b"b") is None
    with pytest.raises(ValueError):
        SeenCache(ttl_s=0)


def test_counters_are_labelled_by_topic_and_verdict_on_the_given_registry():
    registry = CollectorRegistry()
    metrics = GossipMetrics(registry)
    TopicGate(PROPOSAL_TOPIC, 10, None, metrics)(b"y" * 11, "p")
    text = generate_latest(registry).decode()
    assert 'hasq_gossip_messages_total{topic="/hasq/1/proposal",verdict="reject"} 1.0' in text

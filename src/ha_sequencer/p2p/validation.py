"""Protocol-agnostic gossip validation: verdicts, size cap, undecodable bytes, duplicate drop, counters.

The node plugs its protocol checks (signature, slot window, committee membership) in as `check`;
this module only knows bytes, sizes, content hashes and verdicts (libp2p gossipsub v1.1 semantics:
REJECT = invalid, IGNORE = not useful now; neither is delivered nor relayed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

T = TypeVar("T")


class Verdict(Enum):
    """The outcome of validating one gossip message."""

    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


# check(data, from_peer) -> Verdict; from_peer is the base58 peer id of the message's origin.
Validator = Callable[[bytes, str], Verdict]

DEFAULT_SEEN_TTL_S = 120.0
DEFAULT_SEEN_MAX_ENTRIES = 100_000


def message_id(topic: str, data: bytes) -> bytes:
    """The gossip message id: sha256(topic, payload), so the same bytes from two HA nodes are one message."""
    return hashlib.sha256(topic.encode() + b"\x00" + data).digest()


class SeenCache:
    """Content ids seen recently with their final verdict; expire after `ttl_s`, oldest evicted first."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_SEEN_TTL_S,
        max_entries: int = DEFAULT_SEEN_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_entries <= 0:
            raise ValueError(f"SeenCache needs ttl_s > 0 and max_entries > 0, got {ttl_s}, {max_entries}")
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Verdict]] = OrderedDict()

    def get(self, key: bytes) -> Verdict | None:
        """The verdict recorded for `key`, or None if unseen or expired."""
        self._expire()
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: bytes, verdict: Verdict) -> None:
        """Record the final verdict for `key` (refreshes its expiry)."""
        self._entries[key] = (self._clock() + self._ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def _expire(self) -> None:
        # Entries are kept in insertion (= expiry) order, so expired ones are at the front.
        now = self._clock()
        while self._entries:
            key, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[key]


class GossipMetrics:
    """Prometheus counters of the gossip layer, registered on the registry the node passes in."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "hasq") -> None:
        # A private registry by default: tests and several nodes in one process must not collide.
        self.registry = registry if registry is not None else CollectorRegistry()
        self.messages = Counter(
            "gossip_messages",
            "Gossip messages received, by topic and validation verdict.",
            ["topic", "verdict"],
            namespace=namespace,
            registry=self.registry,
        )
        self.published = Counter(
            "gossip_published",
            "Gossip messages published by this node, by topic.",
            ["topic"],
            namespace=namespace,
            registry=self.registry,
        )
        self.delivery_dropped = Counter(
            "gossip_delivery_dropped",
            "Accepted gossip messages dropped because the node's receive queue was full, by topic.",
            ["topic"],
            namespace=namespace,
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "gossip_internal_errors",
            "Errors raised inside py-libp2p message handling that were contained instead of crashing.",
            namespace=namespace,
            registry=self.registry,
        )

    def count(self, topic: str, verdict: Verdict) -> None:
        """Count one received message."""
        self.messages.labels(topic=topic, verdict=verdict.value).inc()

    def value(self, topic: str, verdict: Verdict) -> float:
        """The current count for (topic, verdict) (for tests and status pages)."""
        return self.messages.labels(topic=topic, verdict=verdict.value)._value.get()


# A peer's rejected messages: the first is logged at once, then one summary line per peer per window.
REJECTION_SUMMARY_S = 60.0
MAX_SUMMARISED_PEERS = 4096


@dataclass
class _PeerRejections:
    since: float
    by_topic: dict[str, int]


class RejectionSummary:
    """Rejected gossip messages per peer, logged at a bounded rate: a hostile peer controls its own counts
    (and `GossipMetrics`), never the node's log volume."""

    def __init__(self, window_s: float = REJECTION_SUMMARY_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self._peers: OrderedDict[str, _PeerRejections] = OrderedDict()

    def note(self, topic: str, from_peer: str) -> None:
        """Count one rejected message of `from_peer`; log when the peer is new or its window is over."""
        now = self.clock()
        entry = self._peers.get(from_peer)
        if entry is None:
            if len(self._peers) >= MAX_SUMMARISED_PEERS:
                self._peers.popitem(last=False)
            self._peers[from_peer] = _PeerRejections(now, {})
            log.info(
                "gossip %s: rejected a message from %s (further rejections from it: one line per %g s)",
                topic,
                from_peer,
                self.window_s,
            )
            return
        entry.by_topic[topic] = entry.by_topic.get(topic, 0) + 1
        if now - entry.since >= self.window_s:
            self.flush(from_peer)

    def flush(self, from_peer: str) -> None:
        """Log the peer's counts since its last line (if any) and start a new window."""
        entry = self._peers.get(from_peer)
        if entry is None or not entry.by_topic:
            return
        now = self.clock()
        counts = ", ".join(f"{topic}: {n}" for topic, n in sorted(entry.by_topic.items()))
        log.info(
            "gossip: %d messages rejected from %s in the last %.0f s (%s)",
            sum(entry.by_topic.values()),
            from_peer,
            now - entry.since,
            counts,
        )
        entry.since, entry.by_topic = now, {}


class TopicGate:
    """The validation pipeline of one topic: size cap, content-id seen cache, then the node's `check`.

    Never raises: an exception in `check` is a REJECT. Verdicts are counted in `metrics`.
    REJECTs are remembered (the same bytes are invalid again); ACCEPTs are remembered so a
    duplicate is IGNOREd; IGNOREs are not remembered (the same bytes may be useful later).
    """

    def __init__(
        self,
        topic: str,
        max_bytes: int,
        check: Validator | None,
        metrics: GossipMetrics,
        seen: SeenCache | None = None,
        rejections: RejectionSummary | None = None,
    ) -> None:
        self.topic = topic
        self.rejections = rejections if rejections is not None else RejectionSummary()
        self.max_bytes = max_bytes
        self.check = check
        self.metrics = metrics
        self.seen = seen if seen is not None else SeenCache()

    def __call__(self, data: bytes, from_peer: str) -> Verdict:
        """Validate one received payload and count the verdict."""
        verdict = self._decide(data, from_peer)
        self.metrics.count(self.topic, verdict)
        if verdict is Verdict.REJECT:
            self.rejections.note(self.topic, from_peer)
        return verdict

    def _decide(self, data: bytes, from_peer: str) -> Verdict:
        if not data or len(data) > self.max_bytes:
            log.debug(
                "gossip %s: %d bytes from %s outside 1..%d: reject",
                self.topic,
                len(data),
                from_peer,
                self.max_bytes,
            )
            return Verdict.REJECT
        key = message_id(self.topic, data)
        previous = self.seen.get(key)
        if previous is Verdict.REJECT:
            return Verdict.REJECT
        if previous is Verdict.ACCEPT:
            return Verdict.IGNORE  # duplicate
        verdict = Verdict.ACCEPT
        if self.check is not None:
            try:
                verdict = self.check(data, from_peer)
            except Exception as exc:  # a validator bug or hostile bytes must not take the node down
                log.debug(
                    "gossip %s: validator raised %s for message from %s: reject",
                    self.topic,
                    type(exc).__name__,
                    from_peer,
                )
                verdict = Verdict.REJECT
            if not isinstance(verdict, Verdict):
                log.warning("gossip %s: validator returned %r, not a Verdict: reject", self.topic, verdict)
                verdict = Verdict.REJECT
        if verdict is not Verdict.IGNORE:
            self.seen.put(key, verdict)
        return verdict


def decoding(decode: Callable[[bytes], T], check: Callable[[T, str], Verdict]) -> Validator:
    """A validator that REJECTs bytes `decode` cannot parse (any exception) and hands the value to `check`."""

    def validator(data: bytes, from_peer: str) -> Verdict:
        try:
            value = decode(data)
        except Exception:
            return Verdict.REJECT
        return check(value, from_peer)

    return validator

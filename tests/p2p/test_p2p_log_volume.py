"""A hostile peer does not control the node's log volume: py-libp2p's per-subscription warnings and
contained failures, and our per-message rejections, reach the log as a few bounded lines; rejections are
counted in metrics."""

from __future__ import annotations

import logging

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils import encode_varint_prefixed

from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.topics import TX_TOPIC
from ha_sequencer.p2p.validation import RejectionSummary, Verdict

pytestmark = pytest.mark.timeout(90)
FAST = GossipConfig(heartbeat_interval_s=0.2, reconnect_max_s=0.5)
JUNK = 300


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> list[str]:
        return [logging.Formatter("%(levelname)s %(name)s: %(message)s").format(r) for r in self.records]


def accept(data: bytes, from_peer: str) -> Verdict:
    return Verdict.ACCEPT


def reject(data: bytes, from_peer: str) -> Verdict:
    return Verdict.REJECT


def _subscriptions(count: int) -> bytes:
    subs = [rpc_pb2.RPC.SubOpts(subscribe=True, topicid=f"/junk/{i}") for i in range(count)]
    return encode_varint_prefixed(rpc_pb2.RPC(subscriptions=subs).SerializeToString())


def test_a_hostile_peer_gets_a_few_log_lines_and_its_rejections_counted(tmp_path) -> None:
    lines = Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)

    async def main() -> None:
        async with GossipNode(tmp_path / "victim", 0, config=FAST) as victim:
            await victim.subscribe(TX_TOPIC, reject)
            # 1. a raw peer floods subscriptions (py-libp2p warns once per subscription over its per-peer cap)
            listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
            raw = new_host(listen_addrs=[listen])
            async with raw.run(listen_addrs=[listen]):
                target = info_from_p2p_addr(multiaddr.Multiaddr(victim.multiaddr))
                await raw.connect(target)
                stream = await raw.new_stream(target.peer_id, [PROTOCOL_ID_V11])
                for _ in range(10):
                    await stream.write(_subscriptions(200))
                await trio.sleep(1.0)
                await raw.close()
            # 2. a gossip peer publishes junk the victim rejects, message after message
            async with GossipNode(tmp_path / "hostile", 0, [victim.multiaddr], config=FAST) as hostile:
                await hostile.subscribe(TX_TOPIC, accept)
                with trio.fail_after(20):
                    await hostile.wait_for_topic_peers(TX_TOPIC, 1)
                for i in range(JUNK):
                    await hostile.publish(TX_TOPIC, b"junk %d" % i)
                with trio.fail_after(30):
                    while victim.metrics.value(TX_TOPIC, Verdict.REJECT) < JUNK:
                        await trio.sleep(0.05)

    try:
        trio.run(main)
    finally:
        root.removeHandler(lines)
        root.setLevel(old_level)
    text = lines.text()
    assert not any("Traceback" in line for line in text)
    subscription_warnings = [line for line in text if "subscription" in line.lower()]
    # ~1,900 subscriptions over py-libp2p's per-peer cap: a warning each, 5 a minute pass
    assert 1 <= len(subscription_warnings) <= 6, subscription_warnings
    rejection_lines = [line for line in text if "reject" in line.lower()]
    assert 1 <= len(rejection_lines) <= 3, rejection_lines
    assert len(text) < 60, len(text)


def test_rejection_summary_is_one_line_per_peer_per_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    summary = RejectionSummary(window_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="ha_sequencer.p2p.validation"):
        for i in range(10_000):
            now[0] = i * 0.01  # 100 s of a 100 msg/s flood from two peers
            summary.note(TX_TOPIC, "peerA")
            summary.note("/hasq/1/proposal", "peerB")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # per peer: the first rejection, then one summary after 60 s
    assert any(
        "5999 messages rejected from peerA" in line or "6000 messages rejected from peerA" in line
        for line in lines
    ), lines


def test_contained_libp2p_failures_are_one_bounded_line_each() -> None:
    from libp2p.tools.anyio_service.exceptions import LifecycleError

    from ha_sequencer.p2p.gossip import route_libp2p_logs

    route_libp2p_logs()
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    try:
        # what py-libp2p's service manager logs when a task is scheduled after shutdown, once per task
        service_log = logging.getLogger("libp2p.tools.anyio_service.TrioManager.Pubsub")
        for n in range(50):
            try:
                raise LifecycleError("Cannot schedule task after service has stopped")
            except LifecycleError as exc:
                service_log.error("%s: task %s exited with error: %s", "Pubsub", n, exc, exc_info=True)
    finally:
        root.removeHandler(lines)
    text = lines.text()
    assert 1 <= len(text) <= 5, text
    assert all("\n" not in line and "Traceback" not in line for line in text), text
    assert "LifecycleError: Cannot schedule task after service has stopped" in text[0]

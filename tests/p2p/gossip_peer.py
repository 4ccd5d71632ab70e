"""A gossip peer in its own OS process, driven over stdin/stdout JSON lines by test_p2p_processes.py.

stdout: {"event": "ready", "peer_id", "multiaddr"}, then {"event": "msg", "topic", "data", "from"} per
accepted message (data hex), and replies to commands. stdin commands:
  {"cmd": "publish", "topic", "data"}      publish through GossipNode.publish (cap enforced)
  {"cmd": "publish_raw", "topic", "data"}  publish through py-libp2p directly: a hostile/buggy peer
  {"cmd": "stats"}                          counters by topic and verdict, peers, mesh
Payloads are JSON objects; the validator REJECTs undecodable bytes (validation.decoding), REJECTs
{"kind": "invalid"}, IGNOREs {"kind": "ignore"}, raises on {"kind": "raise"} and ACCEPTs the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import trio

from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.topics import ALL_TOPICS
from ha_sequencer.p2p.validation import Verdict, decoding


def check(obj: object, from_peer: str) -> Verdict:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == "invalid":
        return Verdict.REJECT
    if kind == "ignore":
        return Verdict.IGNORE
    if kind == "raise":
        raise RuntimeError("validator bug")
    return Verdict.ACCEPT


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    config = GossipConfig(heartbeat_interval_s=0.3, reconnect_max_s=1.0)
    bootstrap = [a for a in args.bootstrap.split(",") if a]
    async with GossipNode(Path(args.key), args.port, bootstrap, config=config) as node:
        validator = decoding(json.loads, check)
        for topic in ALL_TOPICS:
            await node.subscribe(topic, validator)
        emit({"event": "ready", "peer_id": node.peer_id, "multiaddr": node.multiaddr})

        async def pump() -> None:
            async for msg in node:
                emit({"event": "msg", "topic": msg.topic, "data": msg.data.hex(), "from": msg.from_peer})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            stdin = trio.wrap_file(sys.stdin)
            async for line in stdin:
                cmd = json.loads(line)
                if cmd["cmd"] == "publish":
                    sent = await node.publish(cmd["topic"], bytes.fromhex(cmd["data"]))
                    emit({"event": "published", "sent": sent})
                elif cmd["cmd"] == "publish_raw":
                    await node._pubsub.publish(cmd["topic"], bytes.fromhex(cmd["data"]))
                    emit({"event": "published", "sent": True})
                elif cmd["cmd"] == "stats":
                    counts = {
                        f"{topic}|{verdict.value}": node.metrics.value(topic, verdict)
                        for topic in ALL_TOPICS
                        for verdict in Verdict
                    }
                    emit(
                        {
                            "event": "stats",
                            "counts": counts,
                            "internal_errors": node.metrics.internal_errors._value.get(),
                            "peers": node.peers(),
                            "topic_peers": {t: node.topic_peers(t) for t in ALL_TOPICS},
                        }
                    )
            nursery.cancel_scope.cancel()  # stdin closed: the test is done with us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bootstrap", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    trio.run(serve, args)


if __name__ == "__main__":
    main()

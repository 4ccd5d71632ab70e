"""A signer outside the fleet's duty store, as a gossip peer in its own OS process (driven by
test_killswitch_e2e.py): it joins the network, then publishes the messages it is handed on stdin.

stdin: one line per message, `TOPIC HEX`; stdout: `ready`, then `published TOPIC` per message. It holds no
key: the test signs the messages (so no key travels through argv or the environment of this process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC
from ha_sequencer.p2p.validation import Verdict


def accept(_data: bytes, _from_peer: str) -> Verdict:
    return Verdict.ACCEPT


async def serve(key: Path, bootstrap: list[str], port: int = 0) -> None:
    async with GossipNode(key, port, bootstrap, config=GossipConfig(heartbeat_interval_s=0.3)) as node:
        for topic in (PROPOSAL_TOPIC, ATTESTATION_TOPIC):
            await node.subscribe(topic, accept)
        with trio.fail_after(30):
            await node.wait_for_topic_peers(ATTESTATION_TOPIC, 1)
        print("ready", flush=True)
        async for line in trio.wrap_file(sys.stdin):
            topic, data = line.split()
            await node.publish(topic, bytes.fromhex(data))
            print(f"published {topic}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--bootstrap", default="", help="peer multiaddrs (none: wait to be dialled)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    trio.run(serve, args.key, [b for b in args.bootstrap.split(",") if b], args.port)


if __name__ == "__main__":
    main()

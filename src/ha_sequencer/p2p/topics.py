"""Gossip topic names and the payload size cap of each topic (DESIGN.md: The network, Gossip)."""

from __future__ import annotations

from types import MappingProxyType

from ha_sequencer.protocol.constants import MAX_GOSSIP_MESSAGE_BYTES, MAX_TX_BYTES

TX_TOPIC = "/hasq/1/tx"
PROPOSAL_TOPIC = "/hasq/1/proposal"
ATTESTATION_TOPIC = "/hasq/1/attestation"

ALL_TOPICS: tuple[str, ...] = (TX_TOPIC, PROPOSAL_TOPIC, ATTESTATION_TOPIC)

# py-libp2p frames every gossip RPC (payload + topic + origin + seqno + signature + signed peer record)
# into at most 1 MiB in each direction (pubsub/rpc_queue.py DefaultMaxMessageSize, not configurable for
# the outbound queue): a payload of exactly 1 MiB would be dropped silently, so leave room for framing.
RPC_FRAMING_HEADROOM_BYTES = 16 * 1024

# An attestation is (slot, archive, attester, 65-byte signature) in whatever encoding the node picks;
# protocol/constants.py has no cap for it yet, so it lives here until it does.
MAX_ATTESTATION_BYTES = 1_024

MAX_BYTES_BY_TOPIC: MappingProxyType[str, int] = MappingProxyType(
    {
        TX_TOPIC: MAX_TX_BYTES,
        PROPOSAL_TOPIC: MAX_GOSSIP_MESSAGE_BYTES - RPC_FRAMING_HEADROOM_BYTES,
        ATTESTATION_TOPIC: MAX_ATTESTATION_BYTES,
    }
)

# The largest inbound RPC we accept: the biggest payload plus its framing.
MAX_RPC_BYTES = max(MAX_BYTES_BY_TOPIC.values()) + RPC_FRAMING_HEADROOM_BYTES


def max_bytes(topic: str) -> int:
    """The payload size cap of a topic; unknown topics have none (KeyError names the topic)."""
    try:
        return MAX_BYTES_BY_TOPIC[topic]
    except KeyError:
        raise KeyError(f"unknown gossip topic {topic!r}; known: {', '.join(ALL_TOPICS)}") from None

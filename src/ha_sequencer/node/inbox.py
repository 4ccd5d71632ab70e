"""Gossip in: each message that passed the topic validators goes to the scheduler or the mempool.

The validators (`gossip_checks`) decoded and checked these bytes before relay; they are decoded again here
because py-libp2p hands validators and subscribers the raw bytes only.
"""

from __future__ import annotations

import logging

import trio

from ha_sequencer.errors import HASequencerError
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.mempool import Mempool, MempoolError
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.scheduler import Scheduler
from ha_sequencer.p2p.gossip import GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC, TX_TOPIC
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.wire import parse_attestation, parse_proposal, parse_tx

log = logging.getLogger(__name__)


class GossipInbox:
    """Routes accepted gossip: proposals and attestations to the scheduler, txs to the mempool."""

    def __init__(
        self,
        *,
        params: NetworkParams,
        gossip: GossipNode,
        scheduler: Scheduler,
        mempool: Mempool,
        chain: Chain,
        metrics: NodeMetrics,
    ) -> None:
        self._params = params
        self._gossip = gossip
        self._scheduler = scheduler
        self._mempool = mempool
        self._chain = chain
        self._metrics = metrics

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume gossip until cancelled."""
        task_status.started()
        async for msg in self._gossip:
            try:
                self.dispatch(msg.topic, msg.data)
            # the validator accepted these bytes already; still, one message never kills the node
            except (HASequencerError, ValueError) as exc:
                log.debug("gossip %s message not used: %s", msg.topic, exc)

    def dispatch(self, topic: str, data: bytes) -> None:
        """Hand one accepted message to its consumer."""
        if topic == PROPOSAL_TOPIC:
            self._scheduler.on_proposal_nowait(parse_proposal(self._params, data))
        elif topic == ATTESTATION_TOPIC:
            self._scheduler.on_attestation(parse_attestation(self._params, data))
        elif topic == TX_TOPIC:
            try:
                self._mempool.add(parse_tx(self._params, data), self._chain.state)
            except MempoolError as exc:
                log.debug("gossip tx not added: %s", exc)
            self._metrics.mempool_size.set(len(self._mempool))
        else:
            log.debug("gossip message on unsubscribed topic %s ignored", topic)

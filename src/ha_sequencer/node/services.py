"""The node's phases: `Starting` until the network is read from L1 and the duty store is open, then
`Services` (all collaborators)."""

from __future__ import annotations

from dataclasses import dataclass

from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.killswitch import KillSwitch
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.node.chain import Chain
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.detector import Detector
from ha_sequencer.node.duty_audit import DutyAudit
from ha_sequencer.node.mempool import Mempool
from ha_sequencer.node.publisher import Publisher
from ha_sequencer.node.scheduler import Scheduler
from ha_sequencer.node.sync import Sync
from ha_sequencer.p2p.gossip import GossipNode
from ha_sequencer.protocol.constants import NetworkParams

NETWORK = "network parameters from L1"
DUTY_STORE = "the duty store"


@dataclass(frozen=True)
class Starting:
    """The node serves /status but has not read the network from L1 or opened its duty store yet: it has
    no duties."""

    waiting_for: tuple[str, ...] = (NETWORK, DUTY_STORE)

    def without(self, done: str) -> Starting:
        """This phase once `done` is no longer awaited."""
        return Starting(tuple(w for w in self.waiting_for if w != done))


@dataclass(frozen=True)
class Services:
    """Every collaborator of a running node, built before any of them starts (none is ever missing)."""

    params: NetworkParams
    clock: SlotClock
    chain: Chain
    sync: Sync
    committees: CommitteeCache
    mempool: Mempool
    store: DutyStore
    guard: DutyGuard
    killswitch: KillSwitch
    detector: Detector
    gossip: GossipNode
    publisher: Publisher
    scheduler: Scheduler
    audit: DutyAudit


Phase = Starting | Services

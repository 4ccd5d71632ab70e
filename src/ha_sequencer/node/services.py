"""The node's phases: `Starting` until the network is read from L1, then `Services` (all collaborators)."""

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


@dataclass(frozen=True)
class Starting:
    """The node serves /status but has not read the network from L1 yet: it has no duties."""


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

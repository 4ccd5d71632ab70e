"""`GET /status`: the node's health document (DESIGN.md: Node) — 200 when `status` is "ok", else 503.

Every reason that makes the node unhealthy is listed (`l1_unreachable: …`, `duty_store_unreachable[: hosts]`,
`not_synced`, `no_peers`, the funds reasons), so an operator reads why, not only that.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

import psycopg

from ha_sequencer import __version__
from ha_sequencer.ha.pg_cluster import hosts_of
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.monitoring.service import FundsService
from ha_sequencer.node.config import HaDb, NodeConfig
from ha_sequencer.node.health import Health
from ha_sequencer.node.services import Phase, Services, Starting


@dataclass(frozen=True)
class NodeFacts:
    """What the node is, fixed at start: who it signs for and who pays its gas."""

    config: NodeConfig
    attesters: Sequence[str]
    publishers: Mapping[str, Sequence[str]]  # attester → publisher addresses
    started: float

    @property
    def publisher_addresses(self) -> list[str]:
        """Every publisher once, in keystore order."""
        return list(dict.fromkeys(p for ps in self.publishers.values() for p in ps))


def store_unreachable_reason(ha_db: HaDb) -> str:
    """`duty_store_unreachable`, naming the PostgreSQL hosts tried (host:port only, no credentials)."""
    if ha_db.kind != "postgres":
        return "duty_store_unreachable"
    try:
        hosts = hosts_of(ha_db.url)
    except psycopg.Error:  # unparseable: say nothing more rather than echo it
        return "duty_store_unreachable"
    return f"duty_store_unreachable: hosts tried {', '.join(hosts)}"


def status_report(
    facts: NodeFacts, health: Health, funds: FundsService, client: RollupClient, phase: Phase
) -> dict[str, Any]:
    """The /status document for the node in `phase`."""
    config = facts.config
    reasons: list[str] = []
    running: Services | None
    match phase:
        case Starting():
            reasons.append(f"starting: waiting for {' and '.join(phase.waiting_for)}")
            running = None
        case Services():
            running = phase
        case _:
            assert_never(phase)
    if health.l1_error is not None:
        reasons.append(f"l1_unreachable: {health.l1_error}")
    if health.store_healthy is False:
        reasons.append(store_unreachable_reason(config.ha_db))
    reasons.extend(f"halted: {h.reason}" for h in health.halts)
    if running is not None:
        reasons.extend(_running_reasons(facts, running))
    reasons.extend(funds.reasons())
    return {
        "status": "ok" if not reasons else "unhealthy",
        "reasons": reasons,
        "nodeId": config.node_id,
        "network": config.network,
        "version": __version__,
        "rollup": config.rollup,
        "attesters": list(facts.attesters),
        "publishers": facts.publisher_addresses,
        **_duties(running),
        "sync": _sync(running),
        "l1": {
            "healthy": health.l1_error is None,
            "urls": config.l1_urls_display,
            "endpoints": [
                {"url": s.url, "healthy": s.healthy, "failures": s.failures} for s in client.endpoints
            ],
            "chainId": running.params.chain_id if running else None,
            "lastOk": health.l1_last_ok,
            "error": health.l1_error,
        },
        "ha": {
            "store": config.ha_db.kind,
            "url": config.ha_db.display,
            "healthy": health.store_healthy,
            "nodeId": config.node_id,
            "leaseS": running.guard.lease_s if running else None,
            "halts": [
                {
                    "attester": h.attester,
                    "slot": h.slot,
                    "duty": h.duty_type,
                    "reason": h.reason,
                    "at": h.halted_at,
                }
                for h in health.halts
            ],
        },
        "peers": running.gossip.peer_count() if running else 0,
        "peerId": running.gossip.peer_id if running else None,
        "p2p": running.gossip.multiaddr if running else None,
        "mempool": len(running.mempool) if running else 0,
        "funds": funds.status_section(),
        "uptimeS": round(time.time() - facts.started, 1),
    }


def _running_reasons(facts: NodeFacts, running: Services) -> list[str]:
    reasons: list[str] = []
    if not running.sync.synced:
        reasons.append("not_synced")
    if running.gossip.peer_count() == 0 and _expects_peers(facts, running):
        reasons.append("no_peers")
    return reasons


def _expects_peers(facts: NodeFacts, running: Services) -> bool:
    """A node alone is healthy only when nobody else could be out there: no bootstrap peers, no committee."""
    if facts.config.bootstrap_nodes:
        return True
    committee = running.committees.committee_at(running.clock.current_slot())
    return bool(committee) and any(a not in facts.attesters for a in committee)


def _duties(running: Services | None) -> dict[str, Any]:
    if running is None:
        return {"slot": None, "epoch": None, "role": None}
    slot = running.clock.current_slot()
    return {"slot": slot, "epoch": running.params.epoch_of(slot), "role": running.scheduler.role_at(slot)}


def _sync(running: Services | None) -> dict[str, Any]:
    if running is None:
        return {
            "synced": False,
            "blockNumber": None,
            "archive": None,
            "slot": None,
            "l1BlockNumber": None,
            "lastError": None,
        }
    tip = running.chain.tip
    status = running.sync.status
    return {
        "synced": running.sync.synced,
        "blockNumber": tip.number,
        "archive": "0x" + tip.archive.hex(),
        "slot": tip.slot,
        "l1BlockNumber": status.l1_height,
        "lastError": status.last_error,
    }

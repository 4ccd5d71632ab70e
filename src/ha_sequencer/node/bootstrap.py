"""Start-up: read the network from L1 and open the duty store, each retried until it answers; check our
attesters are registered."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ha_sequencer.ha.errors import StoreUnreachable
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import L1_ERRORS, NotRegistered
from ha_sequencer.node.health import Health
from ha_sequencer.protocol.constants import NetworkParams

log = logging.getLogger("ha_sequencer.node")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0
# a store coming back (a restarted server, a cluster that found its primary) is used within this long
STORE_MAX_RETRY_S = 2.0


@dataclass(frozen=True)
class Network:
    """What the deployed Rollup says about the network: its parameters and the L2 genesis balances."""

    params: NetworkParams
    allocation: list[tuple[str, int]]


async def read_network(
    client: RollupClient, health: Health, attesters: Sequence[str], rollup: str
) -> Network:
    """The network from L1, retrying with backoff until it answers (/status says why meanwhile)."""
    delay = FIRST_RETRY_S
    while True:
        try:
            params = await trio.to_thread.run_sync(client.params)
            allocation = await trio.to_thread.run_sync(client.genesis_allocation)
            break
        except L1_ERRORS as exc:
            health.l1_failed(f"{type(exc).__name__}: {exc}")
        log.warning("L1 not reachable yet (%s); retrying in %.1f s", health.l1_error, delay)
        await trio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)
    health.l1_ok()
    await _check_registration(client, health, attesters, rollup)
    log.info(
        "network: chain id %d, rollup %s, genesis %d, slot %d s, epoch %d slots, committee %d",
        params.chain_id,
        params.rollup,
        params.genesis_time,
        params.slot_duration,
        params.epoch_length,
        params.committee_size,
    )
    return Network(params, allocation)


async def _check_registration(
    client: RollupClient, health: Health, attesters: Sequence[str], rollup: str
) -> None:
    """Warn (loudly, once) about attesters the rollup does not know: they will never have duties."""
    for attester in attesters:
        try:
            await trio.to_thread.run_sync(client.validator, attester)
        except NotRegistered:
            log.warning(
                "attester %s is not registered on rollup %s: it will have no duties", attester, rollup
            )
        except L1_ERRORS as exc:
            log.warning("could not check the registration of %s: %s", attester, health.scrub(str(exc)))


async def open_duty_store(
    open_store: Callable[[], DutyStore], health: Health, scrub: Callable[[str], str]
) -> DutyStore:
    """The duty store, retried with backoff while it is unreachable: meanwhile /status answers 503
    `duty_store_unreachable` (naming the hosts tried) and the node has no duties, so it signs nothing.

    `open_store` migrates and checks the server each time it is called, so those run once the store answers.
    Any other refusal (a read-only server, no synchronous standby, a schema from another build) is raised:
    waiting would not fix it.
    """
    delay = FIRST_RETRY_S
    while True:
        try:
            store = await trio.to_thread.run_sync(open_store)
        except StoreUnreachable as exc:
            health.store(False)
            why = "; ".join(line.strip() for line in scrub(str(exc)).splitlines() if line.strip())
            log.warning("duty store not reachable yet (%s); retrying in %.1f s", why, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, STORE_MAX_RETRY_S)
            continue
        health.store(True)
        return store

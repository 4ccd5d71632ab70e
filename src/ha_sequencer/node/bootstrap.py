"""Start-up against L1: read the network (retrying until L1 answers), check our attesters are registered."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import L1_ERRORS, NotRegistered
from ha_sequencer.node.health import Health
from ha_sequencer.protocol.constants import NetworkParams

log = logging.getLogger("ha_sequencer.node")

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0


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

"""Duty deadlines: the last moment in its slot a duty's signature may leave, and signing within it.

The policy (operator guide: "Duty deadlines"): a proposal's signature must leave before the slot's publish
deadline (`publisher.SUBMIT_UNTIL`: later, its block cannot be mined in the slot); an attestation's before the
proposer stops collecting votes (`QUORUM_DEADLINE`). A guard call that answers `StoreUnavailable` is retried
until then, so a store failover shorter than that costs nothing; past it the duty is given up for good.

The guard's store calls run in a worker thread. A hung store (a frozen primary, a partition) cannot hold a
duty past its deadline: the thread is abandoned there and whatever it returns later is dropped, and the guard
itself answers `DeadlinePassed` for anything that completes late, so no signature for a slot leaves after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from ha_sequencer.ha.guard import DutyGuard, DutyRequest
from ha_sequencer.ha.outcomes import DeadlinePassed, DutyType, Outcome, StoreUnavailable
from ha_sequencer.node.clock import SlotTiming
from ha_sequencer.node.publisher import SUBMIT_UNTIL

log = logging.getLogger(__name__)

QUORUM_DEADLINE = 0.7  # the proposer stops waiting for attestations (leaves time to publish)
PROPOSAL_DEADLINE = SUBMIT_UNTIL  # a proposal signed later cannot be published inside its slot
ATTESTATION_DEADLINE = QUORUM_DEADLINE  # an attestation signed later is not counted by the proposer
RETRY_START_S, RETRY_MAX_S = 0.05, 0.5  # back-off between guard calls while the store is unavailable
# Worker threads for guard calls, apart from trio's default pool: calls abandoned on a frozen store stay
# blocked until it answers, and must not use up the threads the node's L1 and sync calls need.
GUARD_THREADS = 64


def duty_deadline(timing: SlotTiming, slot: int, duty_type: DutyType) -> float:
    """The wall-clock time after which no signature for this duty may leave."""
    fraction = PROPOSAL_DEADLINE if duty_type is DutyType.BLOCK_PROPOSAL else ATTESTATION_DEADLINE
    return timing.slot_start(slot) + fraction * timing.slot_duration


async def sign_within(
    guard: DutyGuard,
    attester: str,
    slot: int,
    duty_type: DutyType,
    digest: bytes,
    payload: bytes,
    sign_fn: Callable[[bytes], bytes],
    *,
    deadline: float,
    now: Callable[[], float],
    limiter: trio.CapacityLimiter | None = None,
) -> tuple[Outcome, int]:
    """The guard's answer for one duty, retried while the store is unavailable, by `deadline` (wall clock).

    Returns the outcome and the number of guard calls made. `now` is the wall clock the deadline is on;
    `limiter` bounds the worker threads (a caller's own pool of `GUARD_THREADS`; trio's default if None).
    """
    attempts = 0
    pause = RETRY_START_S
    while True:
        attempts += 1

        def call() -> Outcome:
            return guard.sign_duty(attester, slot, duty_type, digest, payload, sign_fn, deadline=deadline)

        outcome: Outcome = DeadlinePassed(deadline)
        # Abandoned at the deadline: a store call that hangs cannot hold the duty, and its late result is
        # dropped here (the guard, seeing the deadline passed, would not hand out a signature anyway).
        with trio.move_on_at(trio.current_time() + (deadline - now())):
            outcome = await trio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=limiter)
        if not isinstance(outcome, StoreUnavailable):
            return outcome, attempts
        left = deadline - now()
        if left <= RETRY_START_S:
            return outcome, attempts  # given up for good: the store stayed unavailable until the deadline
        log.info(
            "slot %d: %s for %s: store unavailable (%s), retrying for up to %.2f s",
            slot,
            duty_type,
            attester,
            outcome.reason,
            left,
        )
        await trio.sleep(min(pause, left - RETRY_START_S))
        pause = min(pause * 2, RETRY_MAX_S)


async def sign_batch_within(
    guard: DutyGuard,
    requests: Sequence[DutyRequest],
    *,
    deadline: float,
    now: Callable[[], float],
    limiter: trio.CapacityLimiter | None = None,
) -> list[tuple[Outcome, int]]:
    """`sign_within` for a batch (`DutyGuard.sign_duties`): one guard call for all, abandoned at `deadline`;
    a duty the batch found the store unavailable for is then retried on its own until the deadline.

    Returns each request's outcome and guard-call count, in request order.
    """
    answers: list[tuple[Outcome, int]] = [(DeadlinePassed(deadline), 1) for _ in requests]
    with trio.move_on_at(trio.current_time() + (deadline - now())):
        outcomes = await trio.to_thread.run_sync(
            lambda: guard.sign_duties(requests), abandon_on_cancel=True, limiter=limiter
        )
        answers = [(outcome, 1) for outcome in outcomes]
    retry = [i for i, (outcome, _) in enumerate(answers) if isinstance(outcome, StoreUnavailable)]
    if not retry or deadline - now() <= RETRY_START_S:
        return answers
    await trio.sleep(RETRY_START_S)

    async def again(i: int) -> None:
        r = requests[i]
        outcome, attempts = await sign_within(
            guard,
            r.attester,
            r.slot,
            r.duty_type,
            r.digest,
            r.payload,
            r.sign_fn,
            deadline=deadline,
            now=now,
            limiter=limiter,
        )
        answers[i] = (outcome, attempts + 1)

    async with trio.open_nursery() as nursery:
        for i in retry:
            nursery.start_soon(again, i)
    return answers

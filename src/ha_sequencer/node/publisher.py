"""The publisher: submits a proposal with its quorum to L1 `Rollup.propose`, once per slot across HA twins.

- Never submits what the chain already has: the L1 tips are read first (a slot at or below the tip's is done).
- The guard's publish record decides whose turn it is, so twins do not all pay gas; a twin takes over only
  when the first submission is not mined by its deadline.
- EIP-1559 fees, nonces and RPC failover live in the L1 client; reverts arrive as named `RollupError`s and are
  logged by name.
- With several publishers the funds service picks one per submission (idle, able to pay gas × maxFeePerGas,
  richest, least recently used); a transaction no publisher can pay for is not sent (issue 7).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from ha_sequencer.ha.errors import DutyStoreError
from ha_sequencer.ha.outcomes import DutyType, PublishDone, PublishTheirs, PublishYours
from ha_sequencer.l1.errors import L1Error, RollupError, SlotAlreadyInChain
from ha_sequencer.monitoring.funds import FundsError
from ha_sequencer.monitoring.service import FundsService
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.wire import SignedBlock

log = logging.getLogger(__name__)

# Fractions of the slot
SUBMIT_UNTIL = 0.85  # a submission later than this cannot be mined inside the slot
FIRST_PUBLISHER_GRACE = (
    0.25  # how long twins wait for the first publisher's tx to be mined before taking over
)
POLL_TWIN = 0.05  # seconds between looks at the chain while a twin publishes
# An explicit gas limit: the client's estimate runs on the latest L1 block, whose timestamp on an automining
# anvil can be slots old (NotCurrentSlot in simulation). Unused gas is not charged under EIP-1559.
PROPOSE_GAS_BASE = 1_500_000
PROPOSE_GAS_PER_ATTESTATION = 15_000
PROPOSE_GAS_PER_TX_BYTE = 40
DUTY = DutyType.BLOCK_PROPOSAL.value  # the duty named in missed-duty alerts


def propose_gas_limit(attestations: int, txs_bytes: int) -> int:
    """A safe gas limit for `propose` with this many attestations and calldata bytes."""
    return PROPOSE_GAS_BASE + PROPOSE_GAS_PER_ATTESTATION * attestations + PROPOSE_GAS_PER_TX_BYTE * txs_bytes


@dataclass
class PublishResult:
    """How one slot's publication ended (for logs and the benchmark)."""

    slot: int
    result: str
    tx_hash: str | None = None


class Publisher:
    """Submits this node's proposals to L1 with one of its publisher accounts; blocking calls in threads."""

    def __init__(
        self,
        *,
        client,
        guard,
        clock: SlotClock,
        metrics: NodeMetrics,
        accounts: dict[str, object],
        funds: FundsService | None = None,
    ) -> None:
        self.client = client
        self.guard = guard
        self.clock = clock
        self.metrics = metrics
        # attester → the publisher LocalAccount to pay gas with when there is no funds service
        self.accounts = accounts
        # the publisher choice per submission, the max-cost check and alerts (issue 7)
        self.funds = funds

    async def _on_chain(self, slot: int, archive: bytes) -> str | None:
        """'ours' if L1's tip is this block, 'other' if L1 already has a block at/after `slot`, else None."""
        _number, tip_archive, tip_slot = await trio.to_thread.run_sync(self.client.tips)
        if tip_slot >= slot:
            return "ours" if tip_archive == archive else "other"
        return None

    async def publish(
        self, slot: int, attester: str, signed: SignedBlock, attestations: list[bytes], record
    ) -> None:
        """Get `signed` with its attestations onto L1 within `slot`, or give up at its submit deadline."""
        block = signed.block
        duration = self.clock.timing.slot_duration
        grace = max(0.2, FIRST_PUBLISHER_GRACE * duration)
        with trio.move_on_at(self.clock.slot_deadline(slot, SUBMIT_UNTIL)) as scope:
            while True:
                try:
                    state = await self._on_chain(slot, block.archive)
                except L1Error as exc:
                    log.warning("slot %d: L1 tips unavailable: %s", slot, exc)
                    await trio.sleep(POLL_TWIN)
                    continue
                if state is not None:
                    self._done(slot, attester, state)
                    return
                try:
                    turn = await trio.to_thread.run_sync(
                        lambda: self.guard.claim_publish(attester, slot, deadline_s=grace)
                    )
                except DutyStoreError as exc:
                    # the proposal is signed already; publishing uncoordinated risks gas, never a slash
                    log.warning(
                        "slot %d: duty store unavailable for the publish record (%s): publishing", slot, exc
                    )
                    turn = PublishYours(0)
                if isinstance(turn, PublishDone):
                    self.metrics.l1_submissions.labels(result="yielded").inc()
                    return
                if isinstance(turn, PublishTheirs):
                    # a twin is publishing: watch the chain until its deadline passes, then ask again
                    await trio.sleep(POLL_TWIN)
                    continue
                assert isinstance(turn, PublishYours)
                if turn.attempt > 1:
                    log.warning("slot %d: taking over publication (attempt %d)", slot, turn.attempt)
                done = await self._submit(slot, attester, signed, attestations, turn.attempt, grace, record)
                if done:
                    return
        if scope.cancelled_caught:
            self.metrics.l1_submissions.labels(result="missed").inc()
            if self.funds is not None:
                self.funds.duty_missed(attester, slot, DUTY, "not on L1 by the submit deadline")
            log.warning(
                "slot %d: proposal 0x%s… not on L1 by the submit deadline", slot, block.archive.hex()[:12]
            )

    async def _store_call(self, slot: int, fn) -> None:
        try:
            await trio.to_thread.run_sync(fn)
        except DutyStoreError as exc:  # bookkeeping only: twins fall back to watching L1
            log.warning("slot %d: could not update the publish record: %s", slot, exc)

    def _done(self, slot: int, attester: str, state: str) -> None:
        if state == "ours":
            self.metrics.l1_submissions.labels(result="already_on_chain").inc()
            if self.funds is not None:  # on L1, whichever twin paid for it
                self.funds.duty_done(attester, slot, DUTY)
        else:
            self.metrics.l1_submissions.labels(result="slot_taken").inc()
            log.warning("slot %d: L1 already has another block for this slot", slot)

    async def _submit(
        self,
        slot: int,
        attester: str,
        signed: SignedBlock,
        attestations: list[bytes],
        attempt: int,
        grace: float,
        record,
    ) -> bool:
        block = signed.block
        proposal = block.proposal
        gas = propose_gas_limit(len(attestations), len(block.txs))
        funds = self.funds
        if funds is None:
            account = self.accounts[attester]
        else:
            try:
                # the best idle publisher that can pay gas × maxFeePerGas now, marked busy until released;
                # shielded: a deadline landing meanwhile must not lose which publisher was marked
                with trio.CancelScope(shield=True):
                    account = await trio.to_thread.run_sync(lambda: funds.select(attester, gas, slot=slot))
            except FundsError as exc:
                if funds.in_flight(attester, slot):
                    # our earlier attempt for this slot is still pending: a second tx would queue behind its
                    # nonce; watch the chain instead (a twin may take over when its deadline passes)
                    log.info("slot %d: earlier submission still pending, not sending another", slot)
                    await trio.sleep(POLL_TWIN)
                    return False
                self.metrics.l1_submissions.labels(result="no_publisher").inc()
                log.error("slot %d: proposal not submitted: %s", slot, exc)
                funds.duty_missed(attester, slot, DUTY, "no publisher can pay for it")
                return True
            except L1Error as exc:  # fee cap unreadable: L1 is down, a send would fail as well
                self.metrics.l1_submissions.labels(result="error").inc()
                log.warning("slot %d: no publisher chosen: %s", slot, exc)
                await trio.sleep(POLL_TWIN)
                return False
        handed_over = False  # True once the funds service knows the tx hash (sent)

        def send() -> bytes:
            nonlocal handed_over
            tx_hash = self.client.propose(
                account,
                proposal,
                signed.signature,
                attestations,
                block.txs,
                gas=gas,
            )
            if funds is not None:
                funds.sent(account.address, tx_hash, slot=slot)  # busy until mined or dropped
            handed_over = True
            return tx_hash

        try:
            tx_hash = await trio.to_thread.run_sync(send)
            tx_hex = "0x" + tx_hash.hex()
        except SlotAlreadyInChain as exc:
            self.metrics.l1_submissions.labels(result="reverted").inc()
            log.info("slot %d: %s (a twin or the chain was faster)", slot, exc.solidity_name)
            return True
        except RollupError as exc:
            self.metrics.l1_submissions.labels(result="reverted").inc()
            log.error("slot %d: propose reverted: %s", slot, exc)
            return True
        except L1Error as exc:
            self.metrics.l1_submissions.labels(result="error").inc()
            log.warning("slot %d: propose failed: %s", slot, exc)
            await trio.sleep(POLL_TWIN)
            return False
        finally:
            if funds is not None and not handed_over:
                funds.release(account.address)  # nothing was sent (error or cancelled): idle again
        submitted = self.clock.since_slot_start(slot)
        if record is not None:
            record.l1_submitted = submitted
        self.metrics.proposal_latency.labels(stage="submitted").observe(max(0.0, submitted))
        await self._store_call(
            slot, lambda: self.guard.record_publish(attester, slot, attempt, tx_hex, deadline_s=grace)
        )
        log.info(
            "slot %d: submitted proposal 0x%s… with %d attestations in %s (%.0f ms into the slot)",
            slot,
            block.archive.hex()[:12],
            len(attestations),
            tx_hex,
            submitted * 1000,
        )
        try:
            receipt = await trio.to_thread.run_sync(lambda: self.client.wait_receipt(tx_hash, grace))
        except RollupError as exc:
            self.metrics.l1_submissions.labels(result="reverted").inc()
            log.error("slot %d: propose %s reverted: %s", slot, tx_hex, exc)
            if funds is not None:
                funds.release(account.address, tx_hash)
            return True
        except L1Error as exc:
            # still pending: the publisher stays busy until the funds service sees it mined or dropped
            log.warning("slot %d: %s not mined in %.1f s: %s", slot, tx_hex, grace, exc)
            return False
        del receipt
        if funds is not None:
            funds.release(account.address, tx_hash)
            funds.duty_done(attester, slot, DUTY)
        mined = self.clock.since_slot_start(slot)
        if record is not None:
            record.l1_mined = mined
        self.metrics.proposal_latency.labels(stage="mined").observe(max(0.0, mined))
        self.metrics.l1_submissions.labels(result="mined").inc()
        await self._store_call(slot, lambda: self.guard.mark_published(attester, slot))
        log.info("slot %d: proposal mined (%.0f ms into the slot)", slot, mined * 1000)
        return True

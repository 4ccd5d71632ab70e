"""The publisher: submits a proposal with its quorum to L1 `Rollup.propose`, once per slot across HA twins.

- Never submits what the chain already has: the L1 tips are read first (a slot at or below the tip's is done).
- The guard's publish record decides whose turn it is, so twins do not all pay gas; a twin takes over only
  when the first submission is not mined by its deadline.
- A turn is three steps, each ending in a closed result the caller matches on: choose a publisher account
  (`Chosen | EarlierSubmissionPending | NoPublisher | FeeCapUnknown`), send the transaction
  (`Sent | SlotTaken | Reverted | SendFailed`), await its receipt (`Mined | Reverted | NotMinedYet`).
- The node's publisher accounts (`PublisherAccounts`, the funds service) pick one per submission: idle, able
  to pay gas × maxFeePerGas, richest, least recently used; a transaction no publisher can pay for is not sent.
- EIP-1559 fees, nonces and RPC failover live in the L1 transport; reverts arrive as named `RollupError`s and
  are logged by name.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, assert_never

import trio

from ha_sequencer.ha.errors import DutyStoreError
from ha_sequencer.ha.outcomes import DutyType, PublishDone, PublishTheirs, PublishTurn, PublishYours
from ha_sequencer.l1.errors import L1Error, RollupError, SlotAlreadyInChain, TransactionFailed
from ha_sequencer.monitoring.funds import FundsError
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.messages import Proposal
from ha_sequencer.protocol.wire import SignedBlock

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from ha_sequencer.l1.client import Tips

log = logging.getLogger(__name__)

# Fractions of the slot
SUBMIT_UNTIL = 0.85  # a submission later than this cannot be mined inside the slot
FIRST_PUBLISHER_GRACE = (
    0.25  # how long twins wait for the first publisher's tx to be mined before taking over
)
MIN_GRACE_S = 0.2  # short slots still leave a receipt this long to arrive
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


# --- what the publisher is given -------------------------------------------------------------------------


class RollupL1(Protocol):
    """The Rollup calls the publisher makes (`l1.client.RollupClient`; blocking)."""

    def tips(self) -> Tips: ...

    def propose(
        self,
        publisher: LocalAccount,
        proposal: Proposal,
        proposer_signature: bytes,
        attestations: Sequence[bytes],
        txs: bytes,
        *,
        gas: int | None = None,
    ) -> bytes: ...

    def wait_receipt(self, tx_hash: bytes, deadline_s: float) -> dict[str, Any]: ...


class PublishRecords(Protocol):
    """The duty store's record of who publishes a slot (`ha.guard.DutyGuard`; blocking)."""

    def claim_publish(self, attester: str, slot: int, *, deadline_s: float) -> PublishTurn: ...

    def record_publish(
        self, attester: str, slot: int, attempt: int, tx_hash: str, *, deadline_s: float
    ) -> bool: ...

    def mark_published(self, attester: str, slot: int) -> None: ...


class PublisherAccounts(Protocol):
    """The accounts this node pays L1 gas with (`monitoring.service.FundsService`), and missed-duty alerts.

    `select` blocks (it reads balances and the fee cap): call it in a thread.
    """

    def select(self, attester: str, gas_limit: int, *, slot: int | None = None) -> LocalAccount:
        """An idle publisher of `attester` that can pay gas_limit × maxFeePerGas, marked busy.

        Raises FundsError when none can (L1Error when the fee cap cannot be read).
        """
        ...

    def sent(self, address: str, tx_hash: bytes, *, slot: int | None = None) -> None:
        """`address` sent `tx_hash`: busy until it is mined or dropped."""
        ...

    def release(self, address: str, tx_hash: bytes | None = None) -> None:
        """`address`'s transaction is mined or reverted, or nothing was sent: idle again."""
        ...

    def in_flight(self, attester: str, slot: int) -> Sequence[str]:
        """Publishers of `attester` whose pending transaction is for `slot`."""
        ...

    def duty_done(self, attester: str, slot: int, duty: str) -> None:
        """The duty landed: a missed-duty alert recovers."""
        ...

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> None:
        """The duty did not land: alert."""
        ...


class SlotTimes(Protocol):
    """Where the slot's L1 timings are noted (`node.scheduler.SlotRecord`): seconds after slot start."""

    l1_submitted: float | None
    l1_mined: float | None


# --- closed results of each step -------------------------------------------------------------------------


class OnL1(enum.Enum):
    """What L1 holds for the slot, read from its tips."""

    OURS = "ours"  # the tip is this block: published, whichever twin paid for it
    OTHER = "other"  # L1 already has a block at or after this slot
    NOTHING = "nothing"  # not yet


class Next(enum.Enum):
    """After one attempt: the slot's publication is settled, or watch the chain and ask for the turn again."""

    SETTLED = "settled"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Chosen:
    """The publisher account that pays for this submission (marked busy)."""

    account: LocalAccount


@dataclass(frozen=True, slots=True)
class EarlierSubmissionPending:
    """Our earlier transaction for this slot is still pending: a second one would queue behind its nonce."""


@dataclass(frozen=True, slots=True)
class NoPublisher:
    """No publisher of the attester can pay the transaction's maximum cost (or none is idle)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FeeCapUnknown:
    """The fee cap could not be read: L1 is down, a send would fail as well."""

    error: L1Error


Choice = Chosen | EarlierSubmissionPending | NoPublisher | FeeCapUnknown


@dataclass(frozen=True, slots=True)
class Sent:
    """The transaction is in L1's pool."""

    tx_hash: bytes


@dataclass(frozen=True, slots=True)
class SlotTaken:
    """`Rollup__SlotAlreadyInChain`: a twin or another proposer was faster."""

    error: RollupError


@dataclass(frozen=True, slots=True)
class Reverted:
    """The Rollup rejected the proposal (simulated or mined); the slot cannot be published by us."""

    error: L1Error


@dataclass(frozen=True, slots=True)
class SendFailed:
    """L1 did not take the transaction (unreachable, or the node refused it); nothing was sent."""

    error: L1Error


Sending = Sent | SlotTaken | Reverted | SendFailed


@dataclass(frozen=True, slots=True)
class Mined:
    """The proposal is on L1."""


@dataclass(frozen=True, slots=True)
class NotMinedYet:
    """No receipt within the grace period (or L1 unreachable): the transaction may still be mined."""

    error: L1Error


Landing = Mined | Reverted | NotMinedYet


# --- the publisher ----------------------------------------------------------------------------------------


class Publisher:
    """Submits this node's proposals to L1 with one of its publisher accounts; blocking calls in threads."""

    def __init__(
        self,
        *,
        client: RollupL1,
        guard: PublishRecords,
        clock: SlotClock,
        metrics: NodeMetrics,
        funds: PublisherAccounts,
    ) -> None:
        self.client = client
        self.guard = guard
        self.clock = clock
        self.metrics = metrics
        self.funds = funds

    async def publish(
        self,
        slot: int,
        attester: str,
        signed: SignedBlock,
        attestations: list[bytes],
        record: SlotTimes | None,
    ) -> None:
        """Get `signed` with its attestations onto L1 within `slot`, or give up at its submit deadline."""
        grace = max(MIN_GRACE_S, FIRST_PUBLISHER_GRACE * self.clock.timing.slot_duration)
        with trio.move_on_at(self.clock.slot_deadline(slot, SUBMIT_UNTIL)) as scope:
            while True:
                try:
                    on_l1 = await self._on_l1(slot, signed.block.archive)
                except L1Error as exc:
                    log.warning("slot %d: L1 tips unavailable: %s", slot, exc)
                    await trio.sleep(POLL_TWIN)
                    continue
                match on_l1:
                    case OnL1.OURS:
                        self.metrics.l1_submissions.labels(result="already_on_chain").inc()
                        self.funds.duty_done(attester, slot, DUTY)  # on L1, whichever twin paid for it
                        return
                    case OnL1.OTHER:
                        self.metrics.l1_submissions.labels(result="slot_taken").inc()
                        log.warning("slot %d: L1 already has another block for this slot", slot)
                        return
                    case OnL1.NOTHING:
                        pass
                    case _:
                        assert_never(on_l1)
                turn = await self._turn(attester, slot, grace)
                match turn:
                    case PublishDone():
                        self.metrics.l1_submissions.labels(result="yielded").inc()
                        return
                    case PublishTheirs():
                        # a twin is publishing: watch the chain until its deadline passes, then ask again
                        await trio.sleep(POLL_TWIN)
                    case PublishYours(attempt=attempt):
                        if attempt > 1:
                            log.warning("slot %d: taking over publication (attempt %d)", slot, attempt)
                        after = await self._attempt(
                            slot, attester, signed, attestations, attempt, grace, record
                        )
                        if after is Next.SETTLED:
                            return
                    case _:
                        assert_never(turn)
        if scope.cancelled_caught:
            self.metrics.l1_submissions.labels(result="missed").inc()
            self.funds.duty_missed(attester, slot, DUTY, "not on L1 by the submit deadline")
            log.warning(
                "slot %d: proposal 0x%s… not on L1 by the submit deadline",
                slot,
                signed.block.archive.hex()[:12],
            )

    async def _on_l1(self, slot: int, archive: bytes) -> OnL1:
        _number, tip_archive, tip_slot = await trio.to_thread.run_sync(self.client.tips)
        if tip_slot >= slot:
            return OnL1.OURS if tip_archive == archive else OnL1.OTHER
        return OnL1.NOTHING

    async def _turn(self, attester: str, slot: int, grace: float) -> PublishTurn:
        try:
            return await trio.to_thread.run_sync(
                lambda: self.guard.claim_publish(attester, slot, deadline_s=grace)
            )
        except DutyStoreError as exc:
            # the proposal is signed already; publishing uncoordinated risks gas, never a slash
            log.warning("slot %d: duty store unavailable for the publish record (%s): publishing", slot, exc)
            return PublishYours(0)

    async def _attempt(
        self,
        slot: int,
        attester: str,
        signed: SignedBlock,
        attestations: list[bytes],
        attempt: int,
        grace: float,
        record: SlotTimes | None,
    ) -> Next:
        """Our turn: choose a publisher, send, await the receipt."""
        gas = propose_gas_limit(len(attestations), len(signed.block.txs))
        choice = await self._choose(attester, slot, gas)
        match choice:
            case Chosen(account=account):
                pass
            case EarlierSubmissionPending():
                # watch the chain instead (a twin may take over when its deadline passes)
                log.info("slot %d: earlier submission still pending, not sending another", slot)
                await trio.sleep(POLL_TWIN)
                return Next.RETRY
            case NoPublisher(reason=reason):
                self.metrics.l1_submissions.labels(result="no_publisher").inc()
                log.error("slot %d: proposal not submitted: %s", slot, reason)
                self.funds.duty_missed(attester, slot, DUTY, "no publisher can pay for it")
                return Next.SETTLED
            case FeeCapUnknown(error=error):
                self.metrics.l1_submissions.labels(result="error").inc()
                log.warning("slot %d: no publisher chosen: %s", slot, error)
                await trio.sleep(POLL_TWIN)
                return Next.RETRY
            case _:
                assert_never(choice)

        sending = await self._send(account, slot, signed, attestations, gas)
        match sending:
            case Sent(tx_hash=tx_hash):
                pass
            case SlotTaken(error=error):
                self.metrics.l1_submissions.labels(result="reverted").inc()
                log.info("slot %d: %s (a twin or the chain was faster)", slot, error.solidity_name)
                return Next.SETTLED
            case Reverted(error=error):
                self.metrics.l1_submissions.labels(result="reverted").inc()
                log.error("slot %d: propose reverted: %s", slot, error)
                return Next.SETTLED
            case SendFailed(error=error):
                self.metrics.l1_submissions.labels(result="error").inc()
                log.warning("slot %d: propose failed: %s", slot, error)
                await trio.sleep(POLL_TWIN)
                return Next.RETRY
            case _:
                assert_never(sending)

        tx_hex = "0x" + tx_hash.hex()
        await self._note_submitted(slot, attester, signed, len(attestations), attempt, tx_hex, grace, record)
        landing = await self._await_receipt(tx_hash, grace)
        match landing:
            case Mined():
                self.funds.release(account.address, tx_hash)
                self.funds.duty_done(attester, slot, DUTY)
                await self._note_mined(slot, attester, record)
                return Next.SETTLED
            case Reverted(error=error):
                self.metrics.l1_submissions.labels(result="reverted").inc()
                log.error("slot %d: propose %s reverted: %s", slot, tx_hex, error)
                self.funds.release(account.address, tx_hash)
                return Next.SETTLED
            case NotMinedYet(error=error):
                # still pending: the publisher stays busy until the funds service sees it mined or dropped
                log.warning("slot %d: %s not mined in %.1f s: %s", slot, tx_hex, grace, error)
                return Next.RETRY
            case _:
                assert_never(landing)

    # --- the three steps ------------------------------------------------------------------------------------

    async def _choose(self, attester: str, slot: int, gas: int) -> Choice:
        """The best idle publisher that can pay gas × maxFeePerGas now, marked busy until released."""
        funds = self.funds
        account: LocalAccount | None = None
        try:
            # shielded: a deadline landing meanwhile must not lose which publisher was marked busy
            with trio.CancelScope(shield=True):
                account = await trio.to_thread.run_sync(lambda: funds.select(attester, gas, slot=slot))
        except FundsError as exc:
            if funds.in_flight(attester, slot):
                return EarlierSubmissionPending()
            return NoPublisher(str(exc))
        except L1Error as exc:
            return FeeCapUnknown(exc)
        assert account is not None  # a shielded scope is never cancelled: select returned or raised
        return Chosen(account)

    async def _send(
        self, account: LocalAccount, slot: int, signed: SignedBlock, attestations: list[bytes], gas: int
    ) -> Sending:
        """Send `propose` from `account`; once sent, the account stays busy until its tx resolves."""
        block = signed.block
        proposal = block.proposal
        handed_over = False  # True once the publisher accounts know the tx hash

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
            self.funds.sent(account.address, tx_hash, slot=slot)
            handed_over = True
            return tx_hash

        try:
            return Sent(await trio.to_thread.run_sync(send))
        except SlotAlreadyInChain as exc:
            return SlotTaken(exc)
        except RollupError as exc:
            return Reverted(exc)
        except L1Error as exc:
            return SendFailed(exc)
        finally:
            if not handed_over:
                self.funds.release(account.address)  # nothing was sent (error or cancelled): idle again

    async def _await_receipt(self, tx_hash: bytes, grace: float) -> Landing:
        """The receipt of `tx_hash` within `grace` seconds."""
        try:
            await trio.to_thread.run_sync(lambda: self.client.wait_receipt(tx_hash, grace))
        except (RollupError, TransactionFailed) as exc:  # mined, and reverted (named or not)
            return Reverted(exc)
        except L1Error as exc:
            return NotMinedYet(exc)
        return Mined()

    # --- bookkeeping ----------------------------------------------------------------------------------------

    async def _note_submitted(
        self,
        slot: int,
        attester: str,
        signed: SignedBlock,
        attestations: int,
        attempt: int,
        tx_hex: str,
        grace: float,
        record: SlotTimes | None,
    ) -> None:
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
            signed.block.archive.hex()[:12],
            attestations,
            tx_hex,
            submitted * 1000,
        )

    async def _note_mined(self, slot: int, attester: str, record: SlotTimes | None) -> None:
        mined = self.clock.since_slot_start(slot)
        if record is not None:
            record.l1_mined = mined
        self.metrics.proposal_latency.labels(stage="mined").observe(max(0.0, mined))
        self.metrics.l1_submissions.labels(result="mined").inc()
        await self._store_call(slot, lambda: self.guard.mark_published(attester, slot))
        log.info("slot %d: proposal mined (%.0f ms into the slot)", slot, mined * 1000)

    async def _store_call(self, slot: int, fn: Callable[[], object]) -> None:
        try:
            await trio.to_thread.run_sync(fn)
        except DutyStoreError as exc:  # bookkeeping only: twins fall back to watching L1
            log.warning("slot %d: could not update the publish record: %s", slot, exc)

"""The duty scheduler: each slot, the proposer and committee duties of every attester in the keystore.

Every attester signature goes through the duty guard (DESIGN.md: High availability), in a worker thread:
- NewSignature / SameData: release the signature (SameData: an HA twin signed the same digest; broadcasting
  the identical bytes again is redundancy, not equivocation).
- Adopted: a twin died mid-duty; finish *its* message (the stored payload), never ours.
- Busy / Refused for a proposal: a twin holds it; stand by as backup publisher of the twin's block, and send
  the twin's recorded block from the duty store if gossip has not brought it (the twin died in between).
- Refused / BelowWatermark / LostClaim / StoreUnavailable / DeadlinePassed: sign nothing; counted. A refused
  attestation also raises an alert through `SignatureAlerts` (cleared by the next one signed normally).
- Every guard call carries the duty's deadline in its slot and is retried while the store is unavailable,
  until that deadline (`deadlines`): no signature for a slot leaves after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, assert_never

import trio
from eth_account.signers.local import LocalAccount

from ha_sequencer.ha.errors import DutyStoreError
from ha_sequencer.ha.guard import DutyGuard, DutyRequest
from ha_sequencer.ha.outcomes import (
    Adopted,
    BelowWatermark,
    Busy,
    DeadlinePassed,
    DutyType,
    Halted,
    LostClaim,
    NewSignature,
    Outcome,
    Refused,
    SameData,
    StoreUnavailable,
    outcome_label,
)
from ha_sequencer.node.chain import Chain, ChainError
from ha_sequencer.node.clock import SlotClock
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.deadlines import (
    GUARD_THREADS,
    QUORUM_DEADLINE,
    duty_deadline,
    sign_batch_within,
    sign_within,
)
from ha_sequencer.node.mempool import Mempool
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.publisher import Publisher
from ha_sequencer.node.sync import Sync
from ha_sequencer.p2p.errors import P2PError
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, NetworkParams
from ha_sequencer.protocol.execution import Execution, build_block
from ha_sequencer.protocol.messages import (
    Attestation,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    AttestationMessage,
    Block,
    ProposalMessage,
    SignedAttestation,
    SignedBlock,
    attestation_payload,
    decode_attestation_payload,
    decode_block,
    encode_attestation,
    encode_block,
    encode_signed_block,
    parse_proposal,
)

log = logging.getLogger(__name__)

# Fractions of a slot (a slot is a few seconds; L1 must mine the proposal inside it)
FULL_COMMITTEE_DEADLINE = 0.5  # once a quorum is in, wait until here for the rest of the committee
BACKUP_WAIT = 0.5  # a yielding HA twin waits this long for the holder's proposal to appear on gossip
RESEND_AFTER = 0.2  # by then a yielding twin that saw no proposal sends the one a twin recorded, if any
RESEND_EVERY = 0.1  # and looks in the store again this often until BACKUP_WAIT
ATTEST_UNTIL = 0.8  # attestations after this cannot make it into an L1 block of this slot

RECORDS_KEPT = 512  # slots of per-slot timings kept for /status and benchmarks
# Distinct proposals of one slot's proposer kept (more means it equivocates): an invalid one seen first must
# not shadow the valid one, yet an equivocating proposer cannot make us re-execute without end.
PROPOSALS_PER_SLOT = 4


class SignatureAlerts(Protocol):
    """Where a refused attestation is reported (`monitoring.service.FundsService`; return values unused)."""

    def signature_refused(
        self, attester: str, slot: int, duty: str, *, existing_digest: bytes | None = None
    ) -> object:
        """The guard refused a different message for an already signed duty."""
        ...

    def signature_ok(self, attester: str, slot: int, duty: str) -> object:
        """A duty of that kind was signed normally again."""
        ...


@dataclass(frozen=True)
class Identity:
    """One attester this node runs: its signing function never leaves the guard's callback."""

    attester: str
    fee_recipient: bytes
    sign: Callable[[bytes], bytes] = field(repr=False)

    @classmethod
    def from_account(cls, account: LocalAccount, fee_recipient: bytes) -> Identity:
        """An identity signing with an eth-account LocalAccount."""
        return cls(account.address, fee_recipient, lambda digest: sign_digest(account, digest))


@dataclass(frozen=True)
class GuardCall:
    """One guard call of a slot, as `SlotRecord.duties` keeps it (for `bench scale`)."""

    attester: str
    duty: str
    outcome: str
    at: float
    guard_ms: float
    sign_ms: float  # of guard_ms, the time the call spent in attester keys (a batch: all its keys)


class SigningTime:
    """The time a guard call spends inside attester keys: not the guard's own, and K keys in a batch."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, sign: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        """`sign`, adding its running time to `seconds`."""

        def run(digest: bytes) -> bytes:
            t = time.perf_counter()
            try:
                return sign(digest)
            finally:
                self.seconds += time.perf_counter() - t

        return run


@dataclass
class SlotRecord:
    """What happened in one slot, for the benchmark and /status (times are seconds after slot start)."""

    slot: int
    proposer: str | None = None
    role: str = "idle"
    proposal_gossiped: float | None = None
    quorum_collected: float | None = None
    l1_submitted: float | None = None
    l1_mined: float | None = None
    attestations: int = 0
    outcome: str | None = None
    # Every guard call of the slot: the attester, the duty, the outcome, when the call returned (seconds after
    # slot start: for a signature, when it was released) and how long the guard took (ms).
    duties: list[GuardCall] = field(default_factory=list[GuardCall])


class AttestationPool:
    """Attestations seen per (slot, archive), keyed by attester; wakes waiters on each arrival."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, bytes], dict[str, bytes]] = {}
        self._changed = trio.Event()

    def add(self, slot: int, archive: bytes, attester: str, signature: bytes) -> bool:
        """Add one attestation; False if this attester's was already there."""
        votes = self._by_key.setdefault((slot, archive), {})
        if attester in votes:
            return False
        votes[attester] = signature
        self._changed.set()
        self._changed = trio.Event()
        return True

    def votes(self, slot: int, archive: bytes) -> dict[str, bytes]:
        """attester → signature for one block."""
        return dict(self._by_key.get((slot, archive), {}))

    async def wait_for(
        self, slot: int, archive: bytes, members: frozenset[str], count: int
    ) -> dict[str, bytes]:
        """Wait until `count` committee members voted for the block (cancel via a scope for a deadline)."""
        while True:
            votes = {a: s for a, s in self._by_key.get((slot, archive), {}).items() if a in members}
            if len(votes) >= count:
                return votes
            await self._changed.wait()

    def prune(self, below_slot: int) -> None:
        """Forget slots before `below_slot`."""
        for key in [k for k in self._by_key if k[0] < below_slot]:
            del self._by_key[key]


class Scheduler:
    """Runs the duties of this node's attesters slot by slot; reacts to gossiped proposals, attestations."""

    def __init__(
        self,
        *,
        params: NetworkParams,
        clock: SlotClock,
        chain: Chain,
        sync: Sync,
        committees: CommitteeCache,
        mempool: Mempool,
        guard: DutyGuard,
        publisher: Publisher,
        metrics: NodeMetrics,
        identities: Sequence[Identity],
        publish_gossip: Callable[[str, bytes], Awaitable[object]],
        alerts: SignatureAlerts,
    ) -> None:
        self.params = params
        self.clock = clock
        self.chain = chain
        self.sync = sync
        self.committees = committees
        self.mempool = mempool
        self.guard = guard
        self.publisher = publisher
        self.metrics = metrics
        self.identities = {i.attester: i for i in identities}
        self.publish_gossip = publish_gossip
        self.alerts = alerts
        self.pool = AttestationPool()
        # slot → digest → the slot proposer's distinct proposals in arrival order (from gossip or built here)
        self.proposals: dict[int, dict[bytes, ProposalMessage]] = {}
        self._proposal_arrived = trio.Event()
        # slot → set when the attester task of the slot's latest proposal is done: the next one waits for it,
        # so proposals are tried in arrival order and the first that re-executes correctly is attested
        self._attest_turn: dict[int, trio.Event] = {}
        self._attested: set[tuple[int, str]] = set()
        self.records: dict[int, SlotRecord] = {}
        self.current_role = "idle"
        self.stopping = False
        self.finished = trio.Event()
        self._loop_scope = trio.CancelScope()
        self._duties: trio.Nursery | None = None
        self._first_signing_slot = 0  # doppelganger protection: no signature before this slot
        self._guard_threads = trio.CapacityLimiter(GUARD_THREADS)

    # --- the slot loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run duties for each slot until cancelled or `stop()`; duties of a slot run concurrently."""
        try:
            async with trio.open_nursery() as duties:
                self._duties = duties
                with self._loop_scope:
                    async for slot in self.clock.slots():
                        self.metrics.slot.set(slot)
                        self._prune(slot)
                        duties.start_soon(self._slot_duties, slot)
                # stopped: duties in hand finish (the nursery waits for them), nothing new starts
        finally:
            self.finished.set()

    def hold_signing_until(self, slot: int) -> None:
        """Sign nothing before `slot` (doppelganger protection: listen first for a foreign signer)."""
        self._first_signing_slot = slot

    def _held(self, duty: DutyType, slot: int) -> bool:
        if slot >= self._first_signing_slot:
            return False
        self.metrics.duties.labels(duty=duty.value, outcome="doppelganger_wait").inc()
        log.info(
            "slot %d: %s skipped: listening for a doppelganger until slot %d",
            slot,
            duty,
            self._first_signing_slot,
        )
        return True

    def stop(self) -> None:
        """Start no new duties; those in hand finish."""
        self.stopping = True
        self._loop_scope.cancel()

    def _prune(self, slot: int) -> None:
        self.pool.prune(slot - 2)
        for s in [s for s in self.proposals if s < slot - 2]:
            del self.proposals[s]
            self._attest_turn.pop(s, None)
        self._attested = {k for k in self._attested if k[0] >= slot - 2}
        for s in [s for s in self.records if s < slot - RECORDS_KEPT]:
            del self.records[s]

    def role_at(self, slot: int) -> str:
        """This node's role in `slot`: proposer, committee, or idle."""
        proposer = self.committees.proposer(slot)
        if proposer in self.identities:
            return "proposer"
        if any(self.committees.is_member(slot, a) for a in self.identities):
            return "committee"
        return "idle"

    async def _slot_duties(self, slot: int) -> None:
        record = self.records.setdefault(slot, SlotRecord(slot))
        record.proposer = self.committees.proposer(slot)
        record.role = self.current_role = self.role_at(slot)
        if record.proposer is None:
            log.warning("slot %d: committee of epoch %d unknown, no duties", slot, self.params.epoch_of(slot))
            return
        identity = self.identities.get(record.proposer)
        if identity is None or self._held(DutyType.BLOCK_PROPOSAL, slot):
            return
        if not await self._ready(slot):
            self.metrics.duties.labels(duty="block_proposal", outcome="not_synced").inc()
            log.warning("slot %d: proposer %s but not synced: skipping the proposal", slot, identity.attester)
            return
        await self._propose(slot, identity, record)

    async def _ready(self, slot: int) -> bool:
        # always one fresh look at L1: the previous slot's block may have been mined since the last poll
        synced = await self.sync.catch_up()
        return synced and self.chain.tip.slot < slot

    # --- proposer -----------------------------------------------------------------------------------------

    async def _propose(self, slot: int, identity: Identity, record: SlotRecord) -> None:
        tip = self.chain.tip
        txs = self.mempool.select(self.chain.state, MAX_TXS_PER_BLOCK)
        execution = build_block(
            self.params,
            self.chain.state,
            slot=slot,
            parent_archive=tip.archive,
            txs=txs,
            fee_recipient=identity.fee_recipient,
        )
        block = execution.block
        digest = proposal_digest(self.params, block.proposal)
        outcome = await self._sign(identity, slot, DutyType.BLOCK_PROPOSAL, digest, encode_block(block))
        record.outcome = outcome_label(outcome)
        match outcome:
            case NewSignature(signature) | SameData(signature):
                self.chain.remember(execution)
                msg = ProposalMessage(SignedBlock(block, signature), identity.attester, digest)
            case Adopted(signature, payload):
                # a dead twin's block: the only message this duty may carry, whatever we built
                block = decode_block(payload)
                log.warning(
                    "slot %d: adopted a dead twin's proposal 0x%s…: finishing it",
                    slot,
                    block.archive.hex()[:12],
                )
                msg = parse_proposal(self.params, encode_signed_block(SignedBlock(block, signature)))
            case Busy() | Refused():
                # an HA twin proposed (or is proposing) this slot: stand by to publish its block if it fails
                log.info("slot %d: proposal held by an HA twin (%s): standing by", slot, record.outcome)
                await self._backup_proposer(slot, identity, record)
                return
            case Halted(reason):
                log.error("slot %d: proposal not signed: %s is halted (%s)", slot, identity.attester, reason)
                return
            case BelowWatermark() | LostClaim() | StoreUnavailable() | DeadlinePassed():
                log.warning("slot %d: proposal not signed: %s", slot, outcome)
                return
            case _:
                assert_never(outcome)
        signed = msg.signed
        await self._gossip(PROPOSAL_TOPIC, encode_signed_block(signed))
        record.proposal_gossiped = self.clock.since_slot_start(slot)
        self.metrics.proposal_latency.labels(stage="gossiped").observe(max(0.0, record.proposal_gossiped))
        self._note_proposal(msg)
        log.info(
            "slot %d: %s proposed 0x%s… on block %d (%d tx bytes, %s)",
            slot,
            identity.attester,
            block.archive.hex()[:12],
            tip.number,
            len(block.txs),
            outcome_label(outcome),
        )
        await self._collect_and_publish(slot, identity, msg, record)

    async def _backup_proposer(self, slot: int, identity: Identity, record: SlotRecord) -> None:
        # gossip first; then, until BACKUP_WAIT, the store: a twin that recorded the block and died (or whose
        # gossip was lost) left it there, maybe only after a live holder's long signing made us Busy
        at = RESEND_AFTER
        msg = await self._twin_proposal(slot, identity, at)
        while msg is None and at < BACKUP_WAIT:
            msg = await self._resend_recorded(slot, identity, record)
            if msg is None:
                at = min(at + RESEND_EVERY, BACKUP_WAIT)
                msg = await self._twin_proposal(slot, identity, at)
        if msg is None:
            log.info("slot %d: no proposal from the HA twin seen in time", slot)
            return
        # the twin's block: collect its quorum too and publish if the twin does not (the guard decides)
        await self._collect_and_publish(slot, identity, msg, record)

    async def _twin_proposal(self, slot: int, identity: Identity, until: float) -> ProposalMessage | None:
        """The identity's proposal of `slot` as gossip brought it, waited for until `until` (of the slot)."""
        with trio.move_on_at(self.clock.slot_deadline(slot, until)):
            while True:
                seen = [p for p in self.proposals.get(slot, {}).values() if p.proposer == identity.attester]
                if seen:
                    return seen[0]
                await self._proposal_arrived.wait()
        return None

    async def _resend_recorded(
        self, slot: int, identity: Identity, record: SlotRecord
    ) -> ProposalMessage | None:
        """A twin recorded the slot's proposal and none reached us: it died before gossiping it (or its gossip
        was lost). Send the stored signed block: the only message the duty may carry, its bytes already
        signed and recorded (nothing is signed here). None while no twin has recorded one."""
        try:
            stored = await trio.to_thread.run_sync(
                self.guard.recorded,
                identity.attester,
                slot,
                DutyType.BLOCK_PROPOSAL,
                limiter=self._guard_threads,
            )
        except DutyStoreError as exc:
            log.warning("slot %d: the recorded proposal could not be read: %s", slot, exc)
            return None
        if stored is None:
            return None
        msg = parse_proposal(
            self.params, encode_signed_block(SignedBlock(decode_block(stored.payload), stored.signature))
        )
        log.warning(
            "slot %d: the HA twin's recorded proposal 0x%s… never reached gossip: sending the stored copy",
            slot,
            msg.signed.block.archive.hex()[:12],
        )
        await self._gossip(PROPOSAL_TOPIC, encode_signed_block(msg.signed))
        record.proposal_gossiped = self.clock.since_slot_start(slot)
        self.metrics.proposals_resent.inc()
        self._note_proposal(msg)
        return msg

    async def _collect_and_publish(
        self, slot: int, identity: Identity, msg: ProposalMessage, record: SlotRecord
    ) -> None:
        committee = self.committees.committee_at(slot) or ()
        need = self.committees.quorum(slot) or 1
        members = frozenset(committee)
        archive = msg.signed.block.archive
        votes: dict[str, bytes] = {}
        quorum_at = None
        with trio.move_on_at(self.clock.slot_deadline(slot, QUORUM_DEADLINE)):
            votes = await self.pool.wait_for(slot, archive, members, need)
            quorum_at = self.clock.since_slot_start(slot)
        if quorum_at is not None:
            # Every committee member's attestation counts as its duty on L1 (monitor, failover-test): with
            # time to spare, wait for the rest of the committee too before publishing.
            with trio.move_on_at(self.clock.slot_deadline(slot, FULL_COMMITTEE_DEADLINE)):
                votes = await self.pool.wait_for(slot, archive, members, len(members))
        if len(votes) < need:
            votes = {a: s for a, s in self.pool.votes(slot, archive).items() if a in members}
        record.attestations = len(votes)
        self.metrics.attestations_collected.inc(len(votes))
        if len(votes) < need:
            self.metrics.quorum.labels(result="no_quorum").inc()
            log.warning(
                "slot %d: %d/%d attestations by the deadline, no quorum: not publishing",
                slot,
                len(votes),
                need,
            )
            return
        record.quorum_collected = quorum_at if quorum_at is not None else self.clock.since_slot_start(slot)
        self.metrics.quorum.labels(result="quorum").inc()
        self.metrics.proposal_latency.labels(stage="quorum").observe(max(0.0, record.quorum_collected))
        # committee order: deterministic calldata whichever twin publishes
        ordered = [votes[a] for a in committee if a in votes]
        await self.publisher.publish(slot, identity.attester, msg.signed, ordered, record)

    # --- committee member ---------------------------------------------------------------------------------

    def _note_proposal(self, msg: ProposalMessage) -> None:
        slot = msg.signed.block.slot
        if msg.proposer != self.committees.proposer(slot):
            return  # only the slot's proposer may fill the slot's places
        seen = self.proposals.setdefault(slot, {})
        if msg.digest in seen or len(seen) >= PROPOSALS_PER_SLOT:
            return
        seen[msg.digest] = msg
        self._proposal_arrived.set()
        self._proposal_arrived = trio.Event()
        if self._duties is not None and not self.stopping:
            previous = self._attest_turn.get(slot)
            done = self._attest_turn[slot] = trio.Event()
            self._duties.start_soon(self._attest_in_turn, msg, previous, done)

    def on_proposal_nowait(self, msg: ProposalMessage) -> None:
        """A valid proposal arrived from gossip: attest in the background."""
        self._note_proposal(msg)

    def on_attestation(self, msg: AttestationMessage) -> None:
        """A valid attestation arrived from gossip."""
        att = msg.attestation
        self.pool.add(att.slot, att.archive, msg.attester, att.signature)

    async def _attest_in_turn(
        self, msg: ProposalMessage, previous: trio.Event | None, done: trio.Event
    ) -> None:
        try:
            if previous is not None:
                await previous.wait()
            await self._attest(msg)
        finally:
            done.set()

    async def _attest(self, msg: ProposalMessage) -> None:
        block = msg.signed.block
        slot = block.slot
        if slot == self.clock.current_slot() + 1:
            # the proposer's clock runs a little ahead of ours (gossip accepts one slot ahead): this is the
            # only time the proposal is handed to us, so wait for its slot instead of dropping it
            await self.clock.wait_for_slot(slot)
        if (
            slot != self.clock.current_slot()
            or self.clock.since_slot_start(slot) > ATTEST_UNTIL * self.params.slot_duration
        ):
            log.info("slot %d: proposal arrived outside its slot: not attesting", slot)
            return
        # gossip checked the proposer already; checked again here, right before anything is signed
        if msg.proposer != self.committees.proposer(slot):
            log.warning(
                "slot %d: proposal signed by %s, not the slot's proposer: not attesting", slot, msg.proposer
            )
            return
        mine = [a for a in self.identities if self.committees.is_member(slot, a)]
        if not mine or self._held(DutyType.ATTESTATION, slot):
            return
        # a node behind L1 signs nothing (sync.py); one fresh poll first, as a proposer does in `_ready`
        if not self.sync.synced and not await self.sync.catch_up():
            self.metrics.duties.labels(duty="attestation", outcome="not_synced").inc()
            log.warning("slot %d: committee member but not synced: not attesting", slot)
            return
        execution = await self._validate(block)
        if execution is None:
            return
        digest = attestation_digest(self.params, Attestation(slot, block.archive))
        payload = attestation_payload(slot, block.archive)
        voters = [self.identities[a] for a in mine if (slot, a) not in self._attested]
        self._attested.update((slot, i.attester) for i in voters)
        if len(voters) == 1:
            await self._attest_one(voters[0], slot, digest, payload)
            return
        if not voters:
            return
        # Every identity of this node votes for the same block: one guard batch (one claim and one record
        # transaction for all of them), then each vote is released as `_attest_one` releases it.
        outcomes = await self._sign_many(voters, slot, DutyType.ATTESTATION, digest, payload)
        async with trio.open_nursery() as n:
            for identity, outcome in zip(voters, outcomes, strict=True):
                n.start_soon(self._release_attestation, identity, slot, payload, outcome)

    async def _validate(self, block: Block) -> Execution | None:
        for attempt in range(2):
            try:
                return self.chain.execute(block)
            except ChainError as exc:
                if attempt == 0 and block.parent_archive != self.chain.tip.archive:
                    await self.sync.catch_up()  # the parent may have landed on L1 since our last poll
                    continue
                self.metrics.duties.labels(duty="attestation", outcome="invalid_proposal").inc()
                log.warning("slot %d: not attesting: %s", block.slot, exc)
                return None
        return None

    async def _attest_one(self, identity: Identity, slot: int, digest: bytes, payload: bytes) -> None:
        outcome = await self._sign(identity, slot, DutyType.ATTESTATION, digest, payload)
        await self._release_attestation(identity, slot, payload, outcome)

    async def _release_attestation(
        self, identity: Identity, slot: int, payload: bytes, outcome: Outcome
    ) -> None:
        match outcome:
            case NewSignature(signature) | SameData(signature):
                slot, archive = decode_attestation_payload(payload)
            case Adopted(signature, stored):
                slot, archive = decode_attestation_payload(stored)  # the dead twin's vote, not ours
            case Busy():
                return  # a live twin is signing this very vote: it gossips it
            case Halted(reason):
                log.error("slot %d: attestation not signed: %s halted (%s)", slot, identity.attester, reason)
                return
            case Refused() | BelowWatermark() | LostClaim() | StoreUnavailable() | DeadlinePassed():
                log.warning("slot %d: attestation by %s not signed: %s", slot, identity.attester, outcome)
                return
            case _:
                assert_never(outcome)
        self.pool.add(slot, archive, identity.attester, signature)
        await self._gossip(ATTESTATION_TOPIC, encode_attestation(SignedAttestation(slot, archive, signature)))
        log.info(
            "slot %d: %s attested 0x%s… (%s, block on 0x%s…)",
            slot,
            identity.attester,
            archive.hex()[:12],
            outcome_label(outcome),
            self.chain.tip.archive.hex()[:12],
        )

    # --- shared -------------------------------------------------------------------------------------------

    async def _sign(
        self, identity: Identity, slot: int, duty_type: DutyType, digest: bytes, payload: bytes
    ) -> Outcome:
        deadline = duty_deadline(self.clock.timing, slot, duty_type)
        signing = SigningTime()
        started = time.perf_counter()
        try:
            outcome, attempts = await sign_within(
                self.guard,
                identity.attester,
                slot,
                duty_type,
                digest,
                payload,
                signing.timed(identity.sign),
                deadline=deadline,
                now=self.clock.now,
                limiter=self._guard_threads,
            )
        except Exception as exc:  # the guard fails closed on store errors; anything else is a bug: die loudly
            log.error("slot %d: guard error for %s %s: %s", slot, identity.attester, duty_type, exc)
            self.metrics.duties.labels(duty=duty_type.value, outcome="error").inc()
            raise
        self._account(identity, slot, duty_type, outcome, (started, signing.seconds), attempts)
        return outcome

    async def _sign_many(
        self, identities: Sequence[Identity], slot: int, duty_type: DutyType, digest: bytes, payload: bytes
    ) -> list[Outcome]:
        """`_sign` for several identities of this node signing the same message: one guard batch, within the
        duty's deadline (a duty the batch found the store unavailable for is retried on its own)."""
        deadline = duty_deadline(self.clock.timing, slot, duty_type)
        signing = SigningTime()
        requests = [
            DutyRequest(
                i.attester, slot, duty_type, digest, payload, signing.timed(i.sign), deadline=deadline
            )
            for i in identities
        ]
        started = time.perf_counter()
        try:
            answers = await sign_batch_within(
                self.guard, requests, deadline=deadline, now=self.clock.now, limiter=self._guard_threads
            )
        except Exception as exc:  # as in `_sign`: the guard fails closed itself; anything else is a bug
            log.error("slot %d: guard error for %d %s duties: %s", slot, len(requests), duty_type, exc)
            self.metrics.duties.labels(duty=duty_type.value, outcome="error").inc(len(requests))
            raise
        for identity, (outcome, attempts) in zip(identities, answers, strict=True):
            self._account(identity, slot, duty_type, outcome, (started, signing.seconds), attempts)
        return [outcome for outcome, _ in answers]

    def _account(
        self,
        identity: Identity,
        slot: int,
        duty_type: DutyType,
        outcome: Outcome,
        timing: tuple[float, float],
        attempts: int,
    ) -> None:
        """Metrics, the slot's guard-call record and the refused-attestation alert of one guard answer."""
        self.metrics.duties.labels(duty=duty_type.value, outcome=outcome_label(outcome)).inc()
        self.records.setdefault(slot, SlotRecord(slot)).duties.append(
            GuardCall(
                identity.attester,
                duty_type.value,
                outcome_label(outcome),
                round(self.clock.since_slot_start(slot), 4),
                round((time.perf_counter() - timing[0]) * 1000, 3),
                round(timing[1] * 1000, 3),
            )
        )
        # A refused proposal is routine in HA (a twin signed its own block first); a refused attestation means
        # two different blocks for one slot reached this identity: alert once, recover on the next normal one.
        if duty_type == DutyType.ATTESTATION:
            match outcome:
                case Refused(existing_digest=existing):
                    self.alerts.signature_refused(
                        identity.attester, slot, duty_type.value, existing_digest=existing
                    )
                case NewSignature() | SameData() | Adopted():
                    self.alerts.signature_ok(identity.attester, slot, duty_type.value)
                case (
                    BelowWatermark() | Busy() | LostClaim() | Halted() | StoreUnavailable() | DeadlinePassed()
                ):
                    pass  # nothing signed, nothing refused: the condition neither starts nor clears
                case _:
                    assert_never(outcome)
        log.debug(
            "slot %d: %s %s: %s after %d guard call(s)",
            slot,
            identity.attester,
            duty_type,
            outcome_label(outcome),
            attempts,
        )

    async def _gossip(self, topic: str, data: bytes) -> None:
        try:
            await self.publish_gossip(topic, data)
        except P2PError as exc:  # no peers yet, or a cap breach: the duty still counts locally
            log.warning("gossip publish on %s failed: %s: %s", topic, type(exc).__name__, exc)

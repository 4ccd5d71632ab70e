"""The duty guard: every attester signature goes through `DutyGuard.sign_duty` (DESIGN.md: the duty guard).

Claim (digest + payload stored), then sign, then record under our lock token; only then does the signature
leave. A `signing` row whose lease expired is adopted by exactly one peer, which signs the stored digest.

A call may carry the duty's deadline (wall-clock seconds): past it nothing is signed and no signature is
returned, even one whose store calls hung and came back late (operator guide: duty deadlines).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import assert_never

from ha_sequencer.errors import InputError
from ha_sequencer.ha.errors import DutyStoreError
from ha_sequencer.ha.faults import FaultHook
from ha_sequencer.ha.metrics import GuardMetrics
from ha_sequencer.ha.outcomes import (
    Adopted,
    BelowWatermark,
    Busy,
    DeadlinePassed,
    DutyStatus,
    DutyType,
    Halted,
    LostClaim,
    NewSignature,
    Outcome,
    PublishRecord,
    PublishTurn,
    Refused,
    SameData,
    StoreUnavailable,
    outcome_label,
    signature_of,
)
from ha_sequencer.ha.store import (
    Claimed,
    ClaimResult,
    DutyClaim,
    DutyKey,
    DutyRecordRequest,
    DutyRow,
    DutyStore,
    Existing,
)

DEFAULT_LEASE_S = 1.0  # well under a slot (devnet 4 s): a dead claimant's duty is adopted within the slot
DEFAULT_PUBLISH_DEADLINE_S = 8.0  # a peer re-publishes a slot's proposal only if not mined by then
# Waiting on a live peer's `signing` row: its record usually lands well under a millisecond after our claim
# answered (sign ~0.2 ms, one durable UPDATE), so the first look comes early and the wait then backs off.
POLL_START_S, POLL_MAX_S = 0.0002, 0.05

SignFn = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class DutyRequest:
    """One duty of a `sign_duties` batch: what `sign_duty` takes, with the attester's own signer."""

    attester: str
    slot: int
    duty_type: DutyType
    digest: bytes
    payload: bytes = field(repr=False)
    sign_fn: SignFn = field(repr=False)
    deadline: float | None = None  # wall-clock seconds: the last moment its signature may leave


@dataclass(frozen=True, slots=True)
class RecordedDuty:
    """A duty's recorded signature and its payload: the only message the duty may ever carry. Sending it
    again (a twin recorded it and died before gossiping) signs nothing new."""

    digest: bytes
    signature: bytes
    payload: bytes = field(repr=False)


# The duty key holds addresses in one spelling (0x + 40 lowercase hex): any other spelling would open a second
# scope for the same attester, i.e. a second chance to sign the same duty.
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        # Not echoed: a key passed where its address belongs must not reach a message.
        shown = f"a {len(value)}-character string" if isinstance(value, str) else type(value).__name__
        raise InputError(f"DutyGuard: {what} must be an address (0x + 40 hex digits), got {shown}")
    return value.lower()


class _PastDeadline(Exception):
    """Raised inside the guard when a duty's deadline passes before its key is used."""


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _deadline(deadline: float | None) -> float:
    assert deadline is not None  # raised or checked only when a deadline was given
    return deadline


def _before(deadline: float | None, sign_fn: SignFn) -> SignFn:
    """`sign_fn`, refusing to run once the deadline has passed (the claim stays; a peer may adopt it)."""

    def sign(digest: bytes) -> bytes:
        if _past(deadline):
            raise _PastDeadline
        return sign_fn(digest)

    return sign


def _gate(outcome: Outcome, deadline: float | None) -> Outcome:
    """The one gate every signature passes: a store call that hung and came back late (the record may even be
    stored) must not release anything once the slot's deadline is gone."""
    if signature_of(outcome) is not None and _past(deadline):
        return DeadlinePassed(_deadline(deadline))
    return outcome


class DutyGuard:
    """One node's guard over one rollup; blocking, thread-safe, safe across processes sharing a store."""

    def __init__(
        self,
        store: DutyStore,
        *,
        node_id: str,
        rollup: str,
        lease_s: float = DEFAULT_LEASE_S,
        wait_s: float | None = None,
        metrics: GuardMetrics | None = None,
        fault_hook: FaultHook | None = None,
    ) -> None:
        if not node_id:
            raise InputError("DutyGuard: node_id is required (each node of an identity needs its own id)")
        if lease_s <= 0:
            raise InputError(f"DutyGuard: lease_s must be positive, got {lease_s}")
        self.store = store
        self.node_id = node_id
        self.rollup = _address(rollup, "rollup")
        self.lease_s = lease_s
        # Waiting a little past the lease lets a survivor adopt a dead claimant's duty in the same call.
        self.wait_s = lease_s * 1.5 if wait_s is None else wait_s
        self.metrics = metrics if metrics is not None else GuardMetrics()
        self._fault = fault_hook

    # -- signing ---------------------------------------------------------------------------------------------
    def sign_duty(
        self,
        attester: str,
        slot: int,
        duty_type: DutyType,
        digest: bytes,
        payload: bytes,
        sign_fn: SignFn,
        *,
        deadline: float | None = None,
    ) -> Outcome:
        """Sign `digest` for this duty at most once across all nodes; see `outcomes` for the answers.

        `deadline` (wall-clock seconds, `time.time()`): the last moment a signature for this duty may leave.
        """
        key = self._key(attester, slot, duty_type, digest)
        duty_type = DutyType(duty_type)
        spent = [0.0]  # time inside sign_fn, excluded from the claim latency

        def timed_sign(d: bytes) -> bytes:
            t = time.perf_counter()
            try:
                return sign_fn(d)
            finally:
                spent[0] += time.perf_counter() - t

        started = time.perf_counter()
        try:
            outcome = self._sign(key, digest, payload, timed_sign, deadline)
        except _PastDeadline:
            outcome = DeadlinePassed(_deadline(deadline))
        except Exception as exc:  # fail closed: whatever went wrong, no signature leaves
            outcome = StoreUnavailable(f"{type(exc).__name__}: {exc}")
        outcome = _gate(outcome, deadline)
        labels = (duty_type.value, self.node_id)
        self.metrics.claim_seconds.labels(*labels).observe(time.perf_counter() - started - spent[0])
        self.metrics.outcomes.labels(*labels, outcome_label(outcome)).inc()
        return outcome

    def sign_duties(self, requests: Sequence[DutyRequest]) -> list[Outcome]:
        """`sign_duty` for several duties at once (a slot's attestations of every identity of this node).

        One transaction claims them all and one durable transaction records the signatures of those we won,
        so a node running K identities pays two commits per slot, not 2·K. Every claim and record is the
        single path's own statement (watermark, lock token and `_NOT_HALTED` gates, per duty): a halted
        attester's duty answers `Halted` while the others are signed. Duties a peer holds are then settled
        one by one, exactly as `sign_duty` settles them. Outcomes come back in request order."""
        keys = [self._key(r.attester, r.slot, r.duty_type, r.digest) for r in requests]
        if not keys:
            return []
        spent = [0.0] * len(requests)

        def timed(i: int) -> SignFn:
            def sign(d: bytes) -> bytes:
                t = time.perf_counter()
                try:
                    return requests[i].sign_fn(d)
                finally:
                    spent[i] += time.perf_counter() - t

            # From the claim on, a duty's key signs only while its deadline has not passed.
            return _before(requests[i].deadline, sign)

        signers = [timed(i) for i in range(len(requests))]
        started = time.perf_counter()
        outcomes: list[Outcome]
        try:
            if all(_past(r.deadline) for r in requests):
                raise _PastDeadline
            outcomes = self._sign_batch(keys, requests, signers)
        except _PastDeadline:  # a duty's deadline passed inside the batch: no signature of the batch leaves
            outcomes = [
                DeadlinePassed(_deadline(r.deadline))
                if _past(r.deadline)
                else StoreUnavailable("batch given up: another duty's deadline passed first")
                for r in requests
            ]
        except Exception as exc:  # fail closed: whatever went wrong, no signature of the batch leaves
            outcomes = [StoreUnavailable(f"{type(exc).__name__}: {exc}") for _ in requests]
        outcomes = [_gate(o, r.deadline) for o, r in zip(outcomes, requests, strict=True)]
        elapsed = time.perf_counter() - started
        for key, outcome, inside in zip(keys, outcomes, spent, strict=True):
            labels = (key.duty_type, self.node_id)
            self.metrics.claim_seconds.labels(*labels).observe(elapsed - inside)
            self.metrics.outcomes.labels(*labels, outcome_label(outcome)).inc()
        return outcomes

    def _sign_batch(
        self, keys: list[DutyKey], requests: Sequence[DutyRequest], signers: list[SignFn]
    ) -> list[Outcome]:
        # Every node takes the rows of a batch in one order (the key's), so two twins' transactions, each
        # holding the rows it reached first, never wait on each other in a cycle (PostgreSQL row locks).
        order = sorted(range(len(keys)), key=lambda i: (keys[i].attester, keys[i].slot, keys[i].duty_type))
        settled = self._sign_sorted(
            [keys[i] for i in order], [requests[i] for i in order], [signers[i] for i in order]
        )
        outcomes: list[Outcome] = [settled[0]] * len(keys)
        for position, i in enumerate(order):
            outcomes[i] = settled[position]
        return outcomes

    def _sign_sorted(
        self, keys: list[DutyKey], requests: Sequence[DutyRequest], signers: list[SignFn]
    ) -> list[Outcome]:
        for key in keys:
            self._inject("before_claim", key.slot)
        claims = [
            DutyClaim(k, r.digest, r.payload, uuid.uuid4().hex) for k, r in zip(keys, requests, strict=True)
        ]
        results = self.store.claim_many(claims, self.node_id, self.lease_s)
        signed: dict[int, bytes] = {}
        for i, result in enumerate(results):
            if isinstance(result, Claimed):
                self._inject("after_claim", keys[i].slot)
                signed[i] = signers[i](claims[i].digest)
                self._inject("after_sign", keys[i].slot)
                self._inject("before_record", keys[i].slot)
        recorded = self.store.record_many(
            [DutyRecordRequest(keys[i], claims[i].token, sig) for i, sig in signed.items()]
        )
        done = dict(zip(signed, recorded, strict=True))
        for i in signed:
            if done[i]:
                self._inject("after_record", keys[i].slot)
        outcomes: list[Outcome] = []
        for i, result in enumerate(results):
            match result:
                case Claimed():
                    outcomes.append(NewSignature(signed[i]) if done[i] else self._not_recorded(keys[i]))
                case Existing():
                    c = claims[i]
                    deadline = requests[i].deadline
                    try:
                        settled = self._settle(
                            keys[i], c.token, result, c.digest, c.payload, signers[i], deadline
                        )
                    except _PastDeadline:
                        settled = DeadlinePassed(_deadline(deadline))
                    outcomes.append(settled)
                case _:
                    assert_never(result)
        return outcomes

    def _key(self, attester: str, slot: int, duty_type: DutyType, digest: bytes) -> DutyKey:
        if len(digest) != 32:
            raise InputError(f"sign_duty: digest must be 32 bytes, got {len(digest)} (slot {slot})")
        if slot < 0:
            raise InputError(f"sign_duty: slot must be >= 0, got {slot}")
        duty = DutyType(duty_type)
        return DutyKey(self.rollup, _address(attester, f"attester (slot {slot})"), int(slot), duty.value)

    def _sign(
        self, key: DutyKey, digest: bytes, payload: bytes, sign_fn: SignFn, deadline: float | None
    ) -> Outcome:
        if _past(deadline):
            raise _PastDeadline
        # From here on the key signs only while the duty's deadline has not passed.
        sign_fn = _before(deadline, sign_fn)
        self._inject("before_claim", key.slot)
        token = uuid.uuid4().hex
        result = self.store.claim(key, digest, payload, self.node_id, token, self.lease_s)
        if isinstance(result, Claimed):
            return self._sign_and_record(key, token, digest, sign_fn, lambda sig: NewSignature(sig))
        return self._settle(key, token, result, digest, payload, sign_fn, deadline)

    def _settle(
        self,
        key: DutyKey,
        token: str,
        result: ClaimResult,
        digest: bytes,
        payload: bytes,
        sign_fn: SignFn,
        deadline: float | None,
    ) -> Outcome:
        """A duty whose row exists: wait for a live holder, adopt a dead one's, or answer from the row.

        Raises `_PastDeadline` once the duty's `deadline` has passed while waiting."""
        wait_until = time.monotonic() + self.wait_s
        poll = POLL_START_S
        while True:
            if isinstance(result, Claimed):  # the row vanished (pruned) and our claim again won
                return self._sign_and_record(key, token, digest, sign_fn, lambda sig: NewSignature(sig))
            outcome = self._on_existing(key, result, digest, payload, sign_fn)
            if outcome is not None:
                return outcome
            if _past(deadline):
                raise _PastDeadline
            if time.monotonic() >= wait_until:
                holder = result.row.node_id if result.row is not None else "?"
                return Busy(holder)
            time.sleep(poll)
            poll = min(poll * 2, POLL_MAX_S)
            result = self.store.fetch(key)
            below = result.watermark is not None and key.slot <= result.watermark
            if result.row is None and not below:  # the row vanished meanwhile (pruned): claim again
                result = self.store.claim(key, digest, payload, self.node_id, token, self.lease_s)

    def _on_existing(
        self, key: DutyKey, found: Existing, digest: bytes, payload: bytes, sign_fn: SignFn
    ) -> Outcome | None:
        """Decide on an existing row; None means "wait and look again" (a live peer is signing)."""
        if found.halted is not None:
            return Halted(found.halted)
        row = found.row
        if row is None:
            if found.watermark is not None and key.slot <= found.watermark:
                return BelowWatermark(found.watermark)
            return None
        if row.status is DutyStatus.SIGNED:
            if row.signature is None:  # never written by this build; an edited store must not yield None
                raise DutyStoreError(f"duty store: signed row without a signature (slot {key.slot})")
            return SameData(row.signature) if row.digest == digest else Refused(row.digest)
        if row.lease_expired:
            return self._adopt(key, row, sign_fn)
        return None

    def _adopt(self, key: DutyKey, row: DutyRow, sign_fn: SignFn) -> Outcome | None:
        token = uuid.uuid4().hex
        adopted = self.store.adopt(key, row.lock_token, self.node_id, token, self.lease_s)
        if adopted is None:
            return None  # another adopter won, or the claimant finished: look again
        # Only the stored digest may ever be signed for this duty, whatever this node wanted to sign.
        stored_payload = adopted.payload
        return self._sign_and_record(
            key, token, adopted.digest, sign_fn, lambda sig: Adopted(sig, stored_payload)
        )

    def _sign_and_record(
        self, key: DutyKey, token: str, digest: bytes, sign_fn: SignFn, make: Callable[[bytes], Outcome]
    ) -> Outcome:
        self._inject("after_claim", key.slot)
        signature = sign_fn(digest)
        self._inject("after_sign", key.slot)
        self._inject("before_record", key.slot)
        if self.store.record(key, token, signature):
            self._inject("after_record", key.slot)
            return make(signature)
        return self._not_recorded(key)

    def _not_recorded(self, key: DutyKey) -> Outcome:
        # Halted meanwhile, or adopted by a peer while we were slow (it signs the same digest): drop our copy.
        halted = self.store.fetch(key).halted
        if halted is not None:
            return Halted(halted)
        return LostClaim(self.store.holder(key))

    def recorded(self, attester: str, slot: int, duty_type: DutyType) -> RecordedDuty | None:
        """The duty's recorded message (signature and payload), if a node of the identity recorded it; None
        while it is unclaimed or still being signed. Reads only: raises `DutyStoreError` when the store does
        not answer."""
        key = DutyKey(self.rollup, _address(attester, f"attester (slot {slot})"), int(slot), duty_type.value)
        row = self.store.fetch(key).row
        if row is None or row.status is not DutyStatus.SIGNED or row.signature is None:
            return None
        return RecordedDuty(row.digest, row.signature, row.payload)

    def _inject(self, point: str, slot: int) -> None:
        if self._fault is not None:
            self._fault(point, slot)

    # -- publishing ------------------------------------------------------------------------------------------
    def claim_publish(
        self, attester: str, slot: int, *, deadline_s: float = DEFAULT_PUBLISH_DEADLINE_S
    ) -> PublishTurn:
        """Whose turn to submit the slot's L1 transaction: ours (first or take-over), a peer's, or done."""
        turn = self.store.claim_publish(self.rollup, attester.lower(), int(slot), self.node_id, deadline_s)
        self.metrics.publish_turns.labels(self.node_id, type(turn).__name__).inc()
        return turn

    def record_publish(
        self,
        attester: str,
        slot: int,
        attempt: int,
        tx_hash: str,
        *,
        deadline_s: float = DEFAULT_PUBLISH_DEADLINE_S,
    ) -> bool:
        """Record our submitted tx (its mining deadline restarts now); False if a peer has taken over."""
        return self.store.record_publish(
            self.rollup, attester.lower(), int(slot), self.node_id, attempt, tx_hash, deadline_s
        )

    def mark_published(self, attester: str, slot: int) -> None:
        """The slot's proposal is mined on L1: no peer publishes it again."""
        self.store.mark_mined(self.rollup, attester.lower(), int(slot))

    def publish_record(self, attester: str, slot: int) -> PublishRecord | None:
        """The slot's publish record (who, tx hash, when), if any."""
        return self.store.publish_record(self.rollup, attester.lower(), int(slot))

    # -- health ----------------------------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """The store's health (false within 2 s of an outage); also sets the `hasq_ha_store_healthy` gauge."""
        ok = self.store.healthy
        self.metrics.store_healthy.labels(self.node_id).set(1 if ok else 0)
        return ok

"""The detector: every verified proposal and attestation of this node's attesters, seen on gossip or on L1, is
checked against the duty store; a foreign one halts the attester fleet-wide (`ha/killswitch.py`).

Gossip validators and sync hand sightings over without waiting (`observe_*`); `run` judges them in order, in a
worker thread, and retries while the store is unreachable (the guard signs nothing meanwhile either). The
signer of every sighting is recovered from its signature before it gets here, so a forged message cannot name
our attester and cannot halt anything.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, assert_never

import trio

from ha_sequencer.ha.errors import DutyStoreError
from ha_sequencer.ha.killswitch import Foreign, KillSwitch, NotJudged, Ours, in_horizon
from ha_sequencer.ha.outcomes import DutyStatus, DutyType
from ha_sequencer.ha.store import DutyRow
from ha_sequencer.l1.client import BlockProposedEvent
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import (
    Attestation,
    InvalidSignature,
    attestation_digest,
    proposal_digest,
    recover_signer,
)
from ha_sequencer.protocol.wire import (
    AttestationMessage,
    ProposalMessage,
    WireError,
    decode_attestation_payload,
    decode_block,
)

log = logging.getLogger(__name__)

QUEUE = 1024  # sightings waiting to be judged (one per distinct message of our attesters)
SEEN_KEPT = 4096  # distinct messages already queued (re-gossiped copies are not judged again)
STORE_RETRY_S = 0.5


@dataclass(frozen=True)
class Sighting:
    """A message signed by one of our attesters (signature verified), where and when it was seen."""

    duty: DutyType
    attester: str
    slot: int
    digest: bytes
    signature: bytes
    message: dict[str, int | str]  # the EIP-712 struct, as the L1 slashing functions take it
    source: str  # "gossip" or "l1"
    origin: str  # the gossip peer, or the L1 transaction
    seen_at: float


class Detector:
    """Judges sightings of this node's attesters; halts an attester on a foreign one."""

    def __init__(
        self,
        *,
        params: NetworkParams,
        killswitch: KillSwitch,
        attesters: Collection[str],
        current_slot: Callable[[], int],
        metrics: NodeMetrics,
    ) -> None:
        self._params = params
        self._killswitch = killswitch
        self._ours = frozenset(attesters)
        self._current_slot = current_slot
        self._metrics = metrics
        self._send, self._receive = trio.open_memory_channel[Sighting](QUEUE)
        self._seen: OrderedDict[tuple[DutyType, str, int, bytes], None] = OrderedDict()

    # --- sightings in (synchronous: called from gossip validators and sync) --------------------------------

    def observe_proposal(self, msg: ProposalMessage, *, source: str, origin: str) -> None:
        """A verified proposal; judged if its signer is one of ours."""
        if msg.proposer in self._ours:
            self._queue(
                DutyType.BLOCK_PROPOSAL,
                msg.proposer,
                msg.signed.block.slot,
                msg.digest,
                msg.signed.signature,
                msg.signed.block.proposal.as_json(),
                source,
                origin,
            )

    def observe_attestation(self, msg: AttestationMessage, *, source: str, origin: str) -> None:
        """A verified attestation; judged if its signer is one of ours."""
        att = msg.attestation
        if msg.attester in self._ours:
            message = Attestation(att.slot, att.archive).as_json()
            self._queue(
                DutyType.ATTESTATION,
                msg.attester,
                att.slot,
                msg.digest,
                att.signature,
                message,
                source,
                origin,
            )

    def observe_l1(self, event: BlockProposedEvent) -> None:
        """A block on L1: its proposer's signature and every attestation signature in its calldata."""
        origin = "0x" + event.l1_tx_hash.hex()
        proposal = event.proposal
        digest = proposal_digest(self._params, proposal)
        signer = _signer(digest, event.proposer_signature)
        if signer in self._ours:
            self._queue(
                DutyType.BLOCK_PROPOSAL,
                signer,
                proposal.slot,
                digest,
                event.proposer_signature,
                proposal.as_json(),
                "l1",
                origin,
            )
        attestation = Attestation(proposal.slot, proposal.archive)
        digest = attestation_digest(self._params, attestation)
        for signature in event.attestation_signatures:
            signer = _signer(digest, signature)
            if signer in self._ours:
                self._queue(
                    DutyType.ATTESTATION,
                    signer,
                    proposal.slot,
                    digest,
                    signature,
                    attestation.as_json(),
                    "l1",
                    origin,
                )

    def _queue(
        self,
        duty: DutyType,
        attester: str,
        slot: int,
        digest: bytes,
        signature: bytes,
        message: dict[str, int | str],
        source: str,
        origin: str,
    ) -> None:
        key = (duty, attester, slot, digest)
        if key in self._seen:
            return
        sighting = Sighting(duty, attester, slot, digest, signature, message, source, origin, time.time())
        try:
            self._send.send_nowait(sighting)
            self._seen[key] = None
            while len(self._seen) > SEEN_KEPT:
                self._seen.popitem(last=False)
        except trio.WouldBlock:
            # only our own attesters' distinct messages queue here: a full queue means the store is down
            # (judging waits for it); the guard signs nothing meanwhile, and later copies queue again
            self._metrics.detector.labels(verdict="dropped").inc()

    # --- judging -----------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Judge sightings until cancelled."""
        task_status.started()
        async for sighting in self._receive:
            await self._judge(sighting)

    async def _judge(self, s: Sighting) -> None:
        while True:
            if not in_horizon(s.slot, self._current_slot()):
                self._metrics.detector.labels(verdict="not_judged").inc()
                return
            try:
                verdict = await trio.to_thread.run_sync(
                    lambda: self._killswitch.check(s.attester, s.slot, s.duty, s.digest)
                )
                break
            except DutyStoreError as exc:
                log.debug("detector: duty store unavailable (%s); judging slot %d later", exc, s.slot)
                await trio.sleep(STORE_RETRY_S)
        match verdict:
            case Ours():
                self._metrics.detector.labels(verdict="ours").inc()
            case NotJudged(why):
                self._metrics.detector.labels(verdict="not_judged").inc()
                log.debug("detector: slot %d %s not judged: %s", s.slot, s.duty, why)
            case Foreign(ours):
                self._metrics.detector.labels(verdict="foreign").inc()
                await self._halt(s, ours)
            case _:
                assert_never(verdict)

    async def _halt(self, s: Sighting, ours: DutyRow | None) -> None:
        kind = "proposal" if s.duty is DutyType.BLOCK_PROPOSAL else "attestation"
        seen = f"seen on {s.source} ({s.origin})"
        reason = f"foreign signature for slot {s.slot} ({kind}) by {s.attester}, {seen}"
        evidence = json.dumps(self._evidence(s, ours), sort_keys=True)
        while True:
            try:
                first = await trio.to_thread.run_sync(
                    lambda: self._killswitch.halt(s.attester, s.slot, s.duty, reason, evidence)
                )
                break
            except DutyStoreError as exc:
                log.warning("detector: cannot write the halt yet (%s); retrying", exc)
                await trio.sleep(STORE_RETRY_S)
        if first:
            log.error(
                "HALT attester %s: %s; digest 0x%s, ours %s; every twin now signs nothing for it until "
                "`ha-sequencer ha-db resume --attester %s --reason …`",
                s.attester,
                reason,
                s.digest.hex(),
                "0x" + ours.digest.hex() if ours is not None else "none",
                s.attester,
            )
        else:
            log.warning(
                "detector: another foreign signature of %s (slot %d, %s): halted already",
                s.attester,
                s.slot,
                seen,
            )

    def _evidence(self, s: Sighting, ours: DutyRow | None) -> dict[str, Any]:
        """Both messages, in the form the L1 slashing functions take, with where and when each was seen."""
        foreign = {
            "message": s.message,
            "digest": "0x" + s.digest.hex(),
            "signature": "0x" + s.signature.hex(),
            "source": s.source,
            "origin": s.origin,
            "seenAt": s.seen_at,
        }
        ours_doc: dict[str, Any] | None = None
        if ours is not None:
            ours_doc = {
                "message": self._stored_message(s.duty, ours.payload),
                "digest": "0x" + ours.digest.hex(),
                "signature": "0x" + ours.signature.hex() if ours.signature is not None else None,
                "status": ours.status.value,
                "node": ours.node_id,
            }
        slashing = None
        if ours is not None and ours.status is DutyStatus.SIGNED and ours.signature is not None:
            function = (
                "slashDuplicateProposal" if s.duty is DutyType.BLOCK_PROPOSAL else "slashDuplicateAttestation"
            )
            assert ours_doc is not None
            slashing = {
                "function": function,
                "args": [s.message, foreign["signature"], ours_doc["message"], ours_doc["signature"]],
            }
        return {
            "kind": s.duty.value,
            "attester": s.attester,
            "slot": s.slot,
            "foreign": foreign,
            "ours": ours_doc,
            "slashing": slashing,
        }

    def _stored_message(self, duty: DutyType, payload: bytes) -> dict[str, int | str] | None:
        try:
            match duty:
                case DutyType.BLOCK_PROPOSAL:
                    return decode_block(payload).proposal.as_json()
                case DutyType.ATTESTATION:
                    slot, archive = decode_attestation_payload(payload)
                    return Attestation(slot, archive).as_json()
                case _:
                    assert_never(duty)
        except (WireError, ValueError, struct.error) as exc:
            log.warning("detector: the stored payload does not decode: %s", exc)
            return None


def _signer(digest: bytes, signature: bytes) -> str | None:
    try:
        return recover_signer(digest, signature)
    except InvalidSignature:
        return None

"""The independent equivocation watcher: its own libp2p peer on the gossip network, plus L1 `Slashed` events.

It dials every node directly (nodes do not relay a second, different message of a signer for a slot, so a
relayed view could miss one), decodes each proposal and attestation with the shared protocol definitions,
recovers the signer and records the digest by (attester, slot, duty). Two different digests for one key is an
equivocation, whichever node sent them. It is a passive observer: it records in the gossip validator and
answers IGNORE, so it never relays and adds no load to the mesh.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from web3 import Web3

from ha_sequencer.errors import HASequencerError
from ha_sequencer.l1.build import load_artifact
from ha_sequencer.p2p.gossip import GossipNode
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC, PROPOSAL_TOPIC
from ha_sequencer.p2p.validation import Verdict
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import Attestation, Proposal
from ha_sequencer.protocol.wire import parse_attestation, parse_proposal

log = logging.getLogger(__name__)

PROPOSAL = "proposal"
ATTESTATION = "attestation"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sighting:
    """The first time the watcher saw one signed message."""

    attester: str
    slot: int
    duty: str
    digest: bytes
    archive: bytes
    signature: bytes
    from_peer: str
    seen_at: float
    message: Proposal | Attestation  # the signed struct, as the L1 slashing functions take it


@dataclass(frozen=True)
class Equivocation:
    """Two different digests signed by one attester for one (slot, duty)."""

    attester: str
    slot: int
    duty: str
    first: Sighting
    second: Sighting

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly summary (digests and peers, no signatures)."""
        return {
            "attester": self.attester,
            "slot": self.slot,
            "duty": self.duty,
            "digests": ["0x" + self.first.digest.hex(), "0x" + self.second.digest.hex()],
            "peers": [self.first.from_peer, self.second.from_peer],
        }


@dataclass(frozen=True)
class SlashedEvent:
    """A `Slashed` log from the Rollup."""

    attester: str
    offense: int
    slot: int
    reporter: str
    amount: int
    l1_block: int
    tx_hash: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


class SignatureLedger:
    """Digests by (attester, slot, duty); thread-safe (gossip thread writes, others read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], dict[bytes, Sighting]] = {}
        self._equivocations: list[Equivocation] = []
        self.messages = 0

    def record(self, s: Sighting) -> Equivocation | None:
        """Record a sighting; returns the equivocation it reveals, if any."""
        key = (s.attester, s.slot, s.duty)
        with self._lock:
            self.messages += 1
            digests = self._seen.setdefault(key, {})
            if s.digest in digests:
                return None
            digests[s.digest] = s
            if len(digests) == 1:
                return None
            first = next(iter(digests.values()))
            found = Equivocation(s.attester, s.slot, s.duty, first, s)
            self._equivocations.append(found)
        log.error(
            "EQUIVOCATION: %s signed two %s digests for slot %d (peers %s, %s)",
            s.attester,
            s.duty,
            s.slot,
            first.from_peer,
            s.from_peer,
        )
        return found

    def equivocations(self, first_slot: int = 0, last_slot: int | None = None) -> list[Equivocation]:
        """Equivocations with a slot in [first_slot, last_slot]."""
        with self._lock:
            return [
                e
                for e in self._equivocations
                if e.slot >= first_slot and (last_slot is None or e.slot <= last_slot)
            ]

    def first_seen(self, duty: str, first_slot: int, last_slot: int) -> dict[str, list[tuple[int, float]]]:
        """attester → (slot, first-sighting time) of its `duty` messages in the slot range."""
        out: dict[str, list[tuple[int, float]]] = {}
        with self._lock:
            for (attester, slot, d), digests in self._seen.items():
                if d == duty and first_slot <= slot <= last_slot:
                    out.setdefault(attester, []).append((slot, min(s.seen_at for s in digests.values())))
        return out

    def sightings(self, attester: str, slot: int, duty: str) -> list[Sighting]:
        """What was seen for one duty."""
        with self._lock:
            return list(self._seen.get((attester, slot, duty), {}).values())

    def prune(self, below_slot: int) -> None:
        """Forget slots below `below_slot` (equivocations are kept)."""
        with self._lock:
            for key in [k for k in self._seen if k[1] < below_slot]:
                del self._seen[key]


def proposal_sighting(params: NetworkParams, data: bytes, from_peer: str) -> Sighting:
    """Decode a gossiped proposal and recover its signer (raises WireError/ValueError when malformed)."""
    msg = parse_proposal(params, data)
    b, signature = msg.signed.block, msg.signed.signature
    return Sighting(
        msg.proposer, b.slot, PROPOSAL, msg.digest, b.archive, signature, from_peer, time.time(), b.proposal
    )


def attestation_sighting(params: NetworkParams, data: bytes, from_peer: str) -> Sighting:
    """Decode a gossiped attestation and recover its signer."""
    msg = parse_attestation(params, data)
    att = msg.attestation
    return Sighting(
        msg.attester,
        att.slot,
        ATTESTATION,
        msg.digest,
        att.archive,
        att.signature,
        from_peer,
        time.time(),
        Attestation(att.slot, att.archive),
    )


class Watcher:
    """Run the gossip observer in a background thread (`start()` / `stop()`, or as a context manager)."""

    def __init__(
        self,
        params: NetworkParams,
        bootstrap: Sequence[str],
        *,
        key_dir: Path | None = None,
        on_equivocation: Callable[[Equivocation], None] | None = None,
    ) -> None:
        self.params = params
        self.on_equivocation = on_equivocation  # e.g. a SlashingReporter: the proof goes to L1
        self.bootstrap = list(bootstrap)
        self.ledger = SignatureLedger()
        self.malformed = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if key_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hasq-watcher-")
            key_dir = Path(self._tmp.name)
        self._key_path = key_dir / "watcher-p2p-key"
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._gossip: GossipNode | None = None
        self.peer_id: str | None = None

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the thread and wait until the gossip node runs (raises what it died of)."""
        self._thread = threading.Thread(target=self._thread_main, name="equivocation-watcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"equivocation watcher did not start: {self._error!r}")

    def stop(self) -> None:
        """Leave the gossip network and join the thread."""
        if self._token is not None and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError, RuntimeError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def peer_count(self) -> int:
        """Connected gossip peers."""
        g = self._gossip
        return g.peer_count() if g is not None else 0

    def wait_peers(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` peers are connected; True if reached."""
        deadline = time.monotonic() + timeout
        while self.peer_count() < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by start() or logged; the devnet goes on without it
            self._error = exc
            self._ready.set()
            log.warning("equivocation watcher stopped: %r", exc)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with GossipNode(self._key_path, 0, self.bootstrap) as gossip:
                await gossip.subscribe(PROPOSAL_TOPIC, self._on_proposal)
                await gossip.subscribe(ATTESTATION_TOPIC, self._on_attestation)
                self._gossip = gossip
                self.peer_id = gossip.peer_id
                self._ready.set()
                await trio.sleep_forever()  # GossipNode keeps the bootstrap peers dialled

    def _on_proposal(self, data: bytes, from_peer: str) -> Verdict:
        return self._observe(proposal_sighting, data, from_peer)

    def _on_attestation(self, data: bytes, from_peer: str) -> Verdict:
        return self._observe(attestation_sighting, data, from_peer)

    def _observe(self, decode, data: bytes, from_peer: str) -> Verdict:
        try:
            found = self.ledger.record(decode(self.params, data, from_peer))
        except (HASequencerError, ValueError) as exc:  # WireError, InvalidSignature, bad lengths
            self.malformed += 1
            log.debug("watcher: undecodable message from %s: %s", from_peer, exc)
            return Verdict.REJECT
        if found is not None and self.on_equivocation is not None:
            self.on_equivocation(found)
        return Verdict.IGNORE


def slashed_events(
    rpc_url: str, rollup: str, from_block: int = 0, to_block: int | str = "latest"
) -> list[SlashedEvent]:
    """`Slashed` events of the Rollup in an L1 block range."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    contract = w3.eth.contract(address=Web3.to_checksum_address(rollup), abi=load_artifact("Rollup")["abi"])
    out = []
    for ev in contract.events.Slashed.get_logs(from_block=from_block, to_block=to_block):
        a = ev["args"]
        out.append(
            SlashedEvent(
                attester=a["attester"],
                offense=int(a["offense"]),
                slot=int(a["slot"]),
                reporter=a["reporter"],
                amount=int(a["amount"]),
                l1_block=ev["blockNumber"],
                tx_hash="0x" + bytes(ev["transactionHash"]).hex(),
            )
        )
    return out

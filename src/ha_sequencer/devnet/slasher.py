"""Submit the slashing proof of every equivocation the watcher sees: the `Slashed == []` checks can fail.

A watcher that only logs an equivocation proves nothing on L1: `slashDuplicateProposal` /
`slashDuplicateAttestation` are what a rival validator would call. The reporter runs in its own thread so the
gossip thread never waits on L1; each proof is sent once per (attester, slot, duty).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ha_sequencer.devnet.watcher import PROPOSAL, Equivocation
from ha_sequencer.l1.anvil import ANVIL_MNEMONIC
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import L1_ERRORS
from ha_sequencer.protocol.messages import Attestation, Proposal

log = logging.getLogger(__name__)

# anvil's dev accounts 0 and 1 deploy and fund the devnet; the reporter pays its own gas from account 2
REPORTER_ACCOUNT_INDEX = 2
RECEIPT_TIMEOUT_S = 15.0


def devnet_reporter_account() -> LocalAccount:
    """The funded anvil dev account the devnet's watcher reports equivocations from."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{REPORTER_ACCOUNT_INDEX}")


@dataclass(frozen=True)
class SlashingSubmission:
    """One proof sent to L1 and what became of it."""

    attester: str
    slot: int
    duty: str
    function: str
    tx_hash: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


class SlashingReporter:
    """A thread that turns each equivocation into a slashing transaction (call it with the equivocation)."""

    def __init__(self, client: RollupClient, reporter: LocalAccount) -> None:
        self.client = client
        self.reporter = reporter
        self._queue: queue.Queue[Equivocation] = queue.Queue()
        self._lock = threading.Lock()
        self._sent: set[tuple[str, int, str]] = set()
        self.submissions: list[SlashingSubmission] = []
        self._thread = threading.Thread(target=self._loop, name="slashing-reporter", daemon=True)
        self._thread.start()

    def __call__(self, equivocation: Equivocation) -> None:
        self._queue.put(equivocation)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued proof has been sent and mined (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                key = (item.attester, item.slot, item.duty)
                with self._lock:
                    if key in self._sent:
                        continue
                    self._sent.add(key)
                self.submissions.append(self._submit(item))
            finally:
                self._queue.task_done()

    def _submit(self, e: Equivocation) -> SlashingSubmission:
        a, b = e.first, e.second
        try:
            if e.duty == PROPOSAL:
                assert isinstance(a.message, Proposal) and isinstance(b.message, Proposal)
                function = "slashDuplicateProposal"
                tx = self.client.slash_duplicate_proposal(
                    self.reporter, a.message, a.signature, b.message, b.signature
                )
            else:
                assert isinstance(a.message, Attestation) and isinstance(b.message, Attestation)
                function = "slashDuplicateAttestation"
                tx = self.client.slash_duplicate_attestation(
                    self.reporter, a.message, a.signature, b.message, b.signature
                )
            self.client.wait_receipt(tx, RECEIPT_TIMEOUT_S)
        except L1_ERRORS as exc:
            log.error("slashing proof for %s slot %d (%s) failed: %s", e.attester, e.slot, e.duty, exc)
            return SlashingSubmission(e.attester, e.slot, e.duty, "", None, str(exc)[:300])
        log.error("submitted the slashing proof: %s, %s equivocation, slot %d", e.attester, e.duty, e.slot)
        return SlashingSubmission(e.attester, e.slot, e.duty, function, "0x" + bytes(tx).hex(), None)

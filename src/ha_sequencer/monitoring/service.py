"""The node's funds service: balance watcher, publisher choice per submission and alerts, behind a few calls.

The node always holds one, so no caller asks whether it exists: without `--alert-webhook` its alerter is a
`NullAlerter`, and an attester whose keystore names no publisher pays with itself (a one-account pool).
It is what `node.publisher.PublisherAccounts` and `node.scheduler.SignatureAlerts` describe.

What the node does with it (see `FundsService` methods):
- construct once from the keystore (`from_keystore`) with the node's Prometheus registry;
- start `run` in its nursery (first balance check, then the timer; alert delivery; pending-tx reaper);
- before each L1 submission call `select` (blocking: in `trio.to_thread`) — the chosen publisher can pay
  `gas_limit × maxFeePerGas`; on `FundsError` send nothing; after sending call `sent`, on failure `release`;
- merge `reasons()` into /status reasons and `status_section()` as /status `funds`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
from eth_utils.address import to_checksum_address

from ha_sequencer.monitoring.alerts import AlertSink, make_alerter, watch_health
from ha_sequencer.monitoring.eth import parse_eth
from ha_sequencer.monitoring.funds import (
    DEFAULT_CHECK_INTERVAL_S,
    DEFAULT_TOPUP_AMOUNT_ETH,
    FundsError,
    FundsWatcher,
    InsufficientFunds,
    TopUpPolicy,
    max_cost,
)
from ha_sequencer.monitoring.publishers import NoPublisherAvailable, PublisherPool
from ha_sequencer.monitoring.thresholds import DEFAULT_MIN_ETH, DEFAULT_WARN_ETH, Thresholds

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from prometheus_client import CollectorRegistry

    from ha_sequencer.monitoring.l1 import L1Wallet

log = logging.getLogger(__name__)

REAP_INTERVAL_S = 1.0  # how often pending transactions are looked up
UNSENT_PENDING_S = 60.0  # a publisher chosen but never reported sent/released is freed after this


@dataclass(frozen=True)
class FundsSettings:
    """The node's funds and alert flags (all optional; defaults follow the guide)."""

    min_eth: str = DEFAULT_MIN_ETH
    warn_eth: str = DEFAULT_WARN_ETH
    check_interval_s: float = DEFAULT_CHECK_INTERVAL_S
    topup_threshold_eth: str | None = None  # None: no automatic top-ups
    topup_amount_eth: str = DEFAULT_TOPUP_AMOUNT_ETH
    alert_webhook: str | None = field(default=None, repr=False)  # its path is often a token


class FundsService:
    """Funds watcher + publisher pool + alerter for one node."""

    def __init__(
        self,
        *,
        wallet: L1Wallet,
        publishers: Mapping[str, Sequence[LocalAccount]],
        registry: CollectorRegistry | None,
        node_id: str,
        settings: FundsSettings | None = None,
        funding_account: LocalAccount | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings or FundsSettings()
        self.settings = settings
        self.wallet = wallet
        self._by_attester: dict[str, list[LocalAccount]] = {
            to_checksum_address(a): list(accounts) for a, accounts in publishers.items()
        }
        self._accounts: dict[str, LocalAccount] = {
            p.address: p for accounts in self._by_attester.values() for p in accounts
        }
        self.alerter: AlertSink = make_alerter(settings.alert_webhook, node_id=node_id, registry=registry)
        topup = None
        if settings.topup_threshold_eth is not None:
            topup = TopUpPolicy(
                threshold_wei=parse_eth(settings.topup_threshold_eth, "--topup-threshold"),
                amount_wei=parse_eth(settings.topup_amount_eth, "--topup-amount"),
            )
        self.watcher = FundsWatcher(
            wallet,
            list(self._accounts),
            registry=registry,
            thresholds=Thresholds.from_eth(
                settings.min_eth, settings.warn_eth, flags=("--min-balance", "--warn-balance")
            ),
            interval_s=settings.check_interval_s,
            topup=topup,
            funding_account=funding_account,
            alerter=self.alerter,
        )
        self.pool = PublisherPool(list(self._accounts), clock=clock)
        self._clock = clock

    def __repr__(self) -> str:
        return f"FundsService(publishers={list(self._accounts)}, alerts={self.alerter!r})"

    @classmethod
    def from_keystore(
        cls,
        keystore: Any,
        rpc_urls: Sequence[str],
        *,
        registry: CollectorRegistry | None,
        node_id: str,
        settings: FundsSettings | None = None,
    ) -> FundsService:
        """From a `LoadedKeystore`: every validator's publishers (the attester when it has none)."""
        from ha_sequencer.monitoring.l1 import L1Wallet  # web3 on use: `node --help` reads FundsSettings

        publishers = {v.attester.address: list(v.publishers) or [v.attester] for v in keystore.validators}
        funding = keystore.funding_account or next(
            (v.funding_account for v in keystore.validators if v.funding_account is not None), None
        )
        return cls(
            wallet=L1Wallet(rpc_urls),
            publishers=publishers,
            registry=registry,
            node_id=node_id,
            settings=settings,
            funding_account=funding,
        )

    # --- the submission path (blocking: call in trio.to_thread) ------------------------------------------

    def select(
        self, attester: str, gas_limit: int, *, slot: int | None = None, value: int = 0
    ) -> LocalAccount:
        """The publisher to send this transaction with, marked pending; FundsError when none can pay.

        Reads the fee cap the L1 client will set and the balances of the attester's idle publishers now, so
        the check is against current numbers: gas_limit × maxFeePerGas + value ≤ balance.
        """
        attester = to_checksum_address(attester)
        accounts = self._by_attester.get(attester)
        if not accounts:
            raise FundsError(f"no publisher configured for attester {attester}")
        fee = self.wallet.max_fee_per_gas()
        cost = max_cost(gas_limit, fee, value)
        idle = [a.address for a in accounts if self.pool.is_idle(a.address)]
        balances = {}
        for address in idle:
            reading = self.watcher.read(address)
            if reading.balance_wei is not None:
                balances[address] = reading.balance_wei
        self.watcher.notify()  # a balance seen here alerts now, not at the next timer tick
        what = f"slot {slot} submission" if slot is not None else "submission"
        for address, balance in balances.items():
            if balance < cost:
                self.watcher.note_refusal(
                    InsufficientFunds(address, balance, gas_limit, fee, value, what=what)
                )
            else:
                self.watcher.clear_refusal(address)
        try:
            chosen = self.pool.choose(
                balances, required_wei=cost, mark=True, slot=slot, among=[a.address for a in accounts]
            )
        except NoPublisherAvailable as exc:
            log.error("funds: %s not sent for attester %s: %s", what, attester, exc)
            raise
        return self._accounts[chosen]

    def sent(self, address: str, tx_hash: bytes | str, *, slot: int | None = None) -> None:
        """The chosen publisher sent `tx_hash`: it stays busy until the tx is mined or dropped."""
        self.pool.mark_pending(address, tx_hash, slot=slot)

    def release(self, address: str, tx_hash: bytes | str | None = None) -> None:
        """The transaction is mined, failed, or was never sent: the publisher is idle again."""
        self.pool.resolve(address, tx_hash)

    def in_flight(self, attester: str, slot: int) -> list[str]:
        """The attester's publishers whose pending transaction (sent or about to be) is for `slot`."""
        mine = {a.address for a in self._by_attester.get(to_checksum_address(attester), [])}
        return [a for a, p in self.pool.pending().items() if a in mine and p.slot == slot]

    def reap_once(self) -> list[str]:
        """Free publishers whose pending transaction is mined or dropped; blocking. Returns those freed."""
        freed = []
        now = self._clock()
        for address, pending in self.pool.pending().items():
            if pending.tx_hash is None:
                if now - pending.since >= UNSENT_PENDING_S:
                    log.warning("funds: publisher %s was chosen but never reported sent; freeing it", address)
                    self.pool.resolve(address)
                    freed.append(address)
                continue
            try:
                if self.wallet.receipt_or_none(pending.tx_hash) is None:
                    if self.wallet.transaction_known(pending.tx_hash):
                        continue
                    log.warning("funds: tx %s of publisher %s was dropped", pending.tx_hash, address)
            except Exception as exc:  # L1 unreachable: look again later
                log.debug("funds: pending tx %s not looked up: %s", pending.tx_hash, exc)
                continue
            self.pool.resolve(address, pending.tx_hash)
            freed.append(address)
        return freed

    # --- /status ------------------------------------------------------------------------------------------

    def reasons(self) -> list[str]:
        """Reasons for /status to be unhealthy (low funds, refused sends, failing top-ups)."""
        return self.watcher.reasons()

    def status_section(self) -> dict[str, Any]:
        """The /status `funds` object."""
        section = self.watcher.status_section()
        section["pending"] = {a: p.tx_hash for a, p in self.pool.pending().items()}
        section["alerts"] = self.alerter.active()
        return section

    # --- duty alerts (dropped by the null alerter without --alert-webhook) ---------------------------------

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> None:
        """Alert: a duty of the identity did not happen or did not land on L1."""
        self.alerter.duty_missed(attester, slot, duty, why)

    def duty_done(self, attester: str, slot: int, duty: str) -> None:
        """Recovery of a missed-duty alert."""
        self.alerter.duty_done(attester, slot, duty)

    def signature_refused(
        self, attester: str, slot: int, duty: str, *, existing_digest: bytes | None = None
    ) -> None:
        """Alert: the guard refused a different message for an already signed duty."""
        self.alerter.signature_refused(attester, slot, duty, existing_digest=existing_digest)

    def signature_ok(self, attester: str, slot: int, duty: str) -> None:
        """Recovery of a refused-signature alert."""
        self.alerter.signature_ok(attester, slot, duty)

    def halted(self, attester: str, slot: int, duty: str, reason: str) -> None:
        """Alert: the attester is halted fleet-wide (a foreign signature)."""
        self.alerter.halted(attester, slot, duty, reason)

    def halt_lifted(self, attester: str) -> None:
        """Recovery of a halt alert."""
        self.alerter.halt_lifted(attester)

    # --- tasks --------------------------------------------------------------------------------------------

    async def run(
        self,
        *,
        status_report: Callable[[], Mapping[str, Any]] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Alert delivery, the balance timer (first check before `started()`), the reaper, health alerts."""
        async with trio.open_nursery() as n:
            await n.start(self.alerter.run)
            await n.start(self.watcher.run)
            n.start_soon(self._reap)
            if status_report is not None:
                n.start_soon(watch_health, self.alerter, status_report)
            task_status.started()

    async def _reap(self) -> None:
        while True:
            await trio.sleep(REAP_INTERVAL_S)
            if self.pool.pending():
                await trio.to_thread.run_sync(self.reap_once)

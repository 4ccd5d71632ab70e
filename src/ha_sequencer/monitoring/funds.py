"""Publisher funds: the "max cost exceeds balance" guard and the node's funds watcher (readings, top-ups).

The thresholds a reading is judged against live in `monitoring.thresholds`. A transaction's maximum cost under
EIP-1559 is `gasLimit * maxFeePerGas + value`; a node never sends one it cannot pay for (the L1 would reject
it anyway, after the publisher has spent part of the slot).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio
from eth_utils.address import is_address, to_checksum_address
from prometheus_client import CollectorRegistry, Gauge

from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError, InputError
from ha_sequencer.l1.fees import TRANSFER_GAS
from ha_sequencer.monitoring.alerts import NULL_ALERTER, AlertSink
from ha_sequencer.monitoring.eth import WEI_PER_ETH, format_eth, parse_eth, short_eth
from ha_sequencer.monitoring.thresholds import DEFAULT_WARN_WEI, FundsState, Thresholds

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = logging.getLogger(__name__)

DEFAULT_TOPUP_AMOUNT_ETH = "0.5"
DEFAULT_CHECK_INTERVAL_S = 12.0
TOPUP_RECEIPT_S = 30.0
TOPUP_COOLDOWN_S = 60.0  # one top-up per publisher per minute at most, whatever the readings say
REMIND_S = 300.0  # a low-funds log line is repeated at most this often while the condition lasts
BALANCE_METRIC = "publisher_balance_eth"
DEFAULT_TOPUP_AMOUNT_WEI = parse_eth(DEFAULT_TOPUP_AMOUNT_ETH, "DEFAULT_TOPUP_AMOUNT_ETH")


# --- the guard before sending ---------------------------------------------------------------------------


def max_cost(gas_limit: int, max_fee_per_gas: int, value: int = 0) -> int:
    """The most an EIP-1559 transaction can cost its sender: gasLimit × maxFeePerGas + value."""
    if gas_limit < 0 or max_fee_per_gas < 0 or value < 0:
        raise ValueError("gas_limit, max_fee_per_gas and value must be non-negative")
    return gas_limit * max_fee_per_gas + value


def can_afford(balance: int, gas_limit: int, max_fee_per_gas: int, value: int = 0) -> bool:
    """True when `balance` wei covers the transaction's maximum cost."""
    return max_cost(gas_limit, max_fee_per_gas, value) <= balance


class FundsError(HASequencerError):
    """A publisher's funds problem (exit 1: a failure found, not a usage error)."""

    exit_code = EXIT_FAILURE_FOUND


class InsufficientFunds(FundsError):
    """A transaction's maximum cost exceeds the sender's balance: it is not sent."""

    def __init__(
        self,
        address: str,
        balance: int,
        gas_limit: int,
        max_fee_per_gas: int,
        value: int = 0,
        *,
        what: str = "transaction",
    ) -> None:
        self.address = address
        self.balance = balance
        self.gas_limit = gas_limit
        self.max_fee_per_gas = max_fee_per_gas
        self.value = value
        self.max_cost = max_cost(gas_limit, max_fee_per_gas, value)
        self.shortfall = self.max_cost - balance
        value_text = f" + value {short_eth(value)} ETH" if value else ""
        super().__init__(
            f"{what} not sent: publisher {address} balance {short_eth(balance)} ETH is below the "
            f"maximum cost {short_eth(self.max_cost)} ETH (gas limit {gas_limit} × max fee "
            f"{max_fee_per_gas / 1e9:g} gwei{value_text}); short by {short_eth(self.shortfall)} ETH"
        )


def require_affordable(
    address: str,
    balance: int,
    gas_limit: int,
    max_fee_per_gas: int,
    value: int = 0,
    *,
    what: str = "transaction",
) -> None:
    """Raise InsufficientFunds unless `balance` covers gas_limit × max_fee_per_gas + value."""
    if not can_afford(balance, gas_limit, max_fee_per_gas, value):
        raise InsufficientFunds(address, balance, gas_limit, max_fee_per_gas, value, what=what)


# --- the watcher ----------------------------------------------------------------------------------------


class BalanceReader(Protocol):
    """What the watcher reads: `RollupClient` and `L1Wallet` both fit."""

    def balance(self, address: str) -> int: ...


@dataclass(frozen=True)
class TopUpPolicy:
    """Refill a publisher from the keystore's fundingAccount when it drops below `threshold_wei`."""

    threshold_wei: int = DEFAULT_WARN_WEI
    amount_wei: int = DEFAULT_TOPUP_AMOUNT_WEI
    cooldown_s: float = TOPUP_COOLDOWN_S
    receipt_s: float = TOPUP_RECEIPT_S

    def __post_init__(self) -> None:
        if self.amount_wei <= 0:
            raise InputError("top-up amount must be positive")
        if self.threshold_wei < 0:
            raise InputError("top-up threshold must not be negative")


@dataclass(frozen=True)
class PublisherFunds:
    """One reading of a publisher's balance."""

    address: str
    balance_wei: int | None
    state: FundsState
    checked_at: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """For /status and --json (wei as a decimal string: JSON numbers lose precision past 2**53)."""
        return {
            "address": self.address,
            "balanceWei": str(self.balance_wei) if self.balance_wei is not None else None,
            "balanceEth": format_eth(self.balance_wei) if self.balance_wei is not None else None,
            "state": str(self.state),
            "checkedAt": self.checked_at,
            "error": self.error,
        }


@dataclass(frozen=True)
class TopUp:
    """A completed top-up."""

    publisher: str
    funder: str
    amount_wei: int
    tx_hash: str
    at: float


@dataclass
class _Track:
    last: PublisherFunds
    logged_state: FundsState = FundsState.OK
    logged_at: float = 0.0
    refusal: str | None = None
    refusal_needs: int = 0  # the refused transaction's max cost: a balance at least this clears it
    last_topup: float = float("-inf")


class FundsWatcher:
    """Reads every publisher's balance on a timer; gauge, logs, /status reasons, alerts, optional top-ups.

    Blocking methods (`check_once`, `ensure_affordable`) read L1; in the node call them via `trio.to_thread`
    (`run()` does that itself). State is guarded by a lock, so /status may read it from the trio thread.
    """

    def __init__(
        self,
        l1: BalanceReader,
        publishers: Iterable[str],
        *,
        registry: CollectorRegistry | None = None,
        thresholds: Thresholds | None = None,
        interval_s: float = DEFAULT_CHECK_INTERVAL_S,
        topup: TopUpPolicy | None = None,
        funding_account: LocalAccount | None = None,
        alerter: AlertSink = NULL_ALERTER,
        max_fee_per_gas: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.l1 = l1
        self.publishers = list(dict.fromkeys(to_checksum_address(p) for p in publishers))
        self.thresholds = thresholds or Thresholds()
        self.interval_s = interval_s
        self.topup = topup if funding_account is not None else None
        self._funding = funding_account
        self.alerter = alerter
        self._max_fee = max_fee_per_gas or getattr(l1, "max_fee_per_gas", None)
        self._clock = clock
        self._lock = threading.Lock()
        self._tracks: dict[str, _Track] = {
            a: _Track(PublisherFunds(a, None, FundsState.UNKNOWN, 0.0, "not checked yet"))
            for a in self.publishers
        }
        self.topups: list[TopUp] = []
        self.funding_problem: str | None = None
        self.gauge = Gauge(
            BALANCE_METRIC, "L1 ETH balance of each publisher account", ["address"], registry=registry
        )
        if topup is not None and funding_account is None:
            log.warning("funds: top-up configured but the keystore has no fundingAccount; top-ups are off")

    def __repr__(self) -> str:
        return f"FundsWatcher(publishers={self.publishers}, thresholds={self.thresholds})"

    # --- readings ---------------------------------------------------------------------------------------

    def check_once(self) -> list[PublisherFunds]:
        """Read every publisher's balance now (top up where the policy says so); blocking."""
        readings = [self._read(a) for a in self.publishers]
        if self.topup is not None:
            low = [
                r for r in readings if r.balance_wei is not None and r.balance_wei < self.topup.threshold_wei
            ]
            if not low:
                self.funding_problem = None  # nothing to top up: an old funding problem no longer matters
            for reading in low:
                self._top_up(reading)
            readings = [self.snapshot()[a] for a in self.publishers]
        return readings

    def read(self, address: str) -> PublisherFunds:
        """Read one publisher's balance now (gauge, state and logs updated); blocking."""
        address = to_checksum_address(address)
        if address not in self._tracks:
            raise InputError(f"{address} is not a watched publisher ({', '.join(self.publishers)})")
        return self._read(address)

    def note_refusal(self, refusal: InsufficientFunds) -> None:
        """A send was refused for lack of funds: shown in /status until a reading covers its max cost."""
        with self._lock:
            track = self._tracks.get(to_checksum_address(refusal.address))
            if track is not None:
                track.refusal, track.refusal_needs = str(refusal), refusal.max_cost

    def clear_refusal(self, address: str) -> None:
        """`address` can pay again."""
        with self._lock:
            track = self._tracks.get(to_checksum_address(address))
            if track is not None:
                track.refusal = None

    def _read(self, address: str) -> PublisherFunds:
        now = self._clock()
        try:
            balance: int | None = int(self.l1.balance(address))
            error = None
        except HASequencerError as exc:
            balance, error = None, str(exc)
        except Exception as exc:  # web3/requests while L1 is unreachable: the node's L1 health reports it
            balance, error = None, f"{type(exc).__name__}: {exc}"
        reading = PublisherFunds(address, balance, self.thresholds.state(balance), now, error)
        self._record(reading)
        return reading

    def _record(self, reading: PublisherFunds) -> None:
        address = reading.address
        if reading.balance_wei is not None:
            self.gauge.labels(address=address).set(reading.balance_wei / WEI_PER_ETH)
        with self._lock:
            track = self._tracks[address]
            if reading.balance_wei is None and track.last.balance_wei is not None:
                # keep the last known balance (and its state) when a read fails; note the error
                reading = PublisherFunds(
                    address, track.last.balance_wei, track.last.state, track.last.checked_at, reading.error
                )
            track.last = reading
            if track.refusal is not None and (reading.balance_wei or 0) >= track.refusal_needs:
                track.refusal = None  # funded again (top-up or operator): the old refusal is history
            previous, logged_at = track.logged_state, track.logged_at
            if reading.state in (FundsState.OK, FundsState.WARN, FundsState.CRITICAL):
                relog = reading.state != previous or (
                    reading.state != FundsState.OK and reading.checked_at - logged_at >= REMIND_S
                )
                if relog:
                    track.logged_state, track.logged_at = reading.state, reading.checked_at
            else:
                relog = False
        if relog:
            self._log(reading, previous)

    def _log(self, reading: PublisherFunds, previous: FundsState) -> None:
        assert reading.balance_wei is not None
        balance = short_eth(reading.balance_wei)
        if reading.state == FundsState.CRITICAL:
            log.error(
                "funds: publisher %s has %s ETH, below the minimum %s ETH: refill it now "
                "(transactions it cannot pay for are not sent)",
                reading.address,
                balance,
                short_eth(self.thresholds.min_wei),
            )
        elif reading.state == FundsState.WARN:
            log.warning(
                "funds: publisher %s has %s ETH, below the warning level %s ETH: refill it soon",
                reading.address,
                balance,
                short_eth(self.thresholds.warn_wei),
            )
        elif previous in (FundsState.WARN, FundsState.CRITICAL):
            log.info("funds: publisher %s is funded again (%s ETH)", reading.address, balance)

    def _top_up(self, reading: PublisherFunds) -> None:
        policy, funder = self.topup, self._funding
        assert policy is not None and funder is not None and reading.balance_wei is not None
        address = reading.address
        if funder.address == address:
            return
        with self._lock:
            track = self._tracks[address]
            if self._clock() - track.last_topup < policy.cooldown_s:
                return
        try:
            fee = self._max_fee() if self._max_fee is not None else 0
            available = int(self.l1.balance(funder.address))
            needed = policy.amount_wei + TRANSFER_GAS * fee
            if available < needed:
                # no transfer, no cooldown: the top-up happens as soon as the funding account is refilled
                self._funding_failed(
                    f"funding account {funder.address} has {short_eth(available)} ETH, "
                    f"cannot top up {address} with {short_eth(policy.amount_wei)} ETH"
                )
                return
            with self._lock:
                track.last_topup = self._clock()  # a transfer is going out: at most one per cooldown
            tx_hash = self.l1.send_eth(funder, address, policy.amount_wei)  # type: ignore[attr-defined]
            self.l1.wait_receipt(tx_hash, policy.receipt_s)  # type: ignore[attr-defined]
        except HASequencerError as exc:
            self._funding_failed(f"top-up of {address} from {funder.address} failed: {exc}")
            return
        self.funding_problem = None
        done = TopUp(address, funder.address, policy.amount_wei, "0x" + bytes(tx_hash).hex(), self._clock())
        self.topups.append(done)
        log.warning(
            "funds: topped up publisher %s with %s ETH from funding account %s (tx %s; it had %s ETH)",
            address,
            short_eth(policy.amount_wei),
            funder.address,
            done.tx_hash,
            short_eth(reading.balance_wei),
        )
        self._read(address)  # the new balance; it clears a refusal it covers

    def _funding_failed(self, problem: str) -> None:
        if problem != self.funding_problem:  # logged once per distinct problem, not on every check
            log.error("funds: %s", problem)
        self.funding_problem = problem

    # --- before each submission -------------------------------------------------------------------------

    def ensure_affordable(
        self,
        address: str,
        gas_limit: int,
        max_fee_per_gas: int | None = None,
        value: int = 0,
        *,
        what: str = "transaction",
    ) -> int:
        """Read `address`'s balance now; raise InsufficientFunds if the tx's max cost exceeds it; blocking.

        `max_fee_per_gas` defaults to the fee cap the L1 client will set (2 × base fee + tip).
        Returns the balance read.
        """
        address = to_checksum_address(address)
        if max_fee_per_gas is None:
            if self._max_fee is None:
                raise FundsError("ensure_affordable needs max_fee_per_gas (the L1 reader cannot supply it)")
            max_fee_per_gas = int(self._max_fee())
        reading = self._read(address) if address in self._tracks else None
        balance = reading.balance_wei if reading is not None else int(self.l1.balance(address))
        if balance is None:
            why = reading.error if reading is not None else "no reading"
            raise FundsError(f"{what} not sent: balance of publisher {address} unreadable ({why})")
        try:
            require_affordable(address, balance, gas_limit, max_fee_per_gas, value, what=what)
        except InsufficientFunds as exc:
            self.note_refusal(exc)
            log.error("funds: %s", exc)
            raise
        with self._lock:
            if address in self._tracks:
                self._tracks[address].refusal = None
        return balance

    # --- what the node shows ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, PublisherFunds]:
        """The last reading of every publisher."""
        with self._lock:
            return {a: t.last for a, t in self._tracks.items()}

    def balances(self) -> dict[str, int]:
        """Last known balance (wei) of every publisher that has one (for PublisherPool.choose)."""
        return {a: r.balance_wei for a, r in self.snapshot().items() if r.balance_wei is not None}

    def state(self, address: str) -> FundsState:
        """The last known state of `address`."""
        return self.snapshot()[to_checksum_address(address)].state

    def reasons(self) -> list[str]:
        """/status reasons: each publisher below the minimum, each refused send, a failing funding account."""
        out = []
        with self._lock:
            tracks = list(self._tracks.values())
        for t in tracks:
            r = t.last
            if r.state == FundsState.CRITICAL and r.balance_wei is not None:
                out.append(
                    f"low_funds: publisher {r.address} has {short_eth(r.balance_wei)} ETH, "
                    f"below the minimum {short_eth(self.thresholds.min_wei)} ETH"
                )
            if t.refusal is not None:
                out.append(f"cannot_pay: {t.refusal}")
        if self.funding_problem is not None:
            out.append(f"funding_account: {self.funding_problem}")
        return out

    def warnings(self) -> list[str]:
        """Publishers between min and warn (not a reason for 503, but worth showing)."""
        return [
            f"publisher {r.address} has {short_eth(r.balance_wei)} ETH, "
            f"below {short_eth(self.thresholds.warn_wei)} ETH"
            for r in self.snapshot().values()
            if r.state == FundsState.WARN and r.balance_wei is not None
        ]

    def status_section(self) -> dict[str, Any]:
        """The `funds` object for /status."""
        return {
            "minEth": format_eth(self.thresholds.min_wei),
            "warnEth": format_eth(self.thresholds.warn_wei),
            "publishers": [r.as_json() for r in self.snapshot().values()],
            "warnings": self.warnings(),
            "fundingAccount": self._funding.address if self._funding is not None else None,
            "topUp": (
                {
                    "thresholdEth": format_eth(self.topup.threshold_wei),
                    "amountEth": format_eth(self.topup.amount_wei),
                    "done": len(self.topups),
                }
                if self.topup is not None
                else None
            ),
        }

    # --- the timer --------------------------------------------------------------------------------------

    def notify(self) -> None:
        """Send low-balance alerts and recovery notices for the current readings (the alerter dedupes)."""
        for r in self.snapshot().values():
            if r.balance_wei is None:
                continue
            if r.state in (FundsState.WARN, FundsState.CRITICAL):
                self.alerter.low_balance(r.address, r.balance_wei, str(r.state), self.thresholds)
            else:
                self.alerter.balance_ok(r.address, r.balance_wei)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check all publishers every `interval_s` until cancelled; the first check precedes `started()`."""
        await trio.to_thread.run_sync(self.check_once)
        self.notify()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            await trio.to_thread.run_sync(self.check_once)
            self.notify()


def checksum_addresses(values: Sequence[str], flag: str = "--address") -> list[str]:
    """Checksummed addresses from the command line (InputError naming the flag and the bad value)."""
    out = []
    for n, value in enumerate(values, 1):
        if not is_address(value):
            where = f"{flag} #{n}" if len(values) > 1 else flag
            raise InputError(f"{where}: {value!r} is not an Ethereum address")
        out.append(to_checksum_address(value))
    return out

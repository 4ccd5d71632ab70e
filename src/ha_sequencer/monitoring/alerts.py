"""`--alert-webhook URL`: JSON alerts for low balance, node unhealthy, a refused signature, a missed duty.

Each condition alerts once while it lasts and sends one recovery notice when it clears (stateful dedupe keyed
by kind + condition); a low balance that gets worse (WARN → CRITICAL) alerts once more. Delivery runs in its
own trio task with an async httpx client, so a slow or dead webhook never blocks the node: `fire()` /
`resolve()` only queue, and may be called from the trio thread or from worker threads.
Without a webhook the node holds a `NullAlerter`: the same calls, nothing sent, so no caller asks first.
Payloads carry addresses, slots, digests and reasons only — never keys, and never the webhook URL (which
often embeds a token; logs show its scheme and host only).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import trio
from prometheus_client import CollectorRegistry, Counter

from ha_sequencer.errors import InputError
from ha_sequencer.monitoring.eth import format_eth, short_eth
from ha_sequencer.monitoring.thresholds import Thresholds
from ha_sequencer.redact import redact_endpoint

log = logging.getLogger(__name__)

ALERT_TIMEOUT_S = 5.0
ALERT_RETRIES = 3  # attempts per alert before it is dropped (and logged)
ALERT_BACKOFF_S = 0.5  # doubled after each failed attempt
MAX_QUEUED = 1000  # alerts waiting for delivery; beyond this the oldest are dropped (a dead webhook)
SCHEMA = "ha-sequencer/alert/v1"


class AlertKind(StrEnum):
    """What an alert is about."""

    LOW_BALANCE = "low_balance"
    NODE_UNHEALTHY = "node_unhealthy"
    SIGNATURE_REFUSED = "signature_refused"  # the duty guard prevented an equivocation
    MISSED_DUTY = "missed_duty"
    HALTED = "halted"  # a signature the duty store did not issue: the attester is halted fleet-wide


class AlertStatus(StrEnum):
    """A condition starts (firing) or clears (resolved)."""

    FIRING = "firing"
    RESOLVED = "resolved"


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Alert:
    """One webhook message."""

    kind: AlertKind
    key: str
    status: AlertStatus
    severity: str
    summary: str
    node_id: str
    at: float
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def condition(self) -> str:
        """The dedupe key: kind + what it concerns."""
        return f"{self.kind}:{self.key}"

    def as_json(self) -> dict[str, Any]:
        """The POST body."""
        return {
            "schema": SCHEMA,
            "alert": str(self.kind),
            "status": str(self.status),
            "condition": self.condition,
            "severity": self.severity,
            "summary": self.summary,
            "node": self.node_id,
            "time": datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds"),
            "details": dict(self.details),
        }


def check_webhook_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; InputError otherwise (without echoing the URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("--alert-webhook: expected an http:// or https:// URL with a host")
    return url


class _ScrubWebhookUrl(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook URL's path is often its token."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url.rstrip("/")
        self._shown = redact_endpoint(url)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._url in message:
            record.msg, record.args = message.replace(self._url, self._shown), ()
        return True


class AlertSink(Protocol):
    """What the node reports to its operator's webhook; each call returns True when it queued an alert."""

    def low_balance(self, address: str, balance_wei: int, state: str, thresholds: Thresholds) -> bool: ...

    def balance_ok(self, address: str, balance_wei: int) -> bool: ...

    def node_unhealthy(self, reasons: Sequence[str]) -> bool: ...

    def node_healthy(self) -> bool: ...

    def signature_refused(
        self, attester: str, slot: int, duty: str, *, existing_digest: bytes | None = None
    ) -> bool: ...

    def signature_ok(self, attester: str, slot: int, duty: str) -> bool: ...

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> bool: ...

    def duty_done(self, attester: str, slot: int, duty: str) -> bool: ...

    def halted(self, attester: str, slot: int, duty: str, reason: str) -> bool: ...

    def halt_lifted(self, attester: str) -> bool: ...

    def active(self) -> list[str] | None:
        """Conditions currently firing; None when alerts are off."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver alerts until cancelled."""
        ...


def make_alerter(webhook: str | None, *, node_id: str, registry: CollectorRegistry | None) -> AlertSink:
    """An `Alerter` posting to `webhook`, or a `NullAlerter` when there is none."""
    if webhook:
        return Alerter(webhook, node_id=node_id, registry=registry)
    return NullAlerter()


class NullAlerter:
    """The alerter of a node without `--alert-webhook`: every condition is dropped; `run` returns at once."""

    def __repr__(self) -> str:
        return "NullAlerter()"

    def low_balance(self, address: str, balance_wei: int, state: str, thresholds: Thresholds) -> bool:
        """Dropped."""
        return False

    def balance_ok(self, address: str, balance_wei: int) -> bool:
        """Dropped."""
        return False

    def node_unhealthy(self, reasons: Sequence[str]) -> bool:
        """Dropped."""
        return False

    def node_healthy(self) -> bool:
        """Dropped."""
        return False

    def signature_refused(
        self, attester: str, slot: int, duty: str, *, existing_digest: bytes | None = None
    ) -> bool:
        """Dropped."""
        return False

    def signature_ok(self, attester: str, slot: int, duty: str) -> bool:
        """Dropped."""
        return False

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> bool:
        """Dropped."""
        return False

    def duty_done(self, attester: str, slot: int, duty: str) -> bool:
        """Dropped."""
        return False

    def halted(self, attester: str, slot: int, duty: str, reason: str) -> bool:
        """Dropped."""
        return False

    def halt_lifted(self, attester: str) -> bool:
        """Dropped."""
        return False

    def active(self) -> None:
        """None: alerts are off (/status shows `alerts: null`)."""
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to deliver."""
        task_status.started()


NULL_ALERTER = NullAlerter()


class Alerter:
    """Dedupes conditions and delivers alerts to one webhook; `run()` is the delivery task."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        timeout_s: float = ALERT_TIMEOUT_S,
        retries: int = ALERT_RETRIES,
        backoff_s: float = ALERT_BACKOFF_S,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = check_webhook_url(url)
        self._scrubber = _ScrubWebhookUrl(url)
        self.node_id = node_id
        self.timeout_s = timeout_s
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self._clock = clock
        self._lock = threading.Lock()
        self._firing: dict[str, Alert] = {}
        self._queue: deque[Alert] = deque(maxlen=MAX_QUEUED)
        self._token: trio.lowlevel.TrioToken | None = None
        self._wake: trio.Event | None = None
        self.delivered: list[Alert] = []
        self.failed: list[Alert] = []
        self._counter = (
            Counter(
                "hasq_alerts",
                "Webhook alerts by kind, status and delivery result",
                ["kind", "status", "result"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    def __repr__(self) -> str:
        return f"Alerter(webhook={redact_endpoint(self._url)}, node={self.node_id})"

    # --- conditions -------------------------------------------------------------------------------------

    def fire(
        self, kind: AlertKind, key: str, summary: str, *, severity: str = "warning", **details: Any
    ) -> bool:
        """Raise condition (kind, key); queued only if it was not already firing (or got more severe)."""
        alert = Alert(kind, key, AlertStatus.FIRING, severity, summary, self.node_id, self._clock(), details)
        with self._lock:
            current = self._firing.get(alert.condition)
            if current is not None and _SEVERITY_RANK.get(severity, 1) <= _SEVERITY_RANK.get(
                current.severity, 1
            ):
                return False
            self._firing[alert.condition] = alert
        self._enqueue(alert)
        return True

    def resolve(self, kind: AlertKind, key: str, summary: str, **details: Any) -> bool:
        """Clear condition (kind, key); a recovery notice is queued only if it was firing."""
        condition = f"{kind}:{key}"
        with self._lock:
            current = self._firing.pop(condition, None)
        if current is None:
            return False
        details = {
            **details,
            "firingSince": datetime.fromtimestamp(current.at, UTC).isoformat(timespec="seconds"),
        }
        self._enqueue(
            Alert(kind, key, AlertStatus.RESOLVED, "info", summary, self.node_id, self._clock(), details)
        )
        return True

    def active(self) -> list[str]:
        """Conditions currently firing."""
        with self._lock:
            return sorted(self._firing)

    # --- the four kinds -----------------------------------------------------------------------------------

    def low_balance(self, address: str, balance_wei: int, state: str, thresholds: Thresholds) -> bool:
        """A publisher below the warn (severity warning) or min (critical) threshold."""
        critical = state == "CRITICAL"
        limit = thresholds.min_wei if critical else thresholds.warn_wei
        return self.fire(
            AlertKind.LOW_BALANCE,
            address,
            f"publisher {address} has {short_eth(balance_wei)} ETH, below the "
            f"{'minimum' if critical else 'warning level'} {short_eth(limit)} ETH",
            severity="critical" if critical else "warning",
            address=address,
            balanceEth=format_eth(balance_wei),
            state=state,
            minEth=format_eth(thresholds.min_wei),
            warnEth=format_eth(thresholds.warn_wei),
        )

    def balance_ok(self, address: str, balance_wei: int) -> bool:
        """The publisher is back above the warn threshold."""
        return self.resolve(
            AlertKind.LOW_BALANCE,
            address,
            f"publisher {address} is funded again ({short_eth(balance_wei)} ETH)",
            address=address,
            balanceEth=format_eth(balance_wei),
        )

    def node_unhealthy(self, reasons: Sequence[str]) -> bool:
        """/status turned unhealthy (503)."""
        return self.fire(
            AlertKind.NODE_UNHEALTHY,
            self.node_id,
            f"node {self.node_id} is unhealthy: {'; '.join(reasons) or 'no reason given'}",
            severity="critical",
            reasons=list(reasons),
        )

    def node_healthy(self) -> bool:
        """/status is healthy again."""
        return self.resolve(AlertKind.NODE_UNHEALTHY, self.node_id, f"node {self.node_id} is healthy again")

    def signature_refused(
        self,
        attester: str,
        slot: int,
        duty: str,
        *,
        existing_digest: bytes | None = None,
        holder: str | None = None,
    ) -> bool:
        """The duty guard refused a different message for an already signed duty (equivocation prevented)."""
        details: dict[str, Any] = {"attester": attester, "slot": slot, "duty": duty}
        if existing_digest is not None:
            details["existingDigest"] = "0x" + bytes(existing_digest).hex()
        if holder is not None:
            details["signedBy"] = holder
        return self.fire(
            AlertKind.SIGNATURE_REFUSED,
            f"{attester}:{duty}",
            f"refused to sign a second, different {duty} for attester {attester} at slot {slot} "
            "(equivocation prevented; check for two groups running one identity)",
            severity="critical",
            **details,
        )

    def signature_ok(self, attester: str, slot: int, duty: str) -> bool:
        """A later duty of that kind was signed normally."""
        return self.resolve(
            AlertKind.SIGNATURE_REFUSED,
            f"{attester}:{duty}",
            f"attester {attester} signed its {duty} normally again at slot {slot}",
            attester=attester,
            duty=duty,
            slot=slot,
        )

    def duty_missed(self, attester: str, slot: int, duty: str, why: str = "") -> bool:
        """A proposal or attestation of the identity did not happen (or did not land on L1)."""
        return self.fire(
            AlertKind.MISSED_DUTY,
            f"{attester}:{duty}",
            f"attester {attester} missed its {duty} at slot {slot}{f': {why}' if why else ''}",
            severity="warning",
            attester=attester,
            slot=slot,
            duty=duty,
            why=why,
        )

    def duty_done(self, attester: str, slot: int, duty: str) -> bool:
        """A later duty of that kind succeeded."""
        return self.resolve(
            AlertKind.MISSED_DUTY,
            f"{attester}:{duty}",
            f"attester {attester} performed its {duty} again at slot {slot}",
            attester=attester,
            slot=slot,
            duty=duty,
        )

    def halted(self, attester: str, slot: int, duty: str, reason: str) -> bool:
        """A foreign signature of the attester was seen: every node of the fleet stopped signing for it."""
        return self.fire(
            AlertKind.HALTED,
            attester,
            f"attester {attester} HALTED: {reason}; nothing is signed for it until an operator runs "
            f"`ha-sequencer ha-db resume --attester {attester} --reason …` (evidence: `ha-db halts`)",
            severity="critical",
            attester=attester,
            slot=slot,
            duty=duty,
            reason=reason,
        )

    def halt_lifted(self, attester: str) -> bool:
        """An operator resumed the attester."""
        return self.resolve(
            AlertKind.HALTED, attester, f"attester {attester} resumed by an operator", attester=attester
        )

    # --- delivery ---------------------------------------------------------------------------------------

    def _enqueue(self, alert: Alert) -> None:
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                log.warning(
                    "alerts: queue full, dropping the oldest alert (webhook %s)", redact_endpoint(self._url)
                )
            self._queue.append(alert)
        self._wake_up()

    def _wake_up(self) -> None:
        token = self._token
        if token is None:
            return  # not running yet: run() drains the queue when it starts
        try:
            here = trio.lowlevel.current_trio_token()
        except RuntimeError:
            here = None
        if here is token:
            if self._wake is not None:
                self._wake.set()
            return
        with contextlib.suppress(trio.RunFinishedError):  # the node is shutting down
            token.run_sync_soon(lambda: self._wake.set() if self._wake is not None else None)

    def _take(self) -> list[Alert]:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        return batch

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver queued alerts in order until cancelled (start it in the node's nursery)."""
        self._token = trio.lowlevel.current_trio_token()
        http_log = logging.getLogger("httpx")
        http_log.addFilter(self._scrubber)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as http:
                task_status.started()
                while True:
                    self._wake = trio.Event()  # before taking: a later enqueue sets this event, none is lost
                    batch = self._take()
                    if not batch:
                        await self._wake.wait()
                        continue
                    for alert in batch:
                        await self._post(http, alert)
        finally:
            http_log.removeFilter(self._scrubber)

    async def _post(self, http: httpx.AsyncClient, alert: Alert) -> None:
        delay = self.backoff_s
        problem = ""
        for attempt in range(1, self.retries + 1):
            try:
                response = await http.post(self._url, json=alert.as_json())
                if response.status_code < 300:
                    self.delivered.append(alert)
                    self._count(alert, "delivered")
                    log.info("alerts: %s %s delivered", alert.condition, alert.status)
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.retries:
                await trio.sleep(delay)
                delay *= 2
        self.failed.append(alert)
        self._count(alert, "failed")
        log.warning(
            "alerts: %s %s not delivered to %s after %d attempts (%s)",
            alert.condition,
            alert.status,
            redact_endpoint(self._url),
            self.retries,
            problem,
        )

    def _count(self, alert: Alert, result: str) -> None:
        if self._counter is not None:
            self._counter.labels(kind=str(alert.kind), status=str(alert.status), result=result).inc()


HEALTH_CHECK_S = 2.0
UNHEALTHY_GRACE_S = 10.0  # a node starting or briefly resyncing is not worth waking someone


async def watch_health(
    alerter: AlertSink,
    status_report: Callable[[], Mapping[str, Any]],
    *,
    interval_s: float = HEALTH_CHECK_S,
    grace_s: float = UNHEALTHY_GRACE_S,
) -> None:
    """Alert when the node's /status stays unhealthy for `grace_s`; send the recovery when it is ok again."""
    unhealthy_since: float | None = None
    while True:
        report = status_report()
        if report.get("status") == "ok":
            unhealthy_since = None
            alerter.node_healthy()
        else:
            now = trio.current_time()
            unhealthy_since = now if unhealthy_since is None else unhealthy_since
            if now - unhealthy_since >= grace_s:
                alerter.node_unhealthy(list(report.get("reasons", [])))
        await trio.sleep(interval_s)

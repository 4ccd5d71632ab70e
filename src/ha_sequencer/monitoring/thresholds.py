"""The guide's publisher balance thresholds: every publisher needs at least 0.1 ETH; alert below 0.15 ETH."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ha_sequencer.errors import InputError
from ha_sequencer.monitoring.eth import format_eth, parse_eth

DEFAULT_MIN_ETH = "0.1"  # below: the publisher cannot be relied on to pay for a proposal (CRITICAL)
DEFAULT_WARN_ETH = "0.15"  # below: time to refill (WARN)
DEFAULT_MIN_WEI = parse_eth(DEFAULT_MIN_ETH, "DEFAULT_MIN_ETH")
DEFAULT_WARN_WEI = parse_eth(DEFAULT_WARN_ETH, "DEFAULT_WARN_ETH")


class FundsState(StrEnum):
    """A publisher's balance against the thresholds."""

    OK = "OK"
    WARN = "WARN"  # below warn: refill soon
    CRITICAL = "CRITICAL"  # below min: not enough to rely on for a proposal
    UNKNOWN = "UNKNOWN"  # the balance could not be read


@dataclass(frozen=True)
class Thresholds:
    """Balance thresholds in wei: CRITICAL below `min_wei`, WARN below `warn_wei`, else OK."""

    min_wei: int = DEFAULT_MIN_WEI
    warn_wei: int = DEFAULT_WARN_WEI

    def __post_init__(self) -> None:
        if self.min_wei < 0:
            raise InputError(f"minimum balance must not be negative (got {format_eth(self.min_wei)} ETH)")
        if self.warn_wei < self.min_wei:
            raise InputError(
                f"warn threshold {format_eth(self.warn_wei)} ETH is below the minimum "
                f"{format_eth(self.min_wei)} ETH"
            )

    @classmethod
    def from_eth(
        cls,
        min_eth: str = DEFAULT_MIN_ETH,
        warn_eth: str = DEFAULT_WARN_ETH,
        *,
        flags: tuple[str, str] = ("--min", "--warn"),
    ) -> Thresholds:
        """Thresholds from ETH amounts as given on the command line (`flags` name them in errors)."""
        return cls(parse_eth(min_eth, flags[0]), parse_eth(warn_eth, flags[1]))

    def state(self, balance_wei: int | None) -> FundsState:
        """The state of a publisher holding `balance_wei` (None: unknown)."""
        if balance_wei is None:
            return FundsState.UNKNOWN
        if balance_wei < self.min_wei:
            return FundsState.CRITICAL
        if balance_wei < self.warn_wei:
            return FundsState.WARN
        return FundsState.OK

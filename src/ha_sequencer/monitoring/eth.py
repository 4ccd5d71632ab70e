"""ETH amounts: wei ↔ decimal ETH text, for flags, messages, /status and alerts (no I/O, no web3)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ha_sequencer.errors import InputError

WEI_PER_ETH = 10**18


def parse_eth(value: str | int | Decimal, what: str) -> int:
    """`value` ETH (decimal text, at most 18 decimals, non-negative) in wei; InputError naming `what`."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InputError(f"{what}: {value!r} is not an amount of ETH") from None
    wei = amount * WEI_PER_ETH
    if not amount.is_finite() or amount < 0 or wei != wei.to_integral_value():
        raise InputError(f"{what}: {value!r} must be a non-negative amount of ETH with at most 18 decimals")
    return int(wei)


def format_eth(wei: int) -> str:
    """Wei as ETH with 18 decimals, exactly as `cast balance --ether` prints it."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(int(wei)), WEI_PER_ETH)
    return f"{sign}{whole}.{frac:018d}"


def short_eth(wei: int) -> str:
    """Wei as ETH for messages: up to 9 decimals, trailing zeros dropped (never a misleading "0")."""
    text = f"{Decimal(int(wei)) / WEI_PER_ETH:.9f}".rstrip("0").rstrip(".")
    if text in ("0", "-0") and wei != 0:
        return f"{Decimal(int(wei)) / WEI_PER_ETH:.18f}".rstrip("0")
    return text

"""Pure parts: thresholds, the max-cost guard, publisher selection order."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.errors import InputError
from ha_sequencer.monitoring.eth import format_eth, parse_eth, short_eth
from ha_sequencer.monitoring.funds import InsufficientFunds, can_afford, max_cost, require_affordable
from ha_sequencer.monitoring.publishers import NoPublisherAvailable, PublisherPool
from ha_sequencer.monitoring.thresholds import DEFAULT_MIN_WEI, DEFAULT_WARN_WEI, FundsState, Thresholds

ETH = 10**18
A, B, C = (Account.from_key(keccak(f"publisher {i}".encode())).address for i in range(3))


def test_defaults_are_the_guides_numbers() -> None:
    assert DEFAULT_MIN_WEI == ETH // 10 and DEFAULT_WARN_WEI == 15 * ETH // 100


@pytest.mark.parametrize(
    ("balance", "state"),
    [
        (0, FundsState.CRITICAL),
        (ETH // 10 - 1, FundsState.CRITICAL),
        (ETH // 10, FundsState.WARN),  # exactly the minimum is enough
        (15 * ETH // 100 - 1, FundsState.WARN),
        (15 * ETH // 100, FundsState.OK),
        (None, FundsState.UNKNOWN),
    ],
)
def test_threshold_boundaries(balance: int | None, state: FundsState) -> None:
    assert Thresholds().state(balance) == state


def test_thresholds_from_eth_and_bad_input() -> None:
    t = Thresholds.from_eth("0.5", "1")
    assert (t.min_wei, t.warn_wei) == (ETH // 2, ETH)
    with pytest.raises(InputError, match="warn threshold"):
        Thresholds.from_eth("0.2", "0.1")
    for bad in ("abc", "-1", "0.0000000000000000001", "nan", "inf"):
        with pytest.raises(InputError, match="--min"):
            parse_eth(bad, "--min")


def test_short_eth_never_shows_a_misleading_zero() -> None:
    assert short_eth(0) == "0" and short_eth(ETH) == "1" and short_eth(ETH // 1000) == "0.001"
    assert short_eth(10) == "0.00000000000000001" and short_eth(123 * 10**9) == "0.000000123"


def test_format_eth_is_cast_format() -> None:
    assert format_eth(0) == "0.000000000000000000"
    assert format_eth(1) == "0.000000000000000001"
    assert format_eth(123456789012345678901) == "123.456789012345678901"


def test_can_afford_is_gas_limit_times_max_fee_plus_value() -> None:
    assert max_cost(21_000, 10**9, 5) == 21_000 * 10**9 + 5
    assert can_afford(21_000 * 10**9, 21_000, 10**9)
    assert not can_afford(21_000 * 10**9 - 1, 21_000, 10**9)
    assert not can_afford(21_000 * 10**9, 21_000, 10**9, value=1)
    with pytest.raises(ValueError):
        max_cost(-1, 1)


def test_require_affordable_error_says_what_and_where() -> None:
    with pytest.raises(InsufficientFunds) as info:
        require_affordable(A, 10**15, 1_500_000, 3 * 10**9, what="propose for slot 7")
    err = info.value
    assert err.exit_code == 1
    assert err.max_cost == 1_500_000 * 3 * 10**9 and err.shortfall == err.max_cost - 10**15
    text = str(err)
    assert text.startswith("propose for slot 7 not sent: publisher " + A)
    assert "0.001 ETH" in text and "0.0045 ETH" in text and "1500000" in text and "3 gwei" in text
    require_affordable(A, err.max_cost, 1_500_000, 3 * 10**9)  # exactly enough passes


def test_selection_highest_balance_first_then_least_recently_used() -> None:
    t = [0.0]
    pool = PublisherPool([A, B, C], clock=lambda: t[0])
    assert pool.choose({A: 1 * ETH, B: 3 * ETH, C: 2 * ETH}) == B
    # equal balances: least recently used wins; never used counts as oldest, then keystore order
    equal = {A: ETH, B: ETH, C: ETH}
    assert pool.choose(equal) == A
    for who in (A, B, C):
        t[0] += 1
        pool.mark_pending(who, b"\x01" * 32)
        pool.resolve(who, b"\x01" * 32)
    assert pool.choose(equal) == A  # used longest ago
    t[0] += 1
    pool.mark_pending(A, "0xaa")
    pool.resolve(A)
    assert pool.choose(equal) == B


def test_selection_idle_before_busy_and_pending_not_reused_until_resolved() -> None:
    pool = PublisherPool([A, B, C])
    balances = {A: 5 * ETH, B: 4 * ETH, C: 3 * ETH}
    first = pool.choose(balances, mark=True, slot=1)
    second = pool.choose(balances, mark=True, slot=1)
    third = pool.choose(balances, mark=True, slot=1)
    assert (first, second, third) == (A, B, C)
    with pytest.raises(NoPublisherAvailable, match="3 with a pending transaction"):
        pool.choose(balances)
    pool.mark_pending(B, "0xbb")
    pool.resolve(B, "0xold")  # a stale resolve of an older tx does not free B
    assert not pool.is_idle(B)
    pool.resolve(B, "0xbb")
    assert pool.choose(balances) == B  # the only idle one, although A has more ETH
    pool.resolve(A)
    assert pool.choose(balances) == A


def test_selection_skips_publishers_that_cannot_pay_and_unknown_balances_go_last() -> None:
    pool = PublisherPool([A, B, C])
    assert pool.choose({A: 10, B: 10**6}, required_wei=1000) == B
    assert pool.candidates({B: 5}) == [B, A, C]  # unknown balances after known ones, keystore order
    with pytest.raises(NoPublisherAvailable) as info:
        pool.choose({A: 10, B: 20}, required_wei=1000)
    assert "3 cannot pay the maximum cost 0.000000000000001 ETH" in str(
        info.value
    ) and "balance unknown" in str(info.value)
    with pytest.raises(InputError, match="not one of this node's publishers"):
        pool.mark_pending(Account.from_key(keccak(b"stranger")).address)

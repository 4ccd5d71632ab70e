"""FundsWatcher on a real anvil: gauge, logs, /status reasons, the max-cost guard, top-up, webhook alerts."""

from __future__ import annotations

import logging

import pytest
import trio
from eth_account import Account
from eth_utils import keccak
from prometheus_client import CollectorRegistry

from ha_sequencer.l1.client import RollupClient
from ha_sequencer.monitoring.alerts import Alerter
from ha_sequencer.monitoring.funds import BALANCE_METRIC, FundsWatcher, InsufficientFunds, TopUpPolicy
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.monitoring.thresholds import FundsState

ETH = 10**18
PROPOSE_GAS = 1_500_000  # the node's propose gas limit (node/publisher.py PROPOSE_GAS_BASE)


def account(label: str):
    return Account.from_key(keccak(label.encode()))


def gauge(registry: CollectorRegistry, address: str) -> float | None:
    return registry.get_sample_value(BALANCE_METRIC, {"address": address})


def test_fee_cap_is_the_one_the_l1_client_sets(module_anvil) -> None:
    wallet = L1Wallet(module_anvil.rpc_url)
    client = RollupClient([module_anvil.rpc_url], account("no rollup here").address)
    # same block, same formula: the guard checks what will be sent
    assert wallet.max_fee_per_gas() == client.transport.fees()[0]
    # and a transfer carries exactly that cap: one transport builds every transaction
    expected = wallet.max_fee_per_gas()
    tx = wallet.send_eth(module_anvil.accounts[1], account("fee cap target").address, 1)
    assert client.transport.transaction(tx)["maxFeePerGas"] == expected
    assert wallet.wait_receipt(tx, 10)["status"] == 1


def test_thresholds_gauge_and_logs(module_anvil, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ha_sequencer.monitoring.funds")
    ok, warn, critical = (account(f"funds pub {i}") for i in range(3))
    module_anvil.set_balance(ok.address, 2 * ETH)
    module_anvil.set_balance(warn.address, 12 * ETH // 100)
    module_anvil.set_balance(critical.address, 5 * ETH // 100)
    registry = CollectorRegistry()
    watcher = FundsWatcher(
        L1Wallet(module_anvil.rpc_url), [ok.address, warn.address, critical.address], registry=registry
    )
    readings = watcher.check_once()
    assert [r.state for r in readings] == [FundsState.OK, FundsState.WARN, FundsState.CRITICAL]
    assert gauge(registry, ok.address) == 2.0 and gauge(registry, warn.address) == 0.12
    assert gauge(registry, critical.address) == 0.05
    assert watcher.reasons() == [
        f"low_funds: publisher {critical.address} has 0.05 ETH, below the minimum 0.1 ETH"
    ]
    assert watcher.warnings() == [f"publisher {warn.address} has 0.12 ETH, below 0.15 ETH"]
    levels = {r.getMessage().split()[2]: r.levelname for r in caplog.records}
    assert levels == {warn.address: "WARNING", critical.address: "ERROR"}
    watcher.check_once()  # unchanged: not logged again (at most every REMIND_S)
    assert len(caplog.records) == 2
    module_anvil.set_balance(critical.address, ETH)
    watcher.check_once()
    assert watcher.reasons() == [] and "funded again" in caplog.records[-1].getMessage()
    section = watcher.status_section()
    assert section["minEth"] == "0.100000000000000000" and section["topUp"] is None
    assert [p["state"] for p in section["publishers"]] == ["OK", "WARN", "OK"]


def test_drained_publisher_refuses_to_send_then_a_top_up_clears_it(module_anvil, webhook, caplog) -> None:
    caplog.set_level(logging.INFO)
    publisher, funder = account("drained publisher"), account("funding account")
    module_anvil.set_balance(publisher.address, ETH // 1000)  # 0.001 ETH: less than one propose can cost
    module_anvil.set_balance(funder.address, 0)
    wallet = L1Wallet(module_anvil.rpc_url)
    registry = CollectorRegistry()
    alerter = Alerter(webhook.url, node_id="node1", backoff_s=0.05)
    watcher = FundsWatcher(
        wallet,
        [publisher.address],
        registry=registry,
        interval_s=0.1,
        topup=TopUpPolicy(amount_wei=ETH // 2, cooldown_s=0),
        funding_account=funder,
        alerter=alerter,
    )
    seen: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as n:
            await n.start(alerter.run)
            await n.start(watcher.run)  # the first check has run
            seen["reasons"] = watcher.reasons()
            seen["gauge"] = gauge(registry, publisher.address)
            with pytest.raises(InsufficientFunds) as info:
                await trio.to_thread.run_sync(
                    lambda: watcher.ensure_affordable(publisher.address, PROPOSE_GAS)
                )
            seen["refusal"] = info.value
            seen["reasons_after_refusal"] = watcher.reasons()
            await trio.to_thread.run_sync(webhook.wait_for, 1)
            module_anvil.set_balance(funder.address, 10 * ETH)  # the operator funds the funding account
            with trio.fail_after(10):
                while watcher.reasons():
                    await trio.sleep(0.05)
            seen["balance"] = await trio.to_thread.run_sync(
                lambda: watcher.ensure_affordable(publisher.address, PROPOSE_GAS)
            )
            await trio.to_thread.run_sync(webhook.wait_for, 2)
            n.cancel_scope.cancel()

    trio.run(main)
    reasons = seen["reasons"]
    assert reasons[0] == f"low_funds: publisher {publisher.address} has 0.001 ETH, below the minimum 0.1 ETH"
    assert reasons[1].startswith(
        f"funding_account: funding account {funder.address} has 0 ETH, cannot top up"
    )
    assert seen["gauge"] == 0.001
    refusal = seen["refusal"]
    assert refusal.address == publisher.address and refusal.balance == ETH // 1000
    assert refusal.max_cost > refusal.balance and refusal.gas_limit == PROPOSE_GAS
    assert any(
        r.startswith(f"cannot_pay: transaction not sent: publisher {publisher.address}")
        for r in seen["reasons_after_refusal"]
    )
    # the top-up: exactly the configured amount arrived, and the state is clear
    assert seen["balance"] == ETH // 1000 + ETH // 2 == wallet.balance(publisher.address)
    assert [(t.publisher, t.funder, t.amount_wei) for t in watcher.topups] == [
        (publisher.address, funder.address, ETH // 2)
    ]
    assert watcher.state(publisher.address) == FundsState.OK and gauge(registry, publisher.address) == 0.501
    messages = webhook.messages()
    assert [(m["alert"], m["status"], m["severity"]) for m in messages] == [
        ("low_balance", "firing", "critical"),
        ("low_balance", "resolved", "info"),
    ]
    assert "topped up publisher" in caplog.text and "below the minimum 0.1 ETH" in caplog.text
    for secret in (publisher.key.hex(), funder.key.hex()):
        assert secret.removeprefix("0x") not in caplog.text + repr(watcher) + repr(messages)


def test_top_up_cooldown_and_own_funding_account(module_anvil) -> None:
    publisher, funder = account("cooldown publisher"), account("cooldown funder")
    module_anvil.set_balance(publisher.address, 0)
    module_anvil.set_balance(funder.address, 5 * ETH)
    watcher = FundsWatcher(
        L1Wallet(module_anvil.rpc_url),
        [publisher.address, funder.address],
        topup=TopUpPolicy(threshold_wei=ETH, amount_wei=ETH // 10, cooldown_s=3600),
        funding_account=funder,
    )
    watcher.check_once()
    watcher.check_once()  # still below the threshold, but within the cooldown: no second transfer
    assert len(watcher.topups) == 1 and watcher.topups[0].publisher == publisher.address
    assert watcher.snapshot()[publisher.address].balance_wei == ETH // 10

"""FundsService on a real anvil: per-submission publisher choice with real pending transactions."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak
from prometheus_client import CollectorRegistry

from ha_sequencer.monitoring.alerts import NullAlerter
from ha_sequencer.monitoring.funds import BALANCE_METRIC
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.monitoring.publishers import NoPublisherAvailable
from ha_sequencer.monitoring.service import FundsService, FundsSettings

ETH = 10**18
GAS = 1_500_000


def key(label: str):
    return Account.from_key(keccak(label.encode()))


@pytest.fixture
def manual_mining(module_anvil):
    module_anvil.rpc("evm_setAutomine", [False])
    yield module_anvil
    module_anvil.rpc("evm_setAutomine", [True])


def test_choice_skips_pending_until_mined_and_refuses_when_none_can_pay(manual_mining) -> None:
    anvil = manual_mining
    attester, rich, richer = key("svc attester"), key("svc publisher 1"), key("svc publisher 2")
    anvil.set_balance(rich.address, 1 * ETH)
    anvil.set_balance(richer.address, 2 * ETH)
    registry = CollectorRegistry()
    wallet = L1Wallet(anvil.rpc_url)
    service = FundsService(
        wallet=wallet,
        publishers={attester.address: [rich, richer]},
        registry=registry,
        node_id="node1",
        settings=FundsSettings(),
    )
    first = service.select(attester.address, GAS, slot=5)
    assert first.address == richer.address  # highest balance
    tx = wallet.send_eth(first, first.address, 1)  # a real transaction, left pending (no automine)
    service.sent(first.address, tx, slot=5)
    second = service.select(attester.address, GAS, slot=6)
    assert second.address == rich.address  # the richer one is busy until its tx resolves
    service.release(second.address)  # e.g. the propose call failed before sending
    assert service.reap_once() == []  # still pending in the pool
    assert service.select(attester.address, GAS, slot=7).address == rich.address
    service.release(rich.address)
    anvil.mine()
    assert service.reap_once() == [richer.address]
    assert service.select(attester.address, GAS, slot=8).address == richer.address
    service.release(richer.address)
    assert registry.get_sample_value(BALANCE_METRIC, {"address": rich.address}) == 1.0

    # drained: neither can pay a propose's max cost -> nothing is chosen, /status says why
    for p in (rich, richer):
        anvil.set_balance(p.address, ETH // 1000)
    with pytest.raises(NoPublisherAvailable, match="2 cannot pay the maximum cost"):
        service.select(attester.address, GAS, slot=9)
    reasons = service.reasons()
    for p in (rich, richer):
        assert f"low_funds: publisher {p.address} has 0.001 ETH, below the minimum 0.1 ETH" in reasons
        assert any(
            r.startswith(f"cannot_pay: slot 9 submission not sent: publisher {p.address}") for r in reasons
        )
    assert service.pool.pending() == {}
    anvil.set_balance(rich.address, ETH)
    assert service.select(attester.address, GAS, slot=10).address == rich.address
    assert not any(
        r.startswith(f"cannot_pay: slot 9 submission not sent: publisher {rich.address}")
        for r in service.reasons()
    )
    anvil.set_balance(richer.address, ETH)  # funded by hand: the next timer reading clears its refusal
    service.watcher.check_once()
    assert [r for r in service.reasons() if richer.address in r] == []
    section = service.status_section()
    assert section["pending"] == {rich.address: None} and section["alerts"] is None


def test_from_keystore_uses_every_publisher_and_the_funding_account(module_anvil, tmp_path) -> None:
    import json

    from ha_sequencer.keys import load_keystore

    attester, p1, p2, funder = (key(f"ks {i}") for i in range(4))
    hexkey = lambda a: "0x" + a.key.hex().removeprefix("0x")  # noqa: E731
    (tmp_path / "keystore.json").write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [
                    {
                        "attester": hexkey(attester),
                        "publisher": [hexkey(p1), hexkey(p2)],
                        "feeRecipient": "0x" + "11" * 32,
                    }
                ],
                "fundingAccount": hexkey(funder),
            }
        )
    )
    service = FundsService.from_keystore(
        load_keystore(tmp_path / "keystore.json"),
        [module_anvil.rpc_url],
        registry=None,
        node_id="n",
        settings=FundsSettings(topup_threshold_eth="0.2", topup_amount_eth="0.3"),
    )
    assert service.pool.publishers == [p1.address, p2.address]
    assert service.status_section()["fundingAccount"] == funder.address
    assert service.status_section()["topUp"]["amountEth"] == "0.300000000000000000"
    assert hexkey(funder)[2:] not in repr(service)


def test_without_publishers_or_webhook_the_attester_pays_and_alerts_are_dropped(
    module_anvil, tmp_path
) -> None:
    import json

    import trio

    from ha_sequencer.keys import load_keystore

    attester = key("lone attester")
    module_anvil.set_balance(attester.address, ETH)
    (tmp_path / "keystore.json").write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "validators": [
                    {
                        "attester": "0x" + attester.key.hex().removeprefix("0x"),
                        "feeRecipient": "0x" + "11" * 32,
                    }
                ],
            }
        )
    )
    service = FundsService.from_keystore(
        load_keystore(tmp_path / "keystore.json"), [module_anvil.rpc_url], registry=None, node_id="n"
    )
    # a one-account pool: the attester itself pays gas, through the same choice as any publisher
    assert service.pool.publishers == [attester.address]
    assert service.select(attester.address, GAS, slot=3).address == attester.address
    assert service.in_flight(attester.address, 3) == [attester.address]
    service.release(attester.address)
    # a null alerter: every alert call is accepted and dropped
    assert isinstance(service.alerter, NullAlerter)
    service.duty_missed(attester.address, 3, "block_proposal", "no publisher can pay for it")
    service.duty_done(attester.address, 4, "block_proposal")
    service.signature_refused(attester.address, 5, "attestation", existing_digest=b"\x01" * 32)
    service.signature_ok(attester.address, 6, "attestation")
    section = service.status_section()
    assert section["alerts"] is None and section["fundingAccount"] is None and section["topUp"] is None

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as n:
                await n.start(lambda task_status: service.run(status_report=dict, task_status=task_status))
                n.cancel_scope.cancel()

    trio.run(main)
    assert service.watcher.snapshot()[attester.address].balance_wei == ETH

"""The node's use of FundsService: its publisher picks per submission, refuses what it cannot pay, alerts.

Real anvil, the real Rollup and a real SQLite duty store; the node's own `Publisher`, `Node.status_report` and
`build_config` (no node process: the multi-process test is test_monitoring_node.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import trio
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.errors import InputError
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.keys import load_keystore
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import generate_validators, keystore_document, write_keystore
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.monitoring.service import FundsService, FundsSettings
from ha_sequencer.node.app import Node, log_startup
from ha_sequencer.node.clock import SlotClock, SlotTiming
from ha_sequencer.node.config import ConfigError, build_config
from ha_sequencer.node.metrics import NodeMetrics
from ha_sequencer.node.publisher import Publisher
from ha_sequencer.protocol.wire import Block, SignedBlock

ETH = 10**18
SLOT_S = 4


async def _fresh_slot(params, after: int = 0) -> int:
    """A slot after `after` with at least half of it left (waits for its start)."""
    now = time.time()
    slot = params.slot_at(now)
    if slot <= after or now - params.slot_start(slot) > SLOT_S / 2:  # slot 0 is genesis: never a block
        slot = max(slot + 1, after + 1)
        await trio.sleep(max(0.0, params.slot_start(slot) - time.time()) + 0.05)
    return slot


def _signed(rollup, slot: int) -> tuple[str, SignedBlock, list[bytes]]:
    b = rollup.sign_block(slot)
    block = Block(slot, b.proposal.parent_archive, b.proposal.archive, b.proposal.fee_recipient, b.txs)
    return rollup.proposer(slot), SignedBlock(block, b.proposer_signature), b.attestations


def _count(metrics: NodeMetrics, result: str) -> float:
    return metrics.l1_submissions.labels(result=result)._value.get()


def test_publisher_uses_the_richest_idle_publisher_and_sends_nothing_it_cannot_pay(
    rollup_factory, tmp_path: Path, webhook
) -> None:
    # one validator: it proposes every slot, so its missed-duty alert (per attester and duty) can recover
    rollup = rollup_factory(validators=1, slot_duration=SLOT_S, epoch_length=8, committee_size=1)
    anvil = rollup.anvil
    pubs = [Account.from_key(keccak(f"wiring publisher {i}".encode())) for i in range(3)]
    for p, eth in zip(pubs, (1, 3, 2), strict=True):
        anvil.set_balance(p.address, eth * ETH)
    metrics = NodeMetrics()
    funds = FundsService(
        wallet=L1Wallet(anvil.rpc_url),
        publishers={v.address: pubs for v in rollup.validators},
        registry=metrics.registry,
        node_id="wired",
        settings=FundsSettings(alert_webhook=webhook.url),
    )
    store = open_store(f"sqlite:///{tmp_path / 'duties.sqlite'}", migrate=True)
    publisher = Publisher(
        client=rollup.client,
        guard=DutyGuard(store, node_id="wired", rollup=rollup.address),
        clock=SlotClock(SlotTiming(rollup.params.genesis_time, rollup.params.slot_duration)),
        metrics=metrics,
        funds=funds,
    )
    nonces = {p.address: anvil.rpc("eth_getTransactionCount", [p.address, "latest"]) for p in pubs}
    slots: list[int] = []

    async def publish_slot() -> None:
        slot = await _fresh_slot(rollup.params, after=max(slots, default=0))
        slots.append(slot)
        proposer, signed, attestations = _signed(rollup, slot)
        await publisher.publish(slot, proposer, signed, attestations, None)

    async def scenario() -> None:
        async with trio.open_nursery() as n:
            await n.start(funds.alerter.run)
            await publish_slot()  # funded: the richest publisher (3 ETH) pays
            for p in pubs:
                anvil.set_balance(p.address, ETH // 1000)
            await publish_slot()  # drained: nothing is sent
            anvil.set_balance(pubs[0].address, ETH)
            await publish_slot()  # one funded again: it pays, the missed duty recovers
            with trio.fail_after(10):
                while not any(
                    a.kind == "missed_duty" and a.status == "resolved" for a in funds.alerter.delivered
                ):
                    await trio.sleep(0.05)
            n.cancel_scope.cancel()

    trio.run(scenario)
    events = rollup.client.block_proposed_events(0)
    by_slot = {e.slot: e for e in events}
    assert by_slot[slots[0]].publisher == pubs[1].address
    assert slots[1] not in by_slot  # a transaction it could not pay for was never sent
    assert by_slot[slots[2]].publisher == pubs[0].address
    sent = {
        p.address: int(anvil.rpc("eth_getTransactionCount", [p.address, "latest"]), 16)
        - int(nonces[p.address], 16)
        for p in pubs
    }
    assert sent == {pubs[0].address: 1, pubs[1].address: 1, pubs[2].address: 0}
    assert _count(metrics, "mined") == 2 and _count(metrics, "no_publisher") == 1
    assert funds.pool.pending() == {}  # every publisher released once its transaction was mined
    missed = [(m["status"], m["details"]["slot"]) for m in webhook.messages() if m["alert"] == "missed_duty"]
    assert missed == [("firing", slots[1]), ("resolved", slots[2])]
    low = {(m["details"]["address"], m["status"]) for m in webhook.messages() if m["alert"] == "low_balance"}
    assert low == {(p.address, "firing") for p in pubs} | {(pubs[0].address, "resolved")}


def _keystore(tmp_path: Path, publishers_each: int) -> tuple[Path, list]:
    validators = generate_validators(2, publishers_each=publishers_each)
    doc = keystore_document([(v, range(publishers_each)) for v in validators])
    return write_keystore(tmp_path / "keystore.json", doc), validators


def _config(tmp_path: Path, keystore: Path, **funds):
    return build_config(
        keystore=keystore,
        l1_rpc_urls="http://127.0.0.1:9",
        rollup="0x" + "11" * 20,
        data_dir=tmp_path / "data",
        ha_db=None,
        node_id="n1",
        network="devnet",
        host="127.0.0.1",
        port=0,
        p2p_port=0,
        p2p_host="127.0.0.1",
        bootstrap_nodes=None,
        allow_insecure_keystore=False,
        keystore_password_file=None,
        keystore_password=None,
        funds=FundsSettings(**funds) if funds else None,
    )


def test_status_and_start_up_log_list_every_publisher(tmp_path: Path, caplog) -> None:
    path, validators = _keystore(tmp_path, publishers_each=3)
    config = _config(tmp_path, path)
    keystore = load_keystore(path)
    expected = [p.address for v in validators for p in v.publishers]
    assert len(set(expected)) == 6

    node = Node(config, keystore, RollupClient(["http://127.0.0.1:9"], config.rollup))
    status = node.status_report()
    assert status["publishers"] == expected
    assert [p["address"] for p in status["funds"]["publishers"]] == expected
    assert {p["state"] for p in status["funds"]["publishers"]} == {"UNKNOWN"}  # not read yet: no reason
    assert not any(r.startswith(("low_funds", "cannot_pay")) for r in status["reasons"])
    assert node.funds.pool.publishers == expected

    with caplog.at_level(logging.INFO, logger="ha_sequencer.node"):
        log_startup(config, keystore)
    for v in validators:
        line = next(r.getMessage() for r in caplog.records if v.address in r.getMessage())
        assert all(p.address in line for p in v.publishers), line
    for secret in (p.key.hex().removeprefix("0x") for v in validators for p in v.publishers):
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("funds", "message"),
    [
        ({"min_eth": "lots"}, "--min-balance"),
        ({"min_eth": "0.2", "warn_eth": "0.1"}, "--warn-balance/--min-balance"),
        ({"warn_eth": "-1"}, "--warn-balance"),
        ({"topup_threshold_eth": "0.1", "topup_amount_eth": "0"}, "--topup-amount"),
        ({"topup_threshold_eth": "x"}, "--topup-threshold"),
        ({"check_interval_s": 0}, "--balance-check-interval"),
        ({"alert_webhook": "ftp://example.com/secret-token"}, "--alert-webhook"),
    ],
)
def test_bad_funds_flags_stop_the_node_before_it_starts(tmp_path: Path, funds, message) -> None:
    path, _ = _keystore(tmp_path, publishers_each=1)
    with pytest.raises(InputError) as info:
        _config(tmp_path, path, **funds)
    assert str(info.value).startswith(message)
    assert info.value.exit_code == 2
    assert "secret-token" not in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_funds_flags_reach_the_config(tmp_path: Path) -> None:
    path, _ = _keystore(tmp_path, publishers_each=1)
    config = _config(tmp_path, path, min_eth="0.2", warn_eth="0.3", topup_threshold_eth="0.25")
    assert config.funds.min_eth == "0.2" and config.funds.topup_threshold_eth == "0.25"
    assert _config(tmp_path, path).funds == FundsSettings()
    node = Node(config, load_keystore(path), RollupClient(["http://127.0.0.1:9"], config.rollup))
    assert node.funds.status_section()["minEth"] == "0.200000000000000000"
    assert node.funds.status_section()["topUp"] is None  # no fundingAccount in the keystore: top-ups off


def test_a_refused_attestation_alerts_once_and_recovers_a_refused_proposal_does_not(
    tmp_path: Path, webhook
) -> None:
    from ha_sequencer.ha.outcomes import DutyType, NewSignature, Refused
    from ha_sequencer.node.scheduler import Identity, Scheduler

    attester = Account.from_key(keccak(b"wiring attester"))
    funds = FundsService(
        wallet=L1Wallet("http://127.0.0.1:9"),  # never called: only alerts here
        publishers={attester.address: [attester]},
        registry=None,
        node_id="wired",
        settings=FundsSettings(alert_webhook=webhook.url),
    )
    store = open_store(f"sqlite:///{tmp_path / 'duties.sqlite'}", migrate=True)
    guard = DutyGuard(store, node_id="wired", rollup="0x" + "22" * 20)
    scheduler = Scheduler(
        params=None,
        # slot 5 is the current slot of a 600 s clock: every duty here is far from its deadline
        clock=SlotClock(SlotTiming(int(time.time()) - 5 * 600, 600)),
        chain=None,
        sync=None,
        committees=None,
        mempool=None,
        guard=guard,
        publisher=None,
        metrics=NodeMetrics(),
        identities=[Identity.from_account(attester, bytes(32))],
        publish_gossip=None,
        alerts=funds,
    )
    identity = scheduler.identities[attester.address]
    outcomes = []

    async def scenario() -> None:
        async with trio.open_nursery() as n:
            await n.start(funds.alerter.run)
            for slot, duty, digest in [
                (5, DutyType.ATTESTATION, b"\x01" * 32),
                (5, DutyType.ATTESTATION, b"\x02" * 32),  # a second block for slot 5: refused, alert
                (5, DutyType.ATTESTATION, b"\x03" * 32),  # refused again: the same condition, no new alert
                (6, DutyType.BLOCK_PROPOSAL, b"\x04" * 32),
                (6, DutyType.BLOCK_PROPOSAL, b"\x05" * 32),  # a twin's proposal: routine, no alert
                (6, DutyType.ATTESTATION, b"\x06" * 32),  # signed normally: recovery notice
            ]:
                outcomes.append(await scheduler._sign(identity, slot, duty, digest, b"payload"))
            with trio.fail_after(10):
                while len(funds.alerter.delivered) < 2:
                    await trio.sleep(0.05)
            await trio.sleep(0.2)  # nothing else arrives
            n.cancel_scope.cancel()

    trio.run(scenario)
    assert [type(o) for o in outcomes] == [
        NewSignature,
        Refused,
        Refused,
        NewSignature,
        Refused,
        NewSignature,
    ]
    got = [(m["alert"], m["status"], m["details"]["slot"], m["details"]["duty"]) for m in webhook.messages()]
    assert got == [
        ("signature_refused", "firing", 5, "attestation"),
        ("signature_refused", "resolved", 6, "attestation"),
    ]
    assert webhook.messages()[0]["details"]["existingDigest"] == "0x" + "01" * 32

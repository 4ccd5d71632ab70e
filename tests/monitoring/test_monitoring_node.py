"""A real node with drained publishers: it warns, refuses to send, /status says why; a top-up clears it."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import pytest
from eth_account import Account

from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import LocalNet, generate_validators, keystore_document, write_keystore

pytestmark = pytest.mark.slow

ETH = 10**18
SLOT = 3


def wait_until(what: str, predicate, timeout: float, node=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = node.log_text()[-4000:] if node is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_drained_publishers_refuse_to_send_and_a_top_up_clears_it(webhook) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hasq-funds-e2e-"))
    validators = generate_validators(4)
    funder = Account.create()
    with LocalNet(workdir, slot_duration=SLOT, epoch_length=8, committee_size=4) as net:
        rollup = net.deploy(validators)
        node = net.add_node(
            "solo",
            [(v, [0]) for v in validators],
            extra_args=[
                "--topup-threshold",
                "0.15",
                "--topup-amount",
                "1",
                "--balance-check-interval",
                "0.5",
                "--alert-webhook",
                webhook.url,
            ],
        )
        document = keystore_document([(v, [0]) for v in validators])
        document["fundingAccount"] = "0x" + funder.key.hex().removeprefix("0x")
        node.keystore.unlink()
        write_keystore(node.keystore, document)
        anvil = net.anvil
        anvil.set_balance(funder.address, 0)
        net.start()
        net.wait_ready(timeout=60)
        client = RollupClient(net.l1_urls, rollup)
        start_height = client.tips().block_number
        wait_until("blocks on L1", lambda: client.tips().block_number >= start_height + 2, 30, node)

        publishers = [v.publishers[0].address for v in validators]
        for address in publishers:
            anvil.set_balance(address, ETH // 1000)

        def refused():
            code, status = node.status()
            return (code, status) if any(r.startswith("cannot_pay") for r in status["reasons"]) else None

        code, status = wait_until("/status to report the refusal", refused, 20, node)
        assert code == 503
        reasons = status["reasons"]
        for address in publishers:
            assert f"low_funds: publisher {address} has 0.001 ETH, below the minimum 0.1 ETH" in reasons
        assert any(
            r.startswith(f"funding_account: funding account {funder.address} has 0 ETH") for r in reasons
        )
        assert {p["state"] for p in status["funds"]["publishers"]} == {"CRITICAL"}
        stalled = client.tips().block_number
        time.sleep(2 * SLOT)
        assert client.tips().block_number == stalled  # nothing was sent that could not be paid for
        assert re.search(r'hasq_l1_submissions_total\{result="no_publisher"\} [1-9]', node.metrics())
        assert re.search(rf'publisher_balance_eth\{{address="{publishers[0]}"\}} 0\.001', node.metrics())
        log = node.log_text()
        assert "below the minimum 0.1 ETH" in log and "proposal not submitted" in log

        anvil.set_balance(funder.address, 100 * ETH)  # the operator funds the funding account
        wait_until("a healthy /status", lambda: node.status()[0] == 200, 30, node)
        wait_until("blocks again", lambda: client.tips().block_number >= stalled + 2, 30, node)
        status = node.status()[1]
        assert {p["state"] for p in status["funds"]["publishers"]} == {"OK"}
        assert status["funds"]["topUp"]["done"] == 4
        for address in publishers:  # 1 ETH arrived; a few proposals' gas may have been spent since
            assert int(anvil.rpc("eth_getBalance", [address, "latest"]), 16) > 9 * ETH // 10
        log = node.log_text()
        assert log.count("topped up publisher") == 4
        assert funder.key.hex().removeprefix("0x") not in log

        def recovered():
            got = webhook.messages()
            done = [m for m in got if m["alert"] == "low_balance" and m["status"] == "resolved"]
            return got if len(done) == len(publishers) else None

        messages = wait_until("the recovery notices", recovered, 10)
        low = [(m["condition"], m["status"]) for m in messages if m["alert"] == "low_balance"]
        assert sorted(low) == sorted(
            [(f"low_balance:{a}", s) for a in publishers for s in ("firing", "resolved")]
        )
        missed = [m["status"] for m in messages if m["alert"] == "missed_duty"]
        assert missed[:1] == ["firing"] and missed.count("firing") <= len(validators)
        assert webhook.paths and "secret-token-123" not in log

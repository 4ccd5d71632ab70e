"""The shared fixtures of tests/conftest.py work as documented (other packages' tests build on them)."""

from __future__ import annotations

import time

from ha_sequencer.localnet.rollup import LocalRollup


def test_deployed_rollup_fixture(deployed_rollup: LocalRollup) -> None:
    r = deployed_rollup
    p = r.params
    assert (p.slot_duration, p.epoch_length, p.committee_size, p.chain_id) == (4, 8, 4, 31337)
    assert abs(p.genesis_time - time.time()) < 30  # genesis at deployment: real-time nodes can follow it
    assert r.client.active_attesters(0) == [v.address for v in r.validators]
    assert sorted(r.client.epoch_committee(0)) == sorted(v.address for v in r.validators)
    assert r.client.proposer(3) == r.proposer(3)
    slot = r.client.current_slot() + 1
    r.warp_to_slot(slot)
    receipt = r.propose(r.sign_block(slot, txs=b"t"))
    assert receipt["status"] == 1 and r.client.tips().last_slot == slot


def test_rollup_factory_fixture(rollup_factory) -> None:
    r = rollup_factory(validators=7, committee_size=5, epoch_length=2)
    assert len(r.client.epoch_committee(3)) == 5 and r.client.epoch_committee(3) == r.committee(3)

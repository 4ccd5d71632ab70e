"""`monitor` on a real anvil: blocks proposed through the L1 client, counts read back from L1 alone."""

from __future__ import annotations

import json

import pytest

from ha_sequencer.cli import main
from ha_sequencer.localnet.rollup import LocalRollup, deploy_local_rollup
from ha_sequencer.monitoring.duties import DutyMonitor
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.protocol.committee import quorum

SLOT = 60  # long slots: the current slot stays put while the test runs
LAST = 11  # blocks for slots 1..LAST (epochs 0, 1, 2 with 4-slot epochs), some skipped


@pytest.fixture(scope="module")
def chain(module_anvil):
    """A rollup with 6 validators (committees of 4) and a history of blocks; returns it with the truth."""
    r: LocalRollup = deploy_local_rollup(
        module_anvil, validators=6, committee_size=4, slot_duration=SLOT, epoch_length=4
    )
    watched = r.proposer(1)
    own_slots = [s for s in range(2, LAST + 1) if r.proposer(s) == watched]
    skip = {4, *own_slots[:1]}  # a slot nobody published, and (if any) one of the watched attester's own
    truth = {}  # slot -> (due_proposer, due_committee, proposed, attested, block)
    for slot in range(0, LAST + 1):
        committee = r.committee(r.params.epoch_of(slot))
        published = slot >= 1 and slot not in skip
        attesters: list[str] = []
        if published:
            others = [a for a in committee if a != watched]
            # the watched attester is left out of every other block it could have attested
            attesters = (
                others[: quorum(len(committee))] if slot % 2 == 0 else committee[: quorum(len(committee))]
            )
            r.warp_to_slot(slot)
            r.propose(r.sign_block(slot, attesters=attesters, txs=bytes([slot])))
        is_proposer = r.proposer(slot) == watched
        truth[slot] = (
            is_proposer,
            watched in committee,
            published and is_proposer,
            published and watched in attesters,
            published,
        )
    r.warp_to_slot(LAST + 1)
    return r, watched, truth


def expected_totals(truth: dict) -> dict:
    due = {s: t for s, t in truth.items() if t[0] or t[1]}
    return {
        "slots": len(truth),
        "proposerDuties": sum(t[0] for t in due.values()),
        "proposed": sum(t[2] for t in due.values()),
        "attestationDuties": sum(t[1] for t in due.values()),
        "attested": sum(t[3] for t in due.values()),
        "slotsWithoutBlock": sum(t[1] and not t[4] for t in due.values()),
    }


def test_report_matches_what_was_proposed(chain) -> None:
    r, watched, truth = chain
    monitor = DutyMonitor(r.client, L1Wallet(r.rpc_url))
    report = monitor.last_slots(watched, LAST + 1)
    assert (report.from_slot, report.to_slot) == (0, LAST)
    due = {s: t for s, t in truth.items() if t[0] or t[1]}
    assert [d.slot for d in report.duties] == sorted(due)
    for d in report.duties:
        is_proposer, in_committee, proposed, attested, block = due[d.slot]
        assert (d.proposer, d.committee, d.block) == (is_proposer, in_committee, block)
        assert d.proposed == (proposed if is_proposer else None)
        assert d.attested == (attested if in_committee else None)
    totals = report.totals.as_json()
    assert {k: totals[k] for k in expected_totals(truth)} == expected_totals(truth)
    assert totals["proposed"] >= 1 and totals["attested"] >= 1
    assert totals["attested"] < totals["attestationDuties"]  # the left-out attestations show as missed
    # and the events on chain say the same
    events = {e.slot: e for e in r.client.block_proposed_events(0)}
    assert sorted(events) == sorted(s for s, t in truth.items() if t[4])
    assert totals["attested"] == sum(watched in e.attesters for s, e in events.items() if truth[s][1])
    assert totals["proposed"] == sum(e.proposer == watched for e in events.values())


def test_a_sub_window_counts_only_its_slots(chain) -> None:
    r, watched, truth = chain
    report = DutyMonitor(r.client, L1Wallet(r.rpc_url)).report(watched, 5, 8)
    sub = {s: t for s, t in truth.items() if 5 <= s <= 8}
    assert [d.slot for d in report.duties] == sorted(s for s, t in sub.items() if t[0] or t[1])
    assert report.totals.slots == 4


def test_monitor_command(chain, capsys) -> None:
    r, watched, truth = chain
    args = ["monitor", "--attester", watched.lower(), "--rpc-url", r.rpc_url, "--rollup", r.address]
    with pytest.raises(SystemExit) as info:
        main([*args, "--slots", str(LAST + 1), "--json"])
    assert info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["attester"] == watched and doc["rollup"] == r.address
    assert {k: doc["totals"][k] for k in expected_totals(truth)} == expected_totals(truth)
    with pytest.raises(SystemExit):
        main([*args, "--slots", str(LAST + 1)])
    out = capsys.readouterr().out
    t = expected_totals(truth)
    assert f"proposed {t['proposed']}/{t['proposerDuties']}" in out
    assert f"attested {t['attested']}/{t['attestationDuties']}" in out
    with pytest.raises(SystemExit) as info:
        main(["monitor", "--attester", "nope", "--rpc-url", r.rpc_url, "--rollup", r.address])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["monitor", "--attester", watched, "--rpc-url", r.rpc_url, "--rollup", watched])
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # the CLI's console wraps long lines
    assert f"--rollup {watched}: no Rollup contract answers at this address" in err

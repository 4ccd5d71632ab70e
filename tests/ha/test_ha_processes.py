"""Real OS processes racing on one store (SQLite file or PostgreSQL database): injected faults, kill -9."""

from __future__ import annotations

import signal
import threading

import pytest
from eth_account import Account

from ha_sequencer.bench.guard import audit, digest_for, duty_of, payload_for, run_race
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.faults import FAULT_ENV, MID_DUTY_POINTS
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import Adopted, NewSignature, Refused, SameData

pytestmark = pytest.mark.slow

# Faults between check and record in every racer: short stalls, and store errors that abandon a signed claim.
RACE_FAULTS = "after_claim:delay:0.002%0.03,before_record:delay:0.005%0.03,before_record:raise%0.01"


def _check_store_matches(store, result, duties: int) -> None:
    rows, _ = store.export_rows(result.rollup.lower())
    assert len(rows) == duties
    by_duty = {(r["slot"], r["duty_type"]): r for r in rows}
    for row in rows:
        assert row["status"] == "signed", row["slot"]
        assert Account._recover_hash(row["digest"], signature=row["signature"]) == result.attester
        assert row["payload"] == payload_for(row["digest"])
    for lines in result.traces.values():
        for t in lines:
            if t["signature"]:
                row = by_duty[(t["slot"], t["duty_type"])]
                assert (bytes.fromhex(t["digest"]), bytes.fromhex(t["signature"])) == (
                    row["digest"],
                    row["signature"],
                )


def test_three_processes_race_on_a_thousand_duties(store_url):
    open_store(store_url, migrate=True).close()
    duties = 1000
    # node-2 is kill -9'd after signing its first claimed duty from slot 600 on (or, if it claims none,
    # on reaching slot 650): the others finish the run.
    victim_env = {FAULT_ENV: RACE_FAULTS + ",after_sign:kill@600+,before_claim:kill@650+"}
    result = run_race(
        store_url,
        nodes=3,
        duties=duties,
        p_same=0.5,
        lease_s=0.2,
        env={FAULT_ENV: RACE_FAULTS},
        per_node_env={"node-2": victim_env},
    )
    assert result.returncodes == {"node-0": 0, "node-1": 0, "node-2": -signal.SIGKILL}
    assert 598 <= len(result.traces["node-2"]) <= 649
    report = audit(result)
    assert report["duties"] == duties
    assert report["equivocations"] == 0
    assert report["signature_mismatches"] == 0
    assert report["unsigned"] == 0
    # Every duty was recorded exactly once, by its claimant or by one adopter.
    assert report["new_signature"] + report["adopted"] == duties
    assert report["same_data"] > 0 and report["refused"] > 0
    assert report["adopted"] > 0  # the injected store errors left claims for peers to finish
    store = open_store(store_url)
    try:
        _check_store_matches(store, result, duties)
    finally:
        store.close()


def _killed_in_slot_5(store_url: str, point: str):
    """One racer over duties 1…8 that its guard kills -9 at `point` of slot 5's duty."""
    open_store(store_url, migrate=True).close()
    account = Account.create()
    slot, duty_type = duty_of(4, 1)
    result = run_race(
        store_url,
        nodes=1,
        duties=8,
        p_same=1.0,
        lease_s=0.2,
        key=account.key,
        per_node_env={"node-0": {FAULT_ENV: f"{point}:kill@{slot}"}},
    )
    assert result.returncodes["node-0"] == -signal.SIGKILL
    assert [t["slot"] for t in result.traces["node-0"]] == [1, 2, 3, 4]  # died inside slot 5's duty
    return account, slot, duty_type, result


def _signer(account, calls: list[bytes]):
    def sign(digest: bytes) -> bytes:
        calls.append(digest)
        return bytes(Account.unsafe_sign_hash(digest, account.key).signature)

    return sign


@pytest.mark.parametrize("point", MID_DUTY_POINTS)
def test_kill_9_claimant_then_a_peer_adopts(store_url, point):
    account, slot, duty_type, result = _killed_in_slot_5(store_url, point)
    store = open_store(store_url)
    calls: list[bytes] = []
    sign = _signer(account, calls)
    theirs = digest_for(slot, duty_type, "shared")
    outs: list = []

    def survivor(i: int) -> None:
        g = DutyGuard(store, node_id=f"survivor-{i}", rollup=result.rollup, lease_s=1.0)
        mine = digest_for(slot, duty_type, f"survivor-{i}")  # each survivor wants a different message
        outs.append(g.sign_duty(account.address, slot, duty_type, mine, payload_for(mine), sign))

    try:
        threads = [threading.Thread(target=survivor, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        adopted = [o for o in outs if isinstance(o, Adopted)]
        assert len(adopted) == 1, outs
        assert adopted[0].payload == payload_for(theirs)
        assert Account._recover_hash(theirs, signature=adopted[0].signature) == account.address
        assert [o for o in outs if o is not adopted[0]] == [Refused(theirs)]
        assert calls == [theirs]  # nothing but the dead claimant's digest was ever signed
        rows = {(r["slot"], r["duty_type"]): r for r in store.export_rows(result.rollup.lower())[0]}
        row = rows[(slot, duty_type.value)]
        assert (row["status"], row["digest"], row["signature"]) == ("signed", theirs, adopted[0].signature)
        # Done once: later callers get the recorded signature, whatever they wanted.
        late = DutyGuard(store, node_id="late", rollup=result.rollup)
        assert late.sign_duty(account.address, slot, duty_type, theirs, b"", sign) == SameData(
            adopted[0].signature
        )
        nxt = late.sign_duty(account.address, slot + 1, duty_type, theirs, b"", sign)
        assert isinstance(nxt, NewSignature)
    finally:
        store.close()


def test_kill_9_after_the_record_leaves_only_the_stored_signature_to_send(store_url):
    """A process killed -9 between its record and the signature's release: the row is signed in its name,
    it released nothing, and a peer gets that signature back (same message) or a refusal (another one),
    never a signature of its own; `recorded` hands a twin the stored message to send."""
    account, slot, duty_type, result = _killed_in_slot_5(store_url, "after_record")
    store = open_store(store_url)
    calls: list[bytes] = []
    sign = _signer(account, calls)
    theirs = digest_for(slot, duty_type, "shared")
    try:
        rows = {(r["slot"], r["duty_type"]): r for r in store.export_rows(result.rollup.lower())[0]}
        row = rows[(slot, duty_type.value)]
        assert (row["status"], row["digest"], row["node_id"]) == ("signed", theirs, "node-0")
        assert Account._recover_hash(theirs, signature=row["signature"]) == account.address
        twin = DutyGuard(store, node_id="twin", rollup=result.rollup)
        mine = digest_for(slot, duty_type, "twin")
        assert twin.sign_duty(account.address, slot, duty_type, mine, b"", sign) == Refused(theirs)
        assert twin.sign_duty(account.address, slot, duty_type, theirs, b"", sign) == SameData(
            row["signature"]
        )
        stored = twin.recorded(account.address, slot, duty_type)
        assert stored is not None and (stored.digest, stored.signature) == (theirs, row["signature"])
        assert stored.payload == payload_for(theirs)
        assert calls == []  # no key was used: the duty was already signed
    finally:
        store.close()

"""`DutyGuard.sign_duties`: a slot's duties of several identities in one claim and one record transaction,
with every per-duty rule of `sign_duty` kept (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from test_ha_guard import ROLLUP, Signer, d

from ha_sequencer.ha.guard import DutyGuard, DutyRequest
from ha_sequencer.ha.killswitch import KillSwitch
from ha_sequencer.ha.outcomes import (
    Busy,
    DutyType,
    Halted,
    LostClaim,
    NewSignature,
    Refused,
    SameData,
    signature_of,
)

A = DutyType.ATTESTATION


def _req(signer: Signer, slot: int, tag: str) -> DutyRequest:
    return DutyRequest(signer.address, slot, A, d(tag), b"payload:" + tag.encode(), signer)


def test_a_batch_claims_and_records_in_one_transaction_each(store) -> None:
    signers = [Signer() for _ in range(5)]
    calls: list[str] = []
    claim_many, record_many = store.claim_many, store.record_many
    store.claim_many = lambda *a: (calls.append("claim_many"), claim_many(*a))[1]
    store.record_many = lambda *a: (calls.append("record_many"), record_many(*a))[1]
    store.claim = store.record = None  # the batch never falls back to the single statements
    guard = DutyGuard(store, node_id="n1", rollup=ROLLUP)
    outcomes = guard.sign_duties([_req(s, 7, "block") for s in signers])
    assert calls == ["claim_many", "record_many"]
    for s, outcome in zip(signers, outcomes, strict=True):
        assert isinstance(outcome, NewSignature)
        assert s.recover(d("block"), outcome.signature) == s.address
    # a twin asking for the same duties afterwards gets the same signatures back, signing nothing
    twin = DutyGuard(store, node_id="n2", rollup=ROLLUP)
    again = twin.sign_duties([_req(s, 7, "block") for s in signers])
    assert [type(o) for o in again] == [SameData] * 5
    assert [signature_of(o) for o in again] == [signature_of(o) for o in outcomes]
    assert all(len(s.calls) == 1 for s in signers)


def test_each_duty_of_a_batch_keeps_its_own_answer_and_a_halt_gates_only_its_attester(store) -> None:
    same, other, halted, fresh = Signer(), Signer(), Signer(), Signer()
    peer = DutyGuard(store, node_id="peer", rollup=ROLLUP)
    assert isinstance(peer.sign_duty(same.address, 9, A, d("b"), b"p", same), NewSignature)
    assert isinstance(peer.sign_duty(other.address, 9, A, d("theirs"), b"p", other), NewSignature)
    assert KillSwitch(store, rollup=ROLLUP, node_id="detector").halt(halted.address, 8, A, "foreign", "{}")
    guard = DutyGuard(store, node_id="me", rollup=ROLLUP, wait_s=0.2)
    out = guard.sign_duties(
        [_req(same, 9, "b"), _req(other, 9, "ours"), _req(halted, 9, "b"), _req(fresh, 9, "b")]
    )
    assert isinstance(out[0], SameData)
    assert isinstance(out[1], Refused) and out[1].existing_digest == d("theirs")
    assert out[2] == Halted("foreign")
    assert isinstance(out[3], NewSignature)
    assert halted.calls == [] and other.calls == [d("theirs")]  # nothing signed for the halted or refused


def test_a_halt_committed_between_claim_and_record_answers_halted_for_that_attester_only(store) -> None:
    victim, bystander = Signer(), Signer()
    switch = KillSwitch(store, rollup=ROLLUP, node_id="detector")

    def halt_before_record(point: str, slot: int) -> None:
        if point == "before_record":
            switch.halt(victim.address, slot, A, "foreign mid-batch", "{}")

    guard = DutyGuard(store, node_id="me", rollup=ROLLUP, fault_hook=halt_before_record)
    out = guard.sign_duties([_req(victim, 5, "b"), _req(bystander, 5, "b")])
    # the victim's signature was made but its record is gated: it never leaves; the other identity's does
    assert out[0] == Halted("foreign mid-batch")
    assert isinstance(out[1], NewSignature)


def test_racing_batches_never_sign_two_digests_for_one_duty(store) -> None:
    signers = [Signer() for _ in range(4)]
    results: dict[str, list] = {}

    def node(name: str) -> None:
        guard = DutyGuard(store, node_id=name, rollup=ROLLUP, lease_s=5.0)
        out = []
        for slot in range(20, 30):
            out += guard.sign_duties([_req(s, slot, f"{name}-{slot}") for s in signers])
        results[name] = out

    threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3
    for s in signers:
        for slot in range(20, 30):
            asked = [c for c in s.calls if c in {d(f"n{i}-{slot}") for i in range(3)}]
            assert len(set(asked)) == 1, (s.address, slot, asked)  # one digest per duty, ever
    for out in results.values():
        assert all(isinstance(o, NewSignature | SameData | Refused | Busy | LostClaim) for o in out)

"""The fleet-wide halt in the store and the guard (each test runs on SQLite and PostgreSQL): a halted attester
gets no claim, no adoption, no record, not even a stored signature back; other attesters go on; only an
operator's resume lifts it, recorded with who and why."""

from __future__ import annotations

import json
import time

from test_ha_guard import ROLLUP, Signer, d

from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.killswitch import Foreign, KillSwitch, NotJudged, Ours, in_horizon, judge
from ha_sequencer.ha.outcomes import (
    DutyStatus,
    DutyType,
    Halted,
    NewSignature,
    SameData,
    signature_of,
)
from ha_sequencer.ha.store import DutyKey, DutyRow, Existing

A = DutyType.ATTESTATION
P = DutyType.BLOCK_PROPOSAL


def _guard(store, node_id: str, **kw) -> DutyGuard:
    return DutyGuard(store, node_id=node_id, rollup=ROLLUP, **kw)


def _switch(store, node_id: str = "detector") -> KillSwitch:
    return KillSwitch(store, rollup=ROLLUP, node_id=node_id)


def test_a_halt_stops_every_guard_call_of_that_attester_until_resumed(store) -> None:
    signer, other = Signer(), Signer()
    a, b = _guard(store, "a"), _guard(store, "b")
    first = a.sign_duty(signer.address, 10, A, d("x"), b"p", signer)
    assert isinstance(first, NewSignature)

    assert _switch(store).halt(signer.address, 11, A, "foreign signature for slot 11", '{"e": 1}')
    assert not _switch(store, "another").halt(signer.address, 11, A, "again", "{}")  # one active halt

    calls = len(signer.calls)
    assert b.sign_duty(signer.address, 12, A, d("y"), b"p", signer) == Halted("foreign signature for slot 11")
    assert b.sign_duty(signer.address, 12, P, d("z"), b"p", signer) == Halted("foreign signature for slot 11")
    # not even the stored signature of an already signed duty comes back
    assert isinstance(b.sign_duty(signer.address, 10, A, d("x"), b"p", signer), Halted)
    assert len(signer.calls) == calls  # nothing was signed while halted
    # another attester on the same store goes on
    assert isinstance(a.sign_duty(other.address, 12, A, d("o"), b"p", other), NewSignature)

    [halt] = store.active_halts(ROLLUP.lower(), [signer.address.lower()])
    assert (halt.attester, halt.slot, halt.duty_type, halt.node_id) == (
        signer.address.lower(),
        11,
        "attestation",
        "detector",
    )
    assert store.active_halts(ROLLUP.lower(), [other.address.lower()]) == []
    assert [h.id for h in store.status().halts] == [halt.id]

    assert store.resume(None, signer.address.lower(), "ops@host", "rogue box wiped") == 1
    assert store.resume(None, signer.address.lower(), "ops@host", "twice") == 0
    assert store.active_halts(ROLLUP.lower(), [signer.address.lower()]) == []
    [done] = store.halts()
    assert (done.resumed_by, done.resume_reason, done.active) == ("ops@host", "rogue box wiped", False)
    assert done.resumed_at is not None and done.resumed_at >= done.halted_at
    assert isinstance(b.sign_duty(signer.address, 12, A, d("y"), b"p", signer), NewSignature)
    assert b.sign_duty(signer.address, 10, A, d("x"), b"p", signer) == SameData(first.signature)
    # a new foreign signature later halts again
    assert _switch(store).halt(signer.address, 20, P, "second incident", "{}")
    assert len(store.halts()) == 2


def test_a_halt_between_signing_and_recording_drops_the_signature(store) -> None:
    signer = Signer()

    def halt_after_signing(point: str, slot: int) -> None:
        if point == "after_sign":
            _switch(store).halt(signer.address, slot, A, "halted mid-duty", "{}")

    g = _guard(store, "a", fault_hook=halt_after_signing)
    out = g.sign_duty(signer.address, 5, A, d("x"), b"p", signer)
    assert out == Halted("halted mid-duty")
    assert signature_of(out) is None
    row = store.fetch(DutyKey(ROLLUP.lower(), signer.address.lower(), 5, A.value)).row
    assert row is not None and row.status is DutyStatus.SIGNING and row.signature is None  # never recorded


def test_a_halted_attesters_expired_claim_is_not_adopted(store) -> None:
    signer = Signer()
    dead = _guard(store, "dead", lease_s=0.05)

    def die_after_claim(point: str, slot: int) -> None:
        if point == "after_claim":
            raise RuntimeError("claimant died")

    _guard(store, "dead", lease_s=0.05, fault_hook=die_after_claim).sign_duty(
        signer.address, 6, A, d("x"), b"p", signer
    )
    del dead
    time.sleep(0.1)  # the lease expires
    _switch(store).halt(signer.address, 6, A, "halted", "{}")
    out = _guard(store, "survivor", wait_s=0.2).sign_duty(signer.address, 6, A, d("x"), b"p", signer)
    assert out == Halted("halted")
    assert signer.calls == [d("x")] or signer.calls == []  # the dead claimant's own attempt at most


def test_the_kill_switch_tells_ours_from_foreign_from_the_store(store) -> None:
    signer = Signer()
    g = _guard(store, "a")
    g.sign_duty(signer.address, 30, A, d("ours"), b"p", signer)
    ks = _switch(store)
    assert ks.check(signer.address, 30, A, d("ours")) == Ours()
    foreign = ks.check(signer.address, 30, A, d("theirs"))
    assert isinstance(foreign, Foreign) and foreign.ours is not None and foreign.ours.digest == d("ours")
    assert ks.check(signer.address, 31, A, d("theirs")) == Foreign(None)  # nothing signed here at all
    # history pruned: a replay of our own old message cannot be told from a foreign one, so it is not judged
    store.prune(30)
    assert isinstance(ks.check(signer.address, 30, A, d("ours")), NotJudged)
    assert isinstance(ks.check(signer.address, 30, A, d("theirs")), NotJudged)


def test_judge_is_pure_and_gives_the_benefit_of_the_doubt_to_a_same_digest_claim() -> None:
    signing = DutyRow(DutyStatus.SIGNING, d("x"), b"p")
    signed = DutyRow(DutyStatus.SIGNED, d("x"), b"p", signature=b"s" * 65)
    assert judge(Existing(signing, None), 5, d("x")) == Ours()
    assert judge(Existing(signed, None), 5, d("x")) == Ours()
    assert judge(Existing(signed, None), 5, d("y")) == Foreign(signed)
    assert judge(Existing(None, 4), 5, d("y")) == Foreign(None)  # above the watermark: judged
    assert isinstance(judge(Existing(None, 5), 5, d("y")), NotJudged)
    assert in_horizon(100, 100) and in_horizon(101, 100) and in_horizon(92, 100)
    assert not in_horizon(102, 100) and not in_horizon(91, 100)


def test_ha_db_lists_halts_with_their_evidence_and_resume_records_who_and_why(store, store_url) -> None:
    from typer.testing import CliRunner

    from ha_sequencer.errors import InputError
    from ha_sequencer.ha.commands import app as ha_db_app

    signer = Signer()
    evidence = '{"kind": "attestation", "slashing": {"function": "slashDuplicateAttestation"}}'
    _switch(store).halt(signer.address, 11, A, "foreign signature for slot 11 (attestation)", evidence)
    runner = CliRunner()
    r = runner.invoke(ha_db_app, ["status", "--db", store_url])
    assert r.exit_code == 0, r.output
    assert (
        f"HALTED:      {signer.address.lower()}" in r.output and "foreign signature for slot 11" in r.output
    )
    r = runner.invoke(ha_db_app, ["halts", "--db", store_url, "--json"])
    assert r.exit_code == 0, r.output
    [doc] = json.loads(r.output)
    assert doc["active"] and doc["evidence"]["slashing"]["function"] == "slashDuplicateAttestation"

    r = runner.invoke(ha_db_app, ["resume", "--db", store_url, "--attester", "0x12", "--reason", "x"])
    assert isinstance(r.exception, InputError) and "--attester" in str(r.exception)
    r = runner.invoke(ha_db_app, ["resume", "--db", store_url, "--attester", signer.address, "--reason", " "])
    assert isinstance(r.exception, InputError) and "--reason" in str(r.exception)
    r = runner.invoke(
        ha_db_app, ["resume", "--db", store_url, "--attester", signer.address, "--reason", "rogue box wiped"]
    )
    assert r.exit_code == 0, r.output
    assert "rogue box wiped" in r.output
    r = runner.invoke(
        ha_db_app, ["resume", "--db", store_url, "--attester", signer.address, "--reason", "again"]
    )
    assert isinstance(r.exception, InputError) and "no active halt" in str(r.exception)
    r = runner.invoke(ha_db_app, ["halts", "--db", store_url])
    assert "resumed" in r.output and "rogue box wiped" in r.output
    assert isinstance(_guard(store, "a").sign_duty(signer.address, 12, A, d("y"), b"p", signer), NewSignature)

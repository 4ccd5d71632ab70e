"""The guard's semantics, identical on both stores (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.errors import InputError
from ha_sequencer.ha.faults import InjectedFault, parse_faults
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.metrics import GuardMetrics
from ha_sequencer.ha.outcomes import (
    Adopted,
    BelowWatermark,
    Busy,
    DutyType,
    LostClaim,
    NewSignature,
    Refused,
    SameData,
    StoreUnavailable,
    signature_of,
)
from ha_sequencer.ha.store import DutyKey

ROLLUP = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
A = DutyType.ATTESTATION
P = DutyType.BLOCK_PROPOSAL


class Signer:
    """A real secp256k1 attester key that remembers every digest it was asked to sign."""

    def __init__(self) -> None:
        self.account = Account.create()
        self.address = self.account.address
        self.calls: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, digest: bytes) -> bytes:
        with self._lock:
            self.calls.append(digest)
        return bytes(Account.unsafe_sign_hash(digest, self.account.key).signature)

    def recover(self, digest: bytes, signature: bytes) -> str:
        return Account._recover_hash(digest, signature=signature)


def d(tag: str) -> bytes:
    return keccak(tag.encode())


@pytest.fixture
def signer() -> Signer:
    return Signer()


def guard(store, node_id: str, **kw) -> DutyGuard:
    return DutyGuard(store, node_id=node_id, rollup=ROLLUP, **kw)


def test_new_then_same_data_then_refused(store, signer):
    a, b = guard(store, "a"), guard(store, "b")
    first = a.sign_duty(signer.address, 7, A, d("x"), b"px", signer)
    assert isinstance(first, NewSignature)
    assert signer.recover(d("x"), first.signature) == signer.address
    again = b.sign_duty(signer.address, 7, A, d("x"), b"px", signer)
    assert again == SameData(first.signature)
    other = b.sign_duty(signer.address, 7, A, d("y"), b"py", signer)
    assert other == Refused(d("x"))
    assert signer.calls == [d("x")]  # same data is served from the store, nothing else was signed


def test_scope_includes_rollup_duty_type_and_attester(store, signer):
    other_signer = Signer()
    g = guard(store, "a")
    g2 = DutyGuard(store, node_id="a", rollup="0x" + "11" * 20)
    assert isinstance(g.sign_duty(signer.address, 1, A, d("1"), b"", signer), NewSignature)
    assert isinstance(g.sign_duty(signer.address, 1, P, d("2"), b"", signer), NewSignature)
    assert isinstance(g.sign_duty(other_signer.address, 1, A, d("3"), b"", other_signer), NewSignature)
    assert isinstance(g2.sign_duty(signer.address, 1, A, d("4"), b"", signer), NewSignature)
    # The attester's case does not open a second scope.
    assert g.sign_duty(signer.address.lower(), 1, A, d("5"), b"", signer) == Refused(d("1"))


def test_adoption_signs_only_the_stored_digest(store, signer):
    dead = DutyKey(ROLLUP.lower(), signer.address.lower(), 9, A.value)
    store.claim(dead, d("theirs"), b"their payload", "dead-node", "tok", 0.05)  # claimed, then the node died
    time.sleep(0.1)
    out = guard(store, "b", lease_s=0.2).sign_duty(signer.address, 9, A, d("mine"), b"my payload", signer)
    assert isinstance(out, Adopted)
    assert out.payload == b"their payload"
    assert signer.recover(d("theirs"), out.signature) == signer.address
    assert signer.calls == [d("theirs")]
    late = guard(store, "c").sign_duty(signer.address, 9, A, d("theirs"), b"", signer)
    assert late == SameData(out.signature)


def test_live_claim_is_waited_for_then_busy(store, signer):
    key = DutyKey(ROLLUP.lower(), signer.address.lower(), 3, P.value)
    store.claim(key, d("p"), b"", "slow-node", "tok", 30.0)  # alive and slow: lease far in the future
    out = guard(store, "b", wait_s=0.1).sign_duty(signer.address, 3, P, d("p"), b"", signer)
    assert out == Busy("slow-node")
    assert signer.calls == []


def test_lease_is_judged_by_the_store_clock_not_the_node(store, signer, monkeypatch):
    # Nodes on several hosts disagree about the time; only the store's clock may say a claimant is dead.
    key = DutyKey(ROLLUP.lower(), signer.address.lower(), 13, P.value)
    store.claim(key, d("p"), b"pp", "peer", "tok", 30.0)  # alive for 30 s by the store's clock
    ahead = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: ahead)  # this node's wall clock runs an hour ahead
    out = guard(store, "b", wait_s=0.1).sign_duty(signer.address, 13, P, d("p"), b"", signer)
    assert out == Busy("peer")
    assert signer.calls == []


def test_waiter_gets_the_peer_signature_when_it_records(store, signer):
    key = DutyKey(ROLLUP.lower(), signer.address.lower(), 4, P.value)
    store.claim(key, d("p"), b"", "peer", "tok", 30.0)
    sig = signer(d("p"))
    timer = threading.Timer(0.1, lambda: store.record(key, "tok", sig))
    timer.start()
    out = guard(store, "b", wait_s=5).sign_duty(signer.address, 4, P, d("p"), b"", signer)
    timer.join()
    assert out == SameData(sig)


def test_slow_claimant_loses_its_claim_and_discards_its_signature(store, signer):
    # The claimant stalls between sign and record past its lease; a peer adopts; the stale record fails.
    at_record, adopted = threading.Event(), threading.Event()

    def stall(point: str, slot: int) -> None:
        if point == "before_record":
            at_record.set()
            adopted.wait(10)

    slow = guard(store, "slow", lease_s=0.1, fault_hook=stall)
    result: list = []
    t = threading.Thread(
        target=lambda: result.append(slow.sign_duty(signer.address, 5, A, d("s"), b"ps", signer))
    )
    t.start()
    assert at_record.wait(10)
    fast = guard(store, "fast", lease_s=5, wait_s=10)
    adopter = fast.sign_duty(signer.address, 5, A, d("other"), b"", signer)  # waits out the lease
    adopted.set()
    t.join()
    assert isinstance(adopter, Adopted) and adopter.payload == b"ps"
    assert result == [LostClaim("fast")]
    assert signature_of(result[0]) is None
    assert set(signer.calls) == {d("s")}


def test_store_error_between_sign_and_record_fails_closed(store, signer):
    g = guard(store, "a", lease_s=0.1, fault_hook=parse_faults("before_record:raise@11"))
    out = g.sign_duty(signer.address, 11, A, d("a"), b"pa", signer)
    assert isinstance(out, StoreUnavailable) and InjectedFault.__name__ in out.reason
    assert signature_of(out) is None
    # The duty is not lost: after the lease, any node (here the same one, recovered) adopts and finishes it.
    g = guard(store, "a", lease_s=0.1)
    again = g.sign_duty(signer.address, 11, A, d("a"), b"pa", signer)
    assert isinstance(again, NewSignature | Adopted)
    assert signer.recover(d("a"), signature_of(again)) == signer.address


def test_one_adopter_wins(store, signer):
    key = DutyKey(ROLLUP.lower(), signer.address.lower(), 12, A.value)
    store.claim(key, d("x"), b"px", "dead", "tok", 0.01)
    time.sleep(0.05)
    outs: list = []
    barrier = threading.Barrier(6)

    def run(i: int) -> None:
        g = guard(store, f"n{i}", lease_s=2)
        barrier.wait()
        outs.append(g.sign_duty(signer.address, 12, A, d(f"mine{i}"), b"", signer))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    adopted = [o for o in outs if isinstance(o, Adopted)]
    assert len(adopted) == 1
    assert all(isinstance(o, Refused) and o.existing_digest == d("x") for o in outs if o is not adopted[0])
    assert signer.calls == [d("x")]


def test_threads_race_without_equivocation(store, signer):
    outs: dict[tuple[int, str], list] = {}
    lock = threading.Lock()

    def run(i: int) -> None:
        g = guard(store, f"t{i}")
        for slot in range(40):
            digest = d(f"{slot}-shared") if (slot + i) % 2 else d(f"{slot}-{i}")
            o = g.sign_duty(signer.address, slot, A, digest, digest, signer)
            with lock:
                outs.setdefault((slot, "a"), []).append((digest, o))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for results in outs.values():
        signed = {(dg, signature_of(o)) for dg, o in results if signature_of(o) is not None}
        assert len({dg for dg, _ in signed}) == 1
        assert len({s for _, s in signed}) == 1
        assert sum(isinstance(o, NewSignature) for _, o in results) == 1


def test_watermark_after_prune(store, signer):
    g = guard(store, "a")
    for slot in (1, 2, 3, 10):
        assert isinstance(g.sign_duty(signer.address, slot, A, d(f"s{slot}"), b"", signer), NewSignature)
    report = store.prune(3)
    assert report.duties_deleted == 3
    assert report.watermarks == [(ROLLUP.lower(), signer.address.lower(), A.value, 3)]
    # Even the very digest signed before the prune is refused: the store no longer knows it.
    assert g.sign_duty(signer.address, 2, A, d("s2"), b"", signer) == BelowWatermark(3)
    assert g.sign_duty(signer.address, 3, A, d("other"), b"", signer) == BelowWatermark(3)
    assert isinstance(g.sign_duty(signer.address, 10, A, d("s10"), b"", signer), SameData)
    assert isinstance(g.sign_duty(signer.address, 4, A, d("s4"), b"", signer), NewSignature)
    assert isinstance(g.sign_duty(signer.address, 2, P, d("p2"), b"", signer), NewSignature)  # other type
    store.prune(1)  # a lower prune never lowers the watermark
    assert g.sign_duty(signer.address, 3, A, d("s3"), b"", signer) == BelowWatermark(3)


def test_publish_record_and_take_over(store, signer):
    a, b = guard(store, "a"), guard(store, "b")
    from ha_sequencer.ha.outcomes import PublishDone, PublishTheirs, PublishYours

    turn = a.claim_publish(signer.address, 20, deadline_s=60)
    assert turn == PublishYours(1)
    assert a.record_publish(signer.address, 20, 1, "0xabc", deadline_s=60)
    theirs = b.claim_publish(signer.address, 20, deadline_s=60)
    assert isinstance(theirs, PublishTheirs)
    assert (theirs.record.node_id, theirs.record.tx_hash) == ("a", "0xabc")
    assert theirs.record.deadline_at - theirs.record.submitted_at == pytest.approx(60)
    # a re-submits with a deadline that has passed by the time b looks: not mined in time, b takes over.
    assert a.record_publish(signer.address, 20, 1, "0xabd", deadline_s=0.0)
    time.sleep(0.01)
    took = b.claim_publish(signer.address, 20, deadline_s=60)
    assert took == PublishYours(2)
    assert not a.record_publish(signer.address, 20, 1, "0xlate")  # a's attempt is superseded
    assert b.record_publish(signer.address, 20, 2, "0xb0b", deadline_s=0.0)
    b.mark_published(signer.address, 20)
    time.sleep(0.01)
    done = a.claim_publish(signer.address, 20)  # mined: nobody takes over, even past the deadline
    assert isinstance(done, PublishDone)
    assert (done.record.node_id, done.record.tx_hash, done.record.mined) == ("b", "0xb0b", True)
    assert a.publish_record(signer.address, 21) is None


def test_metrics_count_outcomes_and_latency(store, signer):
    metrics = GuardMetrics()
    g = guard(store, "n1", metrics=metrics)
    g.sign_duty(signer.address, 1, A, d("1"), b"", signer)
    g.sign_duty(signer.address, 1, A, d("1"), b"", signer)
    g.sign_duty(signer.address, 1, A, d("2"), b"", signer)
    value = metrics.registry.get_sample_value
    for outcome in ("new_signature", "same_data", "refused"):
        assert (
            value(
                "hasq_ha_duty_outcomes_total",
                {"duty_type": "attestation", "node_id": "n1", "outcome": outcome},
            )
            == 1
        )
    assert value("hasq_ha_duty_claim_seconds_count", {"duty_type": "attestation", "node_id": "n1"}) == 3
    assert g.healthy
    assert value("hasq_ha_store_healthy", {"node_id": "n1"}) == 1


def test_inputs_checked(store, signer):
    with pytest.raises(InputError, match="node_id"):
        DutyGuard(store, node_id="", rollup=ROLLUP)
    with pytest.raises(InputError, match="32 bytes"):
        guard(store, "a").sign_duty(signer.address, 1, A, b"short", b"", signer)
    with pytest.raises(InputError, match="rollup"):
        DutyGuard(store, node_id="a", rollup="5FbDB2315678afecb367f032d93F642f64180aa3")
    g = guard(store, "a")
    assert isinstance(g.sign_duty(signer.address, 1, A, d("x"), b"", signer), NewSignature)
    # Another spelling of the same attester would be a second scope for the same duty: refused outright.
    for spelling in (signer.address[2:], " " + signer.address, signer.address + "00"):
        with pytest.raises(InputError, match="attester"):
            g.sign_duty(spelling, 1, A, d("y"), b"", signer)
    with pytest.raises(InputError) as info:  # a key where the address belongs is not echoed
        g.sign_duty(signer.account.key.hex(), 1, A, d("y"), b"", signer)
    assert signer.account.key.hex().removeprefix("0x") not in str(info.value)
    assert signer.calls == [d("x")]

"""PostgreSQL stopped mid-run (`pg_ctl stop` on a private cluster): no signatures while down, health false,
normal work after the restart."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import DutyType, NewSignature, StoreUnavailable, signature_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _wait_until(predicate, limit_s: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit_s:
            raise AssertionError(f"condition not met within {limit_s} s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_store_outage_fails_closed_and_recovers(private_pg):
    url = private_pg.create_database("outage")
    store = open_store(url, migrate=True)
    account = Account.create()
    sign_times: list[float] = []

    def sign(digest: bytes) -> bytes:
        sign_times.append(time.monotonic())
        return bytes(Account.unsafe_sign_hash(digest, account.key).signature)

    guard = DutyGuard(store, node_id="n1", rollup="0x" + "42" * 20, lease_s=0.3)
    calls: list[tuple[float, float, int, object]] = []
    stop = threading.Event()

    def work() -> None:
        slot = 0
        while not stop.is_set():
            slot += 1
            t0 = time.monotonic()
            digest = keccak(b"%d" % slot)
            out = guard.sign_duty(account.address, slot, DutyType.ATTESTATION, digest, b"", sign)
            calls.append((t0, time.monotonic(), slot, out))
            time.sleep(0.01)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert guard.healthy
        _wait_until(lambda: any(isinstance(c[3], NewSignature) for c in calls), 10)
        private_pg.stop()
        down_at = time.monotonic()
        unhealthy_after = _wait_until(lambda: not guard.healthy, 10)
        print(f"health turned false {unhealthy_after:.2f} s after pg_ctl stop returned")
        time.sleep(2.5)  # longer than the pool wait (1 s), so whole attempts fall inside the outage
        up_begin = time.monotonic()
        private_pg.start()
        _wait_until(lambda: guard.healthy, 10)
        recovered = _wait_until(
            lambda: any(isinstance(c[3], NewSignature) and c[0] > up_begin for c in calls), 15
        )
        print(f"first new signature {recovered:.2f} s after pg_ctl start returned")
    finally:
        stop.set()
        worker.join()

    during = [c for c in calls if c[0] > down_at and c[1] < up_begin]
    assert during, "the worker made no attempts while the store was down"
    assert all(isinstance(c[3], StoreUnavailable) for c in during)
    print(f"{len(during)} attempts during the outage, all StoreUnavailable")
    assert not [t for t in sign_times if down_at < t < up_begin]  # the key was not even used
    # Every signature handed out (before, around or after the outage) is the one recorded in the store.
    rows = {r["slot"]: r for r in store.export_rows()[0]}
    for _, _, slot, out in calls:
        if signature_of(out) is not None:
            assert rows[slot]["signature"] == signature_of(out)
    store.close()

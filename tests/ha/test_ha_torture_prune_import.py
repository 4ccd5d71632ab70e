"""`ha-db prune` and `ha-db import` (the store functions they call) running while racing processes claim on
PostgreSQL. The prune keeps claims out with a table lock while it raises the watermark and deletes the rows
under it; without that lock a claim that read "no watermark" before the prune committed inserts its row right
after the prune deleted the old one: a pruned duty re-opened, free for a second digest.

Checks: no duty is won twice (a second new signature or adoption means its row vanished and was claimed
anew), no duty has two released digests, an imported duty is only ever released with its imported digest, and
whatever is still in the store is what the racers released."""

from __future__ import annotations

import random
import time

import psycopg
import pytest
from eth_account import Account
from torture_support import (
    BackgroundRace,
    equivocations,
    outcome_counts,
    pg_rows,
    released,
    released_not_recorded,
    wait_until,
)

from ha_sequencer.bench.guard import digest_for, duty_of, payload_for, race_seed, racer_signer
from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.interchange import FORMAT_NAME, FORMAT_VERSION, import_document

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DUTIES = 2000
IMPORT_EVERY = 10  # maintenance rounds between two imports
IMPORT_AHEAD = (3, 12)  # an imported document covers these duty numbers past the racers' newest
WON = ("new_signature", "adopted")


def _top_slot(url: str) -> int | None:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT MAX(slot) FROM duties").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _document(rollup: str, attester: str, key: bytes, first: int, last: int, rng: random.Random) -> dict:
    """History signed elsewhere for racer duties first..last: half the shared digest, half a foreign one."""
    sign = racer_signer(key)
    duties = []
    for i in range(first, last + 1):
        slot, duty_type = duty_of(i, 1)
        digest = digest_for(slot, duty_type, "shared" if rng.random() < 0.5 else "imported")
        duties.append(
            {
                "rollup": rollup,
                "attester": attester,
                "slot": slot,
                "duty_type": duty_type.value,
                "digest": "0x" + digest.hex(),
                "payload": "0x" + payload_for(digest).hex(),
                "status": "signed",
                "node_id": "elsewhere",
                "signature": "0x" + sign(digest).hex(),
            }
        )
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "duties": duties, "watermarks": []}


def test_prune_and_import_racing_claims_reopen_no_duty(pg_url):
    open_store(pg_url, migrate=True).close()
    seed = race_seed()
    rng = random.Random(seed)
    account = Account.create()
    rollup = Account.create().address
    race = BackgroundRace(
        pg_url, nodes=3, duties=DUTIES, p_same=0.5, lease_s=0.2, key=account.key, rollup=rollup, seed=seed
    )
    wait_until(lambda: _top_slot(pg_url) is not None, "a first claim", race)

    imported: dict[tuple[int, str], bytes] = {}
    conflicts: set[tuple[int, str]] = set()
    pruned = [0, 0]  # prunes, rows deleted
    store = open_store(pg_url)
    try:
        rounds = 0
        while race.running:
            top = _top_slot(pg_url)
            if top is None:  # everything pruned: wait for the next claim
                time.sleep(0.005)
                continue
            # Up to the racers' newest duties, often the one in flight: the rows a claim may be waiting on.
            report = store.prune(top - rng.randint(0, 2), rollup.lower())
            pruned[0] += 1
            pruned[1] += report.duties_deleted
            rounds += 1
            if rounds % IMPORT_EVERY == 0:
                newest = top - 1  # duty number of slot `top`
                doc = _document(
                    rollup.lower(),
                    account.address.lower(),
                    bytes(account.key),
                    newest + IMPORT_AHEAD[0],
                    min(newest + IMPORT_AHEAD[1], DUTIES - 1),
                    rng,
                )
                _, clashed = import_document(store, doc, "race")
                conflicts |= {(d["slot"], d["duty_type"]) for d in clashed}
                for d in doc["duties"]:
                    imported[(d["slot"], d["duty_type"])] = bytes.fromhex(d["digest"][2:])
            time.sleep(rng.uniform(0.0, 0.01))
    finally:
        store.close()
    result = race.result()

    counts = outcome_counts(result)
    print(f"seed {seed}: {pruned[0]} prunes deleting {pruned[1]} rows, {len(imported)} imported; {counts}")
    assert set(result.returncodes.values()) == {0}
    won: dict[tuple[int, str], int] = {}
    for lines in result.traces.values():
        for t in lines:
            if t["outcome"] in WON:
                won[(t["slot"], t["duty_type"])] = won.get((t["slot"], t["duty_type"]), 0) + 1
    assert sorted(d for d, n in won.items() if n > 1) == []  # no claim re-opened a pruned duty
    assert equivocations(result) == []
    released_pairs = released(result)
    assert [
        d
        for d, digest in imported.items()
        if d not in conflicts and any(dg != digest for dg, _ in released_pairs.get(d, ()))
    ] == []
    rows = pg_rows(pg_url)  # a released duty missing here was pruned; one still here must match
    assert [d for d in released_not_recorded(result, rows) if d in rows] == []
    # The maintenance raced the claims: it deleted rows under the racers, whose claims then met watermarks
    # and imported rows.
    assert pruned[1] > 0 and counts.get("below_watermark", 0) > 0
    assert imported and counts.get("refused", 0) > 0

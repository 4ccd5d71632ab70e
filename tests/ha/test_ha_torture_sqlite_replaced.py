"""A SQLite store file replaced (`os.replace`) by a fresh or an older copy under racing processes: every racer
fails closed at once. No claim or record lands in the old file after the replacement (it is unlinked: no peer
started later would see it) nor in the new one (it lacks the history), and every signature released before is
the old file's recorded one."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from contextlib import closing

import pytest
from torture_support import (
    ROWS_SQL,
    BackgroundRace,
    as_rows,
    equivocations,
    outcome_counts,
    released,
    released_not_recorded,
    sqlite_rows,
    wait_until,
)

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import StoreUnreachable
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.outcomes import DutyType, NewSignature, StoreUnavailable

DUTIES = 3000  # far more than the racers reach before the replacement
OLDER_COPY_AT, REPLACE_AT = 100, 400  # rows in the store


def _count(path) -> int:
    return len(sqlite_rows(path)) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("copy", ["fresh", "older"])
def test_file_replaced_under_racers_fails_closed(tmp_path, copy):
    path = tmp_path / "duties.db"
    open_store(f"sqlite:///{path}", migrate=True).close()
    race = BackgroundRace(f"sqlite:///{path}", nodes=3, duties=DUTIES, p_same=0.5, lease_s=0.2)

    replacement = tmp_path / "replacement.db"
    copied: dict = {}
    if copy == "fresh":
        open_store(f"sqlite:///{replacement}", migrate=True).close()
    wait_until(lambda: _count(path) >= OLDER_COPY_AT, f"{OLDER_COPY_AT} rows", race)
    if copy == "older":  # a consistent copy of the live store, as a backup tool takes it
        with closing(sqlite3.connect(path)) as live, closing(sqlite3.connect(replacement)) as backup:
            live.backup(backup)
            copied = as_rows(backup.execute(ROWS_SQL).fetchall())
    wait_until(lambda: _count(path) >= REPLACE_AT, f"{REPLACE_AT} rows", race)

    # Holding the old file's write lock while the path changes: every transaction that began before is
    # committed and in `frozen`; every one after finds the new file under the path. The connection stays
    # open to read the old (unlinked) file again once the racers are done.
    old = sqlite3.connect(path, isolation_level=None, timeout=30)
    old.execute("BEGIN IMMEDIATE")
    os.replace(replacement, path)
    frozen = as_rows(old.execute(ROWS_SQL).fetchall())
    old.execute("ROLLBACK")

    result = race.result()
    with closing(old):
        assert as_rows(old.execute(ROWS_SQL).fetchall()) == frozen  # nothing claimed or recorded on it
    print(f"seed {result.seed}: {len(frozen)} rows at the replacement; outcomes {outcome_counts(result)}")
    assert set(result.returncodes.values()) == {0}
    # Nor on the new one. Read from a copy of its bytes: under its own path it would pick up the old file's
    # journal (`duties.db-wal` belongs to whichever file the path names when a connection opens it).
    shutil.copyfile(path, tmp_path / "new-file.db")
    assert sqlite_rows(tmp_path / "new-file.db") == copied
    assert equivocations(result) == []
    assert released_not_recorded(result, frozen) == []
    # The racers noticed: every duty after the replacement ended "store unavailable", none was signed.
    assert len(released(result)) < DUTIES
    assert outcome_counts(result).get("store_unavailable", 0) > 0
    after = max(slot for slot, _ in frozen)
    assert all(not t["signature"] for lines in result.traces.values() for t in lines if t["slot"] > after)


ATTESTER, ROLLUP = "0x" + "11" * 20, "0x" + "22" * 20


def _sign(digest: bytes) -> bytes:
    return digest * 2 + b"\x1b"


def _attest(guard: DutyGuard, slot: int) -> object:
    return guard.sign_duty(ATTESTER, slot, DutyType.ATTESTATION, bytes([slot]) * 32, b"", _sign)


def test_a_store_stops_at_the_first_transaction_after_its_file_is_replaced(tmp_path):
    path = tmp_path / "duties.db"
    store = open_store(f"sqlite:///{path}", migrate=True)
    open_store(f"sqlite:///{tmp_path}/fresh.db", migrate=True).close()
    guard = DutyGuard(store, node_id="n", rollup=ROLLUP)
    try:
        assert isinstance(_attest(guard, 1), NewSignature)
        os.rename(path, tmp_path / "kept.db")
        os.replace(tmp_path / "fresh.db", path)
        outcome = _attest(guard, 2)
        assert isinstance(outcome, StoreUnavailable) and "replaced" in outcome.reason
        with pytest.raises(StoreUnreachable, match="replaced"):
            store.ping()
        # Latched: the old file back under its path does not revive the store (peers may have used the other).
        os.replace(tmp_path / "kept.db", path)
        assert isinstance(_attest(guard, 3), StoreUnavailable)
    finally:
        store.close()
    assert sqlite_rows(path).keys() == {(1, "attestation")}  # nothing after the replacement, anywhere


def test_a_new_connection_to_a_replaced_file_is_refused(tmp_path):
    path = tmp_path / "duties.db"
    store = open_store(f"sqlite:///{path}", migrate=True)  # its first connection fixes the file
    open_store(f"sqlite:///{tmp_path}/fresh.db", migrate=True).close()
    os.replace(tmp_path / "fresh.db", path)
    outcomes: list[object] = []
    try:
        guard = DutyGuard(store, node_id="n", rollup=ROLLUP)
        worker = threading.Thread(  # a thread of its own opens a connection of its own
            target=lambda: outcomes.append(_attest(guard, 1))
        )
        worker.start()
        worker.join()
    finally:
        store.close()
    assert len(outcomes) == 1 and isinstance(outcomes[0], StoreUnavailable)
    assert sqlite_rows(path) == {}

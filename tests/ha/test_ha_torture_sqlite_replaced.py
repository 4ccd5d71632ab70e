"""A SQLite store file replaced (`os.replace`) by a fresh or an older copy under racing processes: every racer
fails closed at once. No claim or record lands in the old file after the replacement (it is unlinked: no peer
started later would see it) nor in the new one (it lacks the history), and every signature released before is
the old file's recorded one."""

from __future__ import annotations

import os
import sqlite3
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

pytestmark = pytest.mark.slow

DUTIES = 3000  # far more than the racers reach before the replacement
OLDER_COPY_AT, REPLACE_AT = 100, 400  # rows in the store


def _count(path) -> int:
    return len(sqlite_rows(path)) if path.exists() else 0


@pytest.mark.parametrize("copy", ["fresh", "older"])
def test_file_replaced_under_racers_fails_closed(tmp_path, copy):
    path = tmp_path / "duties.db"
    open_store(f"sqlite:///{path}", migrate=True).close()
    race = BackgroundRace(f"sqlite:///{path}", nodes=3, duties=DUTIES, p_same=0.5, lease_s=0.2)

    replacement = tmp_path / "replacement.db"
    if copy == "fresh":
        open_store(f"sqlite:///{replacement}", migrate=True).close()
    wait_until(lambda: _count(path) >= OLDER_COPY_AT, f"{OLDER_COPY_AT} rows", race)
    if copy == "older":  # a consistent copy of the live store, as a backup tool takes it
        with closing(sqlite3.connect(path)) as live, closing(sqlite3.connect(replacement)) as backup:
            live.backup(backup)
    copied = sqlite_rows(replacement)
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
    assert sqlite_rows(path) == copied  # nor on the new one
    assert equivocations(result) == []
    assert released_not_recorded(result, frozen) == []
    # The racers noticed: every duty after the replacement ended "store unavailable", none was signed.
    assert len(released(result)) < DUTIES
    assert outcome_counts(result).get("store_unavailable", 0) > 0
    after = max(slot for slot, _ in frozen)
    assert all(not t["signature"] for lines in result.traces.values() for t in lines if t["slot"] > after)

"""Guard torture on both stores, racers killed -9 (by a supervisor, and by their own guard at its fault
points), paused past the lease and restarted, PostgreSQL connections dropped: no duty has two released
digests and every released signature is the store's. The size CI runs (20,000 duties on each store);
its seed is printed and `HA_RACE_SEED` replays it."""

from __future__ import annotations

import pytest

from ha_sequencer.bench.torture import torture

pytestmark = pytest.mark.slow

DUTIES = 20_000


def test_torture_releases_one_digest_per_duty_and_only_what_the_store_holds(store_url):
    from ha_sequencer.ha.backends import open_store

    open_store(store_url, migrate=True).close()
    result = torture(store_url, nodes=3, duties=DUTIES)
    print(result)
    assert result["equivocations"] == 0, result
    assert result["releasedNotInStore"] == 0, result
    assert result["signaturesNotOverDigest"] == 0, result
    assert result["dutiesReleased"] == DUTIES
    # the torture happened: racers were killed and paused and came back
    assert result["kills"] + result["selfKills"] > 0 and result["restarts"] > 0
    assert result["pauses"] > 0
    if store_url.startswith("postgres"):
        assert result["storeDrops"] > 0

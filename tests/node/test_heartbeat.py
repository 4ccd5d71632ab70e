"""The node's id in the duty store: one live instance per id; a crashed one is replaced once it goes stale."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.errors import DuplicateNodeError
from ha_sequencer.node import health
from ha_sequencer.node.health import Heartbeat


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(health, "HEARTBEAT_S", 0.05)
    monkeypatch.setattr(health, "NODE_STALE_S", 0.3)
    s = open_store(f"sqlite:///{tmp_path / 'duties.sqlite'}", migrate=True)
    yield s
    s.close()


def test_a_second_live_node_with_the_same_id_is_refused_a_clean_stop_frees_it(store) -> None:
    async def scenario() -> None:
        first = Heartbeat(store, "node-a")
        await first.register()
        async with trio.open_nursery() as n:
            await n.start(first.run)
            with pytest.raises(DuplicateNodeError, match="node-a"):
                await Heartbeat(store, "node-a").register()
            await Heartbeat(store, "node-b").register()  # another id is free
            n.cancel_scope.cancel()
        await first.unregister()
        with trio.fail_after(0.2):  # released at once, no wait for staleness
            await Heartbeat(store, "node-a").register()

    trio.run(scenario)


def test_a_crashed_nodes_id_is_taken_once_stale_and_the_old_instance_learns_it(store) -> None:
    assert store.register_node("node-c", "old-instance", "h", 1, 0.3)  # then never heartbeats again

    async def scenario() -> None:
        with trio.fail_after(5):
            await Heartbeat(store, "node-c").register()  # waits for the old row to go stale

    trio.run(scenario)
    assert not store.heartbeat_node("node-c", "old-instance")  # displaced

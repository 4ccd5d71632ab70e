"""L1 test fixtures: one anvil per module (each test deploys its own Rollup, so tests stay independent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ha_sequencer.l1.anvil import Anvil


@pytest.fixture(scope="module")
def module_anvil() -> Iterator[Anvil]:
    """An anvil shared by one test module; tests may warp its clock forward."""
    with Anvil() as node:
        yield node

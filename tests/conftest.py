"""Shared fixtures: a real anvil L1, a Rollup deployed on it with a known validator set, and a PostgreSQL
server where tests may create databases (`HA_TEST_DATABASE_URL`, default 127.0.0.1:5432, else a private
throwaway cluster for the session)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from ha_sequencer.l1.anvil import Anvil
from ha_sequencer.localnet.postgres import PrivatePostgres
from ha_sequencer.localnet.rollup import LocalRollup, deploy_local_rollup


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh anvil (automine, chain id 31337, 10 funded default accounts); stopped after the test."""
    with Anvil() as node:
        yield node


@pytest.fixture
def rollup_factory(anvil: Anvil) -> Callable[..., LocalRollup]:
    """Deploy Rollups on the test's anvil: `rollup_factory(validators=4, slot_duration=4, ...)`.

    Keyword arguments are those of `ha_sequencer.localnet.rollup.deploy_local_rollup`; the genesis validators'
    keys are in `.validators`, the funded deployer in `.deployer`, a client in `.client`.
    """

    def factory(**kwargs: Any) -> LocalRollup:
        return deploy_local_rollup(anvil, **kwargs)

    return factory


@pytest.fixture
def deployed_rollup(rollup_factory: Callable[..., LocalRollup]) -> LocalRollup:
    """A Rollup with 4 genesis validators (committee of 4), 4 s slots, 8-slot epochs, genesis now."""
    return rollup_factory(validators=4, slot_duration=4, epoch_length=8, committee_size=4)


DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL of a database on a server where tests may create databases."""
    url = os.environ.get("HA_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        with PrivatePostgres() as pg:
            yield pg.url
        return
    yield url

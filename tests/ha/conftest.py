"""Duty-store fixtures: fresh SQLite files and fresh PostgreSQL databases, one per test.

PostgreSQL: the server at `HA_TEST_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/postgres)
when it answers, else a private throwaway cluster for the session. Outage tests get their own private
cluster: the shared server is never stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.store import DutyStore
from ha_sequencer.localnet.postgres import PrivatePostgres

STORES = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _create_db(admin_url: str) -> tuple[str, str]:
    name = f"ha_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


def _drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty (unmigrated) PostgreSQL database, dropped after the test."""
    name, url = _create_db(pg_admin_url)
    yield url
    _drop_db(pg_admin_url, name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh (not yet created) SQLite file."""
    return f"sqlite:///{tmp_path}/duties.db"


@pytest.fixture(params=STORES)
def store_url(request) -> str:
    """An empty, unmigrated store URL of each kind (the shared suite runs on both)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[DutyStore]:
    """A migrated store of each kind."""
    s = open_store(store_url, migrate=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster this module may stop and start."""
    with PrivatePostgres() as pg:
        yield pg

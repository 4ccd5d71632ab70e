"""Fixtures of the node tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def database(pg_admin_url: str) -> Iterator[tuple[str, int, str]]:
    """A fresh database on the test server, dropped afterwards: (host, port, name)."""
    name = f"ha_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    yield str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)), name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

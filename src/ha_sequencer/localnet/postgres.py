"""A throwaway PostgreSQL cluster in a temp dir (tests, outage drills, chaos): init, start, stop, restart."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from ha_sequencer.errors import HASequencerError

START_TIMEOUT_S = 30


class PgClusterError(HASequencerError):
    """The private cluster could not be created or started (message names the step and its output)."""


def find_pg_bin(name: str) -> Path:
    """A PostgreSQL server binary (initdb, pg_ctl) from PATH or /usr/lib/postgresql/*/bin (newest first)."""
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return Path(candidate)
    found = shutil.which(name)
    if found:
        return Path(found)
    raise PgClusterError(f"{name} not found on PATH or under /usr/lib/postgresql/*/bin")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """`with PrivatePostgres() as pg:` → `pg.url` (db `postgres`), `pg.stop()`, `pg.start()`, `pg.restart()`.

    As root, initdb/pg_ctl run as the `postgres` user (`runuser -u postgres --`) on a directory chowned to it.
    Durability is off (fsync=off): these clusters hold throwaway data.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="ha-pg-"))
        self.data_dir = self._tmp / "data"
        self.log_file = self._tmp / "postgres.log"
        self._as_root = os.geteuid() == 0
        self.running = False

    @property
    def url(self) -> str:
        """The URL of the `postgres` database (trust auth, user postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        """The URL of another database of this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = (["runuser", "-u", "postgres", "--"] if self._as_root else []) + list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S + 10, check=False)
        if done.returncode != 0:
            raise PgClusterError(
                f"{Path(args[0]).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
        return done

    def init(self) -> None:
        """initdb the cluster (trust auth, no fsync)."""
        if self._as_root:
            shutil.chown(self._tmp, user="postgres", group="postgres")
        self._run(
            str(find_pg_bin("initdb")),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self._tmp}'\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\nmax_connections = 100\n"
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(
            str(find_pg_bin("pg_ctl")),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`pg_ctl stop -m fast` by default: open connections are cut)."""
        self._run(str(find_pg_bin("pg_ctl")), "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        self.running = False

    def restart(self) -> None:
        """Stop then start."""
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop the server if running and delete the directory."""
        if self.running:
            with contextlib.suppress(Exception):
                self.stop(mode="immediate")
        deadline = time.monotonic() + 5
        while self.data_dir.joinpath("postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self._tmp, ignore_errors=True)

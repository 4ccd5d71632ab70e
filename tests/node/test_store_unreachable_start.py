"""A node started while its duty store is unreachable runs, fails closed and starts working once the store
answers: /status 503 `duty_store_unreachable` naming the hosts tried (never the password), no duties, then
migrations and the server checks at that moment and a healthy node (one real node process, anvil, PostgreSQL).
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from ha_sequencer.localnet.nodes import LocalNet, NodeProcess, generate_validators
from ha_sequencer.localnet.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PASSWORD = "hunter2-store-secret"  # trust auth ignores it; it must show up nowhere


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(node: NodeProcess) -> tuple[int, dict] | None:
    try:
        return node.status()
    except (httpx.HTTPError, ValueError):
        return None


def _wait(node: NodeProcess, accept, timeout: float, what: str) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert node.running, f"node exited:\n{node.log_text()[-3000:]}"
        last = _status(node)
        if last is not None and accept(*last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last /status {last}\n{node.log_text()[-3000:]}")


def _tables(host: str, port: int, name: str) -> int:
    with psycopg.connect(f"postgresql://postgres@{host}:{port}/{name}") as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    return int(row[0]) if row else 0


def test_an_unreachable_store_fails_closed_then_the_node_starts_when_it_answers(
    database: tuple[str, int, str],
) -> None:
    host, port, name = database
    proxy = TcpProxy(host, port)
    proxy.cut()  # connections are accepted and closed at once: the server is down for the node
    dead = _closed_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{proxy.port},127.0.0.1:{dead}/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="hasq-store-start-"))
    validators = generate_validators(1)
    try:
        with LocalNet(workdir, slot_duration=3) as net:
            net.deploy(validators, users=1)
            # two hosts and no standby: a primary without a synchronous standby is accepted only so
            node = net.add_node("n0", [(validators[0], [0])], ha_db=url, extra_args=["--ha-db-allow-async"])
            net.start()

            code, body = _wait(
                node,
                lambda c, b: "duty_store_unreachable" in " ".join(b["reasons"]),
                60,
                "duty_store_unreachable on /status",
            )
            assert code == 503 and body["status"] == "unhealthy"
            assert (
                f"duty_store_unreachable: hosts tried 127.0.0.1:{proxy.port}, 127.0.0.1:{dead}"
                in (body["reasons"])
            )
            assert body["ha"]["healthy"] is False and body["role"] is None  # no duties: nothing to sign
            assert any(r.startswith("starting: waiting for") for r in body["reasons"])
            time.sleep(2)  # a few retries later: still running, still nothing written to the store
            assert node.running and _tables(host, port, name) == 0

            proxy.restore()
            code, body = _wait(node, lambda c, b: c == 200, 60, "a healthy node once the store answers")
            assert body["ha"]["healthy"] is True and body["slot"] is not None
            assert _tables(host, port, name) > 0  # migrated when the store answered

            seen = node.log_text() + str(body) + node.metrics()
            assert PASSWORD not in seen
            assert "duty store not reachable yet" in node.log_text()
    finally:
        proxy.close()


def test_a_read_only_store_still_stops_the_start_with_exit_2(database: tuple[str, int, str]) -> None:
    host, port, name = database
    with psycopg.connect(f"postgresql://postgres@{host}:{port}/{name}", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')  # as a standby
    workdir = Path(tempfile.mkdtemp(prefix="hasq-store-ro-"))
    validators = generate_validators(1)
    with LocalNet(workdir) as net:
        url = f"postgresql://postgres:{PASSWORD}@{host}:{port}/{name}"
        node = net.add_node("n0", [(validators[0], [0])], ha_db=url)
        # no L1 at all: the store is opened side by side with reading the network, and refused at once
        node.start(["http://127.0.0.1:9"], "0x" + "11" * 20, [])
        assert node.proc is not None
        assert node.proc.wait(60) == 2
        log = node.log_text()
        assert "read-only server" in log and PASSWORD not in log

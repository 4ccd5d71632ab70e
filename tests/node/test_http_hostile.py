"""Hostile HTTP and JSON-RPC against the node's real server (hypercorn, its real RPC methods): malformed
requests get JSON-RPC error objects with status 200/400 (never 500) and at most one log line; a client that
holds connections open (slow-loris) is cut off while /status keeps answering."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from http_server import RunningServer, running_http_server

from ha_sequencer.node.http import (
    BODY_TIMEOUT_S,
    KEEP_ALIVE_TIMEOUT_S,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_JSON_DEPTH,
)

LONG_INT = "9" * 5000  # past Python's 4,300-digit int conversion limit


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_http_server() as running:
        yield running


def _post(server: RunningServer, body: bytes, content_type: str = "application/json") -> httpx.Response:
    before = len(server.log.lines)
    reply = httpx.post(server.url, content=body, headers={"content-type": content_type}, timeout=10)
    new = server.log.lines[before:]
    new = [line for line in new if not line.startswith("INFO httpx")]
    assert len(new) <= 1 and not any("Traceback" in line for line in new), new
    assert reply.status_code in (200, 400), (reply.status_code, reply.text)
    return reply


def _error_code(reply: httpx.Response) -> int:
    return reply.json()["error"]["code"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"jsonrpc":"2.0","id":"\\ud800","method":"node_getBlockNumber"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"node_\\udfff"}', -32600),
        (b'{"jsonrpc":"2.0","id":"\\udc00x","method":"\\ud800"}', -32600),
        (f'{{"jsonrpc":"2.0","id":1,"method":"node_getBlock","params":[{LONG_INT}]}}'.encode(), -32700),
        (f'{{"jsonrpc":"2.0","id":{LONG_INT},"method":"node_getBlockNumber"}}'.encode(), -32700),
        (f'[{{"jsonrpc":"2.0","id":1,"method":"node_getBlock","params":[{LONG_INT}]}}]'.encode(), -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"node_getBlock","params":[' + b"9" * 4000 + b"]}", None),
        (b'{"jsonrpc":"2.0","id":1,"method":"node_getBalance","params":["\\ud800"]}', -32602),
        (b'{"jsonrpc":"2.0","id":1,"method":"node_sendTx","params":["0x\\ud800"]}', -32602),
        (b"\xff\xfe\x00\x00", -32700),
        (b"\x80\x81", -32700),
    ],
)
def test_malformed_json_rpc_gets_an_error_object(
    server: RunningServer, body: bytes, code: int | None
) -> None:
    reply = _post(server, body)
    if code is None:
        assert reply.json()["result"] is None  # a block number no chain has: a valid question, answered
    else:
        assert _error_code(reply) == code, reply.text


def test_depth_is_checked_after_decoding_any_encoding(server: RunningServer) -> None:
    deep = "[" * 50_000  # under the body cap even as UTF-32
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-16"):
        reply = _post(server, deep.encode(encoding))
        assert (
            _error_code(reply) == -32700
            and f"nested deeper than {MAX_JSON_DEPTH}" in reply.json()["error"]["message"]
        )
    request = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "node_getBlockNumber"})
    for encoding in ("utf-16-le", "utf-16-be", "utf-32-be"):
        assert _post(server, request.encode(encoding)).json() == {"jsonrpc": "2.0", "id": 7, "result": 0}


def test_a_reply_carries_any_string_it_echoes(server: RunningServer) -> None:
    reply = _post(server, b'{"jsonrpc":"2.0","id":"\\u00e9\\u4e2d","method":"node_nope\\u00e9"}')
    assert reply.json()["error"]["code"] == -32601 and reply.json()["id"] == "é中"


def _recv_until_closed(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


ATTACKER = "127.0.0.2"  # loopback: another client address on this host, so the per-client cap applies to it


def test_slow_loris_is_cut_off_and_status_keeps_answering() -> None:
    with running_http_server() as server:
        held: list[socket.socket] = []
        for i in range(MAX_CONNECTIONS_PER_CLIENT + 40):
            sock = socket.create_connection((server.host, server.port), source_address=(ATTACKER, 0))
            if i % 3 == 0:  # a request head that never ends
                sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            elif i % 3 == 1:  # a body that never ends
                sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"jsonrpc":')
            held.append(sock)  # and every third sends nothing at all
        time.sleep(0.5)
        readable, _, _ = select.select(held, [], [], 0)
        closed_at_once = [sock for sock in readable if _recv_until_closed(sock, time.monotonic() + 0.1)]
        assert len(closed_at_once) >= 40, len(closed_at_once)  # over the per-client cap: refused at once
        started = time.monotonic()
        answered = 0
        while time.monotonic() - started < 2:
            assert httpx.get(f"{server.url}/status", timeout=5).status_code == 200
            answered += 1
            for sock in held[:20]:  # trickle: a byte now and then never buys more time
                try:
                    sock.send(b"a")
                except OSError:
                    pass
            time.sleep(0.2)
        assert answered >= 5
        # every held socket is closed by the server within its deadlines (generous bound: a loaded machine)
        deadline = started + max(KEEP_ALIVE_TIMEOUT_S, BODY_TIMEOUT_S) + 25
        still_open = [i for i, sock in enumerate(held) if not _recv_until_closed(sock, deadline)]
        for sock in held:
            sock.close()
        assert not still_open, still_open
        assert httpx.get(f"{server.url}/status", timeout=5).status_code == 200
        assert not any("Traceback" in line or line.startswith("ERROR") for line in server.log.lines)
        assert (
            sum("refused a connection" in line for line in server.log.lines) <= 5
        )  # bounded, not one per socket


def test_send_tx_below_the_min_fee_is_refused() -> None:
    from eth_account import Account
    from http_server import FUNDED, RealRpcNode

    from ha_sequencer.localnet.nodes import signed_transfer
    from params_fixtures import PARAMS

    with running_http_server(RealRpcNode(min_tx_fee=2)) as server:
        unfunded = Account.create()

        def send(sender, fee: int, nonce: int = 0) -> dict:
            stx = signed_transfer(PARAMS, sender, FUNDED.address, amount=0, fee=fee, nonce=nonce)
            body = {"jsonrpc": "2.0", "id": 1, "method": "node_sendTx", "params": ["0x" + stx.encode().hex()]}
            return httpx.post(server.url, json=body, timeout=10).json()

        assert send(unfunded, 0)["error"]["code"] == -32008
        assert send(FUNDED, 1)["error"]["code"] == -32008
        assert "result" in send(FUNDED, 2)
        assert len(server.node.services.mempool) == 1

"""A seeded fuzz of the node's HTTP/JSON-RPC surface (the real server and methods, in process): malformed
HTTP on raw sockets and malformed JSON-RPC. Nothing gets a 5xx, nothing logs a traceback, nothing hangs.

The seed is printed; `HASQ_FUZZ_SEED=<seed>` replays a run, `HASQ_FUZZ_INPUTS=<n>` sizes it."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from typing import Any

import httpx
from http_server import running_http_server

INPUTS = int(os.environ.get("HASQ_FUZZ_INPUTS", "2100"))
REPLY_TIMEOUT_S = 20.0  # "no hang": a reply or a close within this, however loaded the machine

METHODS = [
    "node_sendTx", "node_getBlockNumber", "node_getBlock", "node_getBalance", "node_getStatus",
    "node_getSlotRecords", "node_nope", "", "rpc.discover",
]  # fmt: skip
STRINGS = [
    "", "latest", "0x", "0x" + "00" * 32, "0x" + "ab" * 201, "0x" + "zz" * 20, "\ud800", "\udfff\ud800",
    "é中", "\x00", "0x" + "11" * 20, "-1", "1e999", "𝕏" * 50,
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, 2**63, -(2**255), 10**4000, rng.randrange(-(10**9), 10**9)])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("nan")])
    if kind in (3, 4, 5):
        return rng.choice(STRINGS)
    if kind in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["tx", "block", "address", "x", ""]): _value(rng, depth + 1)
        for _ in range(rng.randrange(3))
    }


def _request(rng: random.Random) -> Any:
    req: dict[str, Any] = {}
    if rng.random() < 0.9:
        req["jsonrpc"] = "2.0" if rng.random() < 0.8 else _value(rng)
    if rng.random() < 0.85:
        req["id"] = _value(rng) if rng.random() < 0.3 else rng.randrange(1000)
    if rng.random() < 0.95:
        req["method"] = rng.choice(METHODS) if rng.random() < 0.85 else _value(rng)
    if rng.random() < 0.8:
        req["params"] = _value(rng)
    return req


def _json_body(rng: random.Random) -> bytes:
    shape = rng.randrange(10)
    if shape < 6:
        doc: Any = _request(rng)
    elif shape < 8:
        doc = [_request(rng) for _ in range(rng.randrange(0, 60))]
    else:
        doc = _value(rng)
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    if rng.random() < 0.2:  # mutate the text: cut, splice, duplicate, bracket storms
        i = rng.randrange(len(text) + 1)
        splice = rng.choice(["[", "{", '"', "\\", "\\u", ",", "9" * 5000])
        text = rng.choice(
            [text[:i], text[:i] + splice + text[i:], text + text, "[" * rng.randrange(1, 200_000)]
        )
    encoding = rng.choice(["utf-8"] * 6 + ["utf-16", "utf-16-le", "utf-32-be", "latin-1"])
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


def _raw_http(rng: random.Random) -> bytes:
    body = _json_body(rng) if rng.random() < 0.5 else rng.randbytes(rng.randrange(64))
    method = rng.choice([b"POST", b"GET", b"PUT", b"OPTIONS", b"P\x00ST", b"", b"GET GET"])
    path = rng.choice([b"/", b"/status", b"/metrics", b"//", b"/../", b"/%ff", b"*", b"/" + b"a" * 9000])
    version = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b""])
    headers = [b"Host: n"]
    length = rng.choice([len(body), len(body), 0, len(body) + 10, -1, 10**30])
    framing = [b"Content-Length: %d" % length, b"Transfer-Encoding: chunked", b"Content-Length: x",
               b"Content-Length: 1\r\nContent-Length: 2", b""]  # fmt: skip
    headers.append(rng.choice(framing))
    if rng.random() < 0.3:
        headers.append(
            rng.choice([b"X: " + b"y" * 20_000, b"Bad Header", b"\x00: \xff", b"Expect: 100-continue"])
        )
    if b"chunked" in headers[1] and rng.random() < 0.7:
        body = b"%x\r\n" % len(body) + body + rng.choice([b"\r\n0\r\n\r\n", b"\r\nzz\r\n", b""])
    raw = method + b" " + path + b" " + version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
    if rng.random() < 0.15:
        raw = rng.randbytes(rng.randrange(1, 300))
    if rng.random() < 0.1:
        raw = raw[: rng.randrange(len(raw) + 1)]
    return raw


def _send_raw(host: str, port: int, raw: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=REPLY_TIMEOUT_S) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # the server already closed: a refusal, not a hang
        reply = b""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return reply
            if not chunk:
                return reply
            reply += chunk
        raise AssertionError(f"no reply nor close within {REPLY_TIMEOUT_S} s for {raw[:200]!r}")


def test_fuzz_http_and_json_rpc() -> None:
    seed = int(os.environ.get("HASQ_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
    print(f"HASQ_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    with running_http_server() as server, httpx.Client(timeout=REPLY_TIMEOUT_S) as client:
        for n in range(INPUTS):
            if n % 3 == 0:
                raw = _raw_http(rng)
                reply = _send_raw(server.host, server.port, raw)
                for line in reply.split(b"\r\n"):
                    if line.startswith(b"HTTP/1."):
                        code = int(line.split()[1])
                        statuses[code] = statuses.get(code, 0) + 1
                        assert code < 500, (seed, n, raw[:300], reply[:300])
            else:
                body = _json_body(rng)
                reply = client.post(server.url, content=body, headers={"content-type": "application/json"})
                statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                assert reply.status_code < 500, (seed, n, body[:300], reply.text[:300])
                if reply.status_code == 200:
                    doc = reply.json()
                    for item in doc if isinstance(doc, list) else [doc]:
                        assert ("result" in item) != ("error" in item), (seed, n, item)
        assert httpx.get(f"{server.url}/status", timeout=5).status_code == 200
        lines = [line for line in server.log.lines if not line.startswith("INFO httpx")]
    print(f"statuses {dict(sorted(statuses.items()))}, {len(lines)} log lines")
    assert not any("Traceback" in line or line.startswith(("ERROR", "CRITICAL")) for line in lines), (
        seed,
        lines[:5],
    )
    assert len(lines) <= INPUTS // 10, (seed, len(lines), lines[:5])

"""HTTP layer: /status 200/503, /metrics, JSON-RPC 2.0 framing and error codes."""

from __future__ import annotations

from starlette.testclient import TestClient

from ha_sequencer.node.http import INVALID_PARAMS, MAX_BODY_BYTES, RpcError, build_app, json_depth_within
from ha_sequencer.node.metrics import NodeMetrics


class SmallNode:
    """The two things the HTTP layer asks of a node."""

    def __init__(self) -> None:
        self.metrics = NodeMetrics()
        self.reasons: list[str] = []

    def status_report(self) -> dict:
        return {"status": "unhealthy" if self.reasons else "ok", "reasons": self.reasons, "nodeId": "n"}

    def rpc_methods(self) -> dict:
        def add(params):
            if not isinstance(params, list) or len(params) != 2:
                raise RpcError(INVALID_PARAMS, "add takes two numbers")
            return params[0] + params[1]

        async def boom(_params):
            raise RuntimeError("secret internals")

        return {"add": add, "boom": boom}


def test_status_and_metrics() -> None:
    node = SmallNode()
    client = TestClient(build_app(node))
    r = client.get("/status")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    node.reasons.append("l1_unreachable: refused")
    r = client.get("/status")
    assert r.status_code == 503 and r.json()["reasons"] == ["l1_unreachable: refused"]
    node.metrics.slot.set(7)
    r = client.get("/metrics")
    assert (
        r.status_code == 200
        and "hasq_slot 7.0" in r.text
        and r.headers["content-type"].startswith("text/plain")
    )


def test_json_rpc() -> None:
    client = TestClient(build_app(SmallNode()))

    def call(body):
        return client.post(
            "/",
            content=body if isinstance(body, bytes) else None,
            json=None if isinstance(body, bytes) else body,
        )

    assert call({"jsonrpc": "2.0", "id": 1, "method": "add", "params": [2, 3]}).json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": 5,
    }
    assert call({"jsonrpc": "2.0", "id": 2, "method": "add", "params": [1]}).json()["error"]["code"] == -32602
    assert call({"jsonrpc": "2.0", "id": 3, "method": "nope"}).json()["error"]["code"] == -32601
    assert call({"id": 4, "method": "add"}).json()["error"]["code"] == -32600
    assert call(b"{not json").json()["error"]["code"] == -32700
    # py_ecc (imported by the node) lifts the recursion limit: this body would overflow the C stack (SIGSEGV)
    deep = call(b"[" * 200_000).json()["error"]
    assert deep["code"] == -32700 and "nested deeper" in deep["message"]
    too_big = call(b" " * (MAX_BODY_BYTES + 1)).json()["error"]
    assert too_big["code"] == -32600 and str(MAX_BODY_BYTES) in too_big["message"]
    err = call({"jsonrpc": "2.0", "id": 5, "method": "boom"}).json()["error"]
    assert err["code"] == -32603 and "secret" not in err["message"]
    batch = call(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 1]},
            {"jsonrpc": "2.0", "method": "add", "params": [1, 1]},
        ]
    ).json()
    assert batch == [{"jsonrpc": "2.0", "id": 1, "result": 2}]  # notifications get no reply
    assert call([]).json()["error"]["code"] == -32600


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth_within(b'{"a": [[1]]}', limit=3)
    assert not json_depth_within(b'{"a": [[[1]]]}', limit=3)
    assert json_depth_within(b'["[[[[[[", "\\"[[[[[["]', limit=1)  # quotes, escapes, brackets as text
    assert not json_depth_within(b"[" * 10 + b'"' + b"]" * 10, limit=5)

"""HTTP: `GET /status`, `GET /metrics`, `POST /` JSON-RPC 2.0; starlette on hypercorn's trio worker."""

from __future__ import annotations

import inspect
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve  # pyright: ignore[reportUnknownVariableType] (its WSGI half is untyped)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ha_sequencer.errors import InputError
from ha_sequencer.node.metrics import NodeMetrics

log = logging.getLogger(__name__)

# JSON-RPC 2.0 error codes (spec §5.1) and this node's server-defined range (-32000…-32099)
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# -32001…-32007: mempool rejections (node/mempool.py MempoolRejection)
NOT_READY = -32050  # the node has not read the network from L1 yet

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 50
# py_ecc raises the interpreter's recursion limit to 100 000 on import, so the C JSON parser no longer stops
# at 1 000 levels: a 200 KB body of "[" overflows the C stack and kills the process (SIGSEGV). Requests
# nest a few levels; anything deeper is refused before parsing.
MAX_JSON_DEPTH = 32


class RpcError(Exception):
    """A JSON-RPC error to return to the caller (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


RpcMethod = Callable[[Any], Any | Awaitable[Any]]


class NodeApi(Protocol):
    """What the HTTP layer needs from the node."""

    metrics: NodeMetrics

    def status_report(self) -> dict[str, Any]:
        """The /status JSON, with `status` "ok" or "unhealthy" and a `reasons` list."""
        ...

    def rpc_methods(self) -> Mapping[str, RpcMethod]:
        """JSON-RPC method name → handler taking `params` (list or dict)."""
        ...


def json_depth_within(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects at most `limit` deep (brackets inside strings ignored)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return True  # the common case, without a byte-by-byte scan
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


async def _call_one(methods: Mapping[str, RpcMethod], raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return _error(None, INVALID_REQUEST, "invalid request")
    req = cast(dict[str, Any], raw)
    if req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
        return _error(req.get("id"), INVALID_REQUEST, "invalid request")
    is_notification = "id" not in req
    id_ = req.get("id")
    if id_ is not None and not isinstance(id_, str | int):
        return _error(None, INVALID_REQUEST, "id must be a string, number or null")
    params = req.get("params", [])
    if not isinstance(params, list | dict):
        return _error(id_, INVALID_PARAMS, "params must be an array or an object")
    handler = methods.get(req["method"])
    if handler is None:
        return (
            None if is_notification else _error(id_, METHOD_NOT_FOUND, f"method not found: {req['method']}")
        )
    try:
        result = handler(params)
        if inspect.isawaitable(result):
            result = await result
    except RpcError as exc:
        return None if is_notification else _error(id_, exc.code, exc.message, exc.data)
    except Exception:
        log.exception("JSON-RPC %s failed", req["method"])
        return None if is_notification else _error(id_, INTERNAL_ERROR, "internal error")
    return None if is_notification else {"jsonrpc": "2.0", "id": id_, "result": result}


def build_app(node: NodeApi) -> Starlette:
    """The ASGI app for one node."""

    async def status(_: Request) -> JSONResponse:
        report = node.status_report()
        return JSONResponse(report, status_code=200 if report.get("status") == "ok" else 503)

    async def metrics(_: Request) -> Response:
        body, content_type = node.metrics.exposition()
        return Response(body, media_type=content_type)

    async def rpc(request: Request) -> JSONResponse | Response:
        body = bytearray()
        async for chunk in request.stream():  # capped while reading: a huge body never sits in memory
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                too_big = f"request larger than {MAX_BODY_BYTES} bytes"
                return JSONResponse(_error(None, INVALID_REQUEST, too_big))
        if not json_depth_within(bytes(body)):
            return JSONResponse(
                _error(None, PARSE_ERROR, f"parse error: nested deeper than {MAX_JSON_DEPTH}")
            )
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return JSONResponse(_error(None, PARSE_ERROR, f"parse error: {exc}"))
        methods = node.rpc_methods()
        if isinstance(payload, list):
            batch = cast(list[object], payload)
            if not batch or len(batch) > MAX_BATCH:
                return JSONResponse(_error(None, INVALID_REQUEST, f"batch must hold 1…{MAX_BATCH} requests"))
            replies = [r for r in [await _call_one(methods, q) for q in batch] if r is not None]
            return JSONResponse(replies) if replies else Response(status_code=204)
        reply = await _call_one(methods, payload)
        return JSONResponse(reply) if reply is not None else Response(status_code=204)

    return Starlette(
        routes=[
            Route("/status", status, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/", rpc, methods=["POST"]),
        ]
    )


async def serve_http(
    node: NodeApi,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the node's HTTP API until cancelled; reports the bound addresses through task_status."""
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    check_bindable(host, port)
    # hypercorn's `Framework` protocol is narrower than the ASGI callable starlette provides
    app = cast(Any, build_app(node))
    await serve(app, config, task_status=task_status, mode="asgi")


def check_bindable(host: str, port: int) -> None:
    """Fail with one clear line (not a traceback from inside hypercorn) when host:port cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"--host/--port: cannot serve HTTP on {host}:{port}: {exc.strerror or exc}"
            ) from None

"""HTTP: `GET /status`, `GET /metrics`, `POST /` JSON-RPC 2.0; starlette on hypercorn's trio worker."""

from __future__ import annotations

import inspect
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import anyio
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ha_sequencer.errors import InputError
from ha_sequencer.log_limits import BoundedLog, bound
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

# A client that holds a connection without finishing its request is cut off (slow-loris). hypercorn counts
# the keep-alive timeout from the connection's start until a request head has arrived, and between
# requests; the read timeout bounds each wait for bytes; the body deadline bounds the whole body, however
# slowly it trickles in.
KEEP_ALIVE_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
BODY_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 512
MAX_CONNECTIONS_PER_CLIENT = 64  # per IP address: Prometheus, a monitor and a few wallets need far fewer


# What a client's broken connection raises inside hypercorn: contained there, logged as one bounded line.
CONTAINED_CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    trio.BusyResourceError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ClientDisconnect,
    ConnectionError,
)


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


class JsonReply(JSONResponse):
    """A JSON response that any Python string encodes to: non-ASCII escaped, lone surrogates included."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _reply(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    try:
        return JsonReply(content, status_code=status_code, headers=headers)
    except (TypeError, ValueError) as exc:  # a result JSON cannot carry: the caller gets an error, not a 500
        log.warning("JSON-RPC reply not serialisable: %s", exc)
        return JsonReply(_error(None, INTERNAL_ERROR, "internal error"))


def parse_request_body(body: bytes) -> object:
    """The JSON value of a request body in UTF-8, -16 or -32 (RFC 8259 §8.1), its depth checked once decoded.

    Raises RpcError(PARSE_ERROR) for what is not JSON text: bad encoding, too deep, an integer literal longer
    than the interpreter converts (4,300 digits), or a syntax error.
    """
    try:
        text = body.decode(json.detect_encoding(body))
    except (UnicodeDecodeError, LookupError):
        raise RpcError(PARSE_ERROR, "parse error: the body is not UTF-8, UTF-16 or UTF-32 text") from None
    if not json_depth_within(text.encode("utf-8", "surrogatepass")):
        raise RpcError(PARSE_ERROR, f"parse error: nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except RecursionError:
        raise RpcError(PARSE_ERROR, f"parse error: nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as exc:  # JSONDecodeError, and the int-conversion limit json.loads does not wrap
        raise RpcError(PARSE_ERROR, f"parse error: {str(exc).splitlines()[0][:200]}") from None


def _is_text(value: str | int) -> bool:
    """Whether a string is valid Unicode (JSON's \\ud800 escapes decode to lone surrogates, which are not)."""
    if isinstance(value, int):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
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
    id_ = req.get("id")
    if id_ is not None and not (isinstance(id_, int | str) and not isinstance(id_, bool) and _is_text(id_)):
        return _error(None, INVALID_REQUEST, "id must be a string (valid Unicode), number or null")
    if req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str) or not _is_text(req["method"]):
        return _error(id_, INVALID_REQUEST, "invalid request")
    is_notification = "id" not in req
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
    except Exception as exc:  # a handler bug: one line (the caller controls the input), the trace at DEBUG
        log.warning("JSON-RPC %r failed: %s: %r", req["method"], type(exc).__name__, str(exc)[:200])
        log.debug("JSON-RPC %r failed", req["method"], exc_info=True)
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

    async def rpc(request: Request) -> Response:
        body = bytearray()
        close = {"connection": "close"}
        with anyio.move_on_after(BODY_TIMEOUT_S) as reading:
            try:
                async for chunk in request.stream():  # capped while reading: a huge body never sits in memory
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        too_big = f"request larger than {MAX_BODY_BYTES} bytes"
                        return _reply(_error(None, INVALID_REQUEST, too_big), 400, close)
            except ClientDisconnect:  # gone before its body ended: nobody to answer
                return Response(status_code=400, headers=close)
        if reading.cancelled_caught:
            late = f"request body not received within {BODY_TIMEOUT_S:g} s"
            return _reply(_error(None, INVALID_REQUEST, late), 400, close)
        try:
            payload = parse_request_body(bytes(body))
        except RpcError as exc:
            return _reply(_error(None, exc.code, exc.message))
        methods = node.rpc_methods()
        if isinstance(payload, list):
            batch = cast(list[object], payload)
            if not batch or len(batch) > MAX_BATCH:
                return _reply(_error(None, INVALID_REQUEST, f"batch must hold 1…{MAX_BATCH} requests"))
            replies = [r for r in [await _call_one(methods, q) for q in batch] if r is not None]
            return _reply(replies) if replies else Response(status_code=204)
        reply = await _call_one(methods, payload)
        return _reply(reply) if reply is not None else Response(status_code=204)

    return Starlette(
        routes=[
            Route("/status", status, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/", rpc, methods=["POST"]),
        ]
    )


class ConnectionLimits:
    """Connections open at once: at most `total`, and at most `per_client` from one IP address.

    One client (a slow-loris holding sockets, a flood) fills its own share only: /status and JSON-RPC keep
    answering everyone else. A connection over a limit is closed at once, before a byte is read.
    """

    def __init__(self, total: int = MAX_CONNECTIONS, per_client: int = MAX_CONNECTIONS_PER_CLIENT) -> None:
        self.total = total
        self.per_client = per_client
        self.open: dict[str, int] = {}
        self.refused = 0

    def admit(self, client: str) -> bool:
        if sum(self.open.values()) >= self.total or self.open.get(client, 0) >= self.per_client:
            self.refused += 1
            return False
        self.open[client] = self.open.get(client, 0) + 1
        return True

    def release(self, client: str) -> None:
        left = self.open[client] - 1
        if left:
            self.open[client] = left
        else:
            del self.open[client]


class _CountedStream:
    """A connection's stream that frees its slot when closed (hypercorn's handler lingers after that,
    until its keep-alive timer ends: counting until then would fill the limit with closed sockets)."""

    def __init__(self, stream: trio.SocketStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release
        self.socket = stream.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        await self._stream.aclose()


def _client_of(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:  # already reset by the peer
        return "?"


def _hypercorn_config() -> HypercornConfig:
    config = HypercornConfig()
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT_S
    config.read_timeout = READ_TIMEOUT_S
    # A client that breaks its connection mid-reply makes hypercorn log a traceback per connection
    # ("Error in ASGI Framework": BusyResourceError, ClientDisconnect): one bounded line instead.
    bound(config.errorlog, BoundedLog(contained=CONTAINED_CONNECTION_FAILURES))
    return config


async def serve_http(
    node: NodeApi,
    host: str,
    port: int,
    *,
    limits: ConnectionLimits | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the node's HTTP API until cancelled; reports the bound addresses through task_status.

    hypercorn speaks HTTP on each connection; the accept loop is ours, to cap connections per client and
    to keep one connection's failure in that connection: hypercorn 0.18 lets a hostile client's pipelined
    junk raise out of its connection handler (two tasks writing one socket, BusyResourceError), which under
    its own `serve` ends the whole server, and with it the node.
    """
    config = _hypercorn_config()
    check_bindable(host, port)
    # hypercorn's `Framework` protocol is narrower than the ASGI callable starlette provides
    app = ASGIWrapper(cast(Any, build_app(node)))
    context = WorkerContext(None)
    limits = limits or ConnectionLimits()
    bound(log, BoundedLog())  # what clients provoke here (failed connections, handler errors) stays bounded

    async def connection(stream: trio.SocketStream) -> None:
        client = _client_of(stream)
        if not limits.admit(client):
            log.warning("http: refused a connection from %s: %d connections open from it", client,
                        limits.open.get(client, 0))  # fmt: skip
            await stream.aclose()
            return
        counted = _CountedStream(stream, lambda: limits.release(client))
        try:
            await TCPServer(app, config, context, {}, counted)  # pyright: ignore[reportArgumentType]
        except Exception as exc:  # one hostile connection's failure stays in it (see the docstring)
            log.warning("http: connection from %s failed: %s", client, _summary(exc))
        finally:
            with trio.CancelScope(shield=True):
                await counted.aclose()

    listeners = await trio.open_tcp_listeners(port, host=host, backlog=config.backlog)
    bound_to = [f"http://{_address(listener.socket.getsockname())}" for listener in listeners]
    async with trio.open_nursery() as nursery:
        task_status.started(bound_to)
        await nursery.start(trio.serve_listeners, connection, listeners)


def _address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _summary(exc: BaseException) -> str:
    """One line for an exception, the first leaf of a group (a connection's task nursery raises groups)."""
    leaf: Any = exc
    while isinstance(leaf, BaseExceptionGroup) and cast(Any, leaf).exceptions:
        leaf = cast(Any, leaf).exceptions[0]
    name: str = type(cast(object, leaf)).__name__
    text: str = str(cast(object, leaf))
    return f"{name}: {text[:200]}"


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

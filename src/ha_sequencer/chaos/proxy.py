"""A TCP proxy per node in front of a shared endpoint (anvil): up, down (refused and cut), or slow.

netem is not in this kernel, so one node's L1 outage or latency is made here: each HA node talks to L1 through
its own proxy, which the chaos run cuts (every connection closed, new ones refused) or slows (every forwarded
chunk delayed) while the other nodes keep their L1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

ACCEPT_BACKLOG = 64
CHUNK = 65536


class TcpProxy:
    """127.0.0.1:`port` → `target`; `cut()`, `slow(delay_s)`, `restore()`, `close()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(ACCEPT_BACKLOG)
        self.port: int = self._server.getsockname()[1]
        self._up = True
        self.delay_s = 0.0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        """The proxied HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection and refuse new ones (the endpoint is down for this node)."""
        self._up = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def slow(self, delay_s: float) -> None:
        """Delay every forwarded chunk by `delay_s` (the endpoint answers, late)."""
        self.delay_s = delay_s

    def restore(self) -> None:
        """Up again, at full speed."""
        self.delay_s = 0.0
        self._up = True

    def close(self) -> None:
        """Stop accepting and drop everything."""
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                if self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for s in (src, dst):
                    if s in self._conns:
                        self._conns.remove(s)
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

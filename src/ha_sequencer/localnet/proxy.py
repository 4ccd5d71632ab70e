"""A threaded TCP proxy in front of one endpoint: up, down (refused and cut), slow, frozen, cut mid-request.

netem is not in this kernel, so faults of one path are made here: each node talks to L1 (chaos) or to its
duty store (tests) through its own proxy, which is cut (every connection closed, new ones refused), slowed
(every forwarded chunk delayed), paused (connections kept open, no byte forwarded: a hung peer, no reset) or
cut right after the next request reached the server (an answer lost: the request is in doubt).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

ACCEPT_BACKLOG = 64
CHUNK = 65536


class TcpProxy:
    """127.0.0.1:`port` → `target`; `listen_port` 0 picks a free port, another takes an endpoint's place."""

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", listen_port))
        self._server.listen(ACCEPT_BACKLOG)
        self.port: int = self._server.getsockname()[1]
        self._up = True
        self.delay_s = 0.0
        self._flowing = threading.Event()
        self._flowing.set()
        self._cut_after_request = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        """The proxied HTTP URL."""
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection and refuse new ones (the endpoint is down for this client)."""
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

    def pause(self) -> None:
        """Freeze: connections stay open (and new ones are accepted) but no byte is forwarded."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, the held bytes first."""
        self._flowing.set()

    def cut_after_next_request(self) -> None:
        """Forward the next bytes a client sends, then cut everything: the request is in doubt."""
        self._cut_after_request = True

    def restore(self) -> None:
        """Up again, at full speed."""
        self.delay_s = 0.0
        self._up = True

    def refuse(self) -> None:
        """Drop all connections and close the listening socket: new connections are refused (RST)."""
        self.close()

    def close(self) -> None:
        """Stop accepting and drop everything."""
        self._closed = True
        self._flowing.set()
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
            # the timeout bounds the connect only: an idle connection (a quiet gossip link) stays open
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                self._flowing.wait()  # paused: bytes held, connections kept open
                if self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
                if request and self._cut_after_request:
                    self._cut_after_request = False
                    self.cut()  # the server has the request; its answer never reaches the client
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

"""A threaded TCP proxy that can be cut, paused and restored: an endpoint that goes down or freezes."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:port → target; `cut()` closes every connection and refuses new ones; `pause()`
    keeps every connection open but forwards nothing (a frozen server: requests hang, no error)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._up = True
        self._flowing = threading.Event()
        self._flowing.set()
        self._cut_after_request = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # frozen: bytes held, connections kept open (a hung peer, no reset)
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

    def cut(self) -> None:
        """Drop all connections and refuse new ones (the endpoint is 'down')."""
        self._up = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def refuse(self) -> None:
        """Drop all connections and close the listening socket: new connections are refused (RST)."""
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()
        self._flowing.set()

    def restore(self) -> None:
        """Accept connections again."""
        self._up = True

    def cut_after_next_request(self) -> None:
        """Forward the next bytes a client sends, then cut everything: the request is in doubt."""
        self._cut_after_request = True

    def pause(self) -> None:
        """Freeze: connections stay open (and new ones are accepted) but no byte is forwarded."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, the held bytes first."""
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()

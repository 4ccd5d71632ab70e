"""Test helper: run tests/p2p/gossip_peer.py as a real OS process and talk to it over JSON lines."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of

PEER_SCRIPT = Path(__file__).with_name("gossip_peer.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeerSpec:
    """A peer's identity and address, known before it starts (so peers can bootstrap to peers not yet up)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.key = workdir / name / "peer.key"
        self.peer_id = peer_id_of(load_or_create_peer_key(self.key))
        self.port = free_port()
        self.multiaddr = f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"


class PeerProcess:
    """One running gossip_peer.py; `events` collects its stdout JSON lines."""

    def __init__(self, spec: PeerSpec, bootstrap: list[str]) -> None:
        self.spec = spec
        self._stderr = open(spec.key.parent / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(PEER_SCRIPT),
                "--key",
                str(spec.key),
                "--port",
                str(spec.port),
                "--bootstrap",
                ",".join(bootstrap),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: queue.Queue[dict] = queue.Queue()
        self.messages: list[dict] = []
        self._replies: queue.Queue[dict] = queue.Queue()
        self.ready: dict | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event["event"] == "msg":
                self.messages.append(event)
            elif event["event"] == "ready":
                self.ready = event
            else:
                self._replies.put(event)

    def wait_ready(self, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while self.ready is None:
            assert self.proc.poll() is None, f"{self.spec.name} exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, f"{self.spec.name} not ready after {timeout}s"
            time.sleep(0.02)
        return self.ready

    def command(self, cmd: dict, timeout: float = 10.0) -> dict:
        assert self.proc.poll() is None, f"{self.spec.name} exited with {self.proc.returncode}"
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._replies.get(timeout=timeout)

    def publish(self, topic: str, data: bytes, raw: bool = False) -> bool:
        return self.command({"cmd": "publish_raw" if raw else "publish", "topic": topic, "data": data.hex()})[
            "sent"
        ]

    def stats(self) -> dict:
        return self.command({"cmd": "stats"})

    def received(self, topic: str | None = None) -> list[bytes]:
        return [bytes.fromhex(m["data"]) for m in list(self.messages) if topic is None or m["topic"] == topic]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._release()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.kill()
        self._release()

    def _release(self) -> None:
        self._reader.join(timeout=5)  # the process is gone: its stdout reaches EOF
        for f in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


def wait_until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)

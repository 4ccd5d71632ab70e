"""A local L1 for tests and the devnet: the anvil binary from node_modules, on a free port, never orphaned."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ha_sequencer.l1.build import find_node_modules
from ha_sequencer.l1.errors import ToolchainError

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's public default
DEFAULT_ACCOUNTS = 10
START_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1
_live: set[Anvil] = set()


def anvil_binary() -> Path:
    """Path of the anvil executable in the platform package under node_modules."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    path = find_node_modules() / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.is_file():
        raise ToolchainError(f"anvil binary not found at {path}; run `npm ci`")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the kernel SIGKILLs anvil when the thread that started it dies: a crashed run leaves no orphan.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Anvil:
    """A running anvil (context manager): `.rpc_url`, `.accounts`, `.stop()`; time and snapshot helpers."""

    def __init__(
        self,
        block_time: float | None = None,
        *,
        port: int | None = None,
        chain_id: int | None = None,
        accounts: int = DEFAULT_ACCOUNTS,
        balance_eth: int = 10_000,
        extra_args: list[str] | None = None,
        start: bool = True,
    ) -> None:
        self.block_time = block_time
        self.chain_id = chain_id
        self.n_accounts = accounts
        self.balance_eth = balance_eth
        self.extra_args = list(extra_args or [])
        self._requested_port = port
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"Anvil(rpc_url={self.rpc_url!r}, running={self.running})"

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id, when started."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start anvil on a free port and wait until its RPC answers."""
        if self.running:
            return
        binary = anvil_binary()
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = self._requested_port or free_port()
            args = [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--silent",
                "--accounts",
                str(self.n_accounts),
                "--balance",
                str(self.balance_eth),
                "--mnemonic",
                ANVIL_MNEMONIC,
            ]
            if self.block_time is not None:
                args += ["--block-time", str(self.block_time)]
            if self.chain_id is not None:
                args += ["--chain-id", str(self.chain_id)]
            args += self.extra_args
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
            in_main = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                start_new_session=True,
                preexec_fn=_die_with_parent if in_main else None,
            )
            _live.add(self)
            try:
                self._wait_ready()
                return
            except ToolchainError as exc:
                last_error = str(exc)
                self.stop()
                if self._requested_port:
                    break
        raise ToolchainError(f"anvil did not start: {last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise ToolchainError(
                    f"anvil exited with {self._proc.returncode if self._proc else '?'}: {self._log_tail()}"
                )
            try:
                self.rpc("eth_chainId")
                return
            except OSError:
                time.sleep(0.02)
        raise ToolchainError(f"anvil RPC {self.rpc_url} did not answer within {START_TIMEOUT_S:.0f} s")

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace").strip()

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL) and reap it."""
        proc, self._proc = self._proc, None
        _live.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @cached_property
    def accounts(self) -> list[LocalAccount]:
        """anvil's funded default accounts (public test mnemonic)."""
        Account.enable_unaudited_hdwallet_features()
        return [
            Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            for i in range(self.n_accounts)
        ]

    # ---- raw JSON-RPC helpers (tests, devnet)

    def rpc(self, method: str, params: list[Any] | None = None, *, timeout: float = 5.0) -> Any:
        """One JSON-RPC call; raises ToolchainError on an RPC error."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        req = urllib.request.Request(  # noqa: S310 - http to our own anvil
            self.rpc_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http to our own anvil
            reply = json.loads(resp.read())
        if "error" in reply:
            raise ToolchainError(f"anvil {method}: {reply['error']}")
        return reply["result"]

    def latest_timestamp(self) -> int:
        """Timestamp of the latest block."""
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def mine(self, timestamp: int | None = None) -> None:
        """Mine one block (at `timestamp` when given; later blocks continue from there)."""
        if timestamp is not None:
            self.rpc("evm_setNextBlockTimestamp", [timestamp])
        self.rpc("evm_mine", [])

    def set_next_block_timestamp(self, timestamp: int) -> None:
        """The next mined block gets `timestamp`."""
        self.rpc("evm_setNextBlockTimestamp", [timestamp])

    def snapshot(self) -> str:
        """Snapshot the chain state; returns an id for revert()."""
        return self.rpc("evm_snapshot", [])

    def revert(self, snapshot_id: str) -> None:
        """Restore a snapshot (anvil consumes it)."""
        if not self.rpc("evm_revert", [snapshot_id]):
            raise ToolchainError(f"anvil evm_revert({snapshot_id}) failed")

    def set_balance(self, address: str, wei: int) -> None:
        """Set an account's ETH balance."""
        self.rpc("anvil_setBalance", [address, hex(wei)])


@atexit.register
def _stop_all() -> None:
    for anvil in list(_live):
        anvil.stop()

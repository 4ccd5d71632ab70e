"""The anvil launcher: starts on a free port, answers RPC, funded accounts, stops without orphans."""

from __future__ import annotations

import os

import pytest

from ha_sequencer.l1.anvil import Anvil
from ha_sequencer.l1.errors import ToolchainError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); check its state.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_start_answer_stop() -> None:
    with Anvil() as node:
        pid = node.pid
        assert node.running and _alive(pid)
        assert int(node.rpc("eth_chainId"), 16) == 31337
        assert node.accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's default #0
        assert int(node.rpc("eth_getBalance", [node.accounts[9].address, "latest"]), 16) == 10_000 * 10**18
        assert "secret" not in repr(node) and node.rpc_url in repr(node)
    assert not node.running
    assert not _alive(pid)


def test_process_stopped_when_body_raises() -> None:
    with pytest.raises(RuntimeError), Anvil() as node:
        pid = node.pid
        raise RuntimeError("test failure inside the context")
    assert not _alive(pid)


def test_two_instances_get_different_ports_and_block_time() -> None:
    with Anvil() as a, Anvil(block_time=1) as b:
        assert a.port != b.port
        first = int(b.rpc("eth_blockNumber"), 16)
        import time

        time.sleep(2.2)
        assert int(b.rpc("eth_blockNumber"), 16) > first  # interval mining
        assert int(a.rpc("eth_blockNumber"), 16) == 0  # automine: no tx, no block


def test_time_helpers_and_snapshots() -> None:
    with Anvil() as node:
        t = node.latest_timestamp()
        node.mine(t + 1000)
        assert node.latest_timestamp() == t + 1000
        snap = node.snapshot()
        node.mine()
        assert int(node.rpc("eth_blockNumber"), 16) == 2
        node.revert(snap)
        assert int(node.rpc("eth_blockNumber"), 16) == 1


def test_bad_arguments_fail_with_anvil_output() -> None:
    with pytest.raises(ToolchainError, match="anvil"):
        Anvil(extra_args=["--no-such-flag"])


def test_no_orphan_when_the_owner_is_killed() -> None:
    """SIGKILL of the Python process that started anvil (no cleanup code runs) still ends anvil."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import time\nfrom ha_sequencer.l1.anvil import Anvil\n"
        "a = Anvil()\nprint(a.pid, flush=True)\ntime.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(owner.stdout.readline())
        assert _alive(pid)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)

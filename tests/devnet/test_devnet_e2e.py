"""End to end, through the real CLI: `devnet up --detach`, `devnet status`, `failover-test` with a SIGTERM
of the node holding the HA identity's duty and with a kill -9 inside a duty (`--kill-at after_claim`), `devnet
down` leaving no process behind.

The failover assertions are the issue's, unweakened: zero equivocations and no `Slashed` event (safety), and
zero missed duties of the HA identity in every phase (liveness), read from L1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ha_sequencer.devnet.slots import SlotBook
from ha_sequencer.devnet.state import load_state, pid_alive
from ha_sequencer.l1.client import RollupClient

pytestmark = pytest.mark.slow

SLOT = 4  # the devnet default; 6 node processes + anvil + the test on 2 loaded cores
SLOTS_PER_PHASE = 3
_KEY = re.compile(r"0x[0-9a-fA-F]{64}")


def cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `ha-sequencer ARGS` as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def devnet_dir():
    # not under pytest's basetemp: concurrent pytest sessions on this machine prune each other's old basetemps
    directory = Path(tempfile.mkdtemp(prefix="hasq-devnet-e2e-"))
    up = cli("devnet", "up", "--detach", "--dir", directory, "--slot-duration", SLOT, "--no-watcher")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield directory
    finally:
        cli("devnet", "down", "--dir", directory, timeout=120)
        for log in sorted(directory.glob("nodes/*/node.log")):
            print(f"----- {log.parent.name} log tail -----\n{log.read_text(errors='replace')[-1500:]}")
        shutil.rmtree(directory, ignore_errors=True)


def test_devnet_runs_the_ha_identity_on_three_nodes_with_real_txs(devnet_dir: Path) -> None:
    status = cli("devnet", "status", "--dir", devnet_dir, "--json", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert [n["name"] for n in doc["nodes"]] == ["ha1", "ha2", "ha3", "v1", "v2", "v3"]
    assert all(n["health"] == "ok" for n in doc["nodes"]), doc["nodes"]
    state = load_state(devnet_dir)
    assert {n.validator for n in state.ha_nodes} == {state.ha_attester}
    assert len({n.publisher for n in state.nodes}) == 6  # one publisher per node

    # keys came from `validator-keys new` + `split`; no private key leaks into the state file or the logs
    secrets = set()
    for node in state.nodes:
        secrets |= _private_keys(json.loads(Path(node.keystore).read_text()))
    assert len(secrets) == 4 * 2 + 6  # attester ETH + BLS per validator, one publisher per node
    exposed = [devnet_dir / "devnet.json", devnet_dir / "devnet.log", *devnet_dir.glob("nodes/*/node.log")]
    for path in exposed:
        text = path.read_text(errors="replace")
        assert not any(s in text for s in secrets), f"a private key appears in {path}"
    assert (devnet_dir / "devnet.json").stat().st_mode & 0o077 == 0

    # the L2 load lands in blocks on L1
    client = RollupClient([state.l1_rpc_url], state.rollup)
    book = SlotBook(client, client.params())
    deadline = time.monotonic() + 12 * SLOT
    while True:
        book.refresh()
        now = book.current_slot()
        if any(book.facts(s).tx_count > 0 for s in range(max(0, now - 10), now)):
            break
        assert time.monotonic() < deadline, "no block with L2 txs on L1"
        time.sleep(SLOT)


def _private_keys(keystore: dict) -> set[str]:
    """The private keys of a plain-hex keystore (attester eth/bls, publishers; not the feeRecipient)."""
    keys = set()
    for v in keystore["validators"]:
        attester = v["attester"]
        keys |= set(attester.values()) if isinstance(attester, dict) else {attester}
        publishers = v.get("publisher", [])
        keys |= {publishers} if isinstance(publishers, str) else set(publishers)
    assert all(_KEY.fullmatch(k) for k in keys), "expected plain hex keys"
    return keys


def _failover(devnet_dir: Path, *flags: str) -> dict:
    run = cli("failover-test", "--dir", devnet_dir, "--slots", SLOTS_PER_PHASE, "--json", *flags, timeout=480)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    report = json.loads(run.stdout)
    print(json.dumps(report, indent=2))
    assert (run.returncode == 0) == report["ok"]
    return report


def _assert_failover(report: dict) -> None:
    assert [p["phase"] for p in report["phases"]] == ["baseline", "stop", "down", "restart", "rejoined"]
    # safety first: never two digests for one duty, never slashed
    assert not [e for p in report["phases"] for e in p["equivocations"]]
    assert not [s for p in report["phases"] for s in p["slashed"]]
    assert report["watcher"]["slashingSubmissions"] == []
    # the watcher saw every node: a slot without a block was judged on full gossip coverage
    assert report["watcher"]["fullCoverage"], report["watcher"]
    assert report["watcher"]["peers"] >= report["watcher"]["expectedPeers"] > 0
    assert report["watcher"]["messages"] > 0
    assert report["rejoin"]["ok"], report["rejoin"]
    # liveness: every duty of the identity on L1, in every phase
    missed = [f"{p['phase']}: {m}" for p in report["phases"] for m in p["missed"]]
    assert not missed, "missed duties:\n" + "\n".join(missed)
    assert report["ok"]


def test_failover_sigterm_of_the_duty_holder(devnet_dir: Path) -> None:
    report = _failover(devnet_dir)
    assert report["stoppedHolding"] in ("block_proposal", "attestation"), report["phases"][1]["notes"]
    _assert_failover(report)


def test_failover_kill9_inside_a_duty_has_its_claim_adopted(devnet_dir: Path) -> None:
    # kill -9 by the node's own guard right after it claimed a duty (the claim held, nothing signed): the run
    # proves from the store's rows that a twin adopted that claim, or that the duty landed on L1 anyway
    report = _failover(devnet_dir, "--kill-at", "after_claim")
    assert report["mode"] == "kill" and report["killAt"] == "after_claim"
    assert report["killPointReached"], report["phases"][1]["notes"]
    _assert_failover(report)
    held = report["heldByStopped"]
    assert held, "the killed node held no claim"
    assert all(h["ok"] for h in held), held
    assert all(h["adoptedBy"] != report["target"] for h in held)
    assert any(h["adoptedBy"] for h in held) or all(h["fulfilled"] for h in held)


def test_failover_kill9_after_a_record_has_the_stored_message_sent(devnet_dir: Path) -> None:
    # kill -9 by the node's own guard right after it recorded a signature, before releasing or gossiping it:
    # a twin must send the stored message (the same attestation, or the stored signed block), and the duty
    # lands on L1 as recorded
    report = _failover(devnet_dir, "--kill-at", "after_record")
    assert report["mode"] == "kill" and report["killAt"] == "after_record"
    assert report["killPointReached"], report["phases"][1]["notes"]
    _assert_failover(report)
    held = report["heldByStopped"]
    assert held and any(h["status"] == "signed" and h["adoptedBy"] is None for h in held), held
    assert all(h["ok"] and h["fulfilled"] for h in held), held


def test_down_leaves_no_process_behind(devnet_dir: Path) -> None:
    state = load_state(devnet_dir)
    pids = [state.supervisor_pid, state.anvil_pid, *(n.pid for n in load_state(devnet_dir).nodes)]
    down = cli("devnet", "down", "--dir", devnet_dir, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in pids if pid_alive(p)] == []
    assert not (devnet_dir / "devnet.json").exists()
    assert cli("devnet", "status", "--dir", devnet_dir, timeout=60).returncode == 2

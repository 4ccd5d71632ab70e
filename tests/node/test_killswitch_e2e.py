"""The kill switch end to end: one identity on 3 nodes sharing a duty store, 3 other validators, anvil.

1. Doppelganger wait: a copy of the identity started on its own store with `--doppelganger-slots` finds no
   live twin there, listens, sees the fleet's signatures (foreign to its store) and halts itself: it signs
   nothing, and the fleet goes on unhalted.
2. A signer outside the store (a gossip peer holding a conflicting attestation signed with the identity's
   key) halts all 3 nodes of the fleet at once; they sign nothing for the identity while halted, the other
   validators go on; an operator's `ha-db resume` brings the identity back.
3. The classic misconfiguration: a second copy of the keystore (fee recipient edited) on its own store,
   without the doppelganger wait. Whichever side sees the other first halts; at most one duty is ever
   signed twice.
Forged and replayed messages are covered in test_detector.py; test_ha_e2e.py (kill -9 mid-duty, adoption)
asserts that no halt was ever written: the kill switch does not fire on the fleet's own messages.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ha_sequencer.ha.commands import app as ha_db_app
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import LocalNet, NodeProcess, generate_validators
from ha_sequencer.p2p.identity import load_or_create_peer_key
from ha_sequencer.p2p.topics import ATTESTATION_TOPIC
from ha_sequencer.protocol.messages import Attestation, attestation_digest, sign_digest
from ha_sequencer.protocol.wire import SignedAttestation, encode_attestation

pytestmark = pytest.mark.slow

SLOT = 3
FOREIGN_SIGNER = Path(__file__).with_name("foreign_signer.py")


def _rows(path: Path, sql: str, *args: object) -> list[tuple]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


def _halts(path: Path) -> list[tuple]:
    return _rows(
        path, "SELECT attester, slot, duty_type, reason, halted_at FROM halts WHERE resumed_at IS NULL"
    )


def _signed(path: Path, attester: str) -> list[tuple]:
    return _rows(
        path,
        "SELECT slot, duty_type, digest, signed_at FROM duties WHERE attester = ? AND status = 'signed'",
        attester.lower(),
    )


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.1)


def _halted_reason(node: NodeProcess) -> str | None:
    try:
        _code, status = node.status()
    except Exception:  # noqa: BLE001 — a node busy or restarting answers next time
        return None
    return next((r for r in status["reasons"] if r.startswith("halted:")), None)


@pytest.fixture
def fleet():
    workdir = Path(tempfile.mkdtemp(prefix="hasq-killswitch-"))
    validators = generate_validators(4, publishers_each=3)
    ha, singles = validators[0], validators[1:]
    store = workdir / "fleet-duties.sqlite"
    net = LocalNet(workdir, slot_duration=SLOT, epoch_length=8, committee_size=4)
    try:
        net.deploy(validators, users=1)
        for j in range(3):
            net.add_node(f"ha{j}", [(ha, [j])], ha_db=f"sqlite:///{store}")
        for i, v in enumerate(singles):
            net.add_node(f"v{i}", [(v, [0])])
        net.start()
        net.wait_ready(timeout=90)
        net.ha = ha
        net.store = store
        yield net
    finally:
        net.close()
        for node in net.nodes.values():
            print(f"----- {node.name} log tail -----\n{node.log_text()[-2500:]}")
        shutil.rmtree(workdir, ignore_errors=True)


def test_kill_switch_halts_foreign_signers_and_only_them(fleet) -> None:
    net = fleet
    params = RollupClient(net.l1_urls, net.rollup).params()
    ha = net.ha.address
    fleet_nodes = [net.nodes[f"ha{j}"] for j in range(3)]
    _wait(lambda: len(_signed(net.store, ha)) >= 2, 10 * SLOT, "the fleet's first signatures")

    # 1. doppelganger wait: a copy on its own store halts itself instead of starting
    careful = net.add_node("careful", [(net.ha, [0])], extra_args=["--doppelganger-slots", "6"])
    net.start(["careful"])
    careful_store = careful.data_dir / "duties.sqlite"
    [halt] = _wait(lambda: _halts(careful_store), 8 * SLOT, "the careful copy to halt itself")
    assert halt[0] == ha.lower() and "foreign signature" in halt[3]
    assert _signed(careful_store, ha) == [], "the copy signed during its doppelganger wait"
    assert "doppelganger: no twin live in the duty store" in careful.log_text()
    _wait(lambda: _halted_reason(careful), 3 * SLOT, "the copy's /status to say halted")
    careful.stop()
    assert _halts(net.store) == [], "the fleet was halted by the copy that only listened"

    # 2. a signer outside the store: every node of the fleet stops signing for the identity at once
    key = net.workdir / "foreign" / "p2p-key"
    key.parent.mkdir()
    load_or_create_peer_key(key)
    bootstrap = ",".join(n.multiaddr for n in net.nodes.values() if n.running)
    signer = subprocess.Popen(
        [sys.executable, str(FOREIGN_SIGNER), "--key", str(key), "--bootstrap", bootstrap],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert signer.stdout.readline().strip() == "ready"
        slot = params.slot_at(time.time())
        conflicting = Attestation(slot, os.urandom(32))
        signature = sign_digest(net.ha.attester, attestation_digest(params, conflicting))
        data = encode_attestation(SignedAttestation(conflicting.slot, conflicting.archive, signature))
        sent_at = time.time()
        signer.stdin.write(f"{ATTESTATION_TOPIC} {data.hex()}\n")
        signer.stdin.flush()
        assert signer.stdout.readline().startswith("published")
        [halt] = _wait(lambda: _halts(net.store), 2 * SLOT, "the fleet's halt")
        halted_at = halt[4]
        reasons = {
            n.name: _wait(lambda n=n: _halted_reason(n), 2 * SLOT, f"{n.name} /status") for n in fleet_nodes
        }
        all_halted = time.time()
    finally:
        signer.stdin.close()
        signer.terminate()
        signer.wait(10)
    assert f"foreign signature for slot {slot} (attestation) by {ha}" in halt[3]
    assert all(f"slot {slot}" in r for r in reasons.values()), reasons
    print(
        f"FIGURE foreign signature → halt in the store {halted_at - sent_at:.3f} s; → all 3 nodes report "
        f"halted {all_halted - sent_at:.3f} s ({(all_halted - sent_at) / SLOT:.2f} slots)"
    )
    # halted: nothing new is signed for the identity; the other validators' blocks keep landing
    time.sleep(3 * SLOT)
    late = [r for r in _signed(net.store, ha) if r[3] > halted_at + 0.5]
    assert late == [], f"signed while halted: {late}"
    client = RollupClient(net.l1_urls, net.rollup)
    assert any(e.slot > slot for e in client.block_proposed_events(0)), "the network stopped"

    # an operator resumes: the identity signs again
    r = CliRunner().invoke(
        ha_db_app,
        ["resume", "--db", f"sqlite:///{net.store}", "--attester", ha, "--reason", "foreign key destroyed"],
    )
    assert r.exit_code == 0, r.output
    resumed = time.time()
    _wait(lambda: [x for x in _signed(net.store, ha) if x[3] > resumed], 4 * SLOT, "a signature after resume")
    _wait(lambda: all(_halted_reason(n) is None for n in fleet_nodes), 2 * SLOT, "/status without halt")

    # 3. the classic misconfiguration: a copy of the keystore on its own store, no doppelganger wait
    copy = dataclasses.replace(net.ha, fee_recipient=b"\x0f" * 32)
    rogue = net.add_node("rogue", [(copy, [1])])
    net.start(["rogue"])
    rogue_store = rogue.data_dir / "duties.sqlite"
    _wait(lambda: _halts(rogue_store) or _halts(net.store), 15 * SLOT, "a halt on either side")
    time.sleep(2 * SLOT)  # let the other side's detector see what there is to see
    rogue.stop()
    fleet_duties = {(s, t): bytes(d) for s, t, d, _at in _signed(net.store, ha)}
    rogue_duties = {(s, t): (bytes(d), at) for s, t, d, at in _signed(rogue_store, ha)}
    equivocations = sorted(
        k for k, (d, _at) in rogue_duties.items() if k in fleet_duties and fleet_duties[k] != d
    )
    print(
        f"FIGURE misconfigured copy: rogue signed {len(rogue_duties)} duties, equivocations "
        f"{len(equivocations)} {equivocations}; halted: fleet={bool(_halts(net.store))} "
        f"rogue={bool(_halts(rogue_store))}"
    )
    assert len(equivocations) <= 1, equivocations

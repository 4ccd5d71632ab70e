"""Fast tests of the devnet's pure parts: state file, equivocation ledger, duty accounting, CLI errors."""

from __future__ import annotations

import os
import stat

import pytest
from eth_account import Account
from eth_utils import keccak

from ha_sequencer.cli import main
from ha_sequencer.devnet.failover import evaluate_phase
from ha_sequencer.devnet.orchestrator import DevnetConfig
from ha_sequencer.devnet.slots import SlotFacts
from ha_sequencer.devnet.state import (
    DevnetNotFound,
    DevnetState,
    NodeEntry,
    StoreClusterEntry,
    load_state,
    pid_alive,
    pid_matches,
    update_node_pid,
    write_ha_db_url,
    write_state,
)
from ha_sequencer.devnet.store_cluster import describe as describe_cluster
from ha_sequencer.devnet.store_failover import StoreFailoverError, StoreFailoverTest
from ha_sequencer.devnet.watcher import (
    ATTESTATION,
    PROPOSAL,
    SignatureLedger,
    SlashedEvent,
    attestation_sighting,
    proposal_sighting,
)
from ha_sequencer.errors import InputError
from ha_sequencer.l1.anvil import free_port
from ha_sequencer.l1.client import BlockProposedEvent
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import (
    Attestation,
    InvalidSignature,
    Proposal,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    WireError,
    encode_attestation,
    encode_signed_block,
)

PARAMS = NetworkParams(
    chain_id=31337,
    rollup="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    genesis_time=1_000_000,
    slot_duration=4,
    epoch_length=8,
    committee_size=4,
    genesis_seed=bytes(32),
    min_stake=10**18,
    slash_amount=10**17,
)
HA = Account.from_key(keccak(b"devnet test HA"))
OTHERS = [Account.from_key(keccak(f"devnet test v{i}".encode())) for i in range(1, 4)]
COMMITTEE = (HA.address, *(a.address for a in OTHERS))


def _state(tmp_path) -> DevnetState:
    node = NodeEntry(
        name="ha1",
        validator=HA.address,
        ha=True,
        pid=None,
        http_port=8080,
        p2p_port=40400,
        peer_id="16Uiu2HAm",
        data_dir=str(tmp_path / "nodes" / "ha1"),
        keystore=str(tmp_path / "keys" / "ks.json"),
        log=str(tmp_path / "nodes" / "ha1" / "node.log"),
        publisher=OTHERS[0].address,
        argv=["python", "-m", "ha_sequencer.cli", "node", "start"],
    )
    return DevnetState(
        directory=str(tmp_path),
        supervisor_pid=os.getpid(),
        anvil_pid=None,
        l1_rpc_url="http://127.0.0.1:8545",
        rollup=PARAMS.rollup,
        chain_id=31337,
        slot_duration=4,
        epoch_length=8,
        committee_size=4,
        ha_attester=HA.address,
        ha_db="postgresql://***@db:5432/ha",
        ha_db_kind="postgres",
        validators=list(COMMITTEE),
        nodes=[node],
    )


def test_state_round_trips_privately_and_pid_updates(tmp_path) -> None:
    state = _state(tmp_path)
    write_state(state)
    write_ha_db_url(tmp_path, "postgresql://ha:s3cret@db:5432/ha")
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ha-db.url").stat().st_mode) == 0o600
    assert "s3cret" not in state.path.read_text()
    loaded = load_state(tmp_path)
    assert loaded == state
    assert loaded.ha_db_url() == "postgresql://ha:s3cret@db:5432/ha"
    assert loaded.node("ha1").url == "http://127.0.0.1:8080"
    assert loaded.node("ha1").multiaddr == "/ip4/127.0.0.1/tcp/40400/p2p/16Uiu2HAm"
    update_node_pid(tmp_path, "ha1", 4242)
    assert load_state(tmp_path).node("ha1").pid == 4242
    write_state(loaded)  # replacing an existing state file works
    with pytest.raises(InputError, match="no node 'ha9'.*ha1"):
        loaded.node("ha9")


def test_missing_or_foreign_state_is_an_input_error(tmp_path) -> None:
    with pytest.raises(DevnetNotFound, match="devnet up"):
        load_state(tmp_path)
    (tmp_path / "devnet.json").write_text('{"version": 1, "bogus": true}')
    with pytest.raises(DevnetNotFound, match="not a devnet state file"):
        load_state(tmp_path)
    assert DevnetNotFound.exit_code == 2


def test_pid_checks_guard_against_reused_pids() -> None:
    assert pid_alive(os.getpid())
    assert pid_matches(os.getpid(), ("python", "pytest"))
    assert not pid_matches(os.getpid(), "no-such-marker-in-cmdline")
    assert not pid_alive(None)


def _signed_block(slot: int, archive: bytes, signer=HA) -> bytes:
    block = Block(slot, b"\x11" * 32, archive, bytes(32), b"")
    digest = proposal_digest(PARAMS, block.proposal)
    return encode_signed_block(SignedBlock(block, sign_digest(signer, digest)))


def _signed_attestation(slot: int, archive: bytes, signer=HA) -> bytes:
    signature = sign_digest(signer, attestation_digest(PARAMS, Attestation(slot, archive)))
    return encode_attestation(SignedAttestation(slot, archive, signature))


def test_ledger_flags_two_digests_for_one_duty_and_nothing_else() -> None:
    ledger = SignatureLedger()
    a, b = b"\xaa" * 32, b"\xbb" * 32
    # the same proposal from three HA nodes (identical bytes, deterministic signatures): redundancy
    for peer in ("ha1", "ha2", "ha3"):
        assert ledger.record(proposal_sighting(PARAMS, _signed_block(7, a), peer)) is None
    # another slot, another duty type, another attester: no conflict
    assert ledger.record(proposal_sighting(PARAMS, _signed_block(8, b), "ha1")) is None
    assert ledger.record(attestation_sighting(PARAMS, _signed_attestation(7, b), "ha2")) is None
    assert ledger.record(attestation_sighting(PARAMS, _signed_attestation(7, a, OTHERS[0]), "v1")) is None
    assert ledger.equivocations() == []
    found = ledger.record(proposal_sighting(PARAMS, _signed_block(7, b), "ha2"))
    assert found is not None
    assert (found.attester, found.slot, found.duty) == (HA.address, 7, PROPOSAL)
    assert found.to_json()["peers"] == ["ha1", "ha2"]
    conflict = attestation_sighting(PARAMS, _signed_attestation(7, a), "ha3")
    assert ledger.record(conflict).duty == ATTESTATION
    assert [e.slot for e in ledger.equivocations(7, 7)] == [7, 7]
    assert ledger.equivocations(8) == []


def test_sightings_recover_the_signer_and_reject_garbage() -> None:
    s = proposal_sighting(PARAMS, _signed_block(3, b"\x01" * 32, OTHERS[1]), "p")
    assert s.attester == OTHERS[1].address and s.slot == 3
    with pytest.raises(WireError):
        proposal_sighting(PARAMS, b"\x01garbage", "p")
    with pytest.raises(InvalidSignature):
        attestation_sighting(PARAMS, encode_attestation(SignedAttestation(3, bytes(32), b"\x00" * 65)), "p")


def _event(slot: int, proposer: str, attesters: tuple[str, ...], archive: bytes = b"\x01" * 32):
    proposal = Proposal(slot, bytes(32), archive, keccak(b""), bytes(32))
    return BlockProposedEvent(
        slot=slot,
        block_number=slot,
        archive=archive,
        proposer=proposer,
        publisher=proposer,
        attesters=attesters,
        proposal=proposal,
        txs=b"",
        l1_block_number=100 + slot,
        l1_tx_hash=bytes(32),
        log_index=0,
    )


def _phase(slots, ledger=None, slashed=()):
    return evaluate_phase(
        "p", slots[0].slot, slots[-1].slot, slots, HA.address, ledger or SignatureLedger(), slashed,
        PARAMS.slot_start,
    )  # fmt: skip


def test_duties_of_the_identity_are_counted_from_l1() -> None:
    v1, v2 = OTHERS[0].address, OTHERS[1].address
    slots = [
        SlotFacts(
            10, HA.address, COMMITTEE, _event(10, HA.address, (HA.address, v1, v2))
        ),  # proposed, attested
        SlotFacts(11, v1, COMMITTEE, _event(11, v1, (HA.address, v1, v2))),  # attested
        SlotFacts(12, v2, COMMITTEE[1:], _event(12, v2, (v1, v2))),  # not in the committee: no duty
    ]
    report = _phase(slots)
    assert (report.proposals, report.proposals_ok, report.attestations, report.attestations_ok) == (
        1,
        1,
        2,
        2,
    )
    assert report.blocks == 3 and report.ok


def test_a_missing_block_or_attestation_is_a_miss_with_its_reason() -> None:
    v1, v2, v3 = (a.address for a in OTHERS)
    archive = b"\x05" * 32
    ledger = SignatureLedger()
    # slot 21: the identity's attestation was on gossip, yet the proposer published without it
    ledger.record(attestation_sighting(PARAMS, _signed_attestation(21, archive), "ha1"))
    slots = [
        SlotFacts(20, HA.address, COMMITTEE, None),
        SlotFacts(21, v1, COMMITTEE, _event(21, v1, (v1, v2, v3), archive)),
        SlotFacts(22, v2, COMMITTEE, _event(22, v2, (v1, v2, v3))),
    ]
    report = _phase(slots, ledger)
    assert [(m.slot, m.duty) for m in report.missed] == [
        (20, "proposal"),
        (21, "attestation"),
        (22, "attestation"),
    ]
    assert "no proposal seen on gossip" in report.missed[0].detail
    assert "seen on gossip" in report.missed[1].detail and "3/4" in report.missed[1].detail
    assert "no attestation" in report.missed[2].detail
    assert report.nothing_to_attest == 1  # slot 20: no proposal at all, so nothing to attest
    assert not report.ok
    assert report.to_json()["missed"][0] == {
        "slot": 20,
        "duty": "proposal",
        "detail": report.missed[0].detail,
    }


def test_a_slot_without_a_block_needs_an_attestation_only_if_a_proposal_was_gossiped() -> None:
    v1 = OTHERS[0].address
    archive = b"\x07" * 32
    ledger = SignatureLedger()
    ledger.record(proposal_sighting(PARAMS, _signed_block(31, archive, OTHERS[0]), "v1"))
    quiet = _phase([SlotFacts(30, v1, COMMITTEE, None)], ledger)
    assert quiet.ok and quiet.nothing_to_attest == 1 and quiet.attestations == 0
    unattested = _phase([SlotFacts(31, v1, COMMITTEE, None)], ledger)
    assert [m.slot for m in unattested.missed] == [31]
    ledger.record(attestation_sighting(PARAMS, _signed_attestation(31, archive), "ha2"))
    attested = _phase([SlotFacts(31, v1, COMMITTEE, None)], ledger)
    assert attested.ok and attested.attestations_ok == 1


def test_equivocations_and_slashing_fail_the_phase() -> None:
    v1 = OTHERS[0].address
    ledger = SignatureLedger()
    ledger.record(attestation_sighting(PARAMS, _signed_attestation(40, b"\x01" * 32), "ha1"))
    ledger.record(attestation_sighting(PARAMS, _signed_attestation(40, b"\x02" * 32), "ha2"))
    facts = [SlotFacts(40, v1, COMMITTEE, _event(40, v1, (HA.address, v1, OTHERS[1].address)))]
    report = _phase(facts, ledger)
    assert len(report.equivocations) == 1 and not report.ok
    slash = SlashedEvent(HA.address, 1, 40, v1, 10**17, 200, "0x" + "00" * 32)
    assert _phase(facts, slashed=[slash]).slashed == [slash.to_json()]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"ha_nodes": 0}, "--ha-nodes"),
        ({"validators": 0}, "--validators"),
        ({"slot_duration": 1}, "--slot-duration"),
        ({"committee_size": 9}, "--committee-size"),
        ({"ha_db": "mysql://x"}, "--ha-db"),
        ({"ha_db": "postgresql://h/db", "store_cluster": True}, "--store-cluster and --ha-db"),
    ],
)
def test_devnet_options_are_checked(kwargs, flag) -> None:
    with pytest.raises(InputError, match=flag):
        DevnetConfig(**kwargs).validate()


def test_cli_without_a_devnet_says_where_it_looked(tmp_path, capsys) -> None:
    for argv in (["devnet", "status"], ["devnet", "down"], ["failover-test"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--dir", str(tmp_path)])
        assert exc.value.code == 2
        assert f"no devnet in {tmp_path}" in capsys.readouterr().err


def test_the_store_cluster_is_in_the_state_and_store_failover_needs_it(tmp_path, capsys) -> None:
    state = _state(tmp_path)
    with pytest.raises(StoreFailoverError, match="devnet up --store-cluster"):
        StoreFailoverTest(state)
    state.store_cluster = StoreClusterEntry(
        directory=str(tmp_path / "store-cluster"),
        names=["pg0", "pg1", "pg2"],
        pg_ports=[1, 2, 3],
        api_ports=[free_port()],  # nothing listens: no member answers
        patroni_pids={"pg0": 11, "pg1": 12, "pg2": 13},
        etcd_pids=[21, 22, 23],
    )
    write_state(state)
    assert load_state(tmp_path) == state
    assert describe_cluster(state.store_cluster).startswith("no member answers")
    for extra in (["--kill"], ["--node", "ha1"], ["--ha-db", "postgresql://h/db"]):
        with pytest.raises(SystemExit) as exc:
            main(["failover-test", "--store-failover", *extra, "--dir", str(tmp_path)])
        assert exc.value.code == 2
        assert "--store-failover" in capsys.readouterr().err

"""How rows of Aztec's `validator_duties` map onto our duties and watermarks; the command's input errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ha_sequencer.errors import EXIT_USAGE
from ha_sequencer.ha.aztec_import import NODE_PREFIX, AztecDuty, plan_import
from ha_sequencer.ha.errors import InterchangeError

ROLLUP = "0x" + "11" * 20
ME = "0x" + "22" * 20


def _row(slot: int, duty_type: str, status: str = "signed", digest: str = "ab") -> AztecDuty:
    signed = status == "signed"
    signature = "0x" + "cd" * 64 + "1b" if signed else None
    return AztecDuty(ROLLUP, ME, slot, duty_type, status, "0x" + digest * 32, signature, "n1", 1.0)


def test_the_mapping_of_every_aztec_duty_type() -> None:
    plan = plan_import(
        [
            _row(5, "CHECKPOINT_PROPOSAL"),
            _row(5, "BLOCK_PROPOSAL"),
            _row(7, "BLOCK_PROPOSAL"),
            _row(6, "ATTESTATION"),
            _row(8, "ATTESTATIONS_AND_SIGNERS"),
            _row(9, "ATTESTATION", status="signing"),
            _row(9, "SLASHING_VOTE"),
            _row(9, "GOVERNANCE_VOTE"),
        ]
    )
    assert [(d["slot"], d["duty_type"], d["node_id"]) for d in plan.duties] == [
        (5, "block_proposal", NODE_PREFIX + "n1"),
        (6, "attestation", NODE_PREFIX + "n1"),
    ]
    assert plan.duties[0]["digest"] == bytes.fromhex("ab" * 32) and plan.duties[0]["payload"] == b""
    assert len(plan.duties[0]["signature"] or b"") == 65
    assert {(w["duty_type"], w["slot"]) for w in plan.watermarks} == {
        ("block_proposal", 8),
        ("attestation", 9),
    }
    assert [(u.slot, u.duty_type) for u in plan.unfinished] == [(9, "ATTESTATION")]
    assert dict(plan.watermark_only) == {"BLOCK_PROPOSAL": 2, "ATTESTATIONS_AND_SIGNERS": 1}
    assert dict(plan.skipped) == {"SLASHING_VOTE": 1, "GOVERNANCE_VOTE": 1}


def test_rows_that_cannot_be_read_are_refused_with_where() -> None:
    with pytest.raises(InterchangeError, match="slot 3 SOMETHING_NEW: unknown Aztec duty type"):
        plan_import([_row(3, "SOMETHING_NEW")])
    with pytest.raises(InterchangeError, match="slot 4 ATTESTATION: message_hash: expected 32 bytes"):
        plan_import([dataclasses.replace(_row(4, "ATTESTATION"), message_hash="0xabcd")])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_wants_a_file_or_an_aztec_url_and_says_which_is_wrong(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'duties.sqlite'}"
    neither = _cli("ha-db", "import", "--db", db)
    assert neither.returncode == EXIT_USAGE and "either FILE" in neither.stderr
    not_pg = _cli("ha-db", "import", "--db", db, "--from-aztec", "mysql://u:secret@h/db")
    assert not_pg.returncode == EXIT_USAGE and "postgresql://" in not_pg.stderr
    assert "secret" not in not_pg.stdout + not_pg.stderr
    down = _cli("ha-db", "import", "--db", db, "--from-aztec", "postgresql://u:secret@127.0.0.1:1/aztec")
    assert down.returncode == 1 and "--from-aztec" in down.stderr and "Traceback" not in down.stderr
    assert "secret" not in down.stdout + down.stderr

"""`failover-test --kill-at`: the verdict on the duties a killed node held (adopted, fulfilled or lost) and on
whether the kill inside a duty happened at all; bad points refused (exit 2)."""

from __future__ import annotations

import pytest

from ha_sequencer.cli import main
from ha_sequencer.devnet.failover import FailoverReport, HeldDuty, PhaseReport, RejoinCheck


def _report(held: list[HeldDuty], *, kill_at: str | None = "after_claim", reached: bool | None = True):
    rejoin = RejoinCheck("ha1", healthy=True, synced=True, signed_since_restart=3)
    return FailoverReport(
        mode="kill",
        target="ha1",
        stopped_at_slot=10,
        stopped_duty="a duty at after_claim",
        phases=[PhaseReport("stop", 8, 10)],
        rejoin=rejoin,
        watcher_peers=6,
        watcher_messages=40,
        duration_s=60.0,
        watcher_expected=6,
        kill_at=kill_at,
        kill_point_reached=reached,
        held_by_target=held,
    )


def test_a_held_duty_adopted_or_fulfilled_passes_and_a_lost_one_fails() -> None:
    adopted = HeldDuty(10, "attestation", "signed", adopted_by="ha2", fulfilled=True)
    fulfilled = HeldDuty(10, "block_proposal", "signing", adopted_by=None, fulfilled=True)
    assert _report([adopted, fulfilled]).ok
    lost = HeldDuty(10, "attestation", "signing", adopted_by=None, fulfilled=False)
    report = _report([adopted, lost])
    assert not report.ok
    assert report.failing_rows == [
        "attestation of slot 10 held by the killed ha1: neither adopted by a twin nor fulfilled on L1 "
        "(row signing)"
    ]
    assert report.to_json()["heldByStopped"][1] == {
        "slot": 10,
        "duty": "attestation",
        "status": "signing",
        "adoptedBy": None,
        "fulfilled": False,
        "ok": False,
    }


def test_kill_at_fails_when_the_point_was_not_reached_or_no_claim_was_held() -> None:
    adopted = HeldDuty(10, "attestation", "signed", adopted_by="ha2", fulfilled=True)
    unreached = _report([], reached=False)
    assert not unreached.ok and "reached no such point" in unreached.failing_rows[0]
    no_claim = _report([], reached=True)
    assert not no_claim.ok and "holds no claim of it" in no_claim.failing_rows[0]
    assert _report([adopted]).ok
    # a plain --kill proves nothing about fault points: holding nothing is fine there
    assert _report([], kill_at=None, reached=None).ok


@pytest.mark.parametrize(
    "args",
    [
        ["--kill-at", "before_claim"],  # no claim held there: nothing to adopt
        ["--kill-at", "nowhere"],
        ["--store-failover", "--kill-at", "after_claim"],
    ],
)
def test_bad_kill_at_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["failover-test", *args])
    assert info.value.code == 2
    assert "--kill-at" in capsys.readouterr().err

"""`bench guard`'s modes, small: the uncontested control and the paced race (correctness, never timing)."""

from __future__ import annotations

import pytest

from ha_sequencer.bench.guard import bench_guard_run


@pytest.mark.slow
def test_the_uncontested_control_gives_every_racer_its_own_duties() -> None:
    result = bench_guard_run("sqlite", nodes=3, duties=20, independent=True, interval_ms=2.0, seed=7)
    # three attesters, none shared: every racer signs each of its 20 duties itself, nothing is refused
    assert (result["signed"], result["shared"], result["refused"]) == (60, 0, 0)
    assert result["equivocations"] == 0 and result["unsigned_duties"] == 0
    assert result["contested"] is False


@pytest.mark.slow
def test_a_paced_race_signs_each_duty_once_and_settles_the_twins() -> None:
    result = bench_guard_run("sqlite", nodes=3, duties=20, interval_ms=2.0, seed=7)
    assert result["signed"] == 20  # one new signature per duty; the twins share it or are refused
    assert result["shared"] + result["refused"] + result["adopted"] == 40
    assert result["equivocations"] == 0 and result["unsigned_duties"] == 0

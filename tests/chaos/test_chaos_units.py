"""The chaos schedule is pure and seeded; bad input exits 2 naming the option; eligibility by overlap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ha_sequencer.chaos.faults import Impairment
from ha_sequencer.chaos.schedule import (
    FAULT_CLASSES,
    NODE_FAULTS,
    PARTITION_HEAL_S,
    check_inputs,
    parse_fault_list,
    plan_faults,
)
from ha_sequencer.errors import InputError

HA = ("ha1", "ha2", "ha3")
# a restarted node counts as down 12 s after its (last) restart; a healed one until its peers redialled
RECOVERY = {"kill": 12.0, "term": 12.0, "pause": 0.0, "l1": 0.0, "partition": PARTITION_HEAL_S, "skew": 12.0}


def _plan(seed: int, **kw):
    args = dict(
        slots=400, seed=seed, kinds=FAULT_CLASSES, rate=0.3, ha_nodes=HA, slot_duration=4.0, lease_s=1.0
    )
    return plan_faults(**{**args, **kw})


def test_same_seed_same_schedule_and_every_class_drawn() -> None:
    assert _plan(7) == _plan(7)
    assert _plan(7) != _plan(8)
    assert {f.kind for f in _plan(7)} == set(FAULT_CLASSES)
    assert all(f.node is None for f in _plan(7) if f.kind == "store")
    assert {f.delay_s > 0 for f in _plan(7) if f.kind == "l1"} == {True, False}  # slow and down


def test_never_every_ha_node_at_once_unless_allowed() -> None:
    for seed in range(20):
        for nodes in (HA, HA[:2]):
            faults = _plan(seed, ha_nodes=nodes, rate=0.9, kinds=NODE_FAULTS)
            for f in faults:
                at = (f.at_slot + f.offset) * 4.0
                busy = {
                    g.node
                    for g in faults
                    if g.index < f.index and (g.at_slot + g.offset) * 4.0 + g.hold_s + RECOVERY[g.kind] > at
                }
                assert len(busy | {f.node}) < len(nodes), (seed, f)
    total = _plan(3, ha_nodes=HA[:2], rate=0.9, kinds=("kill",), allow_total_outage=True)
    assert len(total) > len(_plan(3, ha_nodes=HA[:2], rate=0.9, kinds=("kill",)))


def test_pause_outlasts_the_lease_and_store_holds_one_to_three_slots() -> None:
    for f in _plan(11, rate=0.6):
        if f.kind == "pause":
            assert f.hold_s > 1.0 + 0.5 * 4.0 - 1e-9
        if f.kind in ("store", "l1"):
            assert 4.0 <= f.hold_s <= 12.0
        assert f.delay_s == 0.0 or f.kind == "l1"


def test_bad_input_is_a_usage_error_naming_the_option() -> None:
    with pytest.raises(InputError, match="unknown fault 'lunch'"):
        parse_fault_list("kill,lunch")
    with pytest.raises(InputError, match="--fault-rate"):
        check_inputs(10, 1.5, 0.995)
    with pytest.raises(InputError, match="--slots"):
        check_inputs(0, 0.1, 0.995)
    assert parse_fault_list("all") == FAULT_CLASSES
    assert parse_fault_list("pause,kill,pause") == ("pause", "kill")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--faults", "kill,lunch"], "unknown fault 'lunch'"),
        (["--fault-rate", "2"], "--fault-rate"),
        (["--slots", "0"], "--slots"),
    ],
)
def test_cli_exits_2(args, says, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ha_sequencer.cli", "chaos", "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr


def test_impairment_overlap_decides_eligibility() -> None:
    from ha_sequencer.chaos.audit import overlaps

    imp = Impairment(0, "kill", "ha1", start=10.0, end=14.0)
    assert overlaps(imp, 12.0, 16.0, now=100.0)
    assert not overlaps(imp, 14.0, 18.0, now=100.0)
    open_ended = Impairment(1, "pause", "ha2", start=20.0)
    assert overlaps(open_ended, 90.0, 94.0, now=100.0)

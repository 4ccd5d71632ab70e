"""The chaos schedule is pure and seeded; bad input exits 2 naming the option; eligibility by overlap."""

from __future__ import annotations

import os
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


def test_partition_and_skew_holds_and_offsets() -> None:
    faults = [f for seed in range(5) for f in _plan(seed, rate=0.6)]
    cuts = [f for f in faults if f.kind == "partition"]
    skews = [f for f in faults if f.kind == "skew"]
    assert cuts and skews
    assert all(4.0 <= f.hold_s <= 12.0 and f.skew_s == 0.0 for f in cuts)  # 1-3 slots of 4 s
    # skewed 1-3 slots after its restart, by 0.1-0.5 of a slot either way
    assert all(12.0 + 4.0 <= f.hold_s <= 12.0 + 12.0 for f in skews)
    assert all(0.4 <= abs(f.skew_s) <= 2.0 for f in skews)
    assert {f.skew_s > 0 for f in skews} == {True, False}
    assert all(f.skew_s == 0.0 for f in faults if f.kind != "skew")


def test_a_partitioned_or_skewed_node_is_not_eligible_but_a_free_twin_is() -> None:
    from ha_sequencer.chaos.audit import slot_eligible

    cut = Impairment(0, "partition", "ha1", 0.0, 4.0)
    skew = Impairment(1, "skew", "ha2", 0.0, 4.0)
    assert slot_eligible([cut, skew], HA)  # ha3 is up, connected and has its store
    assert not slot_eligible([cut, skew], HA[:2])  # ha1 cut off, ha2 skewed: nobody free
    assert not slot_eligible([cut, Impairment(2, "store", None, 1.0, 2.0)], HA)  # the store is down
    assert slot_eligible([], HA)


def test_store_proxy_url_keeps_user_database_and_options() -> None:
    from ha_sequencer.chaos.faults import proxied_store_url, store_endpoint

    url = "postgresql://hasq:s3cret@db.example:6432/duties?sslmode=disable"
    assert store_endpoint(url) == ("db.example", 6432)
    assert proxied_store_url(url, 40001) == "postgresql://hasq:s3cret@127.0.0.1:40001/duties?sslmode=disable"
    assert store_endpoint("postgresql://postgres@127.0.0.1/x") == ("127.0.0.1", 5432)
    # several hosts (a store cluster) or a socket directory: not one server a proxy can stand in for
    assert store_endpoint("postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write") is None
    assert store_endpoint("postgresql:///db?host=/var/run/postgresql") is None


def test_skew_env_skews_the_wall_clock_and_keeps_sleeps_working() -> None:
    # A real process under libfaketime: its wall clock is off by the skew, and time.sleep still works (with
    # FAKETIME_DONT_FAKE_MONOTONIC=1 every sleep raised EINVAL and crashed a skewed node, seed 112).
    import subprocess
    import sys
    import time

    from ha_sequencer.chaos.faults import faketime_library, skew_env

    env = {**os.environ, **skew_env(faketime_library(), -1.25)}
    code = "import time\nfor _ in range(200): time.sleep(0.0001)\nprint(time.time())"
    before = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    offset = float(out.stdout) - before
    assert -1.25 - 0.1 < offset < -1.25 + 1.0, offset  # its clock is behind ours by the skew (plus its run)

"""Pure pieces: the fault-spec parser, the health probe's staleness rule, outcome labels, store URLs."""

from __future__ import annotations

import threading
import time

import pytest

from ha_sequencer.ha.errors import StoreURLError
from ha_sequencer.ha.faults import InjectedFault, parse_faults
from ha_sequencer.ha.outcomes import (
    OUTCOME_TYPES,
    Adopted,
    Busy,
    NewSignature,
    Refused,
    outcome_label,
    signature_of,
)
from ha_sequencer.ha.sqlbase import HealthProbe
from ha_sequencer.ha.sqlite_store import sqlite_path
from ha_sequencer.redact import redact_dsn


def test_fault_spec_slots_and_actions(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("ha_sequencer.ha.faults.time.sleep", slept.append)
    hook = parse_faults("before_record:raise@5,after_sign:delay:0.05@6+")
    hook("before_record", 4)
    with pytest.raises(InjectedFault, match="slot 5"):
        hook("before_record", 5)
    hook("after_sign", 5)
    assert slept == []
    hook("after_sign", 6)
    hook("after_sign", 9)
    assert slept == [0.05, 0.05]


def test_fault_probability_is_seeded():
    def count(seed: int) -> int:
        hook = parse_faults("after_claim:raise%0.3", seed=seed)
        n = 0
        for slot in range(1000):
            try:
                hook("after_claim", slot)
            except InjectedFault:
                n += 1
        return n

    assert count(1) == count(1)
    assert 200 < count(1) < 400


def test_fault_armed_by_a_file(tmp_path):
    """`!PATH` arms the point only while the file exists; `{pid}` is this process."""
    import os

    hook = parse_faults(f"after_sign:raise!{tmp_path}/arm.{{pid}}")
    hook("after_sign", 1)
    (tmp_path / f"arm.{os.getpid()}").touch()
    hook("after_claim", 2)
    with pytest.raises(InjectedFault, match="slot 3"):
        hook("after_sign", 3)
    (tmp_path / f"arm.{os.getpid()}").unlink()
    hook("after_sign", 4)
    with pytest.raises(ValueError, match="needs a file path"):
        parse_faults("after_sign:kill!")


def test_bad_fault_spec():
    with pytest.raises(ValueError, match="bad fault"):
        parse_faults("during_lunch:kill")


def test_health_probe_goes_stale_when_pings_hang():
    gate = threading.Event()
    gate.set()

    def ping() -> None:
        if not gate.wait(timeout=5):
            raise TimeoutError

    probe = HealthProbe(ping, interval_s=0.02, stale_s=0.2)
    assert probe.healthy
    gate.clear()  # the store stops answering: pings block instead of failing
    deadline = time.monotonic() + 3
    while probe.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not probe.healthy
    gate.set()
    deadline = time.monotonic() + 3
    while not probe.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.healthy
    probe.stop()


def test_outcomes_are_a_closed_set_with_labels():
    assert len({outcome_label(t.__new__(t)) for t in OUTCOME_TYPES}) == len(OUTCOME_TYPES)
    assert signature_of(NewSignature(b"s")) == b"s"
    assert signature_of(Adopted(b"s", b"p")) == b"s"
    assert signature_of(Refused(b"d")) is None
    assert signature_of(Busy("n")) is None
    assert "secret-ish" not in repr(Adopted(b"s", b"secret-ish payload"))


def test_store_urls():
    assert str(sqlite_path("sqlite:////var/lib/ha/d.db")) == "/var/lib/ha/d.db"
    assert str(sqlite_path("sqlite:///var/lib/ha/d.db")) == "/var/lib/ha/d.db"
    assert str(sqlite_path("sqlite:///./d.db")) == "d.db"
    with pytest.raises(StoreURLError):
        sqlite_path("sqlite://")
    assert redact_dsn("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_dsn("postgresql://u@h/db?sslmode=require&password=pw") == (
        "postgresql://u@h/db?sslmode=require&password=***"
    )
    assert redact_dsn("host=h password='p w' dbname=d") == "host=h password=*** dbname=d"

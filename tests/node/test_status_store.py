"""The /status reason for an unreachable duty store names the hosts tried, never a credential."""

from __future__ import annotations

from ha_sequencer.node.conditions import reason_codes
from ha_sequencer.node.config import HaDb
from ha_sequencer.node.status import store_unreachable_reason


def test_a_multi_host_store_names_every_host_and_no_password() -> None:
    url = "postgresql://seq:hunter2@db1:5432,db2:5433,db3/ha_duties?target_session_attrs=read-write"
    reason = store_unreachable_reason(HaDb("postgres", url))
    assert reason == "duty_store_unreachable: hosts tried db1:5432, db2:5433, db3:5432"
    assert "hunter2" not in reason and "seq" not in reason
    assert reason_codes([reason]) == {"duty_store_unreachable"}


def test_sqlite_and_unparseable_urls_give_the_bare_code() -> None:
    assert store_unreachable_reason(HaDb("sqlite", "sqlite:///x.db")) == "duty_store_unreachable"
    bad = store_unreachable_reason(HaDb("postgres", "postgresql://a:secret@h:notaport/db"))
    assert bad.startswith("duty_store_unreachable") and "secret" not in bad

"""Schema versions, node-id liveness, prune/export/import and the `ha-db` commands, on both stores."""

from __future__ import annotations

import dataclasses
import json

import psycopg
import pytest
from eth_account import Account
from eth_utils import keccak
from typer.testing import CliRunner

from ha_sequencer.ha.backends import open_store
from ha_sequencer.ha.commands import app as ha_db_app
from ha_sequencer.ha.errors import (
    ImportConflict,
    InterchangeError,
    SchemaMismatch,
    StoreURLError,
)
from ha_sequencer.ha.guard import DutyGuard
from ha_sequencer.ha.interchange import export_document, import_document, parse_document
from ha_sequencer.ha.outcomes import BelowWatermark, DutyType, NewSignature, Refused, SameData
from ha_sequencer.ha.store import SCHEMA_VERSION

ROLLUP = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
A = DutyType.ATTESTATION


def signer_of(account):
    return lambda digest: bytes(Account.unsafe_sign_hash(digest, account.key).signature)


def test_unmigrated_store_is_refused_with_the_command(store_url):
    with pytest.raises(SchemaMismatch, match=r"schema version 0.*ha-sequencer ha-db migrate --db"):
        open_store(store_url)
    s = open_store(store_url, migrate=True)
    assert s.schema_version() == SCHEMA_VERSION
    assert s.migrate() == []  # idempotent
    s.close()
    open_store(store_url).close()


def test_nodes_starting_together_migrate_once(store_url):
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            open_store(store_url, migrate=True).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = open_store(store_url)
    assert s._execute("SELECT COUNT(*) FROM ha_schema", {})[0][0] == SCHEMA_VERSION
    s.close()


def test_newer_schema_is_refused(store):
    store._execute(
        store._native("INSERT INTO ha_schema (version, applied_at) VALUES (%(v)s, 0)"),
        {"v": SCHEMA_VERSION + 1},
        fetch=False,
    )
    with pytest.raises(SchemaMismatch, match="newer than this build"):
        open_store(store.url)
    with pytest.raises(SchemaMismatch, match="newer"):
        open_store(store.url, migrate=True)


def test_bad_urls():
    with pytest.raises(StoreURLError, match="unsupported scheme 'mysql'"):
        open_store("mysql://x/y")
    with pytest.raises(StoreURLError, match="does not exist"):
        open_store("sqlite:////nonexistent-dir/x.db")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2@127.0.0.1:1/none",
        "postgresql://postgres@127.0.0.1:1/none?password=hunter2",
        "host=127.0.0.1 port=1 password=hunter2",  # a libpq string, not a URL: refused, password hidden
        "sqlite://user:hunter2@host/x.db",
    ],
)
def test_password_never_in_messages(url):
    with pytest.raises(Exception) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value)


@pytest.mark.postgres
def test_postgres_records_are_durable_only_claims_skip_the_flush(pg_url):
    # The safety argument of the Postgres store: a released signature's record waits for the WAL flush (and
    # so makes its earlier claim durable), whatever the server's default; only the claim itself may not.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE " + pg_url.rsplit("/", 1)[1] + " SET synchronous_commit = off")
    store = open_store(pg_url, migrate=True)
    try:
        setting = "SELECT current_setting('synchronous_commit')"
        assert store._execute(setting, {}) == [("on",)]
        with store._transaction() as execute:
            assert execute(setting, {}) == [("on",)]
        assert store._execute_claim(setting, {}) == [("off",)]
    finally:
        store.close()


def _history(store, account, slots):
    g = DutyGuard(store, node_id="n", rollup=ROLLUP)
    for slot in slots:
        digest = keccak(b"%d" % slot)
        out = g.sign_duty(account.address, slot, A, digest, b"payload-%d" % slot, signer_of(account))
        assert isinstance(out, NewSignature)
    return g


def test_export_import_moves_protection_between_stores(store, tmp_path):
    account = Account.create()
    _history(store, account, range(1, 6))
    store.prune(2)
    doc = json.loads(json.dumps(export_document(store)))  # through JSON text, as on disk
    assert {w["slot"] for w in doc["watermarks"]} == {2}
    assert [x["slot"] for x in doc["duties"]] == [3, 4, 5]
    target = open_store(f"sqlite:///{tmp_path}/target.db", migrate=True)
    inserted, conflicts = import_document(target, doc)
    assert (inserted, conflicts) == (3, [])
    g = DutyGuard(target, node_id="m", rollup=ROLLUP)
    sign = signer_of(account)
    assert isinstance(g.sign_duty(account.address, 4, A, keccak(b"4"), b"", sign), SameData)
    assert g.sign_duty(account.address, 4, A, keccak(b"x"), b"", sign) == Refused(keccak(b"4"))
    # Imported history closes every slot up to its highest one: the gap cannot be filled with new data.
    assert g.sign_duty(account.address, 1, A, keccak(b"1"), b"", sign) == BelowWatermark(5)
    assert isinstance(g.sign_duty(account.address, 6, A, keccak(b"6"), b"", sign), NewSignature)
    target.close()


def test_restoring_an_old_backup_cannot_reopen_pruned_slots(store):
    account = Account.create()
    _history(store, account, range(1, 4))
    old_backup = export_document(store)  # watermark none, slots 1..3
    _history(store, account, range(4, 9))
    store.prune(7)
    inserted, conflicts = import_document(store, old_backup)
    assert conflicts == []
    assert inserted == 0  # nothing comes back at or below the watermark, which stays at 7 (never lowered)
    g = DutyGuard(store, node_id="n", rollup=ROLLUP)
    assert g.sign_duty(account.address, 5, A, keccak(b"5"), b"", signer_of(account)) == BelowWatermark(7)
    assert g.sign_duty(account.address, 2, A, keccak(b"2"), b"", signer_of(account)) == BelowWatermark(7)
    assert store.export_rows()[1][0]["slot"] == 7


def test_imported_claim_below_the_watermark_is_never_adopted(store):
    # The store signed slot 3 and pruned it; a document (another cluster, an edited file) holds an unfinished
    # claim for slot 3 with another digest. Adopting it would sign a second digest for the duty.
    account = Account.create()
    _history(store, account, range(1, 5))
    store.prune(3)
    other = keccak(b"another message for slot 3")
    doc = {
        "format": "ha-sequencer-duty-store",
        "version": 1,
        "watermarks": [],
        "duties": [
            {
                "rollup": ROLLUP,
                "attester": account.address,
                "slot": 3,
                "duty_type": A.value,
                "digest": "0x" + other.hex(),
                "payload": "0x00",
                "status": "signing",
            }
        ],
    }
    assert import_document(store, doc) == (0, [])
    calls: list[bytes] = []

    def sign(digest: bytes) -> bytes:
        calls.append(digest)
        return signer_of(account)(digest)

    g = DutyGuard(store, node_id="n", rollup=ROLLUP, lease_s=0.05)
    assert g.sign_duty(account.address, 3, A, other, b"", sign) == BelowWatermark(3)
    assert calls == []


def test_import_reports_conflicting_history(store):
    account = Account.create()
    _history(store, account, [1])
    doc = export_document(store)
    doc["duties"][0]["digest"] = "0x" + "ab" * 32
    inserted, conflicts = import_document(store, doc)
    assert inserted == 0 and len(conflicts) == 1 and conflicts[0]["slot"] == 1


def test_interchange_errors_name_the_path():
    base = {"format": "ha-sequencer-duty-store", "version": 1, "watermarks": []}
    with pytest.raises(InterchangeError, match=r"f.json: duties\[0\].digest: expected 32 bytes"):
        parse_document(
            {
                **base,
                "duties": [
                    {
                        "rollup": "0x1",
                        "attester": "0x2",
                        "slot": 1,
                        "duty_type": "attestation",
                        "digest": "0x01",
                        "payload": "0x",
                        "status": "signing",
                    }
                ],
            },
            "f.json",
        )
    with pytest.raises(InterchangeError, match=r"watermarks\[0\].duty_type: unknown 'vote'"):
        parse_document(
            {
                **base,
                "duties": [],
                "watermarks": [{"rollup": "r", "attester": "a", "duty_type": "vote", "slot": 1}],
            }
        )
    with pytest.raises(InterchangeError, match="not a ha-sequencer-duty-store"):
        parse_document({"format": "eip-3076"})


def test_ha_db_commands(store_url, tmp_path):
    runner = CliRunner()
    r = runner.invoke(ha_db_app, ["status", "--db", store_url])
    assert isinstance(r.exception, SchemaMismatch) and r.exception.exit_code == 2
    r = runner.invoke(ha_db_app, ["migrate", "--db", store_url])
    assert r.exit_code == 0 and f"schema version {SCHEMA_VERSION}" in r.output
    store = open_store(store_url)
    account = Account.create()
    _history(store, account, range(1, 5))
    store.close()
    r = runner.invoke(ha_db_app, ["status", "--db", store_url, "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["duties"] == 4
    out = tmp_path / "export.json"
    r = runner.invoke(ha_db_app, ["export", "--db", store_url, "--out", str(out)])
    assert r.exit_code == 0
    r = runner.invoke(ha_db_app, ["prune", "--db", store_url, "--up-to-slot", "2"], env={})
    assert r.exit_code == 0 and "pruned 2 duties" in r.output and "slot 2" in r.output
    target = f"sqlite:///{tmp_path}/t.db"
    runner.invoke(ha_db_app, ["migrate", "--db", target])
    r = runner.invoke(ha_db_app, ["import", "--db", target, str(out)])
    assert r.exit_code == 0 and "imported 4 duties" in r.output
    doc = json.loads(out.read_text())
    doc["duties"][0]["digest"] = "0x" + "cd" * 32
    out.write_text(json.dumps(doc))
    r = runner.invoke(ha_db_app, ["import", "--db", target, str(out)])
    assert isinstance(r.exception, ImportConflict) and r.exception.exit_code == 1
    out.write_text("{ not json")
    r = runner.invoke(ha_db_app, ["import", "--db", target, str(out)])
    assert isinstance(r.exception, InterchangeError) and "line 1 col 3" in str(r.exception)


def test_bench_guard_reports_the_issue_fields():
    from ha_sequencer.bench.guard import bench_guard_run

    result = bench_guard_run("sqlite", nodes=2, duties=60)
    for k in (
        "store",
        "nodes",
        "duties",
        "signed",
        "shared",
        "refused",
        "adopted",
        "equivocations",
        "claim_p50_ms",
        "claim_p99_ms",
        "guarded_per_s",
        "raw_sign_per_s",
    ):
        assert k in result
    assert result["signed"] + result["adopted"] == 60
    assert result["equivocations"] == 0 and result["unsigned_duties"] == 0
    assert result["racers_exit_codes"] == [0]


def test_race_seed_is_printed_and_replays_every_racers_choices(tmp_path, monkeypatch, capfd):
    """`HA_RACE_SEED` replays a race: the same seed gives every racer the same digest per duty."""
    from ha_sequencer.bench.guard import SEED_ENV, run_race

    def wanted(seed_env: str) -> dict[str, list[str]]:
        db = f"sqlite:///{tmp_path}/{seed_env}-{len(list(tmp_path.iterdir()))}.db"
        open_store(db, migrate=True).close()
        monkeypatch.setenv(SEED_ENV, seed_env)
        result = run_race(db, nodes=2, duties=20)
        assert result.seed == int(seed_env)
        return {n: [t["wanted"] for t in lines] for n, lines in result.traces.items()}

    first = wanted("1234")
    assert f"race seed 1234 (replay: {SEED_ENV}=1234)" in capfd.readouterr().err
    assert wanted("1234") == first
    assert wanted("99") != first


def _key(attester: str, slot: int):
    from ha_sequencer.ha.store import DutyKey

    return DutyKey(ROLLUP.lower(), attester.lower(), slot, A.value)


def test_a_contested_claim_answers_with_the_existing_row_in_one_call(store):
    # The loser of a duty learns the winner's row from its claim: no second statement, no second round trip.
    from ha_sequencer.ha.store import Claimed, Existing

    attester = Account.create().address
    key = _key(attester, 7)
    assert isinstance(store.claim(key, keccak(b"w"), b"wp", "winner", "tok-w", 30.0), Claimed)
    calls: list[str] = []
    execute = store._execute
    store._execute = lambda sql, params, **kw: (calls.append(sql), execute(sql, params, **kw))[1]
    try:
        lost = store.claim(key, keccak(b"l"), b"lp", "loser", "tok-l", 30.0)
    finally:
        store._execute = execute
    assert isinstance(lost, Existing) and lost.row is not None
    assert (lost.row.node_id, lost.row.digest, lost.row.payload) == ("winner", keccak(b"w"), b"wp")
    assert lost.row.lock_token == "tok-w"  # the loser's call moved nothing
    assert len(calls) <= 1  # PostgreSQL: exactly one statement; SQLite: one transaction (not via _execute)
    fetched = store.fetch(key).row
    assert fetched is not None and dataclasses.replace(fetched, now=lost.row.now) == lost.row


def test_a_claim_gated_by_halt_or_watermark_says_why(store):
    from ha_sequencer.ha.store import Existing

    attester = Account.create().address
    key = _key(attester, 9)
    store.claim(key, keccak(b"w"), b"wp", "winner", "tok-w", 30.0)
    store.halt(ROLLUP.lower(), attester.lower(), 9, A.value, "foreign signature", "{}", "n")
    halted = store.claim(key, keccak(b"w"), b"wp", "peer", "tok-p", 30.0)
    assert isinstance(halted, Existing) and halted.halted == "foreign signature"
    store.prune(20)
    other = Account.create().address  # a watermark per attester: only the pruned scope is gated
    assert store.claim(_key(other, 5), keccak(b"x"), b"", "n", "t", 30.0).__class__.__name__ == "Claimed"
    store.resume(ROLLUP.lower(), attester.lower(), "op", "test")
    below = store.claim(_key(attester, 8), keccak(b"w"), b"wp", "peer", "tok-q", 30.0)
    assert isinstance(below, Existing) and below.row is None and below.watermark == 9 and below.halted is None


@pytest.mark.postgres
def test_postgres_claim_racing_an_uncommitted_insert_returns_the_winners_committed_row(pg_url):
    # The tight race: the winner's insert is in flight when the loser's claim starts. The loser's claim waits
    # for it and answers with the committed row (a plain read in the same statement would see no row).
    import threading

    from ha_sequencer.ha.store import Existing

    store = open_store(pg_url, migrate=True)
    attester = Account.create().address
    key = _key(attester, 11)
    try:
        with psycopg.connect(pg_url) as winner:
            winner.execute(
                "INSERT INTO duties (rollup, attester, slot, duty_type, digest, payload, status, node_id, "
                "lock_token, claimed_at, lease_until) VALUES (%s, %s, 11, %s, %s, 'p', 'signing', 'winner', "
                "'tok-w', 0, 1e12)",
                (key.rollup, key.attester, A.value, keccak(b"w")),
            )
            answer: list[object] = []
            loser = threading.Thread(
                target=lambda: answer.append(store.claim(key, keccak(b"l"), b"lp", "loser", "tok-l", 30.0))
            )
            loser.start()
            loser.join(0.3)
            assert loser.is_alive()  # waiting on the winner's uncommitted row
            winner.commit()
            loser.join(5)
        assert len(answer) == 1
        found = answer[0]
        assert isinstance(found, Existing) and found.row is not None
        row = found.row
        assert (row.node_id, row.lock_token, row.digest) == ("winner", "tok-w", keccak(b"w"))
    finally:
        store.close()

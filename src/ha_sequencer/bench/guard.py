"""Racing guarded signers in OS processes: the proof tests and `ha-sequencer bench guard` share this.

`python -m ha_sequencer.bench.guard …` is one racer (a node): it signs `duties` duties through a `DutyGuard`,
choosing at random the shared digest or its own, writes one JSON line per duty, then (bench) signs raw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eth_hash.auto import keccak

from ha_sequencer.bench.stats import percentile
from ha_sequencer.errors import InputError
from ha_sequencer.ha.errors import StoreUnreachable
from ha_sequencer.ha.outcomes import (
    Adopted,
    Busy,
    DutyType,
    LostClaim,
    StoreUnavailable,
    outcome_label,
    signature_of,
)

if TYPE_CHECKING:
    from ha_sequencer.ha.store import DutyStore

KEY_ENV = "HA_RACER_KEY"  # the attester key reaches racers through the environment, never argv or logs
SEED_ENV = "HA_RACE_SEED"  # replays a race or a benchmark: every racer's seed derives from it
RETRYABLE = (Busy, LostClaim, StoreUnavailable)
BARRIER_TIMEOUT_S = 120
DUTY_SEED_STRIDE = 1 << 32  # one choice per (racer seed, duty): the same duty, the same digest wanted
OPEN_RETRY_S = 30  # a racer (re)started while the store is down waits for it, as a node would
WARMUP_DUTIES = (
    50  # per racer of `bench guard`, before the clock starts: connections open, statements prepared
)


def duty_of(i: int, slot0: int) -> tuple[int, DutyType]:
    """Duty number i → (slot, duty type): proposals and attestations alternate over consecutive slots."""
    return slot0 + i, (DutyType.BLOCK_PROPOSAL if i % 2 == 0 else DutyType.ATTESTATION)


def digest_for(slot: int, duty_type: DutyType, variant: str) -> bytes:
    """The digest a racer wants: variant "shared" is common to all racers, anything else is its own."""
    return keccak(f"{slot}|{duty_type.value}|{variant}".encode())


def payload_for(digest: bytes) -> bytes:
    """A payload that names its digest, so an adopter's signature can be checked against it."""
    return b"payload:" + digest


class TimedStore:
    """A duty store that times each call of the guard's hot path (where a claim's tail comes from)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.ms: dict[str, list[float]] = {"claim": [], "fetch": [], "record": [], "adopt": []}
        self.total_ms = 0.0  # in timed calls so far

    def __getattr__(self, name: str) -> Any:
        inner = getattr(self._store, name)
        samples = self.ms.get(name)
        if samples is None:
            return inner

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                samples.append((time.perf_counter() - t) * 1000)
                self.total_ms += samples[-1]

        return timed


def _pool_waits(store: Any) -> dict[str, Any]:
    """psycopg_pool's own counters (PostgreSQL): how often and how long a call waited for a connection."""
    out: dict[str, Any] = {}
    for name in ("_pool", "_claim_pool"):
        pool = getattr(store, name, None)
        if pool is not None:
            stats = pool.get_stats()
            out[name.lstrip("_")] = {
                k: stats.get(k, 0)
                for k in ("requests_num", "requests_waiting", "requests_wait_ms", "connections_num")
            }
    return out


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {path} never opened")
        time.sleep(0.005)


def racer_signer(key: bytes) -> Callable[[bytes], bytes]:
    """Sign a 32-byte digest as eth-account does (RFC 6979, low s, r ‖ s ‖ v with v = 27 + recovery id).

    libsecp256k1 (coincurve, which the pinned libp2p depends on) directly: eth-account would cost a restarted
    racer about a second of imports (py_ecc's pairing tables), which the torture pays on every kill."""
    import coincurve

    private = coincurve.PrivateKey(key)

    def sign(digest: bytes) -> bytes:
        sig = private.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])

    return sign


def signer_of(digest: bytes, signature: bytes) -> str:
    """The address (0x + 40 lowercase hex) whose key made `signature` (`racer_signer`'s format) over `digest`:
    an audit checks what was really signed, not what a racer says it signed."""
    import coincurve

    recoverable = signature[:64] + bytes([signature[64] - 27])
    public = coincurve.PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    return "0x" + keccak(public.format(compressed=False)[1:])[-20:].hex()


def _open_store_waiting(db: str) -> Any:
    from ha_sequencer.ha.backends import open_store

    deadline = time.monotonic() + OPEN_RETRY_S
    while True:
        try:
            return open_store(db)
        except StoreUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def racer_main(argv: list[str] | None = None) -> None:
    """Entry point of one racer process."""
    from ha_sequencer.ha.faults import faults_from_env
    from ha_sequencer.ha.guard import DutyGuard

    p = argparse.ArgumentParser(prog="ha-racer")
    p.add_argument("--db", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--rollup", required=True)
    p.add_argument("--attester", required=True, help="the address of the key in HA_RACER_KEY")
    p.add_argument("--duties", type=int, required=True)
    p.add_argument("--slot0", type=int, default=1)
    p.add_argument("--p-same", type=float, default=0.5)
    p.add_argument("--lease", type=float, default=0.3)
    p.add_argument("--retries", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--choice-seed",
        type=int,
        default=None,
        help="seed of the digest each duty wants (default --seed); a restarted racer keeps its node's, so it "
        "wants the digest it may have recorded before it died",
    )
    p.add_argument("--workdir", required=True)
    p.add_argument("--raw", action="store_true", help="also measure raw signing (benchmark)")
    p.add_argument("--append", action="store_true", help="append to the trace (a restarted racer)")
    p.add_argument("--from-duty", type=int, default=0, help="resume at this duty number (a restarted racer)")
    p.add_argument(
        "--deadline-s", type=float, default=0.0, help="each duty's deadline, from its first attempt (0: none)"
    )
    p.add_argument(
        "--interval-ms", type=float, default=0.0, help="start duty i at go + i·interval (benchmark)"
    )
    p.add_argument("--warmup", type=int, default=0, help="guarded duties on a private attester before go")
    p.add_argument("--own-attester", action="store_true", help="no shared duty: the uncontested control")
    a = p.parse_args(argv)
    work = Path(a.workdir)
    attester = _private_attester(a.node_id, "race") if a.own_attester else a.attester
    signer = racer_signer(bytes.fromhex(os.environ[KEY_ENV].removeprefix("0x")))
    choice_seed = a.seed if a.choice_seed is None else a.choice_seed

    in_signer = [0.0]

    def sign(digest: bytes) -> bytes:
        t = time.perf_counter()
        signature = signer(digest)
        in_signer[0] += time.perf_counter() - t
        return signature

    store = _open_store_waiting(a.db)
    timed = TimedStore(store)
    guard = DutyGuard(
        cast("DutyStore", timed),
        node_id=a.node_id,
        rollup=a.rollup,
        lease_s=a.lease,
        fault_hook=faults_from_env(seed=a.seed),
    )
    sign(b"\x00" * 32)  # warm up the signer before the clock starts
    # Connections opened and statements prepared before the clock starts, on an attester no racer shares.
    warm = _private_attester(a.node_id, "warmup")
    for i in range(a.warmup):
        guard.sign_duty(
            warm, a.slot0 + i, DutyType.ATTESTATION, digest_for(i, DutyType.ATTESTATION, warm), b"", sign
        )
    out = (work / f"trace.{a.node_id}.jsonl").open("a" if a.append else "w", buffering=1)
    (work / f"ready.{a.node_id}").touch()
    _wait_for(work / "go")
    go_at = float((work / "go").read_text() or 0)
    latencies: list[float] = []
    outside_store: list[float] = []  # per call: the guard's time not spent in a store call (waits, Python)
    started = time.perf_counter()
    for i in range(a.from_duty, a.duties):
        slot, duty_type = duty_of(i, a.slot0)
        shared = random.Random(choice_seed * DUTY_SEED_STRIDE + i).random() < a.p_same
        variant = "shared" if shared else a.node_id
        digest = digest_for(slot, duty_type, variant)
        if a.interval_ms > 0:  # every racer reaches duty i at the same moment, as twins do at a slot's start
            _sleep_until(go_at + i * a.interval_ms / 1000)
        deadline = time.time() + a.deadline_s if a.deadline_s else None
        attempts = unavailable = 0
        while True:
            in_store, in_signer[0], t = timed.total_ms, 0.0, time.perf_counter()
            outcome = guard.sign_duty(
                attester, slot, duty_type, digest, payload_for(digest), sign, deadline=deadline
            )
            latencies.append(time.perf_counter() - t - in_signer[0])  # the guard's overhead alone
            outside_store.append(latencies[-1] * 1000 - (timed.total_ms - in_store))
            attempts += 1
            unavailable += isinstance(outcome, StoreUnavailable)
            if not isinstance(outcome, RETRYABLE) or attempts > a.retries:
                break
        sig = signature_of(outcome)
        signed_digest = (
            outcome.payload.removeprefix(b"payload:")
            if isinstance(outcome, Adopted)
            else digest
            if sig is not None
            else None
        )
        out.write(
            json.dumps(
                {
                    "attester": attester.lower(),
                    "slot": slot,
                    "duty_type": duty_type.value,
                    "outcome": outcome_label(outcome),
                    "wanted": digest.hex(),
                    "digest": signed_digest.hex() if signed_digest else None,
                    "signature": sig.hex() if sig else None,
                    "attempts": attempts,
                    "unavailable": unavailable,  # attempts answered "store unavailable" (fail closed)
                    "at": time.time(),  # when the outcome (and its signature, if any) left the guard
                    "deadline": deadline,
                }
            )
            + "\n"
        )
    guarded_s = time.perf_counter() - started
    raw_s = 0.0
    if a.raw:
        (work / f"guarded-done.{a.node_id}").touch()
        _wait_for(work / "go-raw")
        t = time.perf_counter()
        for i in range(a.duties):
            slot, duty_type = duty_of(i, a.slot0)
            sign(digest_for(slot, duty_type, a.node_id))
        raw_s = time.perf_counter() - t
    out.write(
        json.dumps(
            {
                "summary": {
                    "node_id": a.node_id,
                    "guarded_s": guarded_s,
                    "raw_s": raw_s,
                    "calls": len(latencies),
                    "claim_ms": [x * 1000 for x in latencies],
                    "outside_store_ms": outside_store,
                    "store_ms": timed.ms,
                    "pools": _pool_waits(store),
                    "sleep_overshoot_ms": _sleep_overshoot_ms(),
                }
            }
        )
        + "\n"
    )
    out.close()
    store.close()


def _private_attester(node_id: str, purpose: str) -> str:
    """An attester address of this racer alone (the uncontested control, the warm-up)."""
    return "0x" + keccak(f"{purpose}|{node_id}".encode())[:20].hex()


def _sleep_until(wall: float) -> None:
    """Sleep to a wall-clock moment shared by the racer processes. Never spin: three racers spinning on a
    2-core machine starve the store's backends, and the OS then parks one racer for a whole time slice."""
    left = wall - time.time()
    if left > 0:
        time.sleep(left)


def _sleep_overshoot_ms(samples: int = 200) -> list[float]:
    """How late `time.sleep(1 ms)` wakes up on this machine now (Python and OS scheduling)."""
    late: list[float] = []
    for _ in range(samples):
        t = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t) * 1000 - 1.0)
    return late


@dataclass
class RaceResult:
    """Every racer's per-duty trace lines and summary, keyed by node id, plus exit codes."""

    traces: dict[str, list[dict]] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
    returncodes: dict[str, int] = field(default_factory=dict)
    attester: str = ""
    rollup: str = ""
    seed: int = 0


def race_seed(seed: int | None = None) -> int:
    """The seed of a race or benchmark: `seed`, else `HA_RACE_SEED`, else fresh; printed for a replay."""
    if seed is None:
        raw = os.environ.get(SEED_ENV, "").strip()
        try:
            seed = int(raw) if raw else random.randrange(1 << 31)
        except ValueError:
            raise InputError(f"{SEED_ENV}: not an integer: {raw!r}") from None
    print(f"race seed {seed} (replay: {SEED_ENV}={seed})", file=sys.stderr, flush=True)
    return seed


def run_race(
    db: str,
    *,
    nodes: int,
    duties: int,
    p_same: float = 0.5,
    lease_s: float = 0.3,
    env: dict[str, str] | None = None,
    per_node_env: dict[str, dict[str, str]] | None = None,
    raw: bool = False,
    slot0: int = 1,
    key: bytes | None = None,
    rollup: str | None = None,
    timeout_s: float = 300,
    seed: int | None = None,
    deadline_s: float | None = None,
    interval_ms: float = 0.0,
    warmup: int = 0,
    independent: bool = False,
) -> RaceResult:
    """Start `nodes` racer processes on one store and one attester, release them together, collect traces.

    Every racer's choices (digests, injected faults) derive from `seed`: given, else `HA_RACE_SEED`, else
    random; it is printed to stderr so a failing race can be replayed with `HA_RACE_SEED=…`.
    """
    from eth_account import Account

    seed = race_seed(seed)
    seeds = random.Random(seed)
    account = Account.from_key(key) if key is not None else Account.create()
    rollup_address = rollup or Account.create().address
    work = Path(tempfile.mkdtemp(prefix="ha-race-"))
    procs: dict[str, subprocess.Popen] = {}
    base_env = {**os.environ, KEY_ENV: account.key.hex(), **(env or {})}
    try:
        for n in range(nodes):
            node_id = f"node-{n}"
            cmd = [
                sys.executable,
                "-m",
                "ha_sequencer.bench.guard",
                "--db",
                db,
                "--node-id",
                node_id,
                "--rollup",
                rollup_address,
                "--attester",
                account.address,
                "--duties",
                str(duties),
                "--slot0",
                str(slot0),
                "--p-same",
                str(p_same),
                "--lease",
                str(lease_s),
                "--seed",
                str(seeds.randrange(1 << 30)),
                "--workdir",
                str(work),
            ]
            if raw:
                cmd.append("--raw")
            if deadline_s:
                cmd += ["--deadline-s", str(deadline_s)]
            if interval_ms > 0:
                cmd += ["--interval-ms", str(interval_ms)]
            if warmup:
                cmd += ["--warmup", str(warmup)]
            if independent:
                cmd.append("--own-attester")
            procs[node_id] = subprocess.Popen(cmd, env={**base_env, **(per_node_env or {}).get(node_id, {})})
        deadline = time.monotonic() + timeout_s
        pending = set(procs)
        while pending:  # a racer that dies before it is ready (kill -9 tests) does not block the barrier
            pending = {n for n in pending if not (work / f"ready.{n}").exists() and procs[n].poll() is None}
            if time.monotonic() > deadline:
                raise TimeoutError("racers did not get ready")
            time.sleep(0.01)
        go = work / "go.tmp"
        go.write_text(repr(time.time() + 0.05))  # the paced racers' common start
        go.rename(work / "go")
        if raw:
            pending = set(procs)
            while pending:
                pending = {
                    n
                    for n in pending
                    if not (work / f"guarded-done.{n}").exists() and procs[n].poll() is None
                }
                time.sleep(0.005)
            (work / "go-raw").touch()
        result = RaceResult(attester=account.address, rollup=rollup_address, seed=seed)
        for node_id, proc in procs.items():
            result.returncodes[node_id] = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            lines = []
            trace = work / f"trace.{node_id}.jsonl"
            if trace.exists():
                for line in trace.read_text().splitlines():
                    with_summary = json.loads(line)
                    if "summary" in with_summary:
                        result.summaries[node_id] = with_summary["summary"]
                    else:
                        lines.append(with_summary)
            result.traces[node_id] = lines
        return result
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


def audit(result: RaceResult) -> dict[str, Any]:
    """Audit the traces per duty: equivocations (two digests signed), signature mismatches, unsigned."""
    signed: dict[tuple[str, int, str], dict[str, set[str]]] = {}
    counts = {
        label: 0
        for label in (
            "new_signature",
            "same_data",
            "adopted",
            "refused",
            "below_watermark",
            "busy",
            "lost_claim",
            "store_unavailable",
        )
    }
    duties: set[tuple[str, int, str]] = set()
    for lines in result.traces.values():
        for t in lines:
            duty = (t.get("attester", ""), t["slot"], t["duty_type"])
            duties.add(duty)
            counts[t["outcome"]] += 1
            if t["signature"]:
                signed.setdefault(duty, {}).setdefault(t["digest"], set()).add(t["signature"])
    equivocations = sum(1 for d in signed.values() if len(d) > 1)
    mismatched = sum(1 for d in signed.values() for sigs in d.values() if len(sigs) > 1)
    return {
        **counts,
        "duties": len(duties),
        "equivocations": equivocations,
        "signature_mismatches": mismatched,
        "unsigned": len(duties - set(signed)),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@contextlib.contextmanager
def temporary_store(store_kind: str, db: str | None = None) -> Iterator[str]:
    """A migrated store URL: `db` if given, else a temp SQLite file or PostgreSQL database (dropped after)."""
    from ha_sequencer.ha.backends import open_store

    if db is not None:
        open_store(db, migrate=True).close()
        yield db
        return
    if store_kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="ha-bench-"))
        url = f"sqlite:///{tmp}/duties.db"
        try:
            open_store(url, migrate=True).close()
            yield url
        finally:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
        return
    import psycopg
    from psycopg import sql

    admin = os.environ.get("HA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ha_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        open_store(url, migrate=True).close()
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def bench_guard_run(
    store_kind: str,
    nodes: int,
    duties: int,
    db: str | None = None,
    p_same: float = 0.5,
    private_pg: bool = False,
    seed: int | None = None,
    interval_ms: float = 0.0,
    independent: bool = False,
) -> dict[str, Any]:
    """Run the guard benchmark; the figures of `bench guard`: outcomes, claim latency, signing rates.

    `interval_ms` 0: each racer signs as fast as it can (throughput; K racers then compete for the CPU with
    their store's backends). Above 0: every racer starts duty i at the same moment, one duty per interval (the
    latency of a contested duty on an otherwise idle machine, as twins meet at a slot's start).
    `independent`: each racer its own attester, so no duty is contested (the control for the load alone)."""
    from ha_sequencer.ha.backends import open_store

    if private_pg:
        from ha_sequencer.localnet.postgres import PrivatePostgres

        with PrivatePostgres() as pg:
            url = pg.create_database("bench")
            result = bench_guard_run(
                "postgres",
                nodes,
                duties,
                url,
                p_same,
                seed=seed,
                interval_ms=interval_ms,
                independent=independent,
            )
        return {**result, "db": "private cluster, fsync off"}
    cleanup: Callable[[], None] | None = None
    if db is None:
        if store_kind == "sqlite":
            tmp = Path(tempfile.mkdtemp(prefix="ha-bench-"))
            db = f"sqlite:///{tmp}/duties.db"

            def remove_tmp() -> None:
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()

            cleanup = remove_tmp
        else:
            import psycopg
            from psycopg import sql

            admin = os.environ.get("HA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
            name = f"ha_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            db = admin.rsplit("/", 1)[0] + "/" + name

            def drop_database() -> None:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )

            cleanup = drop_database

    try:
        open_store(db, migrate=True).close()
        result = run_race(
            db,
            nodes=nodes,
            duties=duties,
            p_same=p_same,
            raw=True,
            seed=seed,
            interval_ms=interval_ms,
            warmup=WARMUP_DUTIES,
            independent=independent,
        )
    finally:
        if cleanup is not None:
            cleanup()
    a = audit(result)
    summaries = list(result.summaries.values())
    # Claim latency = the guard's own overhead per sign_duty call (store round trips; the signer excluded).
    claim_ms = [x for s in summaries for x in s["claim_ms"]]
    guarded_s = max(s["guarded_s"] for s in summaries)
    raw_s = max(s["raw_s"] for s in summaries)

    def tail(name: str) -> dict[str, Any]:
        ms = [x for s in summaries for x in s["store_ms"][name]]
        return {"n": len(ms), "p50_ms": _ms(percentile(ms, 0.5)), "p99_ms": _ms(percentile(ms, 0.99))}

    outside = [x for s in summaries for x in s["outside_store_ms"]]
    late = [x for s in summaries for x in s["sleep_overshoot_ms"]]
    pools = [s["pools"] for s in summaries if s["pools"]]
    return {
        "store": store_kind,
        "seed": result.seed,
        "nodes": nodes,
        "duties": duties,
        "interval_ms": interval_ms,
        "contested": not independent,
        "signed": a["new_signature"],
        "shared": a["same_data"],
        "refused": a["refused"],
        "adopted": a["adopted"],
        "busy": a["busy"],
        "unavailable": a["store_unavailable"] + a["lost_claim"],
        "equivocations": a["equivocations"],
        "unsigned_duties": a["unsigned"],
        "claim_p50_ms": _ms(percentile(claim_ms, 0.5)),
        "claim_p99_ms": _ms(percentile(claim_ms, 0.99)),
        "claim_max_ms": round(max(claim_ms), 4),
        "guarded_per_s": round(nodes * duties / guarded_s, 1),
        "raw_sign_per_s": round(nodes * duties / raw_s, 1),
        "racers_exit_codes": sorted(set(result.returncodes.values())),
        # Where the tail comes from: each store call of the guard, pool waits, how late a 1 ms sleep wakes.
        "store_calls": {name: tail(name) for name in ("claim", "fetch", "record", "adopt")},
        "calls_per_duty": round(
            sum(len(s["store_ms"][n]) for s in summaries for n in s["store_ms"]) / max(1, nodes * duties), 3
        ),
        # The guard's time outside store calls: waiting for a racing twin's record (polls), and Python.
        "outside_store_p50_ms": _ms(percentile(outside, 0.5)),
        "outside_store_p99_ms": _ms(percentile(outside, 0.99)),
        "pool_wait_ms_total": sum(p[k]["requests_wait_ms"] for p in pools for k in p),
        "pool_waits": sum(p[k]["requests_waiting"] for p in pools for k in p),
        "sleep_1ms_late_p50_ms": _ms(percentile(late, 0.5)),
        "sleep_1ms_late_p99_ms": _ms(percentile(late, 0.99)),
    }


if __name__ == "__main__":
    racer_main(sys.argv[1:])

"""`bench guard --chaos`: guard torture. K racer processes race every duty (digests disagree about half the
time) while a seeded supervisor kills them (-9), pauses them past the lease and restarts them, their guards
kill themselves at the guard's fault points, and (PostgreSQL) the store drops every connection; on a private
cluster with fsync on (`--private-pg`) the store also crashes (`pg_ctl stop -m immediate`) and restarts.

Each racer appends every signature its guard *released* to its own trace file (a restarted racer appends to
the same file). The audit then checks, from those files and the store alone: no duty has two released digests,
and every released signature is the store's signature for that duty.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from eth_account import Account

from ha_sequencer.bench.guard import KEY_ENV, race_seed, signer_of
from ha_sequencer.ha.faults import FAULT_ENV, KILL_POINTS
from ha_sequencer.localnet.postgres import PrivatePostgres

# About this many self-kills per run whatever its size: each costs a restart (a process start, ~0.3 s of CPU),
# so a fixed per-duty probability would make a long run mostly restarts. The supervisor's kills and pauses
# come at a fixed rate per second instead.
SELF_KILLS_PER_RUN = 60
TICK_S = 0.02
KILL_P = 0.003  # per tick: kill -9 one racer
# Seconds between two pauses (SIGSTOP one racer for up to 2 leases) and between two store drops (PostgreSQL:
# terminate every connection to the database), drawn from the seed: a schedule, not a chance per tick, so even
# a fast run gets them (a 26 s run once drew no drop at 0.2 % per tick).
PAUSE_GAP_S = (0.5, 3.0)
STORE_DROP_GAP_S = (1.0, 5.0)
STORE_CRASH_P = 0.001  # per tick, a private cluster (`--private-pg`): crash it (-m immediate) and restart it
# Later lines of postgresql.conf win: a private cluster's throwaway settings back to a durable server's, so
# that a crash loses only what a real server may lose.
DURABLE_CONF = "\nfsync = on\nfull_page_writes = on\nsynchronous_commit = on\n"
LEASE_S = 0.2
TRACE_TAIL_BYTES = 8192  # a trace line is ~400 bytes


@contextmanager
def durable_private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster with fsync on, for crashing (`pg_ctl stop -m immediate`) under racers."""
    pg = PrivatePostgres()
    try:
        pg.init()
        with (pg.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(DURABLE_CONF)
        pg.start()
        yield pg
    finally:
        pg.cleanup()


def crash_and_restart(pg: PrivatePostgres) -> None:
    """Crash the cluster (no checkpoint, no clean shutdown) and start it again: recovery from the WAL."""
    pg.stop(mode="immediate")
    pg.start()


def torture(
    db: str,
    *,
    nodes: int,
    duties: int,
    seed: int | None = None,
    timeout_s: float = 1800,
    crash_store: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the torture on store `db` (migrated) and audit it; returns the figures.

    `crash_store` (a private durable cluster): called now and then to crash and restart the store."""
    seed = race_seed(seed)
    rng = random.Random(seed)
    account = Account.create()
    rollup = Account.create().address
    work = Path(tempfile.mkdtemp(prefix="ha-torture-"))
    self_kill_p = SELF_KILLS_PER_RUN / (nodes * duties * len(KILL_POINTS))
    base_env = {
        **os.environ,
        KEY_ENV: account.key.hex(),
        FAULT_ENV: ",".join(f"{p}:kill%{self_kill_p:.3g}" for p in KILL_POINTS),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    counts = {"kills": 0, "selfKills": 0, "pauses": 0, "restarts": 0, "storeDrops": 0, "storeCrashes": 0}
    paused: dict[str, float] = {}
    killed_by_us: set[int] = set()

    choice_seeds = {f"node-{n}": rng.randrange(1 << 30) for n in range(nodes)}

    def spawn(node_id: str, append: bool) -> None:
        # A fresh seed for its faults (a replayed one would kill it at the same point again), its node's seed
        # for the digests it wants: restarted, it wants what it may have recorded before it died.
        cmd = [
            sys.executable, "-m", "ha_sequencer.bench.guard", "--db", db, "--node-id", node_id,
            "--rollup", rollup, "--attester", account.address, "--duties", str(duties),
            "--p-same", "0.5", "--lease", str(LEASE_S),
            "--seed", str(rng.randrange(1 << 30)), "--choice-seed", str(choice_seeds[node_id]),
            "--workdir", str(work),
        ]  # fmt: skip
        if append:
            # resume at the duty the killed racer was in (re-attempted: its claim may be its own, now stale)
            cmd += ["--append", "--from-duty", str(_last_duty(work / f"trace.{node_id}.jsonl"))]
        procs[node_id] = subprocess.Popen(cmd, env=base_env, stdout=subprocess.DEVNULL)

    started = time.monotonic()
    next_pause = started + rng.uniform(*PAUSE_GAP_S)
    next_drop = started + rng.uniform(*STORE_DROP_GAP_S)
    try:
        for n in range(nodes):
            spawn(f"node-{n}", append=False)
        (work / "go").touch()
        deadline = started + timeout_s
        done: set[str] = set()
        while len(done) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"torture did not finish in {timeout_s:.0f} s")
            now = time.monotonic()
            for node_id, until in list(paused.items()):
                if now >= until:
                    with suppress(ProcessLookupError):
                        os.kill(procs[node_id].pid, signal.SIGCONT)
                    del paused[node_id]
            for node_id, proc in procs.items():
                if node_id in done or node_id in paused:
                    continue
                code = proc.poll()
                if code == 0:
                    done.add(node_id)
                elif code is not None:  # killed (by us or by its own guard at a fault point): restart
                    counts["selfKills"] += code == -signal.SIGKILL and proc.pid not in killed_by_us
                    counts["restarts"] += 1
                    spawn(node_id, append=True)
            live = [n for n in procs if n not in done and n not in paused and procs[n].poll() is None]
            if live and rng.random() < KILL_P:
                victim = rng.choice(live)
                killed_by_us.add(procs[victim].pid)
                procs[victim].kill()
                counts["kills"] += 1
            elif live and now >= next_pause:
                victim = rng.choice(live)
                os.kill(procs[victim].pid, signal.SIGSTOP)
                paused[victim] = now + rng.uniform(0.0, 2 * LEASE_S)
                counts["pauses"] += 1
                next_pause = now + rng.uniform(*PAUSE_GAP_S)
            elif db.startswith("postgres") and now >= next_drop:
                _drop_connections(db)
                counts["storeDrops"] += 1
                next_drop = now + rng.uniform(*STORE_DROP_GAP_S)
            elif crash_store is not None and rng.random() < STORE_CRASH_P:
                crash_store()
                counts["storeCrashes"] += 1
            time.sleep(TICK_S)
        wall = time.monotonic() - started
        result = audit_torture(db, rollup, account.address, work)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    return {
        "seed": seed,
        "nodes": nodes,
        "duties": duties,
        **counts,
        **result,
        "wallS": round(wall, 1),
        "attemptsPerS": round(result["attempts"] / wall, 1) if wall else 0.0,
    }


def _last_duty(trace: Path) -> int:
    """The duty number after the last one a racer's trace records (0 without any)."""
    last = -1
    if trace.exists():
        with trace.open("rb") as f:  # lines go in duty order: the tail holds the last one
            f.seek(max(0, trace.stat().st_size - TRACE_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
        for line in tail.splitlines():
            with suppress(ValueError, KeyError, TypeError):
                last = max(last, json.loads(line)["slot"] - 1)  # duty i is slot 1 + i (racer --slot0 1)
    return last + 1


def _drop_connections(db: str) -> None:
    import psycopg

    name = db.rsplit("/", 1)[-1].split("?")[0]
    admin = db.rsplit("/", 1)[0] + "/postgres"
    with suppress(psycopg.Error), psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def audit_torture(db: str, rollup: str, attester: str, work: Path) -> dict[str, Any]:
    """From the racers' released-signature files and the store: equivocations and store mismatches."""
    from ha_sequencer.ha.backends import open_store

    released: dict[tuple[int, str], set[tuple[str, str]]] = {}
    outcomes: dict[str, int] = {}
    attempts = 0
    for trace in work.glob("trace.*.jsonl"):
        for line in trace.read_text().splitlines():
            try:
                t = json.loads(line)
            except ValueError:
                continue  # a line cut short by kill -9
            if "summary" in t:
                continue
            attempts += t.get("attempts", 1)
            outcomes[t["outcome"]] = outcomes.get(t["outcome"], 0) + 1
            if t["signature"]:
                released.setdefault((t["slot"], t["duty_type"]), set()).add((t["digest"], t["signature"]))
    store = open_store(db)
    try:
        rows, _ = store.export_rows(rollup.lower())
    finally:
        store.close()
    by_duty = {(r["slot"], r["duty_type"]): r for r in rows if r["attester"] == attester.lower()}
    equivocations = sum(1 for sigs in released.values() if len({d for d, _ in sigs}) > 1)
    # Not the racer's word: each released signature must be the attester's over the digest it names.
    not_by_attester = sum(
        1
        for sigs in released.values()
        for digest, signature in sigs
        if signer_of(bytes.fromhex(digest), bytes.fromhex(signature)) != attester.lower()
    )
    mismatches = 0
    for duty, sigs in released.items():
        row = by_duty.get(duty)
        for digest, signature in sigs:
            if (
                row is None
                or row["signature"] is None
                or (row["digest"].hex(), row["signature"].hex()) != (digest, signature)
            ):
                mismatches += 1
    return {
        "attempts": attempts,
        "dutiesReleased": len(released),
        "adoptions": outcomes.get("adopted", 0),
        "refusals": outcomes.get("refused", 0),
        "outcomes": outcomes,
        "equivocations": equivocations,
        "releasedNotInStore": mismatches,
        "signaturesNotOverDigest": not_by_attester,
    }

"""`bench scale`: how an HA fleet's cost grows with the identities each node runs.

For each K: a local network whose 3-node HA fleet runs the same K attesters (one keystore per node, one
publisher each), other nodes holding the rest of the committee; real node processes, slots of a few seconds.
Per node: CPU %, RSS, guard calls per slot, duty latency (slot start → signature released) and the guard's own
time per call; per K: quorum time and missed HA duties (a duty no fleet node signed by its deadline). Figures,
not assertions; `tests/bench/test_bench_scale.py` keeps a small instance as a correctness check.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ha_sequencer.bench.pipeline import process_usage
from ha_sequencer.bench.stats import percentile

HA_NODES = 3
FILLER_NODES = 2  # processes holding the committee's other validators
FILLERS_IN_ONE_NODE = 8  # up to this many, one process holds them all (small instances start faster)
EPOCH_LENGTH = 8
WARMUP_SLOTS = 2
MESH_TIMEOUT_S = 60.0
# Measuring starts once L1 holds blocks of this many consecutive slots: gossip connections alone do not mean a
# proposal and its attestations reach every node yet (the gossipsub mesh forms at its heartbeats after them).
PIPELINE_SLOTS = 2
PIPELINE_TIMEOUT_S = 120.0
# A duty counts as done when a fleet node released its signature by this fraction of the slot: proposals
# by the quorum deadline (no quorum is collected after it), attestations by the last useful moment.
PROPOSAL_DEADLINE = 0.7
ATTESTATION_DEADLINE = 0.8
SIGNED = ("new_signature", "same_data", "adopted")


@contextlib.contextmanager
def ha_store_url(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh duty store for the HA fleet: a SQLite file in `workdir`, or a temporary PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/ha-duties.db"
        return
    import psycopg
    from psycopg import sql

    admin = os.environ.get("HA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ha_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _ms(values: Sequence[float], q: float) -> float | None:
    p = percentile(values, q)
    return None if p is None else round(p, 1)


def run_identities(
    *, identities: int, committee: int, slots: int, store: str, slot_duration: int, workdir: Path
) -> dict[str, Any]:
    """One point of the curve: K = `identities` attesters on each HA node."""
    import time

    from ha_sequencer.l1.client import RollupClient
    from ha_sequencer.localnet.nodes import LocalNet, generate_validators

    ha = generate_validators(identities, publishers_each=HA_NODES)
    fillers = generate_validators(max(0, committee - identities))
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        ha_store_url(store, workdir) as url,
        LocalNet(
            workdir, slot_duration=slot_duration, epoch_length=EPOCH_LENGTH, committee_size=committee
        ) as net,
    ):
        net.deploy([*ha, *fillers], users=1)
        for i in range(HA_NODES):
            net.add_node(f"ha{i}", [(v, [i]) for v in ha], ha_db=url)
        spread = FILLER_NODES if len(fillers) > FILLERS_IN_ONE_NODE else 1
        groups = [fillers[j::spread] for j in range(spread)]
        for j, group in enumerate(g for g in groups if g):
            net.add_node(f"f{j}", [(v, [0]) for v in group])
        net.start()
        net.wait_ready(timeout=180)
        peers = _wait_for_mesh(net, timeout_s=MESH_TIMEOUT_S)
        assert net.rollup is not None
        client = RollupClient(net.l1_urls, net.rollup)
        pipeline_ready = _wait_for_pipeline(net, client, slot_duration, timeout_s=PIPELINE_TIMEOUT_S)
        first = net.nodes["ha0"].status()[1]["slot"] + WARMUP_SLOTS
        last = first + slots - 1
        while net.nodes["ha0"].status()[1]["slot"] < first:
            time.sleep(0.2)
        usage_start = {n.name: process_usage(n.pid) for n in net.nodes.values()}
        t_start = time.monotonic()
        while net.nodes["ha0"].status()[1]["slot"] <= last + 1:  # the last slot's duties are over
            time.sleep(slot_duration / 4)
        elapsed = time.monotonic() - t_start
        usage_end = {n.name: process_usage(n.pid) for n in net.nodes.values()}
        records = {
            n.name: [r for r in n.rpc("node_getSlotRecords")["result"] if first <= r["slot"] <= last]
            for n in net.nodes.values()
        }
        epochs = {s // EPOCH_LENGTH for s in range(first, last + 1)}
        committees = {e: set(client.epoch_committee(e)) for e in epochs}
        proposers = {s: client.proposer(s) for s in range(first, last + 1)}
        blocks = {e.slot for e in client.block_proposed_events(0)}
    return _summarise(
        identities=identities,
        committee=committee,
        slots=range(first, last + 1),
        slot_duration=slot_duration,
        ha=[v.address for v in ha],
        records=records,
        committees=committees,
        proposers=proposers,
        blocks=blocks,
        usage=(usage_start, usage_end, elapsed),
        store=store,
    ) | {"peers_at_start": peers, "pipeline_ready": pipeline_ready}


def _wait_for_mesh(net: Any, *, timeout_s: float) -> dict[str, int]:
    """Wait until every node has a gossip connection to every other one (a duty missed because gossip had no
    path yet is the network's start-up, not the cost of K); returns each node's peer count when measuring."""
    import time

    want = len(net.nodes) - 1
    deadline = time.monotonic() + timeout_s
    while True:
        peers = {name: int(node.status()[1].get("peers", 0)) for name, node in net.nodes.items()}
        if min(peers.values()) >= want or time.monotonic() > deadline:
            return peers
        time.sleep(0.5)


def _wait_for_pipeline(net: Any, client: Any, slot_duration: int, *, timeout_s: float) -> bool:
    """Wait until L1 holds blocks of `PIPELINE_SLOTS` consecutive slots from now on (proposal, attestations,
    quorum and publication have worked end to end); False if that did not happen within `timeout_s`."""
    import time

    since = net.nodes["ha0"].status()[1]["slot"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        blocks = {e.slot for e in client.block_proposed_events(0) if e.slot >= since}
        if any(all(s + i in blocks for i in range(PIPELINE_SLOTS)) for s in blocks):
            return True
        time.sleep(slot_duration / 4)
    return False


def _summarise(
    *,
    identities: int,
    committee: int,
    slots: range,
    slot_duration: int,
    ha: list[str],
    records: dict[str, list[dict[str, Any]]],
    committees: dict[int, set[str]],
    proposers: dict[int, str],
    blocks: set[int],
    usage: tuple[dict[str, tuple[float, int]], dict[str, tuple[float, int]], float],
    store: str,
) -> dict[str, Any]:
    usage_start, usage_end, elapsed = usage
    # (attester, slot, duty) -> earliest release by any HA node, in seconds after slot start
    released: dict[tuple[str, int, str], float] = {}
    proposed: set[int] = set()
    quorum_s: list[float] = []
    nodes: dict[str, Any] = {}
    ha_set = set(ha)
    for name, recs in records.items():
        latency = [d["at"] * 1000 for r in recs for d in r["duties"] if d["outcome"] in SIGNED]
        guard = [d["guard_ms"] for r in recs for d in r["duties"]]
        # The guard's own time: a call's wall time less the time in attester keys (K keys in a batch).
        own = [d["guard_ms"] - d["sign_ms"] for r in recs for d in r["duties"]]
        sign = [d["sign_ms"] for r in recs for d in r["duties"]]
        for r in recs:
            if r["proposal_gossiped"] is not None:
                proposed.add(r["slot"])
            if r["role"] == "proposer" and r["quorum_collected"] is not None:
                quorum_s.append(r["quorum_collected"])
            for d in r["duties"]:
                key = (d["attester"], r["slot"], d["duty"])
                if d["outcome"] in SIGNED and d["attester"] in ha_set:
                    released[key] = min(released.get(key, float("inf")), d["at"])
        cpu0, _ = usage_start[name]
        cpu1, rss = usage_end[name]
        nodes[name] = {
            "cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 1),
            "rss_mb": round(rss / 2**20, 1),
            "guard_calls_per_slot": round(len(guard) / len(slots), 2),
            "duty_latency_p50_ms": _ms(latency, 0.5),
            "duty_latency_p99_ms": _ms(latency, 0.99),
            "guard_p50_ms": _ms(guard, 0.5),
            "guard_p99_ms": _ms(guard, 0.99),
            "guard_own_p50_ms": _ms(own, 0.5),
            "guard_own_p99_ms": _ms(own, 0.99),
            "sign_p50_ms": _ms(sign, 0.5),
        }
    duties, missed = 0, []
    for s in slots:
        members = committees[s // EPOCH_LENGTH]
        for a in ha:
            wanted: list[tuple[str, float]] = []
            if proposers[s] == a:
                wanted.append(("block_proposal", PROPOSAL_DEADLINE))
            if a in members and s in proposed:  # no proposal in the slot: nothing to attest
                wanted.append(("attestation", ATTESTATION_DEADLINE))
            for duty, deadline in wanted:
                duties += 1
                at = released.get((a, s, duty))
                if at is None or at > deadline * slot_duration:
                    missed.append({"slot": s, "attester": a, "duty": duty, "released_s": at})
    ha_nodes = [n for n in nodes if n.startswith("ha")]
    fleet_latency = [at * 1000 for at in released.values()]
    guard_all = [nodes[n]["guard_p99_ms"] for n in ha_nodes if nodes[n]["guard_p99_ms"] is not None]
    own_all = [nodes[n]["guard_own_p99_ms"] for n in ha_nodes if nodes[n]["guard_own_p99_ms"] is not None]
    return {
        "identities": identities,
        "committee": committee,
        "slots": len(slots),
        "slot_duration_s": slot_duration,
        "store": store,
        "ha_duties": duties,
        "missed_duties": len(missed),
        "missed": missed[:20],
        "blocks": len(blocks & set(slots)),
        "slots_with_proposal": len(proposed & set(slots)),
        "fleet_duty_latency_p50_ms": _ms(fleet_latency, 0.5),
        "fleet_duty_latency_p99_ms": _ms(fleet_latency, 0.99),
        "quorum_p50_ms": _ms([q * 1000 for q in quorum_s], 0.5),
        "quorum_p99_ms": _ms([q * 1000 for q in quorum_s], 0.99),
        "ha_cpu_percent_mean": round(sum(nodes[n]["cpu_percent"] for n in ha_nodes) / len(ha_nodes), 1),
        "ha_rss_mb_max": max(nodes[n]["rss_mb"] for n in ha_nodes),
        "ha_guard_calls_per_slot_mean": round(
            sum(nodes[n]["guard_calls_per_slot"] for n in ha_nodes) / len(ha_nodes), 2
        ),
        "ha_guard_p99_ms_max": max(guard_all) if guard_all else None,
        "ha_guard_own_p99_ms_max": max(own_all) if own_all else None,
        "nodes": nodes,
    }


def run_scale(
    *, identities: Sequence[int], committee: int, slots: int, store: str, slot_duration: int = 4
) -> dict[str, Any]:
    """The whole curve: one fresh network per K."""
    points = []
    for k in identities:
        with tempfile.TemporaryDirectory(prefix=f"hasq-bench-scale-{k}-") as tmp:
            points.append(
                run_identities(
                    identities=k,
                    committee=committee,
                    slots=slots,
                    store=store,
                    slot_duration=slot_duration,
                    workdir=Path(tmp),
                )
            )

    def ratios(key: str) -> list[float | None]:
        base = points[0][key]
        return [None if not base or p[key] is None else round(p[key] / base, 2) for p in points]

    return {
        "points": points,
        "guard_p99_ratio_to_first": ratios("ha_guard_p99_ms_max"),
        "guard_own_p99_ratio_to_first": ratios("ha_guard_own_p99_ms_max"),
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
    }


def plot_scale(report: dict[str, Any], path: Path) -> None:
    """A PNG with one panel per figure, each against K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    ks = [p["identities"] for p in points]
    ha = [sorted(n for n in p["nodes"] if n.startswith("ha")) for p in points]

    def per_node(key: str) -> list[list[float | None]]:
        return [[p["nodes"][n][key] for n in names] for p, names in zip(points, ha, strict=True)]

    panels: list[tuple[str, dict[str, list[Any]]]] = [
        ("CPU % per HA node", {"mean": [p["ha_cpu_percent_mean"] for p in points]}),
        ("RSS MB per HA node (max)", {"max": [p["ha_rss_mb_max"] for p in points]}),
        ("guard calls per slot per HA node", {"mean": [p["ha_guard_calls_per_slot_mean"] for p in points]}),
        (
            "duty latency ms (slot start → released)",
            {
                "p50": [p["fleet_duty_latency_p50_ms"] for p in points],
                "p99": [p["fleet_duty_latency_p99_ms"] for p in points],
            },
        ),  # fmt: skip
        (
            "guard call ms (p99, max of HA nodes)",
            {
                "p99": [
                    max((x for x in row if x is not None), default=None) for row in per_node("guard_p99_ms")
                ],
                "own p99 (keys excluded)": [p["ha_guard_own_p99_ms_max"] for p in points],
            },
        ),
        (
            "quorum time ms (missed duties: right axis)",
            {
                "quorum p50": [p["quorum_p50_ms"] for p in points],
                "quorum p99": [p["quorum_p99_ms"] for p in points],
            },
        ),  # fmt: skip
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, series) in zip(axes.flat, panels, strict=True):
        for label, ys in series.items():
            ax.plot(ks, [float("nan") if y is None else y for y in ys], marker="o", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("identities per node (K)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper left")
    missed = axes.flat[-1].twinx()
    missed.plot(ks, [p["missed_duties"] for p in points], marker="x", color="tab:red", label="missed duties")
    missed.set_ylim(bottom=0)
    missed.legend(fontsize=8, loc="upper right")
    first = points[0]
    fig.suptitle(
        f"bench scale: 3-node HA fleet, committee {first['committee']}, {first['slots']} slots of "
        f"{first['slot_duration_s']} s, store {first['store']}"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""`bench pipeline`: a local network, and how long each stage of each slot's proposal takes.

Stages, in ms after the slot's start, read from the proposer node's own records: proposal gossiped, quorum
collected, L1 submitted, L1 mined; plus RSS and CPU of every node process. Figures, not assertions.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from ha_sequencer.bench.stats import percentile

STAGES = ("proposal_gossiped", "quorum_collected", "l1_submitted", "l1_mined")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used, RSS bytes) of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime
    rss = int(fields[21]) * _PAGE
    return cpu, rss


def run_pipeline(
    *, committee: int, slots: int, nodes: int, slot_duration: int, workdir: Path, ha_db: str | None = None
) -> dict[str, Any]:
    """Start `nodes` processes holding `committee` validators between them, run `slots` slots, report."""
    # web3 and libp2p on use: the CLI imports this module at start-up to register `bench pipeline`
    from ha_sequencer.l1.client import RollupClient
    from ha_sequencer.localnet.nodes import LocalNet, generate_validators

    validators = generate_validators(committee)
    with LocalNet(workdir, slot_duration=slot_duration, epoch_length=8, committee_size=committee) as net:
        net.deploy(validators, users=1)
        for i in range(nodes):
            mine = validators[i::nodes]
            net.add_node(f"n{i}", [(v, [0]) for v in mine], ha_db=ha_db)
        net.start()
        net.wait_ready(timeout=120)
        params_slot = net.nodes["n0"].status()[1]["slot"]
        first = params_slot + 2  # skip the warm-up slots
        usage_start = {n.name: process_usage(n.pid) for n in net.nodes.values()}
        t_start = time.monotonic()
        last = first + slots - 1
        while net.nodes["n0"].status()[1]["slot"] <= last + 1:
            time.sleep(slot_duration / 2)
        elapsed = time.monotonic() - t_start
        usage_end = {n.name: process_usage(n.pid) for n in net.nodes.values()}
        per_slot: dict[int, dict[str, Any]] = {s: {"slot": s, "block": False} for s in range(first, last + 1)}
        for node in net.nodes.values():
            for rec in node.rpc("node_getSlotRecords")["result"]:
                s = rec["slot"]
                if s in per_slot and rec["role"] == "proposer" and rec["outcome"] is not None:
                    entry = per_slot[s]
                    for stage in STAGES:
                        value = rec[stage]
                        if value is not None and (entry.get(stage) is None or value * 1000 < entry[stage]):
                            entry[stage] = round(value * 1000, 1)
                    entry["attestations"] = max(entry.get("attestations", 0), rec["attestations"])
                    entry["proposer_node"] = node.name
        assert net.rollup is not None  # deployed by net.start()
        client = RollupClient(net.l1_urls, net.rollup)
        for event in client.block_proposed_events(0):
            if event.slot in per_slot:
                per_slot[event.slot]["block"] = True
        processes = {
            name: {
                "rss_mb": round(usage_end[name][1] / 2**20, 1),
                "cpu_percent": round(100 * (usage_end[name][0] - usage_start[name][0]) / elapsed, 1),
            }
            for name in usage_end
        }
    summary: dict[str, Any] = {}
    for stage in STAGES:
        values = [e[stage] for e in per_slot.values() if e.get(stage) is not None]
        summary[stage] = {
            "n": len(values),
            "p50_ms": percentile(values, 0.50),
            "p99_ms": percentile(values, 0.99),
            "mean_ms": round(statistics.fmean(values), 1) if values else None,
        }
    return {
        "committee": committee,
        "nodes": nodes,
        "slot_duration_s": slot_duration,
        "slots": slots,
        "duty_store": "sqlite (one file per node)" if ha_db is None else ha_db.split(":", 1)[0],
        "blocks": sum(1 for e in per_slot.values() if e["block"]),
        "summary": summary,
        "processes": processes,
        "per_slot": list(per_slot.values()),
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
    }

"""Gossip latency between N GossipNode processes on this machine (a benchmark: figures, no assertions).

    .venv/bin/python benchmarks/gossip_latency.py --nodes 4 --rates 20,100 --duration 10 [--size N] [--burst]

Every node runs in its own OS process, bootstrapped to all others; the nodes take turns publishing at the
given total rate (msg/s) on /hasq/1/tx (or --topic); each receiver records now - send time (same host, same
clock). Reports per rate: delivered/expected, p50/p90/p99/max latency in ms, CPU% and max RSS per process.
GOSSIP_BENCH_PROFILE=FILE writes a cProfile of node 0 to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

from ha_sequencer.p2p.gossip import GossipConfig, GossipNode
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of
from ha_sequencer.p2p.topics import TX_TOPIC
from ha_sequencer.p2p.validation import Verdict

HEADER = struct.Struct(">HId")  # sender index, sequence number, send time (time.time())


def check(data: bytes, from_peer: str) -> Verdict:
    # A stand-in for the node's checks: parse the header, reject short messages.
    if len(data) < HEADER.size:
        return Verdict.REJECT
    HEADER.unpack_from(data)
    return Verdict.ACCEPT


async def run_peer(args: argparse.Namespace) -> None:
    bootstrap = [a for a in args.bootstrap.split(",") if a]
    config = GossipConfig(
        protocols=tuple(args.protocols.split(",")) if args.protocols else (),
        muxer=args.muxer,
    )
    async with GossipNode(Path(args.key), args.port, bootstrap, config=config) as node:
        await node.subscribe(args.topic, check)
        await node.wait_for_topic_peers(args.topic, args.nodes - 1, timeout_s=60)
        await trio.sleep(1.0)  # let the mesh settle (GRAFTs)
        print(json.dumps({"event": "meshed"}), flush=True)
        cmd = json.loads(await trio.to_thread.run_sync(sys.stdin.readline))
        latencies: list[float] = []
        published = 0

        async def receive() -> None:
            async for msg in node:
                _, _, sent = HEADER.unpack_from(msg.data)
                latencies.append((time.time() - sent) * 1000)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            start, rate, total = cmd["start"], cmd["rate"], cmd["count"]
            cpu0 = time.process_time()
            wall0 = time.time()
            pad = b"\0" * max(0, args.size - HEADER.size)
            for seq in range(args.index, total, args.nodes):
                # Burst mode: each second's messages all leave at once (a committee attesting together).
                due = start + (seq // int(rate) if cmd["burst"] else seq / rate)
                await trio.sleep(max(0.0, due - time.time()))
                await node.publish(args.topic, HEADER.pack(args.index, seq, time.time()) + pad)
                published += 1
            await trio.sleep(max(0.0, start + total / rate + 3.0 - time.time()))  # stragglers
            nursery.cancel_scope.cancel()
        cpu = time.process_time() - cpu0
        wall = time.time() - wall0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps(
                {
                    "event": "done",
                    "published": published,
                    "latencies": latencies,
                    "cpu_pct": 100 * cpu / wall,
                    "rss_mb": rss_mb,
                }
            ),
            flush=True,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]
        if len(values) > 1
        else 0.0
    )


def run_round(args: argparse.Namespace, rate: float, workdir: Path) -> dict:
    keys = [workdir / f"n{i}" / "peer.key" for i in range(args.nodes)]
    ids = [peer_id_of(load_or_create_peer_key(k)) for k in keys]
    ports = [free_port() for _ in keys]
    addrs = [f"/ip4/127.0.0.1/tcp/{p}/p2p/{i}" for p, i in zip(ports, ids, strict=True)]
    procs = []
    for i, key in enumerate(keys):
        boot = ",".join(a for j, a in enumerate(addrs) if j != i)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--peer",
                    "--index",
                    str(i),
                    "--nodes",
                    str(args.nodes),
                    "--key",
                    str(key),
                    "--port",
                    str(ports[i]),
                    "--bootstrap",
                    boot,
                    "--topic",
                    args.topic,
                    "--size",
                    str(args.size),
                    "--protocols",
                    args.protocols,
                    "--muxer",
                    args.muxer,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outputs: list[list[dict]] = [[] for _ in procs]

    def read(i: int) -> None:
        for line in procs[i].stdout:
            outputs[i].append(json.loads(line))

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(procs))]
    for t in threads:
        t.start()
    t_connect = time.monotonic()
    while not all(any(e["event"] == "meshed" for e in out) for out in outputs):
        if any(p.poll() is not None for p in procs) or time.monotonic() - t_connect > 90:
            for p in procs:
                p.kill()
            raise SystemExit("a peer exited or the mesh did not form")
        time.sleep(0.05)
    mesh_s = time.monotonic() - t_connect
    count = int(rate * args.duration)
    cmd = json.dumps({"start": time.time() + 0.5, "rate": rate, "count": count, "burst": args.burst}) + "\n"
    for p in procs:
        p.stdin.write(cmd)
        p.stdin.flush()
    for p, t in zip(procs, threads, strict=True):
        t.join(timeout=args.duration + 60)
        p.stdin.close()
        p.wait(timeout=30)
    done = [next(e for e in out if e["event"] == "done") for out in outputs]
    latencies = sorted(x for d in done for x in d["latencies"])
    expected = count * (args.nodes - 1)
    return {
        "nodes": args.nodes,
        "rate_msg_s": rate,
        "payload_bytes": args.size,
        "burst": args.burst,
        "published": sum(d["published"] for d in done),
        "delivered": len(latencies),
        "expected": expected,
        "mesh_formed_s": round(mesh_s, 2),
        "p50_ms": round(pct(latencies, 0.50), 2),
        "p90_ms": round(pct(latencies, 0.90), 2),
        "p99_ms": round(pct(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "cpu_pct_per_node": [round(d["cpu_pct"], 1) for d in done],
        "rss_mb_per_node": [round(d["rss_mb"], 1) for d in done],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rates", default="20,100", help="total publish rates to measure, msg/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per rate")
    parser.add_argument("--size", type=int, default=256, help="payload bytes")
    parser.add_argument("--topic", default=TX_TOPIC)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--burst", action="store_true", help="publish each second's messages at once")
    parser.add_argument("--muxer", default="YAMUX", choices=["YAMUX", "MPLEX"])
    parser.add_argument("--protocols", default="", help="gossipsub protocol ids, e.g. /meshsub/1.1.0")
    # peer mode (internal)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        if os.environ.get("GOSSIP_BENCH_PROFILE") and args.index == 0:
            import cProfile

            cProfile.runctx(
                "trio.run(run_peer, args)",
                globals(),
                {"args": args, "trio": trio},
                os.environ["GOSSIP_BENCH_PROFILE"],
            )
        else:
            trio.run(run_peer, args)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="gossip-bench-") as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            results.append(run_round(args, rate, Path(tmp) / f"r{rate:g}"))
            if not args.json:
                r = results[-1]
                print(
                    f"{r['nodes']} nodes, {r['rate_msg_s']:g} msg/s{' in bursts' if r['burst'] else ''}, "
                    f"{r['payload_bytes']} B: "
                    f"delivered {r['delivered']}/{r['expected']}, "
                    f"p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, "
                    f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms; CPU% {r['cpu_pct_per_node']}, "
                    f"RSS MB {r['rss_mb_per_node']}, mesh formed in {r['mesh_formed_s']} s",
                    flush=True,
                )
    if args.json:
        print(json.dumps(results, indent=2))
    os._exit(0)


if __name__ == "__main__":
    main()

"""Micro-benchmark of the L2 state transition: txs/s of decode + apply_block, signature recovery included.

Usage: python benchmarks/state_apply.py [--txs 512] [--senders 64] [--rounds 5] [--json]

Each round decodes a fresh copy of a full block's calldata (so no recovered signer is cached) and applies
it; also reports the mempool's add + select for the same txs. Figures are best-of-rounds wall time.
"""

from __future__ import annotations

import argparse
import json
import time

from eth_account import Account
from eth_utils.crypto import keccak

from ha_sequencer.node.mempool import Mempool
from ha_sequencer.protocol.block import decode_txs, encode_txs, sign_tx
from ha_sequencer.protocol.constants import MAX_TXS_PER_BLOCK, NetworkParams
from ha_sequencer.protocol.state import apply_block, genesis_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=MAX_TXS_PER_BLOCK)
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=1_000, help="accounts in the state (root cost)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    params = NetworkParams(
        chain_id=31337,
        rollup="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        genesis_time=0,
        slot_duration=4,
        epoch_length=8,
        committee_size=4,
        genesis_seed=bytes(32),
        min_stake=1,
        slash_amount=1,
    )
    senders = [Account.from_key(keccak(f"bench-{i}".encode())) for i in range(args.senders)]
    filler = [(bytes(12) + keccak(f"filler-{i}".encode())[:20], 1) for i in range(args.accounts)]
    state = genesis_state([(s.address, 10**24) for s in senders] + filler)
    txs = [
        sign_tx(
            senders[i % len(senders)],
            params,
            to=senders[(i + 1) % len(senders)].address,
            amount=1_000 + i,
            fee=i % 7,
            nonce=i // len(senders),
        )
        for i in range(args.txs)
    ]
    data = encode_txs(txs)
    fee_recipient = keccak(b"fee recipient")

    best = {
        "decode": float("inf"),
        "apply": float("inf"),
        "mempool_add": float("inf"),
        "select": float("inf"),
    }
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        block = decode_txs(data)
        t1 = time.perf_counter()
        apply_block(state, block, params=params, fee_recipient=fee_recipient)
        t2 = time.perf_counter()
        pool = Mempool(params, max_size=args.txs)
        for stx in decode_txs(data):
            pool.add(stx, state)
        t3 = time.perf_counter()
        selected = pool.select(state)
        t4 = time.perf_counter()
        assert len(selected) == args.txs
        for key, value in (
            ("decode", t1 - t0),
            ("apply", t2 - t1),
            ("mempool_add", t3 - t2),
            ("select", t4 - t3),
        ):
            best[key] = min(best[key], value)

    result = {
        "txs": args.txs,
        "accounts": len(state),
        "calldata_bytes": len(data),
        "decode_ms": round(best["decode"] * 1e3, 2),
        "apply_ms": round(best["apply"] * 1e3, 2),
        "apply_txs_per_s": round(args.txs / best["apply"]),
        "mempool_add_txs_per_s": round(args.txs / best["mempool_add"]),
        "select_ms": round(best["select"] * 1e3, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()

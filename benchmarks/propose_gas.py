"""Gas per Rollup.propose against committee size and registered validators on a real anvil (figures only).

Run: .venv/bin/python benchmarks/propose_gas.py [--json] [--validators 100,1000,10000] [--committee 48]
     [--plot FILE]
Each case deploys a Rollup whose registry holds `validators` genesis attesters, then publishes blocks in
consecutive slots with a quorum of attestations and empty txs; gas is the receipt's gasUsed. The first block
of an epoch samples the committee from the seed (docs/committee-sampling.md) and stores its commitment;
later blocks pass the committee as calldata. The last column is `getEpochCommittee`'s own gas (eth_estimateGas
of the view), the part that once grew with the registry. Also printed: the first block's gas at the largest
registry as a ratio of the smallest (the target is within 10 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from ha_sequencer.l1.anvil import Anvil
from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.protocol.committee import quorum

SMALL_CASES = [(4, 4), (16, 16)]  # (committee size, registered validators): small committees, for reference
EPOCH_LENGTH = 4
SLOTS = range(1, 9)  # slots 1 and 4 open an epoch (committee sampled and committed), the rest reuse it
STAKE = 10**15  # small stakes: a 10,000-validator genesis must fit the deployer's balance
# A 10,000-validator genesis is one ~1e9-gas constructor with ~1 MB of initcode: lift anvil's block gas and
# code size limits for this benchmark only.
ANVIL_ARGS = ["--disable-block-gas-limit", "--disable-code-size-limit"]


def measure(anvil: Anvil, committee: int, validators: int) -> dict:
    """Deploy, publish one block per slot, return gas figures."""
    started = time.monotonic()
    r = deploy_local_rollup(
        anvil,
        validators=validators,
        committee_size=committee,
        slot_duration=60,
        epoch_length=EPOCH_LENGTH,
        min_stake=STAKE,
        slash_amount=STAKE // 10,
    )
    deployed_s = time.monotonic() - started
    first, later = [], []
    for slot in SLOTS:
        r.warp_to_slot(slot)
        gas = r.propose(r.sign_block(slot))["gasUsed"]
        (first if slot in (1, EPOCH_LENGTH) else later).append(gas)
    slot = SLOTS[-1] + 1
    r.warp_to_slot(slot)
    with_txs = r.propose(r.sign_block(slot, txs=bytes(range(256)) * 16))["gasUsed"]  # 4 KiB, later block
    sample_gas = r.client._call(  # the sampler alone, for an epoch no block has committed yet
        "getEpochCommittee", lambda w3, c: c.functions.getEpochCommittee(1000).estimate_gas()
    )
    return {
        "committee": committee,
        "validators": validators,
        "attestations": quorum(committee),
        "gas_later_blocks": int(statistics.median(later)),
        "gas_first_block_of_epoch": int(statistics.median(first)),
        "gas_later_with_4KiB_txs": with_txs,
        "gas_committee_view": sample_gas,
        "deploy_s": round(deployed_s, 1),
    }


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    big = [r for r in rows if (r["committee"], r["validators"]) not in SMALL_CASES]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["validators"] for r in big]
    series = (("gas_first_block_of_epoch", "first block of an epoch"), ("gas_later_blocks", "later"))
    for key, label in series:
        ax.plot(xs, [r[key] for r in big], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("registered validators")
    ax.set_ylabel("propose gas")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Rollup.propose gas, committee {big[0]['committee'] if big else '?'}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--validators", default="100,1000,10000", help="registry sizes (comma separated)")
    p.add_argument("--committee", type=int, default=48)
    p.add_argument("--plot", default="", help="write a PNG of gas against registered validators")
    a = p.parse_args()
    sizes = [int(x) for x in a.validators.split(",") if x]
    with Anvil(extra_args=ANVIL_ARGS) as anvil:
        rows = [measure(anvil, c, n) for c, n in SMALL_CASES]
        rows += [measure(anvil, a.committee, n) for n in sizes]
    big = [r for r in rows if r["validators"] in sizes and r["committee"] == a.committee]
    ratio = (
        round(big[-1]["gas_first_block_of_epoch"] / big[0]["gas_first_block_of_epoch"], 4) if big else None
    )
    if a.plot:
        _plot(rows, a.plot)
    if a.json:
        print(json.dumps({"rows": rows, "first_block_ratio_largest_to_smallest": ratio}, indent=2))
        return
    print(
        f"{'committee':>9} {'set':>6} {'atts':>4} {'later blocks':>12} {'1st of epoch':>12} {'+4KiB txs':>9} "
        f"{'sampler':>8}"
    )
    for r in rows:
        print(
            f"{r['committee']:>9} {r['validators']:>6} {r['attestations']:>4} {r['gas_later_blocks']:>12} "
            f"{r['gas_first_block_of_epoch']:>12} {r['gas_later_with_4KiB_txs']:>9} "
            f"{r['gas_committee_view']:>8}"
        )
    print(f"first block of an epoch, {sizes[-1]} vs {sizes[0]} validators: x{ratio}")


if __name__ == "__main__":
    main()

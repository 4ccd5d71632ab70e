"""Gas per Rollup.propose for committees of 4, 16 and 48 on a real anvil (figures, not assertions).

Run: .venv/bin/python benchmarks/propose_gas.py [--json]
Each case deploys a Rollup whose validator set has `set` members, then publishes blocks in consecutive
slots with a quorum of attestations and empty txs; gas is the receipt's gasUsed. The first block of an
epoch scans the registry and stores the committee commitment; later blocks pass the committee as calldata.
"""

from __future__ import annotations

import json
import statistics
import sys

from ha_sequencer.l1.anvil import Anvil
from ha_sequencer.localnet.rollup import deploy_local_rollup
from ha_sequencer.protocol.committee import quorum

CASES = [(4, 4), (16, 16), (48, 48), (48, 100)]  # (committee size, validator set size)
EPOCH_LENGTH = 4
SLOTS = range(1, 9)  # slots 1 and 4 open an epoch (committee computed and committed), the rest reuse it


def measure(anvil: Anvil, committee: int, set_size: int) -> dict:
    """Deploy, publish one block per slot, return gas figures."""
    r = deploy_local_rollup(
        anvil, validators=set_size, committee_size=committee, slot_duration=60, epoch_length=EPOCH_LENGTH
    )
    first, later = [], []
    for slot in SLOTS:
        r.warp_to_slot(slot)
        gas = r.propose(r.sign_block(slot))["gasUsed"]
        (first if slot in (1, EPOCH_LENGTH) else later).append(gas)
    slot = SLOTS[-1] + 1
    r.warp_to_slot(slot)
    with_txs = r.propose(r.sign_block(slot, txs=bytes(range(256)) * 16))[
        "gasUsed"
    ]  # 4 KiB of txs, later block
    return {
        "committee": committee,
        "validators": set_size,
        "attestations": quorum(committee),
        "gas_later_blocks": int(statistics.median(later)),
        "gas_first_block_of_epoch": int(statistics.median(first)),
        "gas_later_with_4KiB_txs": with_txs,
    }


def main() -> None:
    with Anvil() as anvil:
        rows = [measure(anvil, c, n) for c, n in CASES]
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'committee':>9} {'set':>4} {'atts':>4} {'later blocks':>12} {'1st of epoch':>12} {'+4KiB txs':>9}"
    )
    for r in rows:
        print(
            f"{r['committee']:>9} {r['validators']:>4} {r['attestations']:>4} {r['gas_later_blocks']:>12} "
            f"{r['gas_first_block_of_epoch']:>12} {r['gas_later_with_4KiB_txs']:>9}"
        )


if __name__ == "__main__":
    main()

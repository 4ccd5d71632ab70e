"""One test network's parameters and a short tx-signing helper, shared by the protocol and node unit tests.

Imported as `params_fixtures` (there are no `__init__.py` files under tests/): pytest puts tests/ on sys.path
because tests/conftest.py lives there.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ha_sequencer.protocol.block import SignedTx
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.messages import L2Tx, sign_digest, tx_digest

PARAMS = NetworkParams(
    chain_id=31337,
    rollup="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    genesis_time=1_700_000_000,
    slot_duration=4,
    epoch_length=8,
    committee_size=4,
    genesis_seed=keccak(b"seed"),
    min_stake=10**18,
    slash_amount=10**17,
)


def signed(
    key: LocalAccount, to: str, amount: int, fee: int, nonce: int, params: NetworkParams = PARAMS
) -> SignedTx:
    """`key`'s transfer, built from the message primitives (independent of `protocol.block.sign_tx`)."""
    tx = L2Tx(sender=key.address, to=to, amount=amount, fee=fee, nonce=nonce)
    return SignedTx(tx, sign_digest(key, tx_digest(params, tx)))

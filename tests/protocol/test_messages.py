"""EIP-712 digests, signing and recovery of protocol messages."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ha_sequencer.protocol.constants import SECP256K1_N, NetworkParams
from ha_sequencer.protocol.messages import (
    Attestation,
    InvalidSignature,
    L2Tx,
    Proposal,
    attestation_digest,
    domain_separator,
    proposal_digest,
    recover_signer,
    sign_digest,
    tx_digest,
)
from params_fixtures import PARAMS

KEY = keccak(b"messages test key")
DOMAIN = {
    "name": "HASequencer",
    "version": "1",
    "chainId": PARAMS.chain_id,
    "verifyingContract": PARAMS.rollup,
}
DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def reference_digest(primary: str, fields: list[tuple[str, str]], message: dict) -> bytes:
    """eth_account's generic EIP-712 encoder, as the reference for our hand-rolled hashing."""
    full = {
        "types": {"EIP712Domain": DOMAIN_TYPES, primary: [{"name": n, "type": t} for n, t in fields]},
        "primaryType": primary,
        "domain": DOMAIN,
        "message": message,
    }
    signable = encode_typed_data(full_message=full)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_proposal_digest_matches_eip712_reference() -> None:
    p = Proposal(12, b"\x01" * 32, b"\x02" * 32, txs_hash=b"\x03" * 32, fee_recipient=b"\x04" * 32)
    ref = reference_digest(
        "Proposal",
        [
            ("slot", "uint256"),
            ("parentArchive", "bytes32"),
            ("archive", "bytes32"),
            ("txsHash", "bytes32"),
            ("feeRecipient", "bytes32"),
        ],
        {
            "slot": 12,
            "parentArchive": b"\x01" * 32,
            "archive": b"\x02" * 32,
            "txsHash": b"\x03" * 32,
            "feeRecipient": b"\x04" * 32,
        },
    )
    assert proposal_digest(PARAMS, p) == ref


def test_attestation_digest_matches_eip712_reference() -> None:
    a = Attestation(slot=2**40, archive=b"\xfe" * 32)
    ref = reference_digest(
        "Attestation", [("slot", "uint256"), ("archive", "bytes32")], {"slot": 2**40, "archive": b"\xfe" * 32}
    )
    assert attestation_digest(PARAMS, a) == ref


def test_tx_digest_matches_eip712_reference() -> None:
    sender, to = Account.from_key(KEY).address, "0x" + "ab" * 20
    tx = L2Tx(sender=sender, to=to, amount=10**18, fee=3, nonce=7)
    ref = reference_digest(
        "Tx",
        [
            ("from", "address"),
            ("to", "address"),
            ("amount", "uint256"),
            ("fee", "uint256"),
            ("nonce", "uint256"),
        ],
        {"from": sender, "to": to, "amount": 10**18, "fee": 3, "nonce": 7},
    )
    assert tx_digest(PARAMS, tx) == ref


def test_domain_separates_chains_and_rollups() -> None:
    from dataclasses import replace

    a = Attestation(1, b"\x00" * 32)
    other_chain = replace(PARAMS, chain_id=1)
    other_rollup = replace(PARAMS, rollup="0x" + "12" * 20)
    digests = {attestation_digest(p, a) for p in (PARAMS, other_chain, other_rollup)}
    assert len(digests) == 3
    assert domain_separator(PARAMS) != domain_separator(other_chain)


def test_sign_is_deterministic_and_recovers() -> None:
    digest = proposal_digest(PARAMS, Proposal(1, b"\x00" * 32, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32))
    account = Account.from_key(KEY)
    sig = sign_digest(account, digest)
    assert sig == sign_digest(KEY, digest) == sign_digest("0x" + KEY.hex(), digest)  # RFC 6979
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
    assert recover_signer(digest, sig) == account.address
    assert recover_signer(keccak(b"other"), sig) != account.address


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda s: s[:64], "65 bytes"),
        (lambda s: s + b"\x00", "65 bytes"),
        (lambda s: s[:64] + b"\x01", "v must be 27 or 28"),
        (
            lambda s: s[:32] + (SECP256K1_N - int.from_bytes(s[32:64], "big")).to_bytes(32, "big") + s[64:],
            "high s",
        ),
        (lambda s: bytes(32) + s[32:], "out of range"),
    ],
)
def test_malformed_signatures_raise(mangle, match) -> None:
    digest = keccak(b"d")
    sig = sign_digest(KEY, digest)
    with pytest.raises(InvalidSignature, match=match):
        recover_signer(digest, mangle(sig))


def test_bad_field_sizes_raise() -> None:
    with pytest.raises(ValueError, match="archive"):
        proposal_digest(PARAMS, Proposal(1, b"\x00" * 32, b"\x01" * 31, b"\x02" * 32, b"\x03" * 32))
    with pytest.raises(ValueError, match="fee_recipient"):
        proposal_digest(PARAMS, Proposal(1, b"\x00" * 32, b"\x01" * 32, b"\x02" * 32, b"\x03" * 20))
    with pytest.raises(ValueError, match="digest"):
        sign_digest(KEY, b"\x00" * 31)


def test_params_time_helpers() -> None:
    assert PARAMS.slot_at(PARAMS.genesis_time) == 0
    assert PARAMS.slot_at(PARAMS.genesis_time + 7.9) == 1
    assert PARAMS.slot_at(PARAMS.genesis_time - 1) == -1
    assert PARAMS.slot_start(5) == PARAMS.genesis_time + 20
    assert PARAMS.epoch_of(15) == 1 and PARAMS.epoch_of(16) == 2
    with pytest.raises(ValueError, match="committee_size"):
        NetworkParams(**{**PARAMS.__dict__, "committee_size": 0})

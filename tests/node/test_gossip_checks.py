"""Protocol validators of gossip messages, with real keys and signatures."""

from __future__ import annotations

from eth_account import Account

from ha_sequencer.localnet.nodes import signed_transfer
from ha_sequencer.node.committees import CommitteeCache
from ha_sequencer.node.gossip_checks import GossipChecks
from ha_sequencer.p2p.validation import Verdict
from ha_sequencer.protocol.committee import proposer_for
from ha_sequencer.protocol.messages import (
    Attestation,
    attestation_digest,
    proposal_digest,
    sign_digest,
)
from ha_sequencer.protocol.wire import (
    Block,
    SignedAttestation,
    SignedBlock,
    encode_attestation,
    encode_signed_block,
    encode_tx_message,
)
from params_fixtures import PARAMS

ACCOUNTS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]
SLOT = 20


def _checks(now: int = SLOT) -> GossipChecks:
    cache = CommitteeCache(PARAMS)
    cache.put(PARAMS.epoch_of(SLOT), [a.address for a in ACCOUNTS])
    return GossipChecks(PARAMS, cache, lambda: now)


def _proposer():
    addr = proposer_for(SLOT, PARAMS.epoch_length, [a.address for a in ACCOUNTS], PARAMS.genesis_seed)
    return next(a for a in ACCOUNTS if a.address == addr)


def _proposal(signer, slot: int = SLOT, archive: bytes = b"\x11" * 32) -> bytes:
    block = Block(slot, b"\x22" * 32, archive, bytes(32), b"")
    sig = sign_digest(signer, proposal_digest(PARAMS, block.proposal))
    return encode_signed_block(SignedBlock(block, sig))


def _attestation(signer, slot: int = SLOT, archive: bytes = b"\x11" * 32) -> bytes:
    sig = sign_digest(signer, attestation_digest(PARAMS, Attestation(slot, archive)))
    return encode_attestation(SignedAttestation(slot, archive, sig))


def test_proposal_checks() -> None:
    checks = _checks()
    proposer = _proposer()
    other = next(a for a in ACCOUNTS if a is not proposer)
    assert checks.check_proposal(_proposal(proposer), "peer") is Verdict.ACCEPT
    assert checks.check_proposal(_proposal(other), "peer") is Verdict.REJECT  # not the slot's proposer
    assert checks.check_proposal(b"\x01garbage", "peer") is Verdict.REJECT
    out_of_window = _proposal(proposer, slot=SLOT + 5)
    assert checks.check_proposal(out_of_window, "peer") is Verdict.IGNORE
    # a second, different proposal by the same proposer for the slot: equivocation, kept out of the mesh
    assert checks.check_proposal(_proposal(proposer, archive=b"\x33" * 32), "peer") is Verdict.IGNORE
    assert checks.equivocations == [("proposal", SLOT, proposer.address)]
    fresh = _checks()
    corrupted = bytearray(_proposal(proposer))
    corrupted[120] ^= 0xFF  # inside the signature: recovers to someone else, or not at all
    assert fresh.check_proposal(bytes(corrupted), "peer") is Verdict.REJECT


def test_attestation_checks() -> None:
    checks = _checks()
    assert checks.check_attestation(_attestation(ACCOUNTS[0]), "peer") is Verdict.ACCEPT
    assert checks.check_attestation(_attestation(Account.create()), "peer") is Verdict.REJECT  # not a member
    assert checks.check_attestation(_attestation(ACCOUNTS[1], slot=SLOT - 3), "peer") is Verdict.IGNORE
    assert checks.check_attestation(_attestation(ACCOUNTS[1])[:-1], "peer") is Verdict.REJECT
    assert _checks(now=SLOT + 8 * 4).check_attestation(_attestation(ACCOUNTS[1]), "p") is Verdict.IGNORE


def test_tx_checks() -> None:
    checks = _checks()
    sender = ACCOUNTS[0]
    stx = signed_transfer(PARAMS, sender, ACCOUNTS[1].address, amount=5, fee=1, nonce=0)
    assert checks.check_tx(encode_tx_message(stx.encode()), "peer") is Verdict.ACCEPT
    forged = bytearray(stx.encode())
    forged[45] ^= 0x01  # change the amount: the signature no longer matches the sender
    assert checks.check_tx(encode_tx_message(bytes(forged)), "peer") is Verdict.REJECT
    assert checks.check_tx(encode_tx_message(stx.encode()[:-1]), "peer") is Verdict.REJECT


def test_a_copy_with_the_fee_recipient_swapped_is_not_the_proposers() -> None:
    # bytes 73..105 of a gossip proposal are its fee recipient: a relay that swaps them must not keep a
    # signature that still recovers to the proposer, or the copy would shadow the genuine proposal
    genuine = _proposal(_proposer())
    forged = genuine[:73] + b"\x77" * 32 + genuine[105:]
    assert _checks().check_proposal(forged, "peer") is Verdict.REJECT
    assert _checks().check_proposal(genuine, "peer") is Verdict.ACCEPT


def _proposal_with_a_tx() -> bytes:
    stx = signed_transfer(PARAMS, ACCOUNTS[2], ACCOUNTS[3].address, amount=9, fee=2, nonce=0)
    block = Block(SLOT, b"\x22" * 32, b"\x11" * 32, b"\x44" * 32, stx.encode())
    sig = sign_digest(_proposer(), proposal_digest(PARAMS, block.proposal))
    return encode_signed_block(SignedBlock(block, sig))


def _genuine_messages() -> dict[str, bytes]:
    tx = signed_transfer(PARAMS, ACCOUNTS[0], ACCOUNTS[1].address, amount=5, fee=1, nonce=0)
    return {
        "proposal": _proposal_with_a_tx(),
        "attestation": _attestation(ACCOUNTS[0]),
        "tx": encode_tx_message(tx.encode()),
    }


def _verdict(kind: str, data: bytes) -> Verdict:
    return getattr(_checks(), f"check_{kind}")(data, "peer")


def test_every_byte_of_every_gossip_message_is_signed_or_checked() -> None:
    # a relay that changes any byte (version, slot, archives, fee recipient, txs, amounts, signature) must
    # not keep a message that still passes as its signer's: every flip of every byte is refused
    for kind, genuine in _genuine_messages().items():
        assert _verdict(kind, genuine) is Verdict.ACCEPT
        accepted = []
        for i in range(len(genuine)):
            for flip in (0x01, 0x80, 0xFF):
                mutated = bytearray(genuine)
                mutated[i] ^= flip
                if _verdict(kind, bytes(mutated)) is Verdict.ACCEPT:
                    accepted.append((i, flip))
        assert not accepted, (kind, accepted)
        assert _verdict(kind, genuine + b"\x00") is not Verdict.ACCEPT  # trailing bytes: strict decoding
        assert _verdict(kind, genuine[:-1]) is Verdict.REJECT


def test_a_malleated_signature_is_refused() -> None:
    # (r, n - s, v ^ 1) recovers the same signer from different bytes: only low-s signatures are taken
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    genuine = _genuine_messages()
    offsets = {
        "proposal": 105,
        "attestation": len(genuine["attestation"]) - 65,
        "tx": len(genuine["tx"]) - 65,
    }
    for kind, data in genuine.items():
        at = offsets[kind]
        r, s, v = data[at : at + 32], int.from_bytes(data[at + 32 : at + 64], "big"), data[at + 64]
        assert v in (27, 28), (kind, v)  # the offset is the signature's
        high = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
        assert _verdict(kind, data[:at] + high + data[at + 65 :]) is Verdict.REJECT, kind


def test_spam_policy_min_tx_fee() -> None:
    cache = CommitteeCache(PARAMS)
    checks = GossipChecks(PARAMS, cache, lambda: SLOT, min_tx_fee=3)
    unfunded = Account.create()
    for fee, verdict in ((0, Verdict.IGNORE), (2, Verdict.IGNORE), (3, Verdict.ACCEPT), (4, Verdict.ACCEPT)):
        stx = signed_transfer(PARAMS, unfunded, ACCOUNTS[1].address, amount=0, fee=fee, nonce=0)
        # under the minimum: not relayed, and the peer is not blamed (the protocol allows any fee)
        assert checks.check_tx(encode_tx_message(stx.encode()), "peer") is verdict, fee

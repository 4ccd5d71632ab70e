"""EIP-712's own example ("Ether Mail", eips.ethereum.org/EIPS/eip-712, test case of the reference
implementation): our domain separator, digest composition and signing reproduce the published values."""

from __future__ import annotations

from eth_utils import keccak

from ha_sequencer.protocol.messages import (
    eip712_digest,
    eip712_domain_separator,
    recover_signer,
    sign_digest,
)

MAIL_DOMAIN_SEPARATOR = bytes.fromhex("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f")
MAIL_STRUCT_HASH = bytes.fromhex("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e")
MAIL_DIGEST = bytes.fromhex("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
COW_KEY = keccak(text="cow")
COW_ADDRESS = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
COW_SIGNATURE = (
    bytes.fromhex("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d")  # r
    + bytes.fromhex("07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562")  # s
    + bytes([28])  # v
)


def test_domain_separator_of_the_eip_example():
    separator = eip712_domain_separator(
        name="Ether Mail",
        version="1",
        chain_id=1,
        verifying_contract="0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    )
    assert separator == MAIL_DOMAIN_SEPARATOR


def test_digest_of_the_eip_example():
    assert eip712_digest(MAIL_DOMAIN_SEPARATOR, MAIL_STRUCT_HASH) == MAIL_DIGEST


def test_signature_of_the_eip_example_is_reproduced_and_recovers():
    assert sign_digest(COW_KEY, MAIL_DIGEST) == COW_SIGNATURE  # deterministic (RFC 6979)
    assert recover_signer(MAIL_DIGEST, COW_SIGNATURE) == COW_ADDRESS

"""Fixtures of the keys tests: light KDF work factors, Aztec's example keystores, a fleet on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from keys_fixtures import AZTEC_EXAMPLES

from ha_sequencer.keys.encryption import KdfStrength


@pytest.fixture
def light_kdf() -> KdfStrength:
    """Cheap work factors: the CLI writes standard strength; tests only need the format."""
    return KdfStrength(eth_scrypt_n=2**10, bls_pbkdf2_c=16, bls_scrypt_n=2**10)


@pytest.fixture
def aztec_examples() -> Path:
    """Aztec's own example keystores (copied unchanged from aztec-packages)."""
    if not AZTEC_EXAMPLES.is_dir():
        pytest.fail(f"Aztec example keystores not found at {AZTEC_EXAMPLES}")
    return AZTEC_EXAMPLES

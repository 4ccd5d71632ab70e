"""Constants shared by the keys tests (a module with a unique name, importable from the test files)."""

from __future__ import annotations

from pathlib import Path

AZTEC_EXAMPLES = Path("/work/shared/compat/aztec-keystores")
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ABANDON_MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
FEE_RECIPIENT = "0x" + "11" * 32

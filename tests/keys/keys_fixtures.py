"""Constants shared by the keys tests (a module with a unique name, importable from the test files)."""

from __future__ import annotations

import os
from pathlib import Path

# Aztec's own example keystores live in the read-only `shared/` folder beside the repository (CI has it too);
# HA_SEQUENCER_SHARED_DIR points elsewhere. Absent examples fail the tests: compatibility is required.
SHARED_DIR = Path(os.environ.get("HA_SEQUENCER_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
AZTEC_EXAMPLES = SHARED_DIR / "compat" / "aztec-keystores"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ABANDON_MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)
FEE_RECIPIENT = "0x" + "11" * 32

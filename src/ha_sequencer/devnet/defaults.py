"""Defaults of `devnet up` and `failover-test`: light to import, the CLI reads them at start-up."""

from __future__ import annotations

from pathlib import Path

from ha_sequencer.protocol.constants import DEVNET_EPOCH_LENGTH, DEVNET_SLOT_DURATION

DEFAULT_DIR = Path(".devnet")
DEFAULT_VALIDATORS = 4
DEFAULT_HA_NODES = 3
DEFAULT_SLOT_DURATION = DEVNET_SLOT_DURATION
DEFAULT_EPOCH_LENGTH = DEVNET_EPOCH_LENGTH

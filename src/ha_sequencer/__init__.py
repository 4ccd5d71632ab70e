"""ha-sequencer: one sequencer identity on several nodes, never missing a duty, never double-signing."""

__version__ = "0.1.0"

"""Benchmarks run from the CLI (`ha-sequencer bench …`): figures to read, never assertions."""

"""`ha-sequencer chaos`: seeded random faults over many slots of a devnet, audited independently."""

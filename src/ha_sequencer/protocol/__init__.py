"""Protocol v1, pure: constants, signed messages and EIP-712 digests, block containers and their wire
encodings, committee, block execution and the L2 state transition. No I/O."""

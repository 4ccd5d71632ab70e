"""Protocol v1, pure: constants, messages and EIP-712 digests, committee, L2 state transition. No I/O."""

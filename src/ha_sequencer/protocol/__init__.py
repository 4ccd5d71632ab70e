"""Protocol v1, pure: constants, message types and EIP-712 digests, committee selection, L2 state transition. No I/O."""

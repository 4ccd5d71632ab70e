"""The running node: slot clock, duty scheduler, mempool, publisher, sync, HTTP status/metrics/RPC."""

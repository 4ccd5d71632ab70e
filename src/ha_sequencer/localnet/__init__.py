"""Local networks of real processes for the devnet, the tests and the benchmarks: a private PostgreSQL, a
Rollup deployed on anvil with generated validators, node processes and their keystores."""

"""L1: the Rollup contract and artifacts, the anvil launcher, deployment, the web3 client with failover."""

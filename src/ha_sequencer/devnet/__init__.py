"""Local networks: orchestration, live view, failover test, chaos, equivocation watcher."""

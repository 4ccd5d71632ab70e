"""Monitoring: publisher funds, publisher selection, webhook alerts and duties read back from L1."""

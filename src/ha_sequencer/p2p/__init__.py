"""Gossip: libp2p gossipsub wrapper and message validation."""

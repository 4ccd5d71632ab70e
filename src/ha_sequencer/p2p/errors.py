"""Errors of the gossip layer: bad peer key files, bad multiaddrs, refused publications."""

from __future__ import annotations

from ha_sequencer.errors import HASequencerError, InputError


class P2PError(HASequencerError):
    """Base of the gossip layer's errors."""


class PeerKeyError(InputError, P2PError):
    """The persistent libp2p peer key file is unusable (names the file; never shows key bytes)."""


class MultiaddrError(InputError, P2PError):
    """A listen or bootstrap multiaddr is malformed or lacks what we need (names the address)."""


class ListenError(InputError, P2PError):
    """The p2p listen address cannot be used (e.g. another process listens on the port)."""


class PublishError(P2PError):
    """A local publication was refused before it left the process (unknown topic, over the size cap)."""

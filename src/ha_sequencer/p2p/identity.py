"""The persistent secp256k1 libp2p peer key: created once (0600, dir 0700), then reused: a stable peer id."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.peer.id import ID

from ha_sequencer.p2p.errors import PeerKeyError

KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700


def load_or_create_peer_key(path: Path) -> KeyPair:
    """Load the peer key at `path` (libp2p protobuf private-key bytes), creating it atomically if absent."""
    path = Path(path)
    if not path.exists():
        _create_key_file(path)
    return _load_key_file(path)


def peer_id_of(key_pair: KeyPair) -> str:
    """The base58 peer id of a key pair (what `/p2p/<id>` multiaddrs carry)."""
    return ID.from_pubkey(key_pair.public_key).to_base58()


def _create_key_file(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if not path.parent.exists():
            # Only directories we create get 0700; an existing data dir belongs to its operator.
            path.parent.mkdir(mode=KEY_DIR_MODE, parents=True, exist_ok=True)
        data = create_new_key_pair().private_key.serialize()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            os.fchmod(fd, KEY_FILE_MODE)  # the umask must not widen nor narrow it
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() fails if another process created the key meanwhile: its key wins, ours is discarded.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise PeerKeyError(f"{path}: cannot create the peer key file: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _load_key_file(path: Path) -> KeyPair:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PeerKeyError(
                f"{path}: peer key file is readable or writable by group/others (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise PeerKeyError(f"{path}: cannot read the peer key file: {exc.strerror}") from None
    try:
        private_key = deserialize_private_key(data)
        return KeyPair(private_key, private_key.get_public_key())
    except Exception:
        # The parser's message could echo key bytes, so it is not chained.
        raise PeerKeyError(
            f"{path}: not a libp2p private key (protobuf PrivateKey); delete it to get a new peer id"
        ) from None

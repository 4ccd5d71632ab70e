"""The persistent peer key: 0600 file, 0700 dir, stable peer id, errors that never show key bytes."""

from __future__ import annotations

import os
import stat

import pytest

from ha_sequencer.p2p.errors import PeerKeyError
from ha_sequencer.p2p.identity import load_or_create_peer_key, peer_id_of


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_once_with_owner_only_modes_and_reused(tmp_path):
    path = tmp_path / "data" / "p2p" / "peer.key"
    old_umask = os.umask(0)  # a permissive umask must not widen the modes
    try:
        first = load_or_create_peer_key(path)
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    raw = path.read_bytes()
    second = load_or_create_peer_key(path)
    assert path.read_bytes() == raw
    assert peer_id_of(first) == peer_id_of(second)
    assert peer_id_of(first).startswith("16Uiu2")  # secp256k1 identity multihash
    assert [p.name for p in path.parent.iterdir()] == ["peer.key"]  # no temp files left


def test_existing_parent_dir_mode_is_left_alone(tmp_path):
    os.chmod(tmp_path, 0o755)
    load_or_create_peer_key(tmp_path / "peer.key")
    assert mode(tmp_path) == 0o755


def test_group_readable_key_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "peer.key"
    load_or_create_peer_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(PeerKeyError, match=r"chmod 600") as info:
        load_or_create_peer_key(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_corrupt_key_names_the_file_and_hides_its_bytes(tmp_path):
    path = tmp_path / "peer.key"
    secret = b"\x08\x02\x12\x20" + bytes(range(1, 30))
    path.write_bytes(secret)
    os.chmod(path, 0o600)
    with pytest.raises(PeerKeyError) as info:
        load_or_create_peer_key(path)
    message = str(info.value)
    assert str(path) in message
    assert secret.hex() not in message and "\\x" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_uncreatable_key_path_is_a_clear_error(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(PeerKeyError, match="cannot create the peer key file"):
        load_or_create_peer_key(tmp_path / "not-a-dir" / "peer.key")


def test_a_directory_in_place_of_the_key_is_a_clear_error(tmp_path):
    (tmp_path / "peer.key").mkdir()
    with pytest.raises(PeerKeyError, match="peer.key"):
        load_or_create_peer_key(tmp_path / "peer.key")

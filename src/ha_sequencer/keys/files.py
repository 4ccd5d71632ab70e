"""Writing secrets to disk: 0600 files in 0700 directories, atomically, never over an existing file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ha_sequencer.keys.errors import OutputExistsError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> bool:
    """Create `path` (and parents) with mode 0700 when missing; True when it already existed."""
    if path.is_dir():
        return True
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    return False


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to a new 0600 file: temp file, fsync, then link into place (fails if it exists)."""
    ensure_private_dir(path.parent)
    if path.exists() or path.is_symlink():
        raise OutputExistsError(f"{path}: already exists; refusing to overwrite it")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic and, unlike rename, never replaces an existing file
        except FileExistsError:
            raise OutputExistsError(f"{path}: already exists; refusing to overwrite it") from None
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def loose_permissions(path: Path) -> int | None:
    """The group/other permission bits of a file when any are set, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def shred_file(path: Path) -> None:
    """Overwrite a file with random bytes (fsynced), then remove it (best effort on journaling/flash)."""
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as handle:
        handle.write(os.urandom(max(size, 1)))
        os.fsync(handle.fileno())
    path.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

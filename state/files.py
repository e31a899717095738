"""Durable file writes: a file is either its old or its new content, never half."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["ensure_private", "fsync_directory", "read_private", "write_atomic"]


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)


def ensure_private(path: Path) -> None:
    """Refuse a secret file that group or others may read.

    Raises :class:`PermissionError` naming the file and its mode.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"{path}: mode {mode:o} lets others read it; "
            f"run 'chmod 600 {path}' (secret files must be owner-only)"
        )


def read_private(path: Path) -> bytes | None:
    """Read an owner-only secret file; ``None`` when it does not exist."""
    if not path.exists():
        return None
    ensure_private(path)
    return path.read_bytes()

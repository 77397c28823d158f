"""Durable, atomic replacement of small files (keys, certificates, credentials, caches, state).

:func:`atomic_write` is the one way trustbox replaces such a file: readers and a crash at any
moment see either the old content or the new one, never a mix, and once it returns the new
content survives a power loss (the file and then the folder holding the rename are fsynced).
The file gets exactly the requested mode (never the umask's, never a wider mode left by an
older file), and folders it has to create are private (0700).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from trustbox.errors import ConfigError

PRIVATE_DIR_MODE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 exactly (the umask does not apply).

    Folders that already exist are left as they are. Raises OSError if one cannot be created.
    """
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, PRIVATE_DIR_MODE)


def fsync_dir(path: Path) -> None:
    """fsync the folder ``path``, making renames and creations in it durable. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _publish(path: Path, data: bytes, mode: int, exclusive: bool) -> bool:
    """Temp file beside ``path`` (``mode``), written and fsynced, then renamed over ``path`` or,
    when ``exclusive``, hard-linked to it only if ``path`` does not exist yet.

    The temp file is removed again in every case. Returns False if ``exclusive`` and ``path``
    already existed. Raises OSError.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with file mode ``mode``.

    Missing parent folders are created 0700. Raises ConfigError ("cannot write PATH: reason")
    if the folder cannot be created or written, or the disk fails; no temporary file is left.
    """
    _write(path, data, mode, exclusive=False)


def atomic_create(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` atomically and durably unless it exists already.

    Readers never see the file empty or partly written, and of processes racing to create it
    exactly one wins. Returns whether this call created it. Missing parent folders are created
    0700. Raises ConfigError as :func:`atomic_write`.
    """
    return _write(path, data, mode, exclusive=True)


def _write(path: Path, data: bytes, mode: int, exclusive: bool) -> bool:
    try:
        make_private_dirs(path.parent)
        created = _publish(path, data, mode, exclusive)
        if created:
            fsync_dir(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return created

"""The storage driver interface: a flat key space of immutable-ish objects.

Keys are ``/``-separated relative paths. Every write is atomic: a reader sees either the old
object or the whole new one, never a part. Methods are synchronous; ``cheap_io`` tells the
caller whether they are fast enough to run on the event loop (local disk) or belong in a
thread (network object stores).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """Size and identity of a stored object; ``identity`` changes whenever its bytes may have."""

    size: int
    identity: tuple[object, ...]
    mtime: float


class StorageDriver(Protocol):
    """What the registry needs from a storage backend."""

    name: str
    cheap_io: bool

    def read(self, key: str) -> bytes | None:
        """The whole object, or None if it does not exist."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically and durably."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Move the local file ``path`` to ``key`` atomically and durably (``path`` is consumed)."""
        ...

    def put_file_if_absent(self, key: str, path: Path, sha256: bytes | None = None) -> bool:
        """Like :meth:`put_file`, but only if ``key`` does not exist yet: False (and ``path``
        removed) when it does. Where the store cannot tell atomically, it stores anyway.
        ``sha256`` (the file's digest, when the caller knows it) lets the store check the
        bytes on receipt and keep the checksum with the object, for :meth:`adopt`."""
        ...

    def adopt(self, src: str, dst: str, sha256_hex: str, size: int) -> bool:
        """Make ``dst`` a copy of the stored object ``src`` without sending its bytes again,
        but only if the store itself vouches that ``src`` has ``size`` bytes with that sha256
        (a checksum it computed or checked when ``src`` was written). False when it cannot
        (no such checksum, another value, too big, no server-side copy): ``dst`` is then
        unchanged, or, only if the store let the source change during the copy, holds bytes
        the caller must overwrite."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and identity of ``key``, or None."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        ...

    def delete_tree(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (and, on a filesystem, its folders)."""
        ...

    def list_dir(self, prefix: str) -> list[str]:
        """Names of the direct children (objects and sub-prefixes) of ``prefix``."""
        ...

    def walk(self, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        """Every object under ``prefix``, recursively, with its info."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A local file holding ``key`` (for zero-copy sending), or None for remote stores."""
        ...

    def iter_range(self, key: str, start: int, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Yield ``length`` bytes of ``key`` from ``start`` in chunks."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst`` (used to quarantine corrupted blobs)."""
        ...

    @property
    def spool_dir(self) -> Path:
        """A local directory where uploads are staged before they are committed."""
        ...

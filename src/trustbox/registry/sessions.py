"""Upload sessions recorded in remote storage, so every registry replica can continue them.

With object storage (S3) several stateless registry processes may sit behind one load
balancer, and docker's POST, PATCH... and PUT of one upload can each reach a different one.
Each replica keeps its own local spool file (see :mod:`trustbox.registry.uploads`); what is
shared is written to the storage driver::

    uploads/<uuid>/repo                  the repository the session belongs to
    uploads/<uuid>/chunks/<offset>       each acknowledged chunk, 20-digit zero-padded offset

A chunk is published before its PATCH is acknowledged, so the session's size is the length of
the contiguous run of chunk objects from offset 0. A replica that lacks part of the prefix
downloads only the chunks it does not hold. The commit (PUT) still verifies the digest over
the whole content and uploads the blob atomically (or, when the only chunk is the whole blob
and the store vouches for its sha256, has the store copy it: ``StorageDriver.adopt``); then
the session's objects are removed.

All methods are synchronous storage calls: run them in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trustbox.registry import layout
from trustbox.registry.storage.base import StorageDriver


@dataclass(frozen=True, slots=True)
class Chunk:
    """One published chunk: its offset in the upload, its length and its storage key."""

    offset: int
    size: int
    key: str


@dataclass(frozen=True, slots=True)
class SharedSession:
    """What storage says about a session: owner repository, its contiguous chunks, and when
    it last changed (newest object's modification time, for the idle timeout)."""

    repo: str
    chunks: tuple[Chunk, ...]
    touched: float = 0.0

    @property
    def size(self) -> int:
        """Bytes acknowledged so far."""
        return self.chunks[-1].offset + self.chunks[-1].size if self.chunks else 0


class SharedSessions:
    """Create, describe, extend, fetch and remove sessions kept in a storage driver."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def create(self, upload_id: str, repo: str) -> None:
        """Record a new, empty session of ``repo``."""
        self.driver.write(layout.upload_repo_key(upload_id), repo.encode())

    def describe(self, upload_id: str) -> SharedSession | None:
        """The session as storage holds it, or None when there is no such session."""
        repo_key = layout.upload_repo_key(upload_id)
        chunk_prefix = f"{layout.upload_prefix(upload_id)}/chunks/"
        found: dict[int, Chunk] = {}
        has_repo = False
        touched = 0.0
        for key, info in self.driver.walk(layout.upload_prefix(upload_id)):
            touched = max(touched, info.mtime)
            if key == repo_key:
                has_repo = True
            elif key.startswith(chunk_prefix):
                tail = key[len(chunk_prefix):]
                if len(tail) == layout.CHUNK_OFFSET_DIGITS and tail.isdigit():
                    found[int(tail)] = Chunk(int(tail), info.size, key)
        if not has_repo:
            return None
        raw = self.driver.read(repo_key)
        if raw is None:  # removed between the listing and the read
            return None
        chunks: list[Chunk] = []
        offset = 0
        while offset in found and found[offset].size > 0:
            chunks.append(found[offset])
            offset += found[offset].size
        return SharedSession(raw.decode("utf-8", "replace"), tuple(chunks), touched)

    def publish(
        self, upload_id: str, offset: int, source: Path, start: int, length: int, sha256: bytes | None = None
    ) -> bool:
        """Store bytes ``start..start+length`` of the local file ``source`` as the chunk at
        ``offset`` (a copy is staged next to it, then uploaded). False when a chunk at that
        offset exists already: another replica took a concurrent PATCH of this session first,
        and stored chunks are never replaced. ``sha256`` is the chunk's digest when known (the
        store checks it and keeps it, so a chunk that is the whole blob can be adopted)."""
        if length <= 0:
            return True
        staged = source.with_name(f"publish-{offset}.tmp")
        with open(source, "rb") as src, open(staged, "wb") as dst:
            _copy_range(src, dst, start, length)
        # consumes the staged copy
        return self.driver.put_file_if_absent(layout.upload_chunk_key(upload_id, offset), staged, sha256)

    def fetch(self, session: SharedSession, have: int, into: Path) -> int:
        """Append to ``into`` (which holds the first ``have`` bytes) the bytes it lacks;
        return the new length."""
        with open(into, "ab") as out:
            for chunk in session.chunks:
                end = chunk.offset + chunk.size
                if end <= have:
                    continue
                skip = have - chunk.offset
                for piece in self.driver.iter_range(chunk.key, skip, chunk.size - skip, 4 << 20):
                    out.write(piece)
                have = end
        return have

    def remove(self, upload_id: str) -> None:
        """Delete every object of the session (a missing session is fine)."""
        for key, _info in list(self.driver.walk(layout.upload_prefix(upload_id))):
            self.driver.delete(key)

    def older_than(self, now: float, max_age: float) -> list[str]:
        """Sessions whose newest object is older than ``max_age`` seconds (idle ones: a chunk
        stored for a session is a new object)."""
        newest: dict[str, float] = {}
        for key, info in self.driver.walk(layout.UPLOADS):
            parts = key.split("/")
            if len(parts) >= 3:
                newest[parts[1]] = max(newest.get(parts[1], 0.0), info.mtime)
        return sorted(sid for sid, mtime in newest.items() if now - mtime > max_age)


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, length: int) -> None:
    """Copy ``length`` bytes from offset ``start`` of ``src`` to ``dst`` (a kernel copy where
    the platform has one)."""
    copy_range = getattr(os, "copy_file_range", None)
    offset, left = start, length
    if copy_range is not None:
        try:
            while left > 0:
                n = copy_range(src.fileno(), dst.fileno(), left, offset)
                if n == 0:
                    break
                offset += n
                left -= n
        except OSError:
            if left != length:  # failed half way: the staged copy is unusable
                raise
    src.seek(offset)
    dst.seek(offset - start)
    while left > 0:
        data = src.read(min(left, 4 << 20))
        if not data:
            raise OSError(f"upload spool file is short: {left} bytes missing at offset {offset}")
        dst.write(data)
        offset += len(data)
        left -= len(data)

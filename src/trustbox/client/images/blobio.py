"""Verified streaming of image bytes: every blob or manifest the client moves goes through here.

Everything that moves image bytes goes through :class:`VerifyingWriter` (or
:func:`copy_verified`): the stream is hashed while it is written to a temporary file,
and only a complete, matching file is ever moved into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from trustbox.oci.descriptor import Descriptor
from trustbox.oci.errors import DigestMismatchError

CHUNK = 1024 * 1024


# --- verified streaming -----------------------------------------------------------------


class VerifyingWriter:
    """Write a stream to a temporary file while hashing it; ``finish()`` checks the digest.

    The temporary file lives in ``tmp_dir`` so it can be renamed into place atomically;
    ``abort()`` (or leaving the ``with`` block with an exception) removes it.
    """

    def __init__(self, expected_digest: str | None, expected_size: int | None, tmp_dir: Path, what: str) -> None:
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.what = what
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=tmp_dir)
        self.path = Path(name)
        self._fh: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; fail early once more bytes than expected arrive."""
        assert self._fh is not None
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatchError(
                f"{self.what} {self.expected_digest}: received more than the expected {self.expected_size} bytes"
            )
        self._hash.update(chunk)
        self._fh.write(chunk)

    @property
    def digest(self) -> str:
        """Digest of what has been written so far."""
        return "sha256:" + self._hash.hexdigest()

    def finish(self) -> Path:
        """Close and verify; return the temporary path (caller moves it), or raise and clean up."""
        assert self._fh is not None
        self._fh.close()
        self._fh = None
        if self.expected_size is not None and self.size != self.expected_size:
            self.abort()
            raise DigestMismatchError(
                f"{self.what} {self.expected_digest}: size mismatch: expected {self.expected_size} bytes, got {self.size}"
            )
        if self.expected_digest is not None and self.digest != self.expected_digest:
            got = self.digest
            self.abort()
            raise DigestMismatchError(f"{self.what} {self.expected_digest}: digest mismatch: content hashes to {got}")
        return self.path

    def abort(self) -> None:
        """Remove the temporary file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> VerifyingWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


def copy_verified(
    chunks: Iterable[bytes],
    desc: Descriptor,
    dest: Path,
    what: str = "blob",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Stream ``chunks`` into ``dest`` (atomically), verifying ``desc``'s digest and size."""
    with VerifyingWriter(desc.digest, desc.size, dest.parent, what) as w:
        for chunk in chunks:
            w.write(chunk)
            if progress is not None:
                progress(len(chunk))
        tmp = w.finish()
    os.replace(tmp, dest)
    return dest


def file_chunks(fh: IO[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Iterate over a binary file object in chunks."""
    while True:
        b = fh.read(size)
        if not b:
            return
        yield b


def hash_file(path: Path) -> tuple[str, int]:
    """``(sha256 digest, size)`` of a file, streamed."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        for b in file_chunks(fh):
            h.update(b)
            n += len(b)
    return "sha256:" + h.hexdigest(), n


def verify_chunks(chunks: Iterable[bytes], desc: Descriptor, what: str = "blob") -> Iterator[bytes]:
    """Pass ``chunks`` through, raising DigestMismatchError as soon as they exceed ``desc.size``
    and at the end if size or sha256 differ from ``desc``."""
    h = hashlib.sha256()
    n = 0
    for b in chunks:
        n += len(b)
        if n > desc.size:
            raise DigestMismatchError(f"{what} {desc.digest}: larger than the expected {desc.size} bytes")
        h.update(b)
        yield b
    if n != desc.size:
        raise DigestMismatchError(f"{what} {desc.digest}: size mismatch: expected {desc.size} bytes, got {n}")
    if "sha256:" + h.hexdigest() != desc.digest:
        raise DigestMismatchError(f"{what} {desc.digest}: digest mismatch: content hashes to sha256:{h.hexdigest()}")


@contextmanager
def verified_reader(fh: IO[bytes], desc: Descriptor, what: str = "blob") -> Iterator[Iterator[bytes]]:
    """Yield a chunk iterator over ``fh`` verified against ``desc`` (see :func:`verify_chunks`)."""
    yield verify_chunks(file_chunks(fh), desc, what)

"""OCI / Docker image model: media types, descriptors, manifests, verified streaming.

Everything that moves image bytes goes through :class:`VerifyingWriter` (or
:func:`copy_verified`): the stream is hashed while it is written to a temporary file,
and only a complete, matching file is ever moved into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trustbox.errors import FormatError, HashMismatchError

# --- media types ------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Manifest types trustbox reads and writes, in order of preference for ``Accept``.
MANIFEST_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

#: Largest manifest trustbox accepts (the distribution registry's own limit is 4 MiB).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class ImageError(FormatError):
    """An image (layout, archive, manifest) that is malformed or inconsistent."""


class DigestMismatchError(HashMismatchError):
    """Downloaded or read bytes whose digest or size differ from the expected descriptor."""


def check_digest(text: str) -> str:
    """Return ``text`` if it is a ``sha256:<64 hex>`` digest, else raise ImageError."""
    if not isinstance(text, str) or not _DIGEST_RE.match(text):
        raise ImageError(f"unsupported or malformed digest {str(text)[:100]!r} (only sha256 is supported)")
    return text


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short_id(digest: str) -> str:
    """The 12-hex prefix docker prints for a layer (``aac0c133338d``)."""
    return digest.split(":", 1)[-1][:12]


# --- descriptors and manifests ----------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: media type, digest, size (+ optional platform, annotations)."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Any, where: str = "descriptor") -> Descriptor:
        """Parse a descriptor object; raise ImageError if a required field is missing or bad."""
        if not isinstance(d, dict):
            raise ImageError(f"{where} is not an object")
        mt, dg, size = d.get("mediaType", ""), d.get("digest"), d.get("size")
        if not isinstance(mt, str):
            raise ImageError(f"{where}: mediaType is not a string")
        if not isinstance(dg, str):
            raise ImageError(f"{where}: missing digest")
        check_digest(dg)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{where}: missing or negative size")
        platform = d.get("platform")
        ann = d.get("annotations")
        extra = {k: v for k, v in d.items() if k not in {"mediaType", "digest", "size", "platform", "annotations"}}
        return cls(
            mt,
            dg,
            size,
            platform if isinstance(platform, dict) else None,
            {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else None,
            extra,
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as a JSON object (field order as the OCI spec examples)."""
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update(self.extra)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        return d

    def platform_string(self) -> str:
        """``os/arch[/variant]`` of a child manifest, or ``?`` when unknown."""
        p = self.platform or {}
        parts = [str(p.get("os", "?")), str(p.get("architecture", "?"))]
        if p.get("variant"):
            parts.append(str(p["variant"]))
        return "/".join(parts)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index together with its exact bytes."""

    raw: bytes
    media_type: str
    digest: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or a Docker manifest list."""
        return self.media_type in INDEX_TYPES

    @property
    def size(self) -> int:
        """Length of the manifest bytes."""
        return len(self.raw)

    def blobs(self) -> list[Descriptor]:
        """The config and layer descriptors of an image manifest (empty for an index)."""
        out = [self.config] if self.config is not None else []
        out.extend(self.layers)
        return out

    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this manifest."""
        return Descriptor(self.media_type, self.digest, self.size)


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest:
    """Parse manifest bytes; the media type comes from the document or the transport header."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ImageError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageError("manifest is not a JSON object")
    mt = doc.get("mediaType") or media_type or ""
    if mt in ("", "application/json", "application/octet-stream"):
        # OCI documents may omit mediaType: decide by shape.
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if mt == DOCKER_SCHEMA1_SIGNED or doc.get("schemaVersion") == 1:
        raise ImageError("Docker schema 1 manifests are not supported")
    if doc.get("schemaVersion") != 2:
        raise ImageError("manifest schemaVersion is not 2")
    digest = sha256_digest(raw)
    if mt in INDEX_TYPES:
        ms = doc.get("manifests")
        if not isinstance(ms, list):
            raise ImageError("index has no manifests list")
        children = tuple(Descriptor.from_json(m, f"manifests[{i}]") for i, m in enumerate(ms))
        return Manifest(raw, mt, digest, None, (), children)
    if mt in IMAGE_TYPES:
        config = Descriptor.from_json(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ImageError("manifest has no layers list")
        lds = tuple(Descriptor.from_json(x, f"layers[{i}]") for i, x in enumerate(layers))
        return Manifest(raw, mt, digest, config, lds, ())
    raise ImageError(f"unsupported manifest media type {mt!r}")


def dump_json(obj: Any) -> bytes:
    """Deterministic compact JSON bytes for documents trustbox writes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


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

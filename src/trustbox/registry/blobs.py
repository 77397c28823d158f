"""Blobs: content-addressed storage, per-repository links, verification on read."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from trustbox.oci.digest import Digest, digest_bytes
from trustbox.registry import layout
from trustbox.registry.aio import in_thread, run_io
from trustbox.registry.layout import Layout
from trustbox.registry.storage.base import ObjectInfo, StorageDriver

log = logging.getLogger("trustbox.registry")

HASH_CHUNK = 1 << 20
#: blobs whose verification is remembered (about 200 bytes each)
VERIFIED_ENTRIES = 100_000


class VerifyPolicy(StrEnum):
    """When stored blobs are re-hashed on read."""

    ALWAYS = "always"
    FIRST = "first"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A blob as stored: digest, size, identity of its stored object."""

    digest: Digest
    size: int
    info: ObjectInfo


class BlobStore:
    """Blob content plus the links that scope blobs to repositories."""

    def __init__(self, driver: StorageDriver, policy: VerifyPolicy = VerifyPolicy.ALWAYS,
                 paths: Layout = Layout.TRUSTBOX) -> None:
        self.driver = driver
        self.policy = policy
        #: blobs this store moved to quarantine (metrics)
        self.quarantine_count = 0
        self.paths = paths  # the path mapper: trustbox's layout or registry:2's
        # digest string -> identity of the stored object when it last verified; least recently
        # used entries are forgotten past VERIFIED_ENTRIES (such a blob is simply hashed again)
        self._verified: OrderedDict[str, tuple[object, ...]] = OrderedDict()

    async def _stored(self, d: Digest) -> BlobInfo | None:
        """The blob's content, whatever repository links it. Private: whether a blob is stored
        somewhere is answered only through a repository that links it (:meth:`stat`), so a
        caller learns nothing about repositories it may not pull."""
        info = await run_io(self.driver, self.driver.stat, self.paths.blob_key(d))
        return BlobInfo(d, info.size, info) if info is not None else None

    async def is_linked(self, name: str, d: Digest) -> bool:
        """True if the blob is linked into repository ``name``."""
        return await run_io(self.driver, self.driver.stat, self.paths.layer_link(name, d)) is not None

    async def stat(self, name: str, d: Digest) -> BlobInfo | None:
        """The blob as visible from repository ``name`` (linked and present), or None."""
        if not await self.is_linked(name, d):
            return None
        return await self._stored(d)

    async def read_small(self, name: str, d: Digest, limit: int) -> bytes | None:
        """The bytes of a small blob linked into ``name`` (at most ``limit`` bytes), checked
        against its digest; None when not linked, larger than ``limit``, or not matching."""
        blob = await self.stat(name, d)
        if blob is None or blob.size > limit:
            return None
        data = await run_io(self.driver, self.driver.read, self.paths.blob_key(d))
        if data is None or len(data) > limit or digest_bytes(data, d.algorithm) != d:
            return None
        return data

    async def link(self, name: str, d: Digest) -> None:
        """Make the blob visible in repository ``name``."""
        key = self.paths.layer_link(name, d)
        if await run_io(self.driver, self.driver.stat, key) is None:
            await run_io(self.driver, self.driver.write, key, str(d).encode())

    async def quarantined(self, d: Digest) -> bool:
        """True when content stored under ``d`` failed verification and was moved to quarantine
        (``quarantine/<alg>/<hex>.<unix time>``)."""
        names = await run_io(self.driver, self.driver.list_dir, layout.quarantine_prefix(d.algorithm))
        return any(n.startswith(f"{d.hex}.") for n in names)

    async def unlink(self, name: str, d: Digest) -> bool:
        """Remove the blob from repository ``name`` (content stays until garbage collection)."""
        return await run_io(self.driver, self.driver.delete, self.paths.layer_link(name, d))

    def mark_verified(self, d: Digest, info: ObjectInfo) -> None:
        """Remember that the stored object with this identity has the right content."""
        key = str(d)
        self._verified[key] = info.identity
        self._verified.move_to_end(key)
        while len(self._verified) > VERIFIED_ENTRIES:
            self._verified.popitem(last=False)

    def verified_identity(self, d: Digest) -> tuple[object, ...] | None:
        """Identity of the stored object as it was when it last verified (or was written
        verified) in this process, or None; a stored object with another identity changed."""
        return self._verified.get(str(d))

    def needs_check(self, blob: BlobInfo, full_read: bool) -> bool:
        """Whether this read must re-hash the blob under the configured policy."""
        if self.policy is VerifyPolicy.NEVER:
            return False
        if self.policy is VerifyPolicy.ALWAYS and full_read:
            return True
        return self.verified_identity(blob.digest) != blob.info.identity

    def _hash_stored(self, d: Digest, size: int) -> str:
        h = d.hasher()
        path = self.driver.local_path(self.paths.blob_key(d))
        if path is not None:
            buf = bytearray(HASH_CHUNK * 4)
            view = memoryview(buf)
            with open(path, "rb", buffering=0) as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
        else:
            for chunk in self.driver.iter_range(self.paths.blob_key(d), 0, size, HASH_CHUNK * 4):
                h.update(chunk)
        return str(h.hexdigest())

    async def verify(self, blob: BlobInfo) -> bool:
        """Re-hash the stored blob; on mismatch quarantine it, log, and return False."""
        try:
            actual = await in_thread(self._hash_stored, blob.digest, blob.size)
        except FileNotFoundError:
            return False
        if actual == blob.digest.hex:
            self.mark_verified(blob.digest, blob.info)
            return True
        self._verified.pop(str(blob.digest), None)
        self.quarantine_count += 1
        stamp = int(time.time())
        log.error(
            "blob %s failed verification on read (content hashes to %s:%s); moved to quarantine",
            blob.digest, blob.digest.algorithm, actual,
        )
        try:
            await run_io(self.driver, self.driver.move, self.paths.blob_key(blob.digest),
                         layout.quarantine_key(blob.digest, stamp))
        except Exception as exc:  # pragma: no cover - quarantine is best effort
            log.error("could not quarantine %s: %s", blob.digest, exc)
        return False

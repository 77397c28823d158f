"""Manifests, tags and referrers of repositories."""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from trustbox.oci.digest import Digest, digest_bytes
from trustbox.oci.errors import ImageError
from trustbox.oci.manifest import MAX_JSON_DEPTH, Manifest, validate_manifest
from trustbox.registry.aio import run_io
from trustbox.registry.blobs import BlobStore
from trustbox.registry.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NotFound,
)
from trustbox.registry.names import check_tag, is_tag, parse_digest

log = logging.getLogger("trustbox.registry")

CACHE_ENTRIES = 4096
CACHE_MAX_ITEM = 256 << 10
CACHE_MAX_BYTES = 32 << 20


def validate_pushed(body: bytes, content_type: str | None, max_depth: int = MAX_JSON_DEPTH) -> Manifest:
    """The core's :func:`~trustbox.oci.manifest.validate_manifest` with the registry's error.

    Raises:
        ManifestInvalid: anything the core refuses (its message and detail).
    """
    try:
        return validate_manifest(body, content_type, max_depth)
    except ImageError as exc:
        raise ManifestInvalid(exc.message, detail=exc.detail) from None


def referrer_descriptor(parsed: Manifest, d: Digest, size: int) -> dict[str, Any]:
    """The descriptor of a referrer as listed by the referrers API."""
    desc: dict[str, Any] = {"mediaType": parsed.media_type, "digest": str(d), "size": size}
    if parsed.artifact_type:
        desc["artifactType"] = parsed.artifact_type
    if parsed.annotations:
        desc["annotations"] = parsed.annotations
    return desc


def _no_such_reference(reference: str) -> NotFound:
    """GET/HEAD/DELETE of a manifest reference that is neither a tag nor a digest: 404, as the
    spec's "manifest not found" and registry:2 (whose routes only match a tag or a digest) answer;
    the OCI conformance suite asks for it (``.INVALID_MANIFEST_NAME``). PUT still says TAG_INVALID."""
    return NotFound(f"no manifest {reference[:200]!r}: not a valid tag or digest",
                    detail={"reference": reference[:200]})


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as served: its bytes, media type and digest."""

    body: bytes
    media_type: str
    digest: Digest


class ManifestStore:
    """Manifest content lives in blob storage; repositories hold revision links and tags."""

    def __init__(self, blobs: BlobStore, max_depth: int = MAX_JSON_DEPTH, urls_allow: list[str] | None = None,
                 urls_deny: list[str] | None = None, urls_checked: bool = False) -> None:
        self.blobs = blobs
        # registry:2's validation.manifests.urls: patterns the URLs of non-distributable layers
        # must match (allow) and must not match (deny), each list joined with "|"; with the
        # check on and neither list, registry:2 allows no URL at all ("^$")
        self._urls_checked = urls_checked or bool(urls_allow) or bool(urls_deny)
        if self._urls_checked and not urls_allow and not urls_deny:
            urls_allow = ["^$"]
        self._urls_allow = re.compile("|".join(f"(?:{p})" for p in urls_allow)) if urls_allow else None
        self._urls_deny = re.compile("|".join(f"(?:{p})" for p in urls_deny)) if urls_deny else None
        self.driver = blobs.driver
        self.paths = blobs.paths
        self.max_depth = max_depth
        # verified manifest bytes by digest: content-addressed, so never stale
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        # registry:2's layout: media types read from the documents, by digest
        self._media_types: OrderedDict[str, str] = OrderedDict()
        self._cache_bytes = 0

    # --- reading ------------------------------------------------------------------------

    async def resolve(self, name: str, reference: str) -> Digest:
        """Digest for a tag or digest reference; ManifestUnknown if the tag does not exist, NotFound
        if ``reference`` is neither a tag nor a digest."""
        if ":" in reference:
            return parse_digest(reference)
        if not is_tag(reference):
            raise _no_such_reference(reference)
        raw = await run_io(self.driver, self.driver.read, self.paths.tag_key(name, reference))
        if raw is None:
            raise ManifestUnknown(f"manifest tagged {reference!r} not found", detail={"tag": reference})
        return parse_digest(raw.decode())

    async def _content(self, d: Digest) -> bytes | None:
        key = str(d)
        body = self._cache.get(key)
        if body is not None:
            self._cache.move_to_end(key)
            return body
        body = await run_io(self.driver, self.driver.read, self.paths.blob_key(d))
        if body is None:
            return None
        if digest_bytes(body, d.algorithm) != d:
            log.error("manifest %s failed verification on read; refusing to serve it", d)
            return None
        if len(body) <= CACHE_MAX_ITEM and key not in self._cache:
            self._cache[key] = body
            self._cache_bytes += len(body)
            while len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_MAX_BYTES:
                self._cache_bytes -= len(self._cache.popitem(last=False)[1])
        return body

    async def get(self, name: str, reference: str) -> StoredManifest:
        """The manifest ``reference`` (tag or digest) of ``name``; ManifestUnknown if absent."""
        d = await self.resolve(name, reference)
        link = await run_io(self.driver, self.driver.read, self.paths.revision_link(name, d))
        if link is None:
            raise ManifestUnknown(detail={"name": name, "reference": reference})
        body = await self._content(d)
        if body is None:
            raise ManifestUnknown(
                "manifest content missing or corrupted in storage", detail={"digest": str(d)}
            )
        key = str(d)
        media_type = self._media_types.get(key)
        if media_type is None:
            media_type = self.paths.revision_media_type(link, body)
            if self.paths.is_registry2:  # read from the document: content-addressed, never stale
                self._media_types[key] = media_type
                if len(self._media_types) > CACHE_ENTRIES:
                    self._media_types.popitem(last=False)
        return StoredManifest(body, media_type, d)

    async def exists(self, name: str, d: Digest) -> bool:
        """True if the manifest ``d`` is in repository ``name``."""
        return await run_io(self.driver, self.driver.stat, self.paths.revision_link(name, d)) is not None

    # --- writing ------------------------------------------------------------------------

    def _check_urls(self, digest: str, urls: Any) -> None:
        """With registry:2's validation, every URL of a non-distributable layer must be http(s)
        without a fragment, match ``allow`` and not match ``deny``; refused as registry:2 lists
        it, ``MANIFEST_BLOB_UNKNOWN``.

        Raises:
            ManifestBlobUnknown: a URL that fails those rules.
        """
        if not self._urls_checked:
            return
        for u in urls if isinstance(urls, list) else [urls]:
            text = str(u)
            parts = urlsplit(text)
            if (parts.scheme not in ("http", "https") or parts.fragment
                    or (self._urls_allow is not None and not self._urls_allow.search(text))
                    or (self._urls_deny is not None and self._urls_deny.search(text))):
                raise ManifestBlobUnknown(f"invalid URL on layer {digest}: {text[:200]}",
                                          detail={"digest": digest, "url": text[:200]})

    async def _check_references(self, name: str, parsed: Manifest) -> None:
        for desc in parsed.blobs():
            if desc.extra.get("urls"):
                self._check_urls(desc.digest, desc.extra["urls"])
                continue  # foreign / non-distributable layer: fetched from its URLs
            blob = await self.blobs.stat(name, desc.content_digest())
            if blob is None:
                raise ManifestBlobUnknown(
                    f"blob {desc.digest} referenced by the manifest is unknown", detail={"digest": desc.digest}
                )
            if blob.size != desc.size:
                raise ManifestInvalid(
                    f"descriptor size {desc.size} of {desc.digest} does not match the stored size {blob.size}",
                    detail={"digest": desc.digest, "size": desc.size, "stored": blob.size},
                )
        for desc in parsed.manifests:
            if not await self.exists(name, desc.content_digest()):
                raise ManifestBlobUnknown(
                    f"manifest {desc.digest} referenced by the index is unknown",
                    detail={"digest": desc.digest},
                )

    async def put(
        self, name: str, reference: str, body: bytes, content_type: str | None, extra_tags: list[str]
    ) -> tuple[Digest, Manifest]:
        """Validate and store a manifest under a tag or digest reference (plus ``?tag=`` tags)."""
        tags: list[str] = []
        if ":" in reference:
            want = parse_digest(reference)
            d = digest_bytes(body, want.algorithm)
            if d != want:
                raise DigestInvalid(
                    "manifest digest does not match the reference",
                    detail={"reference": str(want), "actual": str(d)},
                )
        else:
            tags.append(check_tag(reference))
            d = digest_bytes(body)
        for t in extra_tags:
            tags.append(check_tag(t))
        parsed = validate_pushed(body, content_type, self.max_depth)
        await self._check_references(name, parsed)

        key = self.paths.blob_key(d)
        existing = await run_io(self.driver, self.driver.read, key)
        if existing != body:
            await run_io(self.driver, self.driver.write, key, body)
        await run_io(self.driver, self.driver.write, self.paths.revision_link(name, d),
                     self.paths.revision_value(d, parsed.media_type))
        if parsed.subject is not None:
            desc = referrer_descriptor(parsed, d, len(body))
            await run_io(
                self.driver, self.driver.write,
                self.paths.referrer_key(name, parsed.subject.content_digest(), d),
                json.dumps(desc, sort_keys=True).encode(),
            )
        for t in tags:
            for key, value in self.paths.tag_writes(name, t, d):
                await run_io(self.driver, self.driver.write, key, value)
        return d, parsed

    async def _untag(self, name: str, tag: str) -> bool:
        """Remove a tag (in registry:2's layout its whole folder, as registry:2 untags);
        False when there was no such tag."""
        existed = await run_io(self.driver, self.driver.delete, self.paths.tag_key(name, tag))
        prefix = self.paths.tag_objects_prefix(name, tag)
        if prefix is not None:
            await run_io(self.driver, self.driver.delete_tree, prefix.rstrip("/"))
        return existed

    async def delete(self, name: str, reference: str) -> list[str]:
        """Delete a tag, or a manifest by digest with the tags that point at it; return the
        tags removed (for notifications)."""
        if ":" not in reference:
            if not is_tag(reference):
                raise _no_such_reference(reference)
            if not await self._untag(name, reference):
                raise ManifestUnknown(f"tag {reference!r} not found", detail={"tag": reference})
            return [reference]
        d = parse_digest(reference)
        link = self.paths.revision_link(name, d)
        if await run_io(self.driver, self.driver.stat, link) is None:
            raise ManifestUnknown(detail={"digest": str(d)})
        body = await self._content(d)
        untagged: list[str] = []
        for tag in await self.tags(name):
            raw = await run_io(self.driver, self.driver.read, self.paths.tag_key(name, tag))
            if raw is not None and raw.decode() == str(d):
                await self._untag(name, tag)
                untagged.append(tag)
        if body is not None:
            try:
                parsed = validate_pushed(body, None)
            except ManifestInvalid:
                parsed = None
            if parsed is not None and parsed.subject is not None:
                await run_io(
                    self.driver, self.driver.delete, self.paths.referrer_key(name, parsed.subject.content_digest(), d)
                )
        await run_io(self.driver, self.driver.delete, link)
        return untagged

    # --- listing ------------------------------------------------------------------------

    async def tags(self, name: str) -> list[str]:
        """All tags of ``name``, sorted."""
        return sorted(await run_io(self.driver, self.driver.list_dir, self.paths.tags_prefix(name)))

    async def repo_exists(self, name: str) -> bool:
        """True if anything was ever pushed to ``name``."""
        children = await run_io(self.driver, self.driver.list_dir, self.paths.repo_prefix(name))
        return any(c.startswith("_") for c in children)

    async def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``."""
        prefix = self.paths.referrers_prefix(name, subject)
        out: list[dict[str, Any]] = []
        for entry in sorted(await run_io(self.driver, self.driver.list_dir, prefix)):
            raw = await run_io(self.driver, self.driver.read, f"{prefix}/{entry}")
            if raw is None:
                continue
            try:
                desc = json.loads(raw)
            except ValueError:
                continue
            if artifact_type is not None and desc.get("artifactType") != artifact_type:
                continue
            out.append(desc)
        return out

    def _walk_repos(self, prefix: str, name: str, out: list[str]) -> None:
        children = self.driver.list_dir(prefix)
        if any(c in ("_manifests", "_layers") for c in children):
            out.append(name)
        for c in children:
            if not c.startswith("_"):
                self._walk_repos(f"{prefix}/{c}", f"{name}/{c}" if name else c, out)

    def repositories_sync(self) -> list[str]:
        """All repository names, sorted."""
        out: list[str] = []
        self._walk_repos(self.paths.repos_prefix, "", out)
        return sorted(out)

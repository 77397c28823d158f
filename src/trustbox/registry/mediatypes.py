"""Manifest media types and parsing: what a manifest references and how to describe it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trustbox.registry.digests import Digest, parse_digest
from trustbox.registry.errors import DigestInvalid, ManifestInvalid

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
#: deepest JSON nesting accepted in a manifest (real manifests nest 4 levels)
MAX_JSON_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor inside a manifest."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedManifest:
    """A validated manifest: its media type, what it references, and its subject."""

    media_type: str
    blobs: tuple[Descriptor, ...]
    children: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestInvalid(f"{where}: descriptor must be an object")
    mt = obj.get("mediaType")
    dg = obj.get("digest")
    size = obj.get("size")
    if not isinstance(mt, str) or not mt:
        raise ManifestInvalid(f"{where}: descriptor mediaType missing")
    if not isinstance(dg, str):
        raise ManifestInvalid(f"{where}: descriptor digest missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}: descriptor size must be a non-negative integer")
    try:
        d = parse_digest(dg)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}") from None
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}: urls must be a list of strings")
    return Descriptor(mt, d, size, tuple(urls))


def _nesting(value: Any) -> int:
    """Deepest array/object nesting of a parsed JSON value (iterative)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_manifest(body: bytes, content_type: str | None, max_depth: int = MAX_JSON_DEPTH) -> ParsedManifest:
    """Parse and validate a manifest body; raise ManifestInvalid on anything wrong.

    JSON nested deeper than ``max_depth`` is refused before parsing (Python's parser would
    otherwise hit its recursion limit).
    """
    try:
        doc = json.loads(body)
    except RecursionError:
        raise ManifestInvalid(f"manifest JSON nests deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    if _nesting(doc) > max_depth:
        raise ManifestInvalid(f"manifest JSON nests deeper than {max_depth} levels", detail={"limit": max_depth})
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    ct = (content_type or "").split(";")[0].strip().lower()
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("mediaType must be a string")
    if ct in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or body_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise ManifestInvalid("Docker schema 1 manifests are not supported")
    if body_type:
        if ct in MANIFEST_TYPES and ct != body_type:
            raise ManifestInvalid(
                f"Content-Type {ct!r} does not match the manifest mediaType {body_type!r}",
                detail={"contentType": ct, "mediaType": body_type},
            )
        media_type = body_type
    elif ct in MANIFEST_TYPES:
        media_type = ct
    elif "manifests" in doc:
        media_type = OCI_INDEX
    elif "config" in doc:
        media_type = OCI_MANIFEST
    else:
        raise ManifestInvalid(f"unsupported manifest media type {ct or 'none'!r}")
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")

    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    if media_type in IMAGE_TYPES:
        if "config" not in doc:
            raise ManifestInvalid("image manifest has no config")
        blobs.append(_descriptor(doc["config"], "config"))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise ManifestInvalid("layers must be a list")
        if media_type == DOCKER_MANIFEST and "layers" not in doc:
            raise ManifestInvalid("image manifest has no layers")
        for i, layer in enumerate(layers):
            blobs.append(_descriptor(layer, f"layers[{i}]"))
    else:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise ManifestInvalid("index must have a manifests list")
        for i, m in enumerate(manifests):
            children.append(_descriptor(m, f"manifests[{i}]"))

    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    if artifact_type is None and media_type == OCI_MANIFEST:
        artifact_type = blobs[0].media_type
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ManifestInvalid("annotations must map strings to strings")
    return ParsedManifest(media_type, tuple(blobs), tuple(children), subject, artifact_type, annotations)


def referrer_descriptor(parsed: ParsedManifest, d: Digest, size: int) -> dict[str, Any]:
    """The descriptor of a referrer as listed by the referrers API."""
    desc: dict[str, Any] = {"mediaType": parsed.media_type, "digest": str(d), "size": size}
    if parsed.artifact_type:
        desc["artifactType"] = parsed.artifact_type
    if parsed.annotations:
        desc["annotations"] = parsed.annotations
    return desc

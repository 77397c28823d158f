"""Manifests and indexes: one model, one loader, the client's reading rules and the registry's push rules.

Both entry points share the bounded JSON loader, the descriptor parser and the shape rules;
the registry's :func:`validate_manifest` adds what distribution checks on a push (the
Content-Type agrees with the document, subject, artifactType, annotations).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.errors import ImageError
from trustbox.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
)

#: Largest manifest the client accepts (the distribution registry's own limit is 4 MiB).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: deepest JSON nesting accepted in a manifest (real manifests nest 4 levels)
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index together with its exact bytes."""

    raw: bytes
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @cached_property
    def digest(self) -> str:
        """The sha256 digest of the manifest bytes (computed on first use)."""
        return sha256_digest(self.raw)

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


def _load(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The manifest's JSON object.

    Raises:
        ImageError: not JSON, nested deeper than ``max_depth``, or not an object.
    """
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ImageError(f"manifest JSON nests deeper than {max_depth} levels", detail={"limit": max_depth}) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"manifest is not valid JSON: {exc}") from None
    if _nesting(doc) > max_depth:
        raise ImageError(f"manifest JSON nests deeper than {max_depth} levels", detail={"limit": max_depth})
    if not isinstance(doc, dict):
        raise ImageError("manifest is not a JSON object")
    return doc


def _children(doc: dict[str, Any], strict: bool) -> tuple[Descriptor, ...]:
    ms = doc.get("manifests")
    if not isinstance(ms, list):
        raise ImageError("index has no manifests list")
    return tuple(Descriptor.from_json(m, f"manifests[{i}]", strict=strict) for i, m in enumerate(ms))


def _image(doc: dict[str, Any], media_type: str, strict: bool) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    """Config and layers of an image manifest (the registry lets an OCI manifest omit ``layers``)."""
    if "config" not in doc:
        raise ImageError("image manifest has no config")
    config = Descriptor.from_json(doc["config"], "config", strict=strict)
    layers = doc.get("layers", [] if strict and media_type != DOCKER_MANIFEST else None)
    if not isinstance(layers, list):
        raise ImageError("manifest has no layers list")
    return config, tuple(Descriptor.from_json(x, f"layers[{i}]", strict=strict) for i, x in enumerate(layers))


def _build(raw: bytes, doc: dict[str, Any], media_type: str, strict: bool) -> Manifest:
    """The :class:`Manifest` of ``doc`` read as ``media_type`` (a supported manifest type)."""
    if doc.get("schemaVersion") != 2:
        raise ImageError("manifest schemaVersion is not 2")
    if media_type in INDEX_TYPES:
        return Manifest(raw, media_type, None, (), _children(doc, strict))
    config, layers = _image(doc, media_type, strict)
    return Manifest(raw, media_type, config, layers, ())


def parse_manifest(raw: bytes, media_type: str | None = None, digest: str | None = None) -> Manifest:
    """Parse manifest bytes the client read; the media type comes from the document or the transport.
    ``digest``: the sha256 digest of ``raw`` when the caller computed it already (not hashed again).

    Raises:
        ImageError: too large, not JSON, schema 1, or not a well-formed image manifest or index.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ImageError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    doc = _load(raw, MAX_JSON_DEPTH)
    mt = doc.get("mediaType") or media_type or ""
    if mt in ("", "application/json", "application/octet-stream"):
        # OCI documents may omit mediaType: decide by shape.
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if mt in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise ImageError("Docker schema 1 manifests are not supported")
    if mt not in MANIFEST_TYPES:
        if doc.get("schemaVersion") != 2:
            raise ImageError("manifest schemaVersion is not 2")
        raise ImageError(f"unsupported manifest media type {mt!r}")
    manifest = _build(raw, doc, mt, strict=False)
    if digest is not None:
        manifest.__dict__["digest"] = digest  # seeds the cached_property
    return manifest


def _pushed_type(doc: dict[str, Any], content_type: str | None) -> str:
    """The media type of a pushed manifest: the document's, else the Content-Type's, else by shape.

    Raises:
        ImageError: schema 1, a Content-Type naming another manifest type, or no supported type.
    """
    ct = (content_type or "").split(";")[0].strip().lower()
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ImageError("mediaType must be a string")
    if ct in SCHEMA1_TYPES or body_type in SCHEMA1_TYPES:
        raise ImageError("Docker schema 1 manifests are not supported")
    if body_type:
        if ct in MANIFEST_TYPES and ct != body_type:
            raise ImageError(
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
        raise ImageError(f"unsupported manifest media type {ct or 'none'!r}")
    if media_type not in MANIFEST_TYPES:
        raise ImageError(f"unsupported manifest media type {media_type!r}")
    return media_type


def validate_manifest(body: bytes, content_type: str | None, max_depth: int = MAX_JSON_DEPTH) -> Manifest:
    """Parse and validate a pushed manifest with the registry's rules.

    JSON nested deeper than ``max_depth`` is refused (Python's parser would otherwise hit its
    recursion limit).

    Raises:
        ImageError: anything wrong (``detail`` holds what the registry reports).
    """
    doc = _load(body, max_depth)
    media_type = _pushed_type(doc, content_type)
    m = _build(body, doc, media_type, strict=True)
    subject = Descriptor.from_json(doc["subject"], "subject", strict=True) if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ImageError("artifactType must be a string")
    if artifact_type is None and media_type == OCI_MANIFEST and m.config is not None:
        artifact_type = m.config.media_type
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ImageError("annotations must map strings to strings")
    return Manifest(body, media_type, m.config, m.layers, m.manifests, subject, artifact_type, annotations)


def stored_media_type(body: bytes) -> str:
    """The media type a stored manifest is served with when nothing else records it, as
    registry:2 decides: the document's ``mediaType``; without one, schema 1 (signed when it
    carries ``signatures``), else an OCI index when it lists ``manifests``, else an OCI
    manifest. Never raises: bytes that are not a JSON object read as an OCI manifest."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return OCI_MANIFEST
    if not isinstance(doc, dict):
        return OCI_MANIFEST
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED if "signatures" in doc else DOCKER_SCHEMA1
    return OCI_INDEX if isinstance(doc.get("manifests"), list) else OCI_MANIFEST


def dump_json(obj: Any) -> bytes:
    """Deterministic compact JSON bytes for documents trustbox writes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

"""The OCI content descriptor: one type for manifests read by the client and pushed to the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trustbox.oci.digest import Digest, check_sha256, parse_digest
from trustbox.oci.errors import ImageError

_KNOWN_FIELDS = frozenset({"mediaType", "digest", "size", "platform", "annotations"})


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: media type, digest, size (+ optional platform, annotations).

    Other fields (``urls``, ``artifactType``, ...) are kept in ``extra`` and written back.
    """

    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Any, where: str = "descriptor", *, strict: bool = False) -> Descriptor:
        """Parse a descriptor object.

        The client (``strict=False``) takes what it can store: a sha256 digest, any media type
        string. The registry (``strict=True``) takes what distribution takes: a non-empty media
        type, a sha256 or sha512 digest, ``urls`` a list of strings.

        Raises:
            ImageError: a required field missing or of the wrong type (the message starts with ``where``).
        """
        if not isinstance(d, dict):
            raise ImageError(f"{where} is not an object")
        mt, dg, size = d.get("mediaType", ""), d.get("digest"), d.get("size")
        if not isinstance(mt, str) or (strict and not mt):
            raise ImageError(f"{where}: mediaType is not a string" if not isinstance(mt, str) else f"{where}: mediaType missing")
        if not isinstance(dg, str):
            raise ImageError(f"{where}: missing digest")
        cls._check_digest(dg, where, strict)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{where}: missing or negative size")
        urls = d.get("urls")
        if strict and urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
            raise ImageError(f"{where}: urls must be a list of strings")
        platform = d.get("platform")
        ann = d.get("annotations")
        extra = {k: v for k, v in d.items() if k not in _KNOWN_FIELDS}
        return cls(
            mt,
            dg,
            size,
            platform if isinstance(platform, dict) else None,
            {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else None,
            extra,
        )

    @staticmethod
    def _check_digest(text: str, where: str, strict: bool) -> None:
        """Raise ImageError (prefixed with ``where``) unless ``text`` is a digest the caller takes."""
        if not strict:
            check_sha256(text)
            return
        try:
            parse_digest(text)
        except ImageError as exc:
            raise ImageError(f"{where}: {exc.message}") from None

    def content_digest(self) -> Digest:
        """The digest as a :class:`Digest` (the descriptor was validated when parsed)."""
        algorithm, _, hexpart = self.digest.partition(":")
        return Digest(algorithm, hexpart)

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

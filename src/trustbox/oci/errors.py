"""Errors of the OCI core (all :class:`~trustbox.errors.TrustboxError` subclasses)."""

from __future__ import annotations

from typing import Any

from trustbox.errors import ConfigError, FormatError, HashMismatchError


class ImageError(FormatError):
    """An image (layout, archive, manifest, descriptor, digest) that is malformed or inconsistent.

    ``detail`` carries what the registry puts in its error body (``{"digest": ...}``, ...).
    """

    def __init__(self, message: str, hint: str | None = None, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.detail = detail


class DigestFormatError(ImageError):
    """A digest string that is malformed or of an unsupported algorithm."""


class DigestMismatchError(HashMismatchError):
    """Downloaded or read bytes whose digest or size differ from the expected descriptor."""


class ReferenceError_(ConfigError):
    """An image reference that docker would refuse (``invalid reference format...``)."""

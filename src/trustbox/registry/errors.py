"""Registry errors: one class per OCI distribution error code, answered with the spec's JSON body.

The codes, fixed messages and upstream statuses are :mod:`trustbox.errcode`'s; this module is the
registry's mapping of its failures onto them, including where trustbox answers another status
(a 413 for a manifest over the size limit, 408 for a stalled body, 503 for failing storage).
"""

from __future__ import annotations

from typing import Any, ClassVar

from trustbox import errcode
from trustbox.errcode import ErrorCode
from trustbox.errors import TrustboxError


class RegistryError(TrustboxError):
    """An error the registry answers with the spec's JSON error body."""

    error_code: ClassVar[ErrorCode] = errcode.UNKNOWN

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.error_code.message)
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def code(self) -> str:
        """The error code's name (``BLOB_UNKNOWN``)."""
        return self.error_code.code

    @property
    def status(self) -> int:
        """The HTTP status the registry answers this error with."""
        return self.error_code.status

    def body(self) -> dict[str, Any]:
        """The JSON body ``{"errors": [...]}`` for this error (an empty object when no detail)."""
        return errcode.envelope(self.error_code.entry(self.message, {} if self.detail is None else self.detail))


class BlobUnknown(RegistryError):
    """The blob is not known to this repository."""

    error_code = errcode.BLOB_UNKNOWN


class BlobUploadInvalid(RegistryError):
    """The upload was invalid."""

    error_code = errcode.BLOB_UPLOAD_INVALID


class BlobUploadUnknown(RegistryError):
    """No upload session with that id in this repository."""

    error_code = errcode.BLOB_UPLOAD_UNKNOWN


class DigestInvalid(RegistryError):
    """A digest that does not parse, is unsupported, or does not match the content."""

    error_code = errcode.DIGEST_INVALID


class ManifestBlobUnknown(RegistryError):
    """A manifest references a blob or child manifest this repository does not have."""

    error_code = errcode.MANIFEST_BLOB_UNKNOWN


class ManifestInvalid(RegistryError):
    """A manifest that does not parse or does not validate."""

    error_code = errcode.MANIFEST_INVALID


class ManifestUnknown(RegistryError):
    """No manifest under that tag or digest in this repository."""

    error_code = errcode.MANIFEST_UNKNOWN


class NameInvalid(RegistryError):
    """A repository name that breaks the naming rules."""

    error_code = errcode.NAME_INVALID


class NameUnknown(RegistryError):
    """The repository does not exist."""

    error_code = errcode.NAME_UNKNOWN


class SizeInvalid(RegistryError):
    """Content whose length does not match what was declared, or is too large."""

    error_code = errcode.SIZE_INVALID


class TooLarge(SizeInvalid):
    """A manifest over the size limit."""

    error_code = errcode.SIZE_INVALID.answered(413, "manifest too large")


class UploadTimeout(BlobUploadInvalid):
    """An upload body that stalled longer than the body timeout."""

    error_code = errcode.BLOB_UPLOAD_INVALID.answered(408, "request body stalled: no data within the body timeout")


class ManifestTimeout(ManifestInvalid):
    """A manifest body that stalled longer than the body timeout."""

    error_code = errcode.MANIFEST_INVALID.answered(408, "request body stalled: no data within the body timeout")


class TooManyRequests(RegistryError):
    """A limit on concurrent work (open upload sessions) is reached."""

    error_code = errcode.TOOMANYREQUESTS


class TagInvalid(RegistryError):
    """A tag that breaks the tag grammar."""

    error_code = errcode.TAG_INVALID


class Unauthorized(RegistryError):
    """Missing or wrong credentials."""

    error_code = errcode.UNAUTHORIZED


class Denied(RegistryError):
    """The operation is not allowed (read-only registry)."""

    error_code = errcode.DENIED


class Unsupported(RegistryError):
    """The operation is not supported (deletes disabled, unknown method)."""

    error_code = errcode.UNSUPPORTED


class NotFound(RegistryError):
    """A path under /v2/ that is no endpoint of the API."""

    error_code = errcode.NOT_FOUND


class ParameterInvalid(RegistryError):
    """An unusable set of query parameters (one the API defines once, given more than once):
    the spec's ``UNSUPPORTED`` ("invalid set of parameters"), answered 400."""

    error_code = errcode.UNSUPPORTED.answered(400, "invalid set of query parameters")


class RangeInvalid(RegistryError):
    """A chunk or byte range that does not fit (out-of-order chunk, unsatisfiable range)."""

    error_code = errcode.RANGE_INVALID


class PaginationInvalid(RegistryError):
    """A bad ``n`` or ``last`` query parameter."""

    error_code = errcode.PAGINATION_NUMBER_INVALID


class StorageFailure(RegistryError):
    """The storage backend failed (disk full, S3 unreachable): not the client's fault."""

    error_code = errcode.UNKNOWN.answered(503, "storage backend unavailable")


class Unavailable(RegistryError):
    """The registry's health check fails (registry:2's ``health`` checks): distribution's
    ``UNAVAILABLE``, 503."""

    error_code = errcode.UNAVAILABLE

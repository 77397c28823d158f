"""Registry errors: one class per OCI distribution error code, each with its HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar

from trustbox.errors import TrustboxError


class RegistryError(TrustboxError):
    """An error the registry answers with the spec's JSON error body."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "unknown error"

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.default_message)
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body ``{"errors": [...]}`` for this error."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        entry["detail"] = self.detail if self.detail is not None else {}
        return {"errors": [entry]}


class BlobUnknown(RegistryError):
    """The blob is not known to this repository."""

    code = "BLOB_UNKNOWN"
    status = 404
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    """The upload was invalid."""

    code = "BLOB_UPLOAD_INVALID"
    status = 400
    default_message = "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    """No upload session with that id in this repository."""

    code = "BLOB_UPLOAD_UNKNOWN"
    status = 404
    default_message = "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    """A digest that does not parse, is unsupported, or does not match the content."""

    code = "DIGEST_INVALID"
    status = 400
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    """A manifest references a blob or child manifest this repository does not have."""

    code = "MANIFEST_BLOB_UNKNOWN"
    status = 400
    default_message = "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    """A manifest that does not parse or does not validate."""

    code = "MANIFEST_INVALID"
    status = 400
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    """No manifest under that tag or digest in this repository."""

    code = "MANIFEST_UNKNOWN"
    status = 404
    default_message = "manifest unknown to registry"


class NameInvalid(RegistryError):
    """A repository name that breaks the naming rules."""

    code = "NAME_INVALID"
    status = 400
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    """The repository does not exist."""

    code = "NAME_UNKNOWN"
    status = 404
    default_message = "repository name not known to registry"


class SizeInvalid(RegistryError):
    """Content whose length does not match what was declared, or is too large."""

    code = "SIZE_INVALID"
    status = 400
    default_message = "provided length did not match content length"


class TooLarge(SizeInvalid):
    """A manifest over the size limit."""

    status = 413
    default_message = "manifest too large"


class UploadTimeout(BlobUploadInvalid):
    """An upload body that stalled longer than the body timeout."""

    status = 408
    default_message = "request body stalled: no data within the body timeout"


class ManifestTimeout(ManifestInvalid):
    """A manifest body that stalled longer than the body timeout."""

    status = 408
    default_message = "request body stalled: no data within the body timeout"


class TooManyRequests(RegistryError):
    """A limit on concurrent work (open upload sessions) is reached."""

    code = "TOOMANYREQUESTS"
    status = 429
    default_message = "too many requests"


class TagInvalid(RegistryError):
    """A tag that breaks the tag grammar."""

    code = "TAG_INVALID"
    status = 400
    default_message = "manifest tag did not match URI"


class Unauthorized(RegistryError):
    """Missing or wrong credentials."""

    code = "UNAUTHORIZED"
    status = 401
    default_message = "authentication required"


class Denied(RegistryError):
    """The operation is not allowed (read-only registry)."""

    code = "DENIED"
    status = 403
    default_message = "requested access to the resource is denied"


class Unsupported(RegistryError):
    """The operation is not supported (deletes disabled, unknown method)."""

    code = "UNSUPPORTED"
    status = 405
    default_message = "the operation is unsupported"


class NotFound(RegistryError):
    """A path under /v2/ that is no endpoint of the API."""

    code = "NOT_FOUND"
    status = 404
    default_message = "no such endpoint"


class ParameterInvalid(RegistryError):
    """An unusable set of query parameters (one the API defines once, given more than once):
    the spec's ``UNSUPPORTED`` ("invalid set of parameters"), answered 400."""

    code = "UNSUPPORTED"
    status = 400
    default_message = "invalid set of query parameters"


class RangeInvalid(RegistryError):
    """A chunk or byte range that does not fit (out-of-order chunk, unsatisfiable range)."""

    code = "RANGE_INVALID"
    status = 416
    default_message = "invalid content range"


class PaginationInvalid(RegistryError):
    """A bad ``n`` or ``last`` query parameter."""

    code = "PAGINATION_NUMBER_INVALID"
    status = 400
    default_message = "invalid number of results requested"


class StorageFailure(RegistryError):
    """The storage backend failed (disk full, S3 unreachable): not the client's fault."""

    code = "UNKNOWN"
    status = 503
    default_message = "storage backend unavailable"

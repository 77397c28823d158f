"""notary-server's error codes and the docker/distribution JSON error envelope.

A handler raises :class:`ServerError` (usually through one of the ``CODE.with_detail`` helpers);
the app turns it into ``{"errors":[{"code":..,"message":..,"detail":..}]}`` with upstream's status
code, ``Content-Type: application/json; charset=utf-8`` and Go's trailing newline.

Validation failures carry a typed detail ``{"Name": "ErrBadRoot", "Error": {"Msg": ...}}``
(upstream ``tuf/validation/errors.go``); see :class:`ValidationFailure`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trustbox.errors import TrustboxError

#: marker for "no detail": the field is omitted from the body (Go ``nil``)
OMIT: Any = object()
#: the detail of a wrapped Go error without exported fields
EMPTY: dict[str, Any] = {}


def go_json(value: Any) -> bytes:
    """Encode ``value`` as Go's ``encoding/json`` does (compact, HTML-safe escaping)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if any(c in text for c in "<>&\u2028\u2029"):
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text.encode("utf-8", "replace")


@dataclass(frozen=True)
class ErrorCode:
    """One upstream error code: name, HTTP status and fixed message."""

    code: str
    status: int
    message: str

    def with_detail(self, detail: Any = OMIT) -> ServerError:
        """The error to raise, with an optional detail value."""
        return ServerError(self, detail)


NO_STORAGE = ErrorCode("NO_STORAGE", 500, "The server is misconfigured and has no storage.")
NO_FILENAME = ErrorCode("NO_FILENAME", 400, "No file/role name provided.")
INVALID_ROLE = ErrorCode("INVALID_ROLE", 400, "The role you are attempting to operate on is invalid.")
MALFORMED_JSON = ErrorCode("MALFORMED_JSON", 400, "JSON sent by the client could not be parsed by the server")
UPDATING = ErrorCode("UPDATING", 500, "An error has occurred while updating the TUF repository.")
VERSION = ErrorCode("VERSION", 400, "A newer version of metadata is already available.")
METADATA_NOT_FOUND = ErrorCode("METADATA_NOT_FOUND", 404, "You have requested metadata that does not exist.")
INVALID_UPDATE = ErrorCode("INVALID_UPDATE", 400, "Update sent by the client is invalid.")
MALFORMED_UPLOAD = ErrorCode("MALFORMED_UPLOAD", 400, "The body of your request is malformed.")
GENERIC_NOT_FOUND = ErrorCode("GENERIC_NOT_FOUND", 404, "You have requested a resource that does not exist.")
NO_CRYPTOSERVICE = ErrorCode("NO_CRYPTOSERVICE", 500, "The server does not have a signing service configured.")
NO_KEYALGORITHM = ErrorCode("NO_KEYALGORITHM", 500, "The server does not have a key algorithm configured.")
INVALID_GUN = ErrorCode("INVALID_GUN", 400, "The server does not support actions on images of this name.")
INVALID_PARAMETERS = ErrorCode("INVALID_PARAMETERS", 400, "The parameters provided are not valid.")
UNKNOWN = ErrorCode("UNKNOWN", 500, "unknown error")
# not upstream: a body larger than the configured limit (upstream has no limit at all)
TOO_LARGE = ErrorCode("MALFORMED_UPLOAD", 413, "The body of your request is malformed.")
# trustbox only: a request body that stalls (upstream waits forever)
BODY_TIMEOUT = ErrorCode("MALFORMED_UPLOAD", 408, "The body of your request is malformed.")


class ServerError(TrustboxError):
    """An error that becomes an upstream-style JSON error response."""

    def __init__(self, code: ErrorCode, detail: Any = OMIT) -> None:
        super().__init__(f"{code.code}: {code.message}")
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.code.status

    def body(self) -> bytes:
        """The JSON body (with Go's trailing newline)."""
        return error_body(self.code, self.detail)


def error_body(code: ErrorCode, detail: Any = OMIT) -> bytes:
    """``{"errors":[{"code","message"[,"detail"]}]}`` plus newline, as docker/distribution writes it."""
    entry: dict[str, Any] = {"code": code.code, "message": code.message}
    if detail is not OMIT:
        entry["detail"] = detail
    return go_json({"errors": [entry]}) + b"\n"


# --- typed validation errors (tuf/validation/errors.go) -----------------------------------


class ValidationFailure(TrustboxError):
    """A rejected update: ``name`` is the upstream error type, ``fields`` its exported fields."""

    def __init__(self, name: str, msg: str, **extra: str) -> None:
        super().__init__(msg)
        self.name = name
        self.fields: dict[str, str] = {**extra, "Msg": msg}

    def detail(self) -> dict[str, Any]:
        """The serialisable detail ``{"Name":..,"Error":{..}}``."""
        return {"Name": self.name, "Error": self.fields}

    def to_server_error(self) -> ServerError:
        """INVALID_UPDATE carrying this failure."""
        return INVALID_UPDATE.with_detail(self.detail())


def bad_root(msg: str) -> ValidationFailure:
    """ErrBadRoot."""
    return ValidationFailure("ErrBadRoot", msg)


def bad_targets(msg: str) -> ValidationFailure:
    """ErrBadTargets."""
    return ValidationFailure("ErrBadTargets", msg)


def bad_snapshot(msg: str) -> ValidationFailure:
    """ErrBadSnapshot."""
    return ValidationFailure("ErrBadSnapshot", msg)


def validation_error(msg: str) -> ValidationFailure:
    """ErrValidation."""
    return ValidationFailure("ErrValidation", msg)


def bad_hierarchy(missing: str, msg: str) -> ValidationFailure:
    """ErrBadHierarchy (fields ``Missing`` then ``Msg``, Go declaration order)."""
    return ValidationFailure("ErrBadHierarchy", msg, Missing=missing)


class VersionConflict(TrustboxError):
    """A stored version is already as new as one in the update (upstream ``ErrOldVersion``)."""

    def __init__(self) -> None:
        super().__init__("a newer version of metadata is already available")

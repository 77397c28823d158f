"""The trust server's errors: notary-server's codes (:mod:`trustbox.errcode`) as responses.

A handler raises ``ServerError(CODE, detail)``; the app turns it into ``{"errors":[{"code":..,"message":..,"detail":..}]}`` with upstream's status
code, ``Content-Type: application/json; charset=utf-8`` and Go's trailing newline.

Validation failures carry a typed detail ``{"Name": "ErrBadRoot", "Error": {"Msg": ...}}``
(upstream ``tuf/validation/errors.go``); see :class:`ValidationFailure`.
"""

from __future__ import annotations

from typing import Any

from trustbox.errcode import INVALID_UPDATE, MALFORMED_UPLOAD, OMIT, ErrorCode
from trustbox.errors import TrustboxError

#: the detail of a wrapped Go error without exported fields
EMPTY: dict[str, Any] = {}

# the trust server's own answers, beyond notary-server's codes (:mod:`trustbox.errcode`):
#: a body larger than the configured limit (upstream has no limit at all)
TOO_LARGE = MALFORMED_UPLOAD.answered(413)
#: a request body that stalls (upstream waits forever)
BODY_TIMEOUT = MALFORMED_UPLOAD.answered(408)


class ServerError(TrustboxError):
    """An error that becomes an upstream-style JSON error response (``detail`` omitted if OMIT)."""

    def __init__(self, code: ErrorCode, detail: Any = OMIT) -> None:
        super().__init__(f"{code.code}: {code.message}")
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.code.status

    def body(self) -> bytes:
        """The JSON body (with Go's trailing newline).

        Raises TypeError / ValueError if the detail cannot be encoded as JSON.
        """
        return self.code.body(detail=self.detail)


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
        return ServerError(INVALID_UPDATE, self.detail())


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


class DocumentTooLarge(TrustboxError):
    """The database refused a document for its size (MySQL's ``max_allowed_packet``, InnoDB's redo
    log share); nothing of the update was stored."""

"""The error codes the servers answer with, and Go's JSON encoding of their bodies.

distribution's ``registry/api/errcode`` gives registry:2, notary-server and docker's token
servers one envelope, ``{"errors":[{"code":..,"message":..,"detail":..}]}``, and one encoder
(Go's ``encoding/json``). This module holds both once:

- :class:`ErrorCode`: a code's name, fixed message and the HTTP status upstream answers it with;
  the registered codes below (distribution's, notary-server's, and the few trustbox adds).
  Each server keeps its own mapping (which error becomes which code, and its deviations such as
  a 413 where upstream has no size limit) in its own package, built with
  :meth:`ErrorCode.answered`.
- :func:`go_json` / :func:`go_json_line`: the bytes Go's ``json.Marshal`` / ``json.Encoder``
  write for a value: compact, UTF-8, ``<`` ``>`` ``&`` U+2028 U+2029 escaped (HTML-safe, the
  escape table of :func:`trustbox.tuf.canonical.html_escape`), the encoder's trailing newline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from trustbox.tuf.canonical import html_escape

#: marker for "no detail": the field is left out of the entry (Go ``omitempty`` on a nil detail)
OMIT: Any = object()

_SURROGATE = re.compile("[\ud800-\udfff]")


def go_json(value: Any) -> bytes:
    """``value`` as Go's ``json.Marshal`` writes it: compact, UTF-8, HTML-safe escaping.

    A lone surrogate (what Python's JSON decoder makes of ``"\\ud800"``) becomes U+FFFD, as Go's
    decoder turns it into that rune. Raises TypeError / ValueError for values JSON cannot hold.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
    return html_escape(data)


def go_json_line(value: Any) -> bytes:
    """``value`` as Go's ``json.Encoder.Encode`` writes it: :func:`go_json` plus a newline.

    Raises what :func:`go_json` raises.
    """
    return go_json(value) + b"\n"


@dataclass(frozen=True)
class ErrorCode:
    """One error code: its name, fixed message and the HTTP status it is answered with."""

    code: str
    message: str
    status: int

    def entry(self, message: str | None = None, detail: Any = OMIT) -> dict[str, Any]:
        """One ``{"code","message"[,"detail"]}`` entry; ``message`` replaces the fixed one."""
        item: dict[str, Any] = {"code": self.code, "message": self.message if message is None else message}
        if detail is not OMIT:
            item["detail"] = detail
        return item

    def body(self, message: str | None = None, detail: Any = OMIT) -> bytes:
        """The envelope holding this one entry, as Go's ``json.Encoder`` writes it.

        Raises TypeError / ValueError if ``detail`` cannot be encoded as JSON.
        """
        return go_json_line(envelope(self.entry(message, detail)))

    def answered(self, status: int, message: str | None = None) -> ErrorCode:
        """The same code answered with another status (and message): a server's own mapping."""
        return replace(self, status=status, message=self.message if message is None else message)


def envelope(*entries: dict[str, Any]) -> dict[str, Any]:
    """``{"errors": [entries...]}``."""
    return {"errors": list(entries)}


# --- distribution (errcode and registry/api/v2); messages as trustbox's servers word them ------

UNKNOWN = ErrorCode("UNKNOWN", "unknown error", 500)
UNSUPPORTED = ErrorCode("UNSUPPORTED", "the operation is unsupported", 405)
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", "authentication required", 401)
DENIED = ErrorCode("DENIED", "requested access to the resource is denied", 403)
TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", "too many requests", 429)
UNAVAILABLE = ErrorCode("UNAVAILABLE", "service unavailable", 503)
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400)
SIZE_INVALID = ErrorCode("SIZE_INVALID", "provided length did not match content length", 400)
RANGE_INVALID = ErrorCode("RANGE_INVALID", "invalid content range", 416)
NAME_INVALID = ErrorCode("NAME_INVALID", "invalid repository name", 400)
TAG_INVALID = ErrorCode("TAG_INVALID", "manifest tag did not match URI", 400)
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404)
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", "manifest unknown to registry", 404)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", "manifest invalid", 400)
MANIFEST_BLOB_UNKNOWN = ErrorCode(
    "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 400
)
BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404)
BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404)
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400)
PAGINATION_NUMBER_INVALID = ErrorCode("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400)
# trustbox's registry: a path under /v2/ that is no endpoint of the API
NOT_FOUND = ErrorCode("NOT_FOUND", "no such endpoint", 404)
# trustbox's token server: a token request without a usable service or scope
INVALID_REQUEST = ErrorCode("INVALID_REQUEST", "invalid request", 400)

# --- notary-server (server/errors/errors.go) ---------------------------------------------------

NO_STORAGE = ErrorCode("NO_STORAGE", "The server is misconfigured and has no storage.", 500)
NO_FILENAME = ErrorCode("NO_FILENAME", "No file/role name provided.", 400)
INVALID_ROLE = ErrorCode("INVALID_ROLE", "The role you are attempting to operate on is invalid.", 400)
MALFORMED_JSON = ErrorCode("MALFORMED_JSON", "JSON sent by the client could not be parsed by the server", 400)
UPDATING = ErrorCode("UPDATING", "An error has occurred while updating the TUF repository.", 500)
VERSION = ErrorCode("VERSION", "A newer version of metadata is already available.", 400)
METADATA_NOT_FOUND = ErrorCode("METADATA_NOT_FOUND", "You have requested metadata that does not exist.", 404)
INVALID_UPDATE = ErrorCode("INVALID_UPDATE", "Update sent by the client is invalid.", 400)
MALFORMED_UPLOAD = ErrorCode("MALFORMED_UPLOAD", "The body of your request is malformed.", 400)
GENERIC_NOT_FOUND = ErrorCode("GENERIC_NOT_FOUND", "You have requested a resource that does not exist.", 404)
NO_CRYPTOSERVICE = ErrorCode("NO_CRYPTOSERVICE", "The server does not have a signing service configured.", 500)
NO_KEYALGORITHM = ErrorCode("NO_KEYALGORITHM", "The server does not have a key algorithm configured.", 500)
INVALID_GUN = ErrorCode("INVALID_GUN", "The server does not support actions on images of this name.", 400)
INVALID_PARAMETERS = ErrorCode("INVALID_PARAMETERS", "The parameters provided are not valid.", 400)

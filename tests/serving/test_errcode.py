"""The one error-code registry and Go JSON encoder shared by the registry, trust and token servers."""

from __future__ import annotations

import pytest

from trustbox import errcode
from trustbox.auth import scopes, throttle
from trustbox.errcode import OMIT, ErrorCode, go_json, go_json_line
from trustbox.registry import errors as registry_errors
from trustbox.registry.app import error_response
from trustbox.trustserver import errors as trust_errors

# (code, status, message) of every registered code, as the servers answer them
REGISTERED = {
    "UNKNOWN": (500, "unknown error"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "UNAVAILABLE": (503, "service unavailable"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "RANGE_INVALID": (416, "invalid content range"),
    "NAME_INVALID": (400, "invalid repository name"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "NOT_FOUND": (404, "no such endpoint"),
    "INVALID_REQUEST": (400, "invalid request"),
    "NO_STORAGE": (500, "The server is misconfigured and has no storage."),
    "NO_FILENAME": (400, "No file/role name provided."),
    "INVALID_ROLE": (400, "The role you are attempting to operate on is invalid."),
    "MALFORMED_JSON": (400, "JSON sent by the client could not be parsed by the server"),
    "UPDATING": (500, "An error has occurred while updating the TUF repository."),
    "VERSION": (400, "A newer version of metadata is already available."),
    "METADATA_NOT_FOUND": (404, "You have requested metadata that does not exist."),
    "INVALID_UPDATE": (400, "Update sent by the client is invalid."),
    "MALFORMED_UPLOAD": (400, "The body of your request is malformed."),
    "GENERIC_NOT_FOUND": (404, "You have requested a resource that does not exist."),
    "NO_CRYPTOSERVICE": (500, "The server does not have a signing service configured."),
    "NO_KEYALGORITHM": (500, "The server does not have a key algorithm configured."),
    "INVALID_GUN": (400, "The server does not support actions on images of this name."),
    "INVALID_PARAMETERS": (400, "The parameters provided are not valid."),
}


def test_every_registered_code_is_pinned() -> None:
    found = {v.code for v in vars(errcode).values() if isinstance(v, ErrorCode)}
    assert found == set(REGISTERED)


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_code_status_message_and_body(name: str) -> None:
    status, message = REGISTERED[name]
    code = getattr(errcode, name)
    assert (code.code, code.status, code.message) == (name, status, message)
    assert code.body() == b'{"errors":[{"code":"%s","message":"%s"}]}\n' % (name.encode(), message.encode())
    assert code.body(detail={}) == b'{"errors":[{"code":"%s","message":"%s","detail":{}}]}\n' % (
        name.encode(),
        message.encode(),
    )


def test_entry_detail_null_is_kept_and_omit_leaves_it_out() -> None:
    assert errcode.UNAUTHORIZED.entry(detail=None) == {
        "code": "UNAUTHORIZED",
        "message": "authentication required",
        "detail": None,
    }
    assert "detail" not in errcode.UNAUTHORIZED.entry(detail=OMIT)
    assert errcode.DENIED.entry("other words") == {"code": "DENIED", "message": "other words"}


def test_answered_changes_only_status_and_message() -> None:
    assert errcode.MALFORMED_UPLOAD.answered(413) == ErrorCode(
        "MALFORMED_UPLOAD", "The body of your request is malformed.", 413
    )
    assert errcode.UNKNOWN.answered(503, "down") == ErrorCode("UNKNOWN", "down", 503)


# --- the encoder: Go's encoding/json bytes --------------------------------------------------------

GO_BYTES = [
    # json.Marshal's HTML-safe escaping of < > & and the JavaScript line terminators
    ("<script>&amp;</script>", b'"\\u003cscript\\u003e\\u0026amp;\\u003c/script\\u003e"'),
    ("a\u2028b\u2029c", b'"a\\u2028b\\u2029c"'),
    # quote, backslash and the short escapes; other control characters as \u00XX in lower-case hex
    ('"\\\n\r\t', b'"\\"\\\\\\n\\r\\t"'),
    ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
    # DEL and non-ASCII stay raw UTF-8
    ("\x7f\u00e9\u65e5\U0001f600", '"\x7f\u00e9\u65e5\U0001f600"'.encode()),
    # a lone surrogate (Python's decoding of "\ud800") is U+FFFD, as Go's decoder makes it
    ("x\ud800y", '"x\ufffdy"'.encode()),
    # compact, insertion order kept (Go marshals struct fields in declaration order)
    ({"b": [1, None, True], "a": {"<": ">"}}, b'{"b":[1,null,true],"a":{"\\u003c":"\\u003e"}}'),
]


@pytest.mark.parametrize(("value", "expected"), GO_BYTES)
def test_go_json_matches_go(value: object, expected: bytes) -> None:
    assert go_json(value) == expected
    assert go_json_line(value) == expected + b"\n"


def test_body_escapes_a_message_as_go() -> None:
    body = errcode.INVALID_REQUEST.body("unknown service '<x>&'")
    assert body == b'{"errors":[{"code":"INVALID_REQUEST","message":"unknown service \'\\u003cx\\u003e\\u0026\'"}]}\n'


# --- the servers use it --------------------------------------------------------------------------


def test_trust_server_error_body_and_its_own_statuses() -> None:
    err = trust_errors.ServerError(errcode.INVALID_ROLE, "a<b")
    assert err.status == 400
    assert err.body() == (
        b'{"errors":[{"code":"INVALID_ROLE","message":"The role you are attempting to operate on is invalid.",'
        b'"detail":"a\\u003cb"}]}\n'
    )
    assert (trust_errors.TOO_LARGE.code, trust_errors.TOO_LARGE.status) == ("MALFORMED_UPLOAD", 413)
    assert (trust_errors.BODY_TIMEOUT.code, trust_errors.BODY_TIMEOUT.status) == ("MALFORMED_UPLOAD", 408)


def test_token_server_bodies() -> None:
    assert scopes.denied_body() == errcode.DENIED.body()
    assert scopes.unauthorized_body([]) == (
        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}\n'
    )
    assert throttle.Throttled(7).body() == (
        b'{"errors":[{"code":"TOOMANYREQUESTS","message":'
        b'"too many failed authentication attempts; retry in 7 seconds"}]}\n'
    )


# the registry's mapping: class -> (code, status, message); bodies as the registry writes them today
REGISTRY = {
    registry_errors.BlobUnknown: ("BLOB_UNKNOWN", 404, "blob unknown to registry"),
    registry_errors.BlobUploadInvalid: ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
    registry_errors.BlobUploadUnknown: ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"),
    registry_errors.DigestInvalid: ("DIGEST_INVALID", 400, "provided digest did not match uploaded content"),
    registry_errors.ManifestBlobUnknown: (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    ),
    registry_errors.ManifestInvalid: ("MANIFEST_INVALID", 400, "manifest invalid"),
    registry_errors.ManifestUnknown: ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry"),
    registry_errors.NameInvalid: ("NAME_INVALID", 400, "invalid repository name"),
    registry_errors.NameUnknown: ("NAME_UNKNOWN", 404, "repository name not known to registry"),
    registry_errors.SizeInvalid: ("SIZE_INVALID", 400, "provided length did not match content length"),
    registry_errors.TooLarge: ("SIZE_INVALID", 413, "manifest too large"),
    registry_errors.UploadTimeout: (
        "BLOB_UPLOAD_INVALID",
        408,
        "request body stalled: no data within the body timeout",
    ),
    registry_errors.ManifestTimeout: ("MANIFEST_INVALID", 408, "request body stalled: no data within the body timeout"),
    registry_errors.TooManyRequests: ("TOOMANYREQUESTS", 429, "too many requests"),
    registry_errors.TagInvalid: ("TAG_INVALID", 400, "manifest tag did not match URI"),
    registry_errors.Unauthorized: ("UNAUTHORIZED", 401, "authentication required"),
    registry_errors.Denied: ("DENIED", 403, "requested access to the resource is denied"),
    registry_errors.Unsupported: ("UNSUPPORTED", 405, "the operation is unsupported"),
    registry_errors.Unavailable: ("UNAVAILABLE", 503, "service unavailable"),
    registry_errors.NotFound: ("NOT_FOUND", 404, "no such endpoint"),
    registry_errors.ParameterInvalid: ("UNSUPPORTED", 400, "invalid set of query parameters"),
    registry_errors.RangeInvalid: ("RANGE_INVALID", 416, "invalid content range"),
    registry_errors.PaginationInvalid: ("PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"),
    registry_errors.StorageFailure: ("UNKNOWN", 503, "storage backend unavailable"),
}


def test_every_registry_error_is_pinned() -> None:
    found = {
        v
        for v in vars(registry_errors).values()
        if isinstance(v, type) and issubclass(v, registry_errors.RegistryError) and v is not registry_errors.RegistryError
    }
    assert found == set(REGISTRY)


@pytest.mark.parametrize("cls", list(REGISTRY), ids=lambda c: c.__name__)
def test_registry_error_status_and_body(cls: type[registry_errors.RegistryError]) -> None:
    code, status, message = REGISTRY[cls]
    response = error_response(cls())
    assert response.status_code == status
    # registry:2's json.Encoder: compact, one trailing newline
    expected = '{"errors":[{"code":"' + code + '","message":"' + message + '","detail":{}}]}\n'
    assert response.body == expected.encode()
    with_detail = error_response(cls("why", detail={"digest": "sha256:x"}))
    expected = '{"errors":[{"code":"' + code + '","message":"why","detail":{"digest":"sha256:x"}}]}\n'
    assert with_detail.body == expected.encode()

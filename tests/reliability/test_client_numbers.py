"""Numbers (and other strings) a client controls never produce a 5xx or a traceback.

Issue 15: ``Range: bytes=<5000 digits>-`` and a 5000-digit ``Content-Range`` made the registry
answer 503 with a stack trace (Python's ``int()`` raises ValueError beyond 4300 digits). Every
number the servers read now goes through :func:`trustbox.httpnum.parse_decimal`. Here every
header, query parameter and path number the registry, the trust server and the token server
parse is fed long, huge, negative, signed, underscored and other-script numbers and arbitrary
strings, straight into the ASGI apps in-process; each answer must be below 500, carry the
upstream JSON error body when it is an error, and nothing may be logged at ERROR level.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import HtpasswdFile, add_user
from trustbox.auth.server import TokenServerConfig
from trustbox.auth.server import create_app as create_token_app
from trustbox.auth.tokens import TokenIssuer, b64url_encode, generate_signing_material, sign
from trustbox.errors import FormatError
from trustbox.httpnum import INT32_MAX, INT32_MIN, NumberRangeError, NumberSyntaxError, parse_decimal
from trustbox.registry.app import create_app as create_registry_app
from trustbox.registry.config import RegistryConfig
from trustbox.tuf.timefmt import parse_time

PER_PARAMETER = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
BIG = "9" * 5000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
GUN = "example.com/numbers/app"
SERVICE = "registry.test"
ISSUER = "trustbox-test"

# -- what clients send ---------------------------------------------------------------------------

_ODD_NUMBERS = [
    "0", "1", "-1", "+1", "-0", "+0", " 1", "1 ", "\t1", "1_000", "0x10", "0o7", "1e3", "1.5", "1,2",
    "00", "0" * 60 + "1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967296",
    "", "-", "+", "nan", "inf", "-inf", "\u221e", "1\n", "1\x00", "\u0661", "\u0661\u0662\u0663",
    "\u00b2", "\u00b9\u00b2", "\U0001d7e1", "\uff11\uff12",
    "\u216b", "\u0967\u0968", BIG, "-" + BIG, "0-" + BIG, BIG + "-" + BIG,
]
_digits = st.text(alphabet="0123456789", min_size=1, max_size=6000)
#: numbers: odd spellings, ordinary integers, 1-6000 digit strings, often beyond the 4300 digits
#: int() takes, negatives, digits of other scripts (Nd/No/Nl), and arbitrary short text
numbers = st.one_of(
    st.sampled_from(_ODD_NUMBERS),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=4290, max_value=6000).map(lambda n: "1" + "0" * n),
    _digits,
    _digits.map(lambda d: "-" + d),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=30),
    st.text(max_size=40),
)
_ranges = st.one_of(
    numbers,
    st.builds("bytes={}-".format, numbers),
    st.builds("bytes=-{}".format, numbers),
    st.builds("bytes=0-{}".format, numbers),
    st.builds("bytes={}-{}".format, numbers, numbers),
    st.builds("bytes= {} - {} ".format, numbers, numbers),
)
_content_ranges = st.one_of(
    numbers,
    st.builds("{}-{}".format, numbers, numbers),
    st.builds("0-{}".format, numbers),
    st.builds("{}-2".format, numbers),
    st.builds("bytes {}-{}/*".format, numbers, numbers),
    st.builds("0-2/{}".format, numbers),
)
_strings = st.one_of(numbers, st.text(max_size=300))


def _header_value(text: str) -> bytes:
    """``text`` as a client can put it in a header (HTTP/1.1 parsers drop CR, LF and NUL)."""
    return "".join(c for c in text if c not in "\r\n\x00").encode("utf-8", "surrogatepass")


def _q(**params: str) -> bytes:
    """A query string with every value percent-encoded as a client's URL library does."""
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items()).encode("ascii")


# -- in-process ASGI ----------------------------------------------------------------------------


@dataclass
class Reply:
    """One response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes
    method: str


@dataclass
class Server:
    """An ASGI app with the fixed names (digests, upload sessions) the probes use."""

    app: Any
    loop: asyncio.AbstractEventLoop
    names: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, query: bytes = b"", headers: dict[str, bytes] | None = None,
                body: bytes = b"") -> Reply:
        """Send one request with exact header bytes and query string; exceptions propagate."""
        return self.loop.run_until_complete(self._call(method, path, query, headers or {}, body))

    async def _call(self, method: str, path: str, query: bytes, headers: dict[str, bytes], body: bytes) -> Reply:
        raw_headers = [(b"host", b"server.test")]
        raw_headers += [(k.lower().encode("latin-1"), v) for k, v in headers.items()]
        if body and "content-length" not in {k.lower() for k in headers}:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode("utf-8", "surrogatepass"),
            "root_path": "", "query_string": query, "headers": raw_headers,
            "client": ("127.0.0.1", 40000), "server": ("server.test", 80),
        }
        sent = False
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected until the response is done
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        data = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return Reply(start["status"], dict(start.get("headers", [])), data, method)


def _check(reply: Reply, caplog: pytest.LogCaptureFixture, what: object) -> None:
    """Below 500, a JSON error body (``{"errors": [...]}``) on errors, nothing logged at ERROR."""
    assert reply.status < 500, (what, reply.status, reply.body[:300])
    if reply.status >= 400 and reply.body and reply.method != "HEAD":
        body = json.loads(reply.body)
        assert isinstance(body["errors"], list) and body["errors"], (what, body)
        assert all(isinstance(e["code"], str) for e in body["errors"]), (what, body)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, (what, [r.getMessage() for r in bad], caplog.text[-2000:])


def _error_code(reply: Reply) -> str:
    return str(json.loads(reply.body)["errors"][0]["code"])


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every in-process request of this module."""
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


# -- the registry ---------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, loop: asyncio.AbstractEventLoop) -> Server:
    """A registry (filesystem) holding repository ``a``: a 100-byte blob and a tagged manifest."""
    root = tmp_path_factory.mktemp("registry")
    srv = Server(create_registry_app(RegistryConfig(storage=str(root / "store"))), loop)
    blob = bytes(range(100))
    config = b'{"architecture":"amd64","os":"linux"}'
    for data in (blob, config):
        r = srv.request("POST", "/v2/a/blobs/uploads/", _q(digest=_sha(data)), body=data)
        assert r.status == 201, r.body
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _sha(blob), "size": 100}],
    }).encode()
    r = srv.request("PUT", "/v2/a/manifests/t", headers={"content-type": OCI_MANIFEST.encode()}, body=manifest)
    assert r.status == 201, r.body
    srv.names.update(blob=_sha(blob), manifest=_sha(manifest), manifest_body=manifest.decode(), abc=_sha(b"abc"))
    return srv


def _with_session(srv: Server, method: str, query: bytes, headers: dict[str, bytes], body: bytes = b"abc") -> Reply:
    """``method`` on a fresh upload session of ``a``, which is cancelled afterwards."""
    r = srv.request("POST", "/v2/a/blobs/uploads/")
    assert r.status == 202, r.body
    location = r.headers[b"location"].decode()
    try:
        return srv.request(method, location, query, headers, body)
    finally:
        srv.request("DELETE", location)


Probe = Callable[[Server, str], Reply]

REGISTRY_PROBES: dict[str, Probe] = {
    "Range GET": lambda s, v: s.request("GET", f"/v2/a/blobs/{s.names['blob']}", headers={"range": _header_value(v)}),
    "Range HEAD": lambda s, v: s.request("HEAD", f"/v2/a/blobs/{s.names['blob']}",
                                         headers={"range": _header_value(v)}),
    "Content-Range PATCH": lambda s, v: _with_session(s, "PATCH", b"", {"content-range": _header_value(v)}),
    "Content-Range PUT": lambda s, v: _with_session(s, "PUT", _q(digest=s.names["abc"]),
                                                    {"content-range": _header_value(v)}),
    "Content-Length PUT upload": lambda s, v: _with_session(s, "PUT", _q(digest=s.names["abc"]),
                                                            {"content-length": _header_value(v)}),
    "Content-Length POST monolithic": lambda s, v: s.request(
        "POST", "/v2/a/blobs/uploads/", _q(digest=s.names["abc"]), {"content-length": _header_value(v)}, b"abc"),
    "Content-Length PUT manifest": lambda s, v: s.request(
        "PUT", "/v2/a/manifests/t2", b"", {"content-type": OCI_MANIFEST.encode(), "content-length": _header_value(v)},
        s.names["manifest_body"].encode()),
    "n catalog": lambda s, v: s.request("GET", "/v2/_catalog", _q(n=v)),
    "last catalog": lambda s, v: s.request("GET", "/v2/_catalog", _q(n="1", last=v)),
    "n tags": lambda s, v: s.request("GET", "/v2/a/tags/list", _q(n=v)),
    "last tags": lambda s, v: s.request("GET", "/v2/a/tags/list", _q(n="1", last=v)),
    "artifactType referrers": lambda s, v: s.request("GET", f"/v2/a/referrers/{s.names['manifest']}",
                                                     _q(artifactType=v)),
    "digest in referrers path": lambda s, v: s.request("GET", f"/v2/a/referrers/{v}"),
    "digest in blob path": lambda s, v: s.request("GET", f"/v2/a/blobs/{v}"),
    "reference in manifest path": lambda s, v: s.request("HEAD", f"/v2/a/manifests/{v}"),
    "upload id in path": lambda s, v: s.request("PATCH", f"/v2/a/blobs/uploads/{v}",
                                                headers={"content-range": b"0-2"}, body=b"abc"),
    "digest POST": lambda s, v: s.request("POST", "/v2/a/blobs/uploads/", _q(digest=v), body=b"abc"),
    "digest PUT": lambda s, v: _with_session(s, "PUT", _q(digest=v), {}),
    "mount": lambda s, v: s.request("POST", "/v2/b/blobs/uploads/", _q(mount=v, **{"from": "a"})),
    "from": lambda s, v: s.request("POST", "/v2/b/blobs/uploads/", _q(mount=s.names["blob"], **{"from": v})),
    "tag on PUT manifest": lambda s, v: s.request(
        "PUT", f"/v2/a/manifests/{s.names['manifest']}", _q(tag=v), {"content-type": OCI_MANIFEST.encode()},
        s.names["manifest_body"].encode()),
    "Accept": lambda s, v: s.request("GET", "/v2/a/manifests/t", headers={"accept": _header_value(v)}),
    "If-None-Match": lambda s, v: s.request("GET", "/v2/a/manifests/t", headers={"if-none-match": _header_value(v)}),
    "If-Modified-Since": lambda s, v: s.request("GET", f"/v2/a/blobs/{s.names['blob']}",
                                                headers={"if-modified-since": _header_value(v)}),
    "If-Range": lambda s, v: s.request("GET", f"/v2/a/blobs/{s.names['blob']}",
                                       headers={"if-range": _header_value(v), "range": b"bytes=0-9"}),
    "Content-Type PUT manifest": lambda s, v: s.request(
        "PUT", "/v2/a/manifests/t3", b"", {"content-type": _header_value(v)}, s.names["manifest_body"].encode()),
}
_REGISTRY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "Range GET": _ranges, "Range HEAD": _ranges,
    "Content-Range PATCH": _content_ranges, "Content-Range PUT": _content_ranges,
}


@pytest.mark.parametrize("name", sorted(REGISTRY_PROBES))
def test_registry_parameters_never_fail(registry: Server, caplog: pytest.LogCaptureFixture, name: str) -> None:
    probe = REGISTRY_PROBES[name]

    @PER_PARAMETER
    @given(value=_REGISTRY_VALUES.get(name, _strings))
    def run(value: str) -> None:
        caplog.clear()
        _check(probe(registry, value), caplog, (name, value[:80]))

    run()


def test_range_of_5000_digits_is_416(registry: Server, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's first case: registry:2 (Go's ParseInt) answers 416; no 503, no traceback."""
    url = f"/v2/a/blobs/{registry.names['blob']}"
    for header in (f"bytes={BIG}-", f"bytes=-{BIG}", f"bytes=0-{BIG}", f"bytes={BIG}-{BIG}",
                   "bytes=9223372036854775808-", "bytes=9223372036854775807-"):
        for method in ("GET", "HEAD"):
            caplog.clear()
            r = registry.request(method, url, headers={"range": header.encode()})
            assert r.status == 416, (header[:40], method, r.status)
            assert r.headers[b"content-range"] == b"bytes */100"
            if method == "GET":
                assert _error_code(r) == "RANGE_INVALID"
            _check(r, caplog, header[:40])
    # within int64 a range past the end is clamped (RFC 9110), as before
    r = registry.request("GET", url, headers={"range": b"bytes=90-9223372036854775807"})
    assert r.status == 206 and r.headers[b"content-range"] == b"bytes 90-99/100" and r.body == bytes(range(90, 100))
    # digits of other scripts are not digits of a Range: the header is ignored (RFC 9110)
    r = registry.request("GET", url, headers={"range": "bytes=\u0661-".encode()})
    assert r.status == 200 and len(r.body) == 100


def test_range_parsing_is_linear_in_the_header_length() -> None:
    """A long run of spaces in Range / Content-Range used to backtrack quadratically in the
    patterns (two adjacent ``\\s*``): 60,000 spaces took 8-24 s of CPU per request."""
    from trustbox.registry.errors import RangeInvalid
    from trustbox.registry.ranges import parse_byte_range, parse_content_range

    spaces = " " * 100_000
    started = time.perf_counter()
    for header in ("bytes=" + spaces + "x", "bytes=1-" + spaces + "x", "bytes" + spaces + "x"):
        assert parse_byte_range(header, 100) is None
    for header in (spaces + "x", "0-1" + spaces + "x", "bytes " + spaces + "x", "0-1/" + spaces + "x"):
        with pytest.raises(RangeInvalid):
            parse_content_range(header)
    assert time.perf_counter() - started < 2.0


def test_content_range_of_5000_digits_is_416(registry: Server, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's second case: a PATCH with a 5000-digit Content-Range is 416 RANGE_INVALID and
    leaves the session as it was."""
    r = registry.request("POST", "/v2/a/blobs/uploads/")
    location = r.headers[b"location"].decode()
    for header in (f"{BIG}-{BIG}", f"0-{BIG}", f"{BIG}-2", "0-9223372036854775808"):
        caplog.clear()
        r = registry.request("PATCH", location, headers={"content-range": header.encode()}, body=b"abc")
        assert r.status == 416 and _error_code(r) == "RANGE_INVALID", (header[:40], r.status, r.body)
        assert json.loads(r.body)["errors"][0]["detail"] == {"contentRange": header[:100]}
        _check(r, caplog, header[:40])
    assert registry.request("GET", location).headers[b"range"] == b"0-0"
    r = registry.request("PATCH", location, headers={"content-range": b"0-2"}, body=b"abc")
    assert r.status == 202 and r.headers[b"range"] == b"0-2"
    registry.request("DELETE", location)


def test_content_length_of_5000_digits_is_400(registry: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Content-Length that is not plain digits or beyond int64: 400 with the JSON error, where a
    manifest PUT used to hit int() (503) for ``²`` or 5000 digits."""
    manifest = registry.names["manifest_body"].encode()
    for value in (BIG, "9223372036854775808", "\u00b2".encode().decode("latin-1"), "+3", " 3", "-3", "3_0"):
        raw = value.encode("latin-1")
        caplog.clear()
        r = registry.request("PUT", "/v2/a/manifests/cl", headers={"content-type": OCI_MANIFEST.encode(),
                                                                   "content-length": raw}, body=manifest)
        assert r.status == 400 and _error_code(r) == "MANIFEST_INVALID", (value[:40], r.status, r.body)
        r = registry.request("POST", "/v2/a/blobs/uploads/", _q(digest=registry.names["abc"]),
                             {"content-length": raw}, b"abc")
        assert r.status == 400 and _error_code(r) == "BLOB_UPLOAD_INVALID", (value[:40], r.status, r.body)
        _check(r, caplog, value[:40])
    r = registry.request("PUT", "/v2/a/manifests/cl", headers={"content-type": OCI_MANIFEST.encode(),
                                                               "content-length": b"9223372036854775807"},
                         body=manifest)
    assert r.status == 413


def test_pagination_n_is_go_atoi(registry: Server, caplog: pytest.LogCaptureFixture) -> None:
    """``n`` as registry:2 reads it (strconv.Atoi: ASCII digits, optional sign, int64)."""
    for n in (BIG, "9223372036854775808", "\u0661", "1_0", " 1", "1.0", "-1", "-" + BIG):
        caplog.clear()
        r = registry.request("GET", "/v2/_catalog", _q(n=n))
        assert r.status == 400 and _error_code(r) == "PAGINATION_NUMBER_INVALID", (n[:40], r.status, r.body)
        _check(r, caplog, n[:40])
    assert json.loads(registry.request("GET", "/v2/_catalog", _q(n=BIG)).body)["errors"][0]["detail"] == {
        "n": BIG[:50]}
    for n in ("+1", "01"):
        r = registry.request("GET", "/v2/a/tags/list", _q(n=n))
        assert r.status == 200 and len(json.loads(r.body)["tags"]) == 1, n
    assert registry.request("GET", "/v2/a/tags/list", _q(n="9223372036854775807")).status == 200


# -- the trust server -----------------------------------------------------------------------------



@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory, loop: asyncio.AbstractEventLoop) -> Iterator[Server]:
    """A trust server on SQLite with one published repository (root, targets, snapshot)."""
    from tests.helpers.notary_upload import multipart
    from tests.helpers.simulator import RepositorySimulator, target
    from tests.trustserver.ts_env import make_app
    from tests.trustserver.ts_helpers import parse_key
    from trustbox.tuf.timefmt import utcnow

    app = make_app({"db": f"sqlite:///{tmp_path_factory.mktemp('trust')}/trust.db", "table_prefix": ""})
    srv = Server(app, loop)
    ts = parse_key(srv.request("GET", f"/v2/{GUN}/_trust/tuf/timestamp.key").body)
    repo = RepositorySimulator(GUN, utcnow(), timestamp_key=ts)
    body, ct = multipart({"root": repo.make_root(), "targets": repo.make_targets({"v1": target(b"p")}, version=2),
                          "snapshot": repo.make_snapshot(version=2)})
    r = srv.request("POST", f"/v2/{GUN}/_trust/tuf/", headers={"content-type": ct.encode()}, body=body)
    assert r.status == 200, r.body
    srv.names["content_type"] = ct
    srv.names["checksum"] = hashlib.sha256(repo.docs["root"]).hexdigest()
    yield srv
    app.close()


def _update(s: Server, content_length: bytes | None = None, content_type: bytes | None = None) -> Reply:
    body = b"--trustboxboundary1234\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x\"\r\n\r\n{}\r\n" \
           b"--trustboxboundary1234--\r\n"
    headers = {"content-type": content_type if content_type is not None else s.names["content_type"].encode()}
    if content_length is not None:
        headers["content-length"] = content_length
    return s.request("POST", f"/v2/{GUN}/_trust/tuf/", b"", headers, body)


TRUST_PROBES: dict[str, Probe] = {
    "version in path": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/{v}.root.json"),
    "checksum in path": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/root.{v}.json"),
    "role in path": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/1.{v}.json"),
    "records": lambda s, v: s.request("GET", "/v2/_trust/changefeed", _q(records=v)),
    "change_id": lambda s, v: s.request("GET", "/v2/_trust/changefeed", _q(change_id=v, records="10")),
    "change_id and records per GUN": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/changefeed",
                                                            _q(change_id=v, records=v)),
    "raw changefeed query": lambda s, v: s.request("GET", "/v2/_trust/changefeed",
                                                   v.encode("utf-8", "surrogatepass")),
    "Content-Length update": lambda s, v: _update(s, content_length=_header_value(v)),
    "Content-Type update": lambda s, v: _update(s, content_type=_header_value(v)),
    "Accept": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/root.json", headers={"accept": _header_value(v)}),
    "If-None-Match": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/2.targets.json",
                                            headers={"if-none-match": _header_value(v)}),
    "If-Modified-Since": lambda s, v: s.request("GET", f"/v2/{GUN}/_trust/tuf/timestamp.json",
                                                headers={"if-modified-since": _header_value(v)}),
}


@pytest.mark.parametrize("name", sorted(TRUST_PROBES))
def test_trust_server_parameters_never_fail(trust: Server, caplog: pytest.LogCaptureFixture, name: str) -> None:
    probe = TRUST_PROBES[name]

    @PER_PARAMETER
    @given(value=_strings)
    def run(value: str) -> None:
        caplog.clear()
        _check(probe(trust, value), caplog, (name, value[:80]))

    run()


def test_trust_server_numbers_as_notary_server(trust: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Version paths are Go's Atoi (int64), changefeed numbers Go's ParseInt(…, 10, 32); update
    bodies announcing more than an int64 are too large."""
    base = f"/v2/{GUN}/_trust/tuf/"
    r = trust.request("GET", base + BIG + ".root.json")
    assert r.status == 404 and json.loads(r.body)["errors"][0]["detail"] == {"Func": "Atoi", "Num": BIG, "Err": {}}
    r = trust.request("GET", base + "9223372036854775807.root.json")  # Atoi succeeds; no such version
    assert r.status == 404 and json.loads(r.body)["errors"][0]["detail"] == {}
    assert trust.request("GET", base + "0001.root.json").status == 200
    cases = {BIG: "value out of range", "2147483648": "value out of range", "\u0661": "invalid syntax",
             "5\n": "invalid syntax", "1_0": "invalid syntax", " 5": "invalid syntax"}
    for records, why in cases.items():
        caplog.clear()
        r = trust.request("GET", "/v2/_trust/changefeed", _q(records=records))
        detail = json.loads(r.body)["errors"][0]["detail"]
        assert r.status == 400 and detail.endswith(f": {why}"), (records[:40], detail[:200])
        _check(r, caplog, records[:40])
    assert trust.request("GET", "/v2/_trust/changefeed", _q(records="-2147483648")).status == 200
    r = trust.request("GET", "/v2/_trust/changefeed", _q(records="1", change_id=BIG))
    assert r.status == 400 and json.loads(r.body)["errors"][0] == {
        "code": "INVALID_PARAMETERS", "message": "The parameters provided are not valid.", "detail": {}}
    for value, status in ((BIG.encode(), 413), (b"9223372036854775808", 413), (b"-5", 400), (b"+5", 400),
                          ("\u00b2".encode("latin-1"), 400)):
        caplog.clear()
        r = _update(trust, content_length=value)
        assert r.status == status and _error_code(r) == "MALFORMED_UPLOAD", (value[:40], r.status, r.body)
        _check(r, caplog, value[:40])


def test_update_with_overflowing_expiry_is_malformed_json(trust: Server, caplog: pytest.LogCaptureFixture) -> None:
    """An ``expires`` that datetime cannot hold in UTC (year 9999 at -01:00) used to escape as
    OverflowError: a 500 with a traceback. Now it is MALFORMED_JSON like other bad documents."""
    from tests.helpers.notary_upload import multipart

    for expires in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2030-01-01T00:00:00+99:00",
                    "\u0662\u0660\u0663\u0660-01-01T00:00:00Z"):
        doc = json.dumps({"signed": {"_type": "Targets", "expires": expires, "targets": {}, "version": 3},
                          "signatures": []}).encode()
        body, ct = multipart({"targets": doc})
        caplog.clear()
        r = trust.request("POST", f"/v2/{GUN}/_trust/tuf/", headers={"content-type": ct.encode()}, body=body)
        assert r.status == 400 and _error_code(r) == "MALFORMED_JSON", (expires, r.status, r.body)
        _check(r, caplog, expires)


# -- the token server, and bearer tokens at the registry --------------------------------------------


@dataclass
class TokenSetup:
    """The token server app and a registry trusting its tokens."""

    token: Server
    registry: Server
    issuer: TokenIssuer


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory, loop: asyncio.AbstractEventLoop) -> TokenSetup:
    d = tmp_path_factory.mktemp("tokens")
    key_pem, cert_pem = generate_signing_material("numbers test issuer")
    (d / "cert.pem").write_bytes(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issuer = TokenIssuer(ISSUER, key)
    add_user(d / "htpasswd", "alice", "alice-pw", cost=4)

    rules = AccessRules.from_dict({"rule": [{"subject": "alice", "repository": "*", "actions": ["*"]}]})
    # no failure throttle: the probes send thousands of wrong credentials on purpose, and what is
    # tested here is the parsing of numbers (the throttle has its own tests in tests/auth)
    token_app = create_token_app(TokenServerConfig(issuer, HtpasswdFile(d / "htpasswd"), rules,
                                                   frozenset({SERVICE}), throttle=None))
    reg_app = create_registry_app(RegistryConfig(
        storage=str(d / "store"), auth_token_realm="https://auth.test/token", auth_token_service=SERVICE,
        auth_token_issuer=ISSUER, auth_token_rootcertbundle=str(d / "cert.pem")))
    return TokenSetup(Server(token_app, loop), Server(reg_app, loop), issuer)


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogatepass"))


def _signed(issuer: TokenIssuer, claims_json: str) -> bytes:
    """A correctly signed token whose claims are the raw JSON text ``claims_json``."""
    head = b64url_encode(json.dumps(issuer.header()).encode())
    body = b64url_encode(claims_json.encode("utf-8", "surrogatepass"))
    sig = b64url_encode(sign(issuer.key, issuer.alg, f"{head}.{body}".encode()))
    return f"Bearer {head}.{body}.{sig}".encode()


def _claims(exp: str, nbf: str = "0", iat: str = "0") -> str:
    """Token claims as JSON text, the numbers inserted verbatim (they may not even be JSON)."""
    return (f'{{"iss":"{ISSUER}","aud":"{SERVICE}","sub":"alice","exp":{exp},"nbf":{nbf},'
            f'"iat":{iat},"access":[{{"type":"repository","name":"a","actions":["pull"]}}]}}')


def _token_get(t: TokenSetup, query: bytes, authorization: bytes | None = _basic("alice", "alice-pw")) -> Reply:
    return t.token.request("GET", "/token", query, {"authorization": authorization} if authorization else {})


TOKEN_PROBES: dict[str, Callable[[TokenSetup, str], Reply]] = {
    "service": lambda t, v: _token_get(t, _q(service=v, scope="repository:a/b:pull")),
    "scope": lambda t, v: _token_get(t, _q(service=SERVICE, scope=v)),
    "scope twice": lambda t, v: _token_get(t, _q(service=SERVICE, scope=v) + b"&" + _q(scope=v + v)),
    "account": lambda t, v: _token_get(t, _q(service=SERVICE, account=v, scope="repository:a/b:pull")),
    "expires_in": lambda t, v: _token_get(t, _q(service=SERVICE, expires_in=v)),
    "offline_token and client_id": lambda t, v: _token_get(t, _q(service=SERVICE, offline_token=v, client_id=v)),
    "Authorization": lambda t, v: _token_get(t, _q(service=SERVICE), _header_value(v)),
    "Basic credentials": lambda t, v: _token_get(t, _q(service=SERVICE), _basic(v or "x", v)),
    "Bearer at the registry": lambda t, v: t.registry.request("GET", "/v2/a/tags/list",
                                                              headers={"authorization": b"Bearer " + _header_value(v)}),
    "token claim numbers": lambda t, v: t.registry.request("GET", "/v2/a/tags/list",
                                                           headers={"authorization": _signed(t.issuer, _claims(v, v, v))}),
    "from with a token": lambda t, v: t.registry.request(
        "POST", "/v2/b/blobs/uploads/", _q(mount="sha256:" + "0" * 64, **{"from": v}),
        {"authorization": _signed(t.issuer, _claims("9999999999"))}),
}


@pytest.mark.parametrize("name", sorted(TOKEN_PROBES))
def test_token_parameters_never_fail(tokens: TokenSetup, caplog: pytest.LogCaptureFixture, name: str) -> None:
    probe = TOKEN_PROBES[name]

    @PER_PARAMETER
    @given(value=_strings)
    def run(value: str) -> None:
        caplog.clear()
        _check(probe(tokens, value), caplog, (name, value[:80]))

    run()


def test_token_setup_works(tokens: TokenSetup) -> None:
    """The probes above reach the deep paths: a token is issued and a signed token is accepted."""
    r = _token_get(tokens, _q(service=SERVICE, scope="repository:a/b:pull"))
    assert r.status == 200 and json.loads(r.body)["expires_in"] > 0
    r = tokens.registry.request("GET", "/v2/a/tags/list", headers={"authorization": _signed(tokens.issuer,
                                                                                            _claims("9999999999"))})
    assert r.status == 404 and _error_code(r) == "NAME_UNKNOWN"  # authorised; the repository is empty
    r = tokens.registry.request("GET", "/v2/a/tags/list", headers={"authorization": _signed(tokens.issuer,
                                                                                            _claims(BIG))})
    assert r.status == 401


def test_challenge_naming_a_repository_outside_latin1_is_utf8(tokens: TokenSetup,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """The scope in ``WWW-Authenticate`` carries the client's repository name (path or ``from=``);
    one outside latin-1 made the middleware raise UnicodeEncodeError (500). Go writes UTF-8."""
    r = tokens.registry.request("GET", "/v2/\u0660x/tags/list")
    _check(r, caplog, "path")
    assert r.status == 401 and r.headers[b"www-authenticate"] == (
        'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:\u0660x:pull"'
    ).encode("utf-8")
    r = tokens.registry.request("POST", "/v2/a/blobs/uploads/", _q(mount="sha256:" + "0" * 64, **{"from": "\u4e2d"}),
                                {"authorization": _signed(tokens.issuer, _claims("9999999999"))})
    _check(r, caplog, "from")
    assert r.status == 401 and "repository:\u4e2d:pull".encode() in r.headers[b"www-authenticate"]


# -- the shared parser ----------------------------------------------------------------------------


def test_parse_decimal_accepts_only_ascii_digits_within_bounds() -> None:
    assert parse_decimal("0") == 0 and parse_decimal("007") == 7 and parse_decimal(b"42") == 42
    assert parse_decimal("0" * 5000 + "9223372036854775807") == 2**63 - 1  # leading zeros, as Go
    assert parse_decimal("-2147483648", min_value=INT32_MIN, max_value=INT32_MAX, signed=True) == INT32_MIN
    assert parse_decimal("+5", signed=True) == 5
    for text in ("", "+", "-", "+1", "-1", " 1", "1 ", "1_000", "\u0661", "\u00b2", "\uff11", "1.0", "0x1",
                 "1\n", "\u216b", "++1"):
        with pytest.raises(NumberSyntaxError):
            parse_decimal(text)
    for text in ("- 1", "+-1", "--1", "+\u0661"):
        with pytest.raises(NumberSyntaxError):
            parse_decimal(text, min_value=-10, signed=True)
    for text, kwargs in ((BIG, {}), ("9223372036854775808", {}), ("2147483648", {"max_value": INT32_MAX}),
                         ("-1", {"signed": True}), ("-" + BIG, {"signed": True, "min_value": INT32_MIN}),
                         ("11", {"max_value": 10})):
        with pytest.raises(NumberRangeError):
            parse_decimal(text, **kwargs)  # type: ignore[arg-type]
    assert issubclass(NumberSyntaxError, FormatError) and issubclass(NumberRangeError, FormatError)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(numbers, st.text()))
def test_parse_decimal_raises_only_its_errors(text: str) -> None:
    try:
        value = parse_decimal(text, min_value=INT32_MIN, max_value=INT32_MAX, signed=True)
    except (NumberSyntaxError, NumberRangeError):
        return
    assert INT32_MIN <= value <= INT32_MAX and str(value) == str(int(text))


def test_parse_time_refuses_what_go_refuses() -> None:
    """Expiry timestamps: ASCII digits only, nothing after them, a datetime must hold them in UTC."""
    for text in ("\u0662\u0660\u0663\u0660-01-01T00:00:00Z", "2030-01-01T00:00:00Z\n", "2030-01-01T00:00:00+99:00",
                 "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2030-02-30T00:00:00Z"):
        with pytest.raises(FormatError):
            parse_time(text)
    assert parse_time("2030-01-01T00:00:00.123456789+05:30").isoformat() == "2029-12-31T18:30:00.123456+00:00"

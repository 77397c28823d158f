"""The registry client reads no body beyond the cap of its kind (``client/capped.py``): the fake
registry behind ``httpx.MockTransport``, with chosen answers replaced by 64 MiB bodies that count
what the client took; redirects (S3) are followed by the client itself under the same caps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.client.endless import CHUNK, Bodies
from tests.images.fake_registry import FakeRegistry
from trustbox.client.capped import LIST_BODY_LIMIT, SMALL_BODY_LIMIT, TOKEN_BODY_LIMIT, ResponseTooLargeError
from trustbox.client.images.distribution import (
    MAX_REDIRECTS,
    RegistryClient,
    RegistryOptions,
    RegistryResponseError,
)
from trustbox.client.images.layout import open_source
from trustbox.client.images.transfer import RegistryDestination, Reporter, copy_image
from trustbox.errors import NetworkError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.errors import DigestMismatchError
from trustbox.oci.manifest import MAX_MANIFEST_BYTES, Manifest

Rule = Callable[[httpx.Request], bool]
REPO = "team/app"


class Wrapped:
    """The fake registry; requests matching a rule get the fake's status and headers but an endless body
    (or whatever ``answer`` returns)."""

    def __init__(self, fake: FakeRegistry) -> None:
        self.fake = fake
        self.bodies = Bodies()
        self.rules: list[tuple[Rule, Callable[[httpx.Request], httpx.Response] | None]] = []
        self.seen: list[httpx.Request] = []

    def endless(self, rule: Rule, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.rules.append((rule, answer))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        for rule, answer in self.rules:
            if rule(request):
                if answer is not None:
                    return answer(request)
                real = self.fake.handle(request)
                headers = {k: v for k, v in real.headers.items() if k.lower() not in ("content-length", "content-type")}
                return self.bodies.response(real.status_code, headers)
        return self.fake.handle(request)

    def client(self, **kw: object) -> RegistryClient:
        return RegistryClient(self.fake.host, RegistryOptions(transport=httpx.MockTransport(self.handle), **kw))  # type: ignore[arg-type]


@pytest.fixture
def reg() -> Wrapped:
    return Wrapped(FakeRegistry())


def _path(pattern: str, method: str | None = None) -> Rule:
    return lambda req: pattern in req.url.path and method in (None, req.method)


def _push(reg: Wrapped, sample: tuple[Path, Manifest], **kw: object) -> Manifest:
    root, _ = sample
    with reg.client(**kw) as c:
        return copy_image(open_source(f"oci:{root}:v1"), RegistryDestination(c, REPO, "v1"), Reporter()).top


def _layer(reg: Wrapped, top: Manifest) -> Descriptor:
    return max(top.layers, key=lambda d: d.size)


def test_every_request_asks_for_an_unencoded_body(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    _push(reg, sample)
    assert reg.seen and all(r.headers["accept-encoding"] == "identity" for r in reg.seen)


def test_upload_answers_with_endless_bodies_are_not_read(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    reg.endless(lambda req: req.method in ("POST", "PATCH", "PUT") or req.url.path == "/v2/")
    data = os.urandom(200_000)
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    with reg.client(monolithic_limit=50_000, chunk_size=64 * 1024) as c:
        c.upload_blob(REPO, desc, [data])
    top = _push(reg, sample)
    assert reg.fake.tags[REPO]["v1"] == top.digest
    assert len(reg.bodies.made) > 10 and reg.bodies.sent == 0


def test_error_bodies_are_cut_for_their_message(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    top = _push(reg, sample)
    reg.endless(_path("/manifests/"), lambda req: reg.bodies.response(500))
    with reg.client() as c, pytest.raises(RegistryResponseError, match="HTTP 500 Internal Server Error"):
        c.get_manifest(REPO, "v1")
    reg.endless(_path("/blobs/uploads/", "POST"), lambda req: reg.bodies.response(400))
    with reg.client() as c, pytest.raises(RegistryResponseError, match="cannot start blob upload"):
        c.upload_blob(REPO, _layer(reg, top), [b""])
    assert len(reg.bodies.made) == 2 and all(b.sent <= SMALL_BODY_LIMIT for b in reg.bodies.made)


def test_endless_manifest_is_cut_at_4mib(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    top = _push(reg, sample)
    reg.endless(_path("/manifests/", "GET"))
    with reg.client() as c:
        with pytest.raises(DigestMismatchError, match=f"manifest v1: more than {MAX_MANIFEST_BYTES} bytes"):
            c.get_manifest(REPO, "v1")
        with pytest.raises(DigestMismatchError, match=f"manifest {top.digest}: more than {top.size} bytes"):
            c.get_manifest(REPO, top.digest, Descriptor("", top.digest, top.size))
        # a huge descriptor does not lift the cap
        with pytest.raises(DigestMismatchError, match=f"more than {MAX_MANIFEST_BYTES} bytes"):
            c.get_manifest(REPO, top.digest, Descriptor("", top.digest, 1 << 40))
    reg.bodies.assert_bounded(MAX_MANIFEST_BYTES, CHUNK)


def test_announced_oversize_manifest_and_blob_are_refused_unread(reg: Wrapped, sample: tuple[Path, Manifest],
                                                                 tmp_path: Path) -> None:
    top = _push(reg, sample)
    layer = _layer(reg, top)
    big = {"Content-Length": str(1 << 40)}
    reg.endless(_path("/manifests/", "GET"), lambda req: reg.bodies.response(200, big))
    reg.endless(_path("/blobs/", "GET"), lambda req: reg.bodies.response(200, big))
    with reg.client() as c:
        with pytest.raises(DigestMismatchError, match="1099511627776 bytes announced"):
            c.get_manifest(REPO, "v1")
        with pytest.raises(DigestMismatchError, match="1099511627776 bytes announced"):
            c.download_blob(REPO, layer, tmp_path / "out" / "blob")
    assert reg.bodies.sent == 0
    assert list((tmp_path / "out").iterdir()) == []


def test_blob_longer_than_its_descriptor_is_cut(reg: Wrapped, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    top = _push(reg, sample)
    layer = _layer(reg, top)
    reg.endless(_path(f"/blobs/{layer.digest}", "GET"))
    with reg.client() as c, pytest.raises(DigestMismatchError, match=f"blob {layer.digest}: more than {layer.size} bytes"):
        c.download_blob(REPO, layer, tmp_path / "out" / "blob")
    reg.bodies.assert_bounded(layer.size, 1024 * 1024)
    assert list((tmp_path / "out").iterdir()) == []


def test_endless_tags_list_is_cut(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    _push(reg, sample)
    reg.endless(_path("/tags/list"))
    with reg.client() as c, pytest.raises(ResponseTooLargeError, match=f"more than {LIST_BODY_LIMIT} bytes"):
        c.list_tags(REPO)
    reg.bodies.assert_bounded(LIST_BODY_LIMIT, CHUNK)


@pytest.mark.parametrize("body", [b'{"tags":"v1"}', b"[1,2]", b"[" * 100_000 + b"]" * 100_000])
def test_odd_tags_lists_are_network_errors(reg: Wrapped, body: bytes) -> None:
    reg.endless(_path("/tags/list"), lambda req: httpx.Response(200, content=body))
    with reg.client() as c, pytest.raises(NetworkError, match="tags list"):
        c.list_tags(REPO)


def test_endless_ping_and_challenge_bodies_and_token(reg: Wrapped, sample: tuple[Path, Manifest]) -> None:
    _push(reg, sample)
    reg.fake.auth = "bearer"
    reg.endless(lambda req: req.url.host != "auth.test" and not req.headers.get("authorization"))
    with reg.client() as c:
        assert c.list_tags(REPO) == ["v1"]  # the ping's and the challenge's bodies were not needed
    assert len(reg.bodies.made) == 2 and reg.bodies.sent == 0
    reg.endless(lambda req: req.url.host == "auth.test", lambda req: reg.bodies.response(prefix=b'{"token":"'))
    with reg.client() as c, pytest.raises(ResponseTooLargeError, match=f"more than {TOKEN_BODY_LIMIT} bytes"):
        c.list_tags(REPO)
    reg.bodies.assert_bounded(TOKEN_BODY_LIMIT, CHUNK)


# --- redirects -----------------------------------------------------------------------------------


def _to_s3(reg: Wrapped, target: str) -> None:
    """Authorized blob GETs redirect (307, endless body) to ``target`` + the path; S3 serves the fake's bytes."""
    reg.endless(lambda req: req.url.host == "s3.test" or req.url.path.startswith("/s3/"),
                lambda req: httpx.Response(200, content=reg.fake.blobs[req.url.path.rsplit("/", 1)[1]]))
    reg.endless(lambda req: _path("/blobs/sha256:", "GET")(req) and "authorization" in req.headers,
                lambda req: reg.bodies.response(307, {"Location": target + req.url.path}))


def test_blob_redirect_to_another_host_drops_the_credentials(reg: Wrapped, sample: tuple[Path, Manifest],
                                                             tmp_path: Path) -> None:
    top = _push(reg, sample)
    reg.fake.auth = "basic"
    reg.fake.users = {"u": "p"}
    _to_s3(reg, "https://s3.test/bucket")
    layer = _layer(reg, top)
    with reg.client(credentials=("u", "p")) as c:
        c.download_blob(REPO, layer, tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == reg.fake.blobs[layer.digest]
    s3 = [r for r in reg.seen if r.url.host == "s3.test"]
    assert len(s3) == 1 and "authorization" not in s3[0].headers
    redirected = [r for r in reg.seen if r.url.path.endswith(layer.digest) and r.url.host != "s3.test"]
    assert redirected[-1].headers["authorization"].startswith("Basic ")
    assert reg.bodies.sent == 0


def test_blob_redirect_on_the_same_host_keeps_them(reg: Wrapped, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    top = _push(reg, sample)
    reg.fake.auth = "basic"
    reg.fake.users = {"u": "p"}
    _to_s3(reg, "/s3")
    layer = _layer(reg, top)
    with reg.client(credentials=("u", "p")) as c:
        c.download_blob(REPO, layer, tmp_path / "blob")
    s3 = [r for r in reg.seen if r.url.path.startswith("/s3/")]
    assert len(s3) == 1 and s3[0].headers["authorization"].startswith("Basic ")


def test_redirect_loops_and_odd_targets_are_network_errors(reg: Wrapped, sample: tuple[Path, Manifest],
                                                          tmp_path: Path) -> None:
    top = _push(reg, sample)
    layer = _layer(reg, top)
    reg.endless(_path("/blobs/", "GET"), lambda req: reg.bodies.response(302, {"Location": req.url.path}))
    with reg.client() as c, pytest.raises(NetworkError, match=f"more than {MAX_REDIRECTS} redirects"):
        c.download_blob(REPO, layer, tmp_path / "blob")
    assert len(reg.bodies.made) == MAX_REDIRECTS + 1 and reg.bodies.sent == 0
    reg.rules.clear()
    reg.endless(_path("/blobs/", "GET"), lambda req: httpx.Response(302, headers={"Location": "ftp://s3.test/x"}))
    with reg.client() as c, pytest.raises(NetworkError, match="unsupported URL 'ftp://s3.test/x'"):
        c.download_blob(REPO, layer, tmp_path / "blob")
    reg.rules.clear()
    reg.endless(_path("/blobs/", "GET"), lambda req: httpx.Response(302, headers={"Location": "https://[::1/x"}))
    with reg.client() as c, pytest.raises(NetworkError, match="Invalid URL in location header"):
        c.download_blob(REPO, layer, tmp_path / "blob")

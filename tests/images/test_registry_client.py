"""The registry client against an in-memory fake (httpx.MockTransport)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

from tests.images.fake_registry import FakeRegistry
from trustbox.client.dockerenv import load_credentials
from trustbox.client.images.distribution import (
    RegistryAuthError,
    RegistryClient,
    RegistryOptions,
    read_manifest,
)
from trustbox.client.images.layout import OCILayoutSource, open_destination, open_source
from trustbox.client.images.transfer import RegistryDestination, RegistrySource, Reporter, copy_image
from trustbox.errors import NetworkError, NotFoundError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.errors import DigestMismatchError
from trustbox.oci.manifest import Manifest
from trustbox.oci.mediatypes import MANIFEST_TYPES
from trustbox.oci.reference import is_loopback, parse_image_ref


def _client(fake: FakeRegistry, host: str | None = None, **kw: object) -> RegistryClient:
    return RegistryClient(host or fake.host, RegistryOptions(transport=fake.transport(), **kw))  # type: ignore[arg-type]


def _push(fake: FakeRegistry, root: Path, ref: str, repo: str, tag: str, **kw: object) -> Manifest:
    with _client(fake, **kw) as c:
        return copy_image(open_source(f"oci:{root}:{ref}"), RegistryDestination(c, repo, tag), Reporter()).top


def test_push_then_pull_round_trip(multi: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = multi
    fake = FakeRegistry()
    pushed = _push(fake, root, "m", "test/multi", "latest")
    assert pushed.digest == top.digest
    assert fake.tags["test/multi"]["latest"] == top.digest
    # every child manifest and blob is there
    src = OCILayoutSource(root, "m")
    for d in top.manifests:
        assert ("test/multi", d.digest) in fake.manifests
        for b in src.manifest(d).blobs():
            assert b.digest in fake.repo_blobs["test/multi"]
    with _client(fake) as c:
        copy_image(RegistrySource(c, "test/multi", "latest"), open_destination(f"oci:{tmp_path / 'out'}:m"), Reporter())
    assert OCILayoutSource(tmp_path / "out", "m").top().raw == top.raw


def test_second_push_skips_existing_blobs(sample: tuple[Path, Manifest]) -> None:
    root, _ = sample
    fake = FakeRegistry()
    _push(fake, root, "v1", "a/b", "v1")
    puts_before = sum(1 for r in fake.requests if r.method == "PUT" and "/blobs/uploads/" in r.url.path)
    assert puts_before == 3
    with _client(fake) as c:
        res = copy_image(open_source(f"oci:{root}:v1"), RegistryDestination(c, "a/b", "v2"), Reporter())
    assert res.blobs_copied == 0 and res.blobs_skipped == 3
    assert sum(1 for r in fake.requests if r.method == "PUT" and "/blobs/uploads/" in r.url.path) == puts_before


def test_cross_repo_mount(sample: tuple[Path, Manifest]) -> None:
    root, _ = sample
    fake = FakeRegistry()
    _push(fake, root, "v1", "a/b", "v1")
    with _client(fake) as c:
        res = copy_image(open_source(f"oci:{root}:v1"), RegistryDestination(c, "c/d", "v1", mount_from=["a/b"]), Reporter())
    assert res.blobs_skipped == 3
    mounts = [r for r in fake.requests if r.method == "POST" and "mount=" in str(r.url)]
    assert len(mounts) == 3 and all("from=a%2Fb" in str(r.url) for r in mounts)


def test_large_blobs_are_uploaded_in_chunks(tmp_path: Path) -> None:
    fake = FakeRegistry()
    data = os.urandom(300_000)
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    with _client(fake, monolithic_limit=100_000, chunk_size=64 * 1024) as c:
        c.upload_blob("big/blob", desc, [data[i : i + 50_000] for i in range(0, len(data), 50_000)])
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert len(patches) == 5  # 300000 / 65536 rounded up
    assert patches[0].headers["content-range"] == "0-65535"
    assert patches[1].headers["content-range"] == "65536-131071"
    assert fake.blobs[desc.digest] == data
    # and it downloads again, verified
    with _client(fake) as c:
        out = c.download_blob("big/blob", desc, tmp_path / "blob")
    assert out.read_bytes() == data


def test_a_layer_is_uploaded_in_one_request_by_default() -> None:
    # docker and skopeo send a layer as one PATCH, containerd as one PUT: a request per 8 MiB
    # cost the registry a session round per piece (~10 % of a copy's throughput)
    fake = FakeRegistry()
    data = os.urandom(20 * 1024 * 1024)
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    with _client(fake) as c:
        c.upload_blob("big/layer", desc, [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)])
    sent = [(r.method, int(r.headers.get("content-length", "0"))) for r in fake.requests if "/blobs/uploads/" in str(r.url)]
    assert sent == [("POST", 0), ("PUT", len(data))]
    assert fake.blobs[desc.digest] == data


def test_upload_of_wrong_content_is_aborted() -> None:
    fake = FakeRegistry()
    data = b"actual content"
    desc = Descriptor("application/octet-stream", sha256_digest(b"other content!"), len(data))
    with _client(fake) as c, pytest.raises(DigestMismatchError, match=desc.digest):
        c.upload_blob("x/y", desc, [data])
    assert desc.digest not in fake.blobs
    assert fake.uploads == {}  # the session was cancelled


def test_tampered_blob_refused_naming_digest_and_no_output(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = sample
    fake = FakeRegistry()
    _push(fake, root, "v1", "test/trusttest", "latest")
    victim = top.layers[0].digest
    fake.corrupt_blob(victim)
    dest = tmp_path / "pulled"
    with _client(fake) as c, pytest.raises(DigestMismatchError) as ei:
        copy_image(RegistrySource(c, "test/trusttest", "latest"), open_destination(f"oci:{dest}"), Reporter())
    assert victim in str(ei.value)
    assert not dest.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # the single-file download leaves nothing either
    with _client(fake) as c, pytest.raises(DigestMismatchError):
        c.download_blob("test/trusttest", top.layers[0], tmp_path / "one" / "blob")
    assert list((tmp_path / "one").iterdir()) == []


def test_manifest_checks(sample: tuple[Path, Manifest]) -> None:
    root, top = sample
    fake = FakeRegistry()
    _push(fake, root, "v1", "r/m", "v1")
    with _client(fake) as c:
        assert c.get_manifest("r/m", top.digest).raw == top.raw
        assert c.get_manifest("r/m", "v1", Descriptor("", top.digest, top.size)).digest == top.digest
        with pytest.raises(DigestMismatchError, match="size mismatch"):
            c.get_manifest("r/m", "v1", Descriptor("", top.digest, top.size + 1))
        with pytest.raises(NotFoundError):
            c.get_manifest("r/m", "nope")
    fake.served[top.digest] = top.raw.replace(b'"schemaVersion":2', b'"schemaVersion": 2')
    with _client(fake) as c:
        with pytest.raises(DigestMismatchError, match="digest mismatch"):
            c.get_manifest("r/m", top.digest)
        with pytest.raises(DigestMismatchError, match="registry says"):
            c.get_manifest("r/m", "v1")


def test_accept_header_negotiates_indexes(multi: tuple[Path, Manifest]) -> None:
    root, top = multi
    fake = FakeRegistry()
    _push(fake, root, "m", "r/multi", "v1")
    with _client(fake) as c:
        m = c.get_manifest("r/multi", "v1")
    assert m.is_index and m.digest == top.digest
    gets = [r for r in fake.requests if r.method == "GET" and "/manifests/" in r.url.path]
    accept = {a.strip() for a in gets[-1].headers["accept"].split(",")}
    assert accept == set(MANIFEST_TYPES)
    puts = [r for r in fake.requests if r.method == "PUT" and "/manifests/" in r.url.path]
    assert puts[-1].headers["content-type"] == top.media_type


def test_bearer_auth_with_credentials_from_docker_config(
    sample: tuple[Path, Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, top = sample
    cfg = tmp_path / "dc"
    cfg.mkdir()
    (cfg / "config.json").write_text(
        json.dumps({"auths": {"https://registry.test": {"auth": base64.b64encode(b"alice:s3cret").decode()}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    fake = FakeRegistry(auth="bearer", users={"alice": "s3cret"})
    _push(fake, root, "v1", "team/app", "v1")
    assert fake.tags["team/app"]["v1"] == top.digest
    scopes = [r.url.params.get("scope") for r in fake.token_requests]
    assert "repository:team/app:pull,push" in scopes
    assert all(r.headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode() for r in fake.token_requests)
    # wrong password
    fake2 = FakeRegistry(auth="bearer", users={"alice": "other"})
    with pytest.raises(RegistryAuthError, match="refused the credentials"):
        _push(fake2, root, "v1", "team/app", "v1")


def test_basic_auth(sample: tuple[Path, Manifest]) -> None:
    root, top = sample
    fake = FakeRegistry(auth="basic", users={"bob": "pw"})
    with pytest.raises(RegistryAuthError, match="requires a username and password"):
        _push(fake, root, "v1", "x/y", "v1")
    _push(fake, root, "v1", "x/y", "v1", credentials=("bob", "pw"))
    assert fake.tags["x/y"]["v1"] == top.digest


def test_load_credentials_variants(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw1").decode()},
                    "127.0.0.1:5000": {"username": "u", "password": "p"},
                }
            }
        )
    )
    assert load_credentials("registry-1.docker.io", tmp_path) == ("hub", "pw1")
    assert load_credentials("127.0.0.1:5000", tmp_path) == ("u", "p")
    assert load_credentials("elsewhere:1", tmp_path) is None


def test_loopback_falls_back_to_plain_http(sample: tuple[Path, Manifest]) -> None:
    root, top = sample
    fake = FakeRegistry(host="127.0.0.1:5000", plain_http_only=True)
    _push(fake, root, "v1", "x/y", "v1")
    schemes = [r.url.scheme for r in fake.requests]
    assert schemes[0] == "https" and set(schemes[1:]) == {"http"}


def test_remote_registry_needs_tls_unless_listed_insecure(sample: tuple[Path, Manifest]) -> None:
    root, _ = sample
    fake = FakeRegistry(host="registry.example.com:5000", plain_http_only=True)
    with pytest.raises(NetworkError, match="cannot reach registry") as ei:
        _push(fake, root, "v1", "x/y", "v1")
    assert ei.value.hint and "--insecure-registry" in ei.value.hint
    assert {r.url.scheme for r in fake.requests} == {"https"}
    _push(fake, root, "v1", "x/y", "v1", insecure_registries=("registry.example.com:5000",))
    assert fake.tags["x/y"]["v1"]


def test_tags_list_pagination(sample: tuple[Path, Manifest]) -> None:
    root, _ = sample
    fake = FakeRegistry(tags_page_size=2)
    for t in ("a", "b", "c", "d", "e"):
        _push(fake, root, "v1", "p/q", t)
    with _client(fake) as c:
        assert c.list_tags("p/q") == ["a", "b", "c", "d", "e"]
    assert sum(1 for r in fake.requests if r.url.path.endswith("/tags/list") and "last=" in str(r.url)) == 2


def test_connection_refused_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    c = RegistryClient("127.0.0.1:1", RegistryOptions(transport=httpx.MockTransport(refuse)))
    with pytest.raises(NetworkError, match="cannot reach registry 127.0.0.1:1"):
        c.ping()


def test_reference_normalisation() -> None:
    r = parse_image_ref("alpine")
    assert (r.name, r.tag, r.api_host, r.familiar_name) == ("docker.io/library/alpine", "latest", "registry-1.docker.io", "alpine")
    r = parse_image_ref("127.0.0.1:5000/test/trusttest")
    assert (r.domain, r.path, r.tag) == ("127.0.0.1:5000", "test/trusttest", "latest")
    d = "sha256:" + "a" * 64
    r = parse_image_ref(f"localhost:5000/x@{d}")
    assert r.digest == d and r.tag is None and r.reference == d
    assert is_loopback("127.1.2.3:80") and is_loopback("[::1]:5000") and is_loopback("localhost")
    assert not is_loopback("registry.example.com:5000")
    for bad in ("alpine/UPPER", "x:bad tag", "x@sha256:123", ""):
        with pytest.raises(Exception, match="invalid reference format"):
            parse_image_ref(bad)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_manifest_by_digest_is_hashed_with_the_digests_algorithm(algorithm: str) -> None:
    """A pull by ``@sha512:`` is verified with sha512 (not skipped because it is not sha256); so is
    the registry's ``Docker-Content-Digest``; a malformed digest is a mismatch, not a pass."""
    raw = b'{"schemaVersion":2}'
    good = f"{algorithm}:" + hashlib.new(algorithm, raw).hexdigest()
    other = f"{algorithm}:" + hashlib.new(algorithm, raw + b" ").hexdigest()

    def answer(body: bytes, header: str | None = None) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Docker-Content-Digest": header} if header else {})

    assert read_manifest(answer(raw, good), good, 1 << 20, "manifest") == (raw, "sha256:" + hashlib.sha256(raw).hexdigest())
    with pytest.raises(DigestMismatchError, match="digest mismatch: content hashes to"):
        read_manifest(answer(raw), other, 1 << 20, "manifest")
    with pytest.raises(DigestMismatchError, match="registry says"):
        read_manifest(answer(raw, other), "v1", 1 << 20, "manifest")
    with pytest.raises(DigestMismatchError, match="manifest digest"):
        read_manifest(answer(raw), f"{algorithm}:abc", 1 << 20, "manifest")

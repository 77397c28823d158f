"""The one image reference parser (trustbox.oci.reference): docker's normalisation, and the
behaviour chosen where the two former parsers disagreed."""

from __future__ import annotations

import pytest

from trustbox.oci.errors import ReferenceError_
from trustbox.oci.reference import ImageRef, is_loopback, parse_image_ref, parse_reference

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "b" * 128


def test_no_tag_stays_untagged_and_pull_push_default_latest() -> None:
    """``alpine``: ParseNormalizedNamed keeps no tag (``trust sign alpine`` refuses it), TagNameOnly adds latest."""
    r = parse_reference("alpine")
    assert (r.name, r.tag, r.digest) == ("docker.io/library/alpine", None, None)
    assert parse_image_ref("alpine").tag == "latest"
    assert parse_image_ref("alpine").name == r.name
    assert parse_image_ref(f"alpine@{SHA256}").tag is None  # a digest is not given a tag
    assert parse_image_ref("alpine:3").tag == "3"


def test_sha512_digest_accepted_like_go_digest() -> None:
    """go-digest registers sha512: a well-formed sha512 reference parses (both parsers now agree)."""
    r = parse_reference(f"localhost:5000/x@{SHA512}")
    assert r.digest == SHA512 and r.reference == SHA512
    assert parse_image_ref(f"localhost:5000/x@{SHA512}").digest == SHA512


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x@sha512:" + "b" * 64, "invalid checksum digest length"),
        ("x@sha256:" + "A" * 64, "invalid checksum digest format"),
        ("x@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("x@sha256:123", "invalid reference format"),
    ],
)
def test_bad_digests_refused_with_go_digest_wording(text: str, message: str) -> None:
    with pytest.raises(ReferenceError_) as err:
        parse_reference(text)
    assert err.value.message == message


@pytest.mark.parametrize("host", ["registry.localhost:5000", "localhost:5000", "127.0.0.53:80", "[::1]:5000"])
def test_loopback_rule_is_one_rule(host: str) -> None:
    """``*.localhost`` is loopback for trust sign (ImageRef.loopback) and push (is_loopback) alike."""
    ref = parse_reference(f"{host}/team/app:v1")
    assert ref.loopback and is_loopback(ref.domain)


def test_remote_hosts_are_not_loopback() -> None:
    for host in ("registry.example.com:5000", "10.0.0.1", "localhost.example.com"):
        assert not is_loopback(host)
        assert not parse_reference(f"{host}/a/b:v1").loopback


def test_docker_normalisation() -> None:
    assert parse_reference("index.docker.io/library/alpine:3").name == "docker.io/library/alpine"
    r = parse_reference("127.0.0.1:5000/test/trusttest:v1")
    assert (r.domain, r.path, r.api_host, r.familiar()) == ("127.0.0.1:5000", "test/trusttest", "127.0.0.1:5000", "127.0.0.1:5000/test/trusttest:v1")
    assert isinstance(r, ImageRef) and r.original == "127.0.0.1:5000/test/trusttest:v1"
    with pytest.raises(ReferenceError_, match=r"repository name \(team/Foo\) must be lowercase"):
        parse_reference("team/Foo:v1")

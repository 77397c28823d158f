"""Sigstore attachments through the registry client (in-memory fake registry), the docker-archive
destination, the platform choice, and the usage rules of ``verify --require``."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec as ecc

from tests.images.fake_registry import FakeRegistry
from trustbox.client.dockerenv import sigstore_attachments
from trustbox.client.images.attachments import (
    NoSignatureError,
    add_signature,
    image_digests,
    read_layers,
    remove_signatures,
    sign_image,
    verify_signatures,
)
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.layout import DockerArchiveDestination, DockerArchiveSource, open_source
from trustbox.client.images.transfer import (
    EXIT_USAGE,
    RegistryDestination,
    RegistrySource,
    Reporter,
    TransferOptions,
    copy_image,
    verify_image,
)
from trustbox.errors import ConfigError, FormatError
from trustbox.oci.errors import ImageError
from trustbox.oci.manifest import Manifest
from trustbox.oci.platforms import Platform, machine_platform, parse_platform, select_platform
from trustbox.oci.simplesigning import parse_payload, signature_tag
from trustbox.tuf.keys import ECDSA, ED25519, RSA, PrivateKey

REPO = "test/app"


def _client(fake: FakeRegistry) -> RegistryClient:
    return RegistryClient(fake.host, RegistryOptions(transport=fake.transport()))


def _push(fake: FakeRegistry, root: Path, ref: str) -> Manifest:
    with _client(fake) as c:
        return copy_image(open_source(f"oci:{root}:{ref}"), RegistryDestination(c, REPO, "v1"), Reporter()).top


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {t: PrivateKey.generate(t) for t in (ECDSA, ED25519, RSA)}


def test_sign_verify_append_remove_on_an_index(multi: tuple[Path, Manifest], keys: dict[str, PrivateKey]) -> None:
    fake = FakeRegistry()
    top = _push(fake, multi[0], "m")
    ec, ed = keys[ECDSA], keys[ED25519]
    with _client(fake) as c:
        done = sign_image(c, REPO, f"{fake.host}/{REPO}", top, [ec])
        digests = done.digests
        assert digests == image_digests(c, REPO, top) and len(digests) == 3 and done.added == 3
        assert (done.keys, done.skipped) == ([ec.keyid], [])
        # the same key again: nothing is written; a key cosign cannot verify (P-521) is skipped
        puts = sum(r.method == "PUT" for r in fake.requests)
        p521 = PrivateKey(ecc.generate_private_key(ecc.SECP521R1()))
        again = sign_image(c, REPO, f"{fake.host}/{REPO}", top, [ec, p521])
        assert (again.digests, again.added) == (digests, 0)
        assert [k for k, _ in again.skipped] == [p521.keyid] and "secp521r1" in again.skipped[0][1]
        assert sum(r.method == "PUT" for r in fake.requests) == puts
        # a second key appends a layer to each signature manifest
        assert add_signature(c, REPO, f"{fake.host}/{REPO}", top.digest, ed) is True
        assert len(read_layers(c, REPO, top.digest)) == 2
        found = verify_signatures(c, REPO, top.digest, [ed.public_key()])
        assert [s.key for s in found] == [ed.public_key()] and found[0].identity == f"{fake.host}/{REPO}"
        assert len(verify_signatures(c, REPO, top.digest, [ec.public_key(), ed.public_key()])) == 2
        with pytest.raises(NoSignatureError, match="verifies with the given key"):
            verify_signatures(c, REPO, top.digest, [keys[RSA].public_key()])
        # each platform manifest carries its own signature for its own digest
        for d in digests[1:]:
            (sig,) = verify_signatures(c, REPO, d, [ec.public_key()])
            assert sig.digest == d
        # removing ec's layers keeps ed's; removing the last layer deletes the signature manifest
        assert remove_signatures(c, REPO, top.digest, [ec.public_key()]) == 1
        assert verify_signatures(c, REPO, top.digest, [ed.public_key()])
        with pytest.raises(NoSignatureError):
            verify_signatures(c, REPO, top.digest, [ec.public_key()])
        assert remove_signatures(c, REPO, top.digest, [ed.public_key()]) == 1
        assert read_layers(c, REPO, top.digest) == ()
        assert signature_tag(top.digest) not in fake.tags[REPO]
        with pytest.raises(NoSignatureError, match="no sigstore signature"):
            verify_signatures(c, REPO, top.digest, [ed.public_key()])
        assert remove_signatures(c, REPO, top.digest, [ed.public_key()]) == 0


def test_payload_names_the_repository_and_digest(sample: tuple[Path, Manifest], keys: dict[str, PrivateKey]) -> None:
    fake = FakeRegistry()
    top = _push(fake, sample[0], "v1")
    with _client(fake) as c:
        add_signature(c, REPO, f"{fake.host}/{REPO}", top.digest, keys[RSA])
        (layer,) = read_layers(c, REPO, top.digest)
    claims = parse_payload(fake.blobs[layer.payload_digest])
    assert (claims.docker_reference, claims.manifest_digest) == (f"{fake.host}/{REPO}", top.digest)


def test_tampered_payload_or_another_digest_is_refused(sample: tuple[Path, Manifest], multi: tuple[Path, Manifest],
                                                       keys: dict[str, PrivateKey]) -> None:
    fake = FakeRegistry()
    top = _push(fake, sample[0], "v1")
    other = _push(fake, multi[0], "m")
    ec = keys[ECDSA]
    with _client(fake) as c:
        add_signature(c, REPO, "r", top.digest, ec)
        (layer,) = read_layers(c, REPO, top.digest)
        # the signature manifest of top stored under other's tag: a valid signature for another digest
        body, mt = fake.manifests[(REPO, fake.tags[REPO][signature_tag(top.digest)])]
        fake.tags[REPO][signature_tag(other.digest)] = fake.tags[REPO][signature_tag(top.digest)]
        with pytest.raises(NoSignatureError, match=f"is for {top.digest}"):
            verify_signatures(c, REPO, other.digest, [ec.public_key()])
        # the registry serves other payload bytes: refused by digest before any signature check
        fake.corrupt_blob(layer.payload_digest, fake.blobs[layer.payload_digest].replace(b"null", b"{}  "))
        with pytest.raises(NoSignatureError, match="digest mismatch"):
            verify_signatures(c, REPO, top.digest, [ec.public_key()])


# --- docker-archive destination -----------------------------------------------------------------


def test_docker_archive_round_trip(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake = FakeRegistry()
    top = _push(fake, sample[0], "v1")
    out = tmp_path / "out" / "app.tar"
    with _client(fake) as c:
        copy_image(RegistrySource(c, REPO, top.digest), DockerArchiveDestination(out, ["registry.test/test/app:v1"]),
                   Reporter(), verb="Pulled")
    with tarfile.open(out) as t:
        names = sorted(t.getnames())
    assert top.config is not None
    assert "manifest.json" in names and f"{top.config.digest.split(':')[1]}.json" in names
    assert all(n.endswith((".tar", ".json")) for n in names)
    src = DockerArchiveSource(out, "registry.test/test/app:v1")  # trustbox's reader of docker save output
    try:
        assert src.top().config is not None and src.top().config.digest == top.config.digest  # type: ignore[union-attr]
        assert len(src.top().layers) == len(top.layers)
    finally:
        src.close()
    assert sorted(p.name for p in out.parent.iterdir()) == ["app.tar"]  # no staging left


def test_docker_archive_refuses_an_index_and_leaves_nothing(multi: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake = FakeRegistry()
    top = _push(fake, multi[0], "m")
    out = tmp_path / "out" / "x.tar"
    with _client(fake) as c, pytest.raises(ImageError, match="one platform"):
        copy_image(RegistrySource(c, REPO, top.digest), DockerArchiveDestination(out, []), Reporter(), verb="Pulled")
    assert list(out.parent.iterdir()) == []


def test_platform_choice(multi: tuple[Path, Manifest]) -> None:
    top = multi[1]
    assert select_platform(top, parse_platform("linux/arm64")).platform == {"architecture": "arm64", "os": "linux"}
    assert select_platform(top, machine_platform("Linux", "x86_64")).platform_string() == "linux/amd64"
    assert parse_platform("linux/aarch64") == Platform("linux", "arm64")
    with pytest.raises(FormatError, match="linux/amd64, linux/arm64"):
        select_platform(top, parse_platform("linux/s390x"))
    for bad in ("linux", "linux//", "a/b/c/d"):
        with pytest.raises(FormatError):
            parse_platform(bad)


# --- settings and usage -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "on"), [("", True), ("1", True), ("yes", True), ("0", False), ("off", False),
                                           ("FALSE", False)])
def test_sigstore_setting(value: str, on: bool) -> None:
    assert sigstore_attachments({"TRUSTBOX_SIGSTORE": value}) is on
    assert sigstore_attachments({}) is True


def test_sigstore_setting_refuses_garbage() -> None:
    with pytest.raises(ConfigError, match="TRUSTBOX_SIGSTORE"):
        sigstore_attachments({"TRUSTBOX_SIGSTORE": "maybe"})


@pytest.mark.parametrize(("image", "require", "with_key", "signers", "why"), [
    ("r.test/a:1", "sigstore", False, (), "needs at least one --sigstore-key"),
    ("r.test/a:1", "both", False, (), "needs at least one --sigstore-key"),
    ("r.test/a:1", "dct", True, (), "only with --require sigstore"),
    ("r.test/a:1", "sigstore", True, ("alice",), "--signer"),
    ("r.test/a@sha256:" + "a" * 64, "both", True, (), "not a digest reference"),
    ("r.test/a:1", "cosign", True, (), "--require must be"),
])
def test_verify_usage_errors(image: str, require: str, with_key: bool, signers: tuple[str, ...], why: str,
                             keys: dict[str, PrivateKey]) -> None:
    v = verify_image(image, signers=signers, opts=TransferOptions(), reporter=Reporter(), require=require,
                     sigstore_keys=[keys[ECDSA].public_key()] if with_key else [])
    assert (v.exit_code, v.verified) == (EXIT_USAGE, False)
    assert why in v.reason


def test_verify_sigstore_alone_needs_no_trust_server(sample: tuple[Path, Manifest], keys: dict[str, PrivateKey]) -> None:
    fake = FakeRegistry()
    top = _push(fake, sample[0], "v1")
    opts = TransferOptions(registry=RegistryOptions(transport=fake.transport()))
    ed = keys[ED25519]
    v = verify_image(f"{fake.host}/{REPO}:v1", opts=opts, reporter=Reporter(), require="sigstore",
                     sigstore_keys=[ed.public_key()])
    assert (v.exit_code, v.signed_digest) == (1, None) and "no sigstore signature" in v.reason
    with _client(fake) as c:
        add_signature(c, REPO, "x", top.digest, ed)
    v = verify_image(f"{fake.host}/{REPO}:v1", opts=opts, reporter=Reporter(), require="sigstore",
                     sigstore_keys=[ed.public_key()])
    assert v.verified and v.resolved == f"{fake.host}/{REPO}@{top.digest}"
    assert v.to_json()["sigstore"][0]["key_id"] == ed.public_key().keyid
    assert all(r.url.path.startswith("/v2/") for r in fake.requests)  # nothing but the registry was asked

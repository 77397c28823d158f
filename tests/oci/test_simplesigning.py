"""The sigstore attachment core (trustbox.oci.simplesigning): byte-exact with real cosign 2.5 output,
strict parsing of hostile payloads and manifests, signing and verifying with every key kind."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustbox.errors import FormatError, SignatureError, TrustboxError, UnsupportedKeyError
from trustbox.oci.digest import sha256_digest
from trustbox.oci.simplesigning import (
    MAX_PAYLOAD_BYTES,
    SIGNATURE_ANNOTATION,
    SignatureLayer,
    build_payload,
    build_signature_manifest,
    decode_signature,
    load_public_key,
    parse_payload,
    parse_signature_manifest,
    public_key_pem,
    sign_payload,
    signature_tag,
    signed_digest_of_tag,
    verify_attachment,
    verify_signature,
)
from trustbox.tuf.certs import make_root_certificate
from trustbox.tuf.keys import PrivateKey, PublicKey

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cosign"
COSIGN_REPO = "127.0.0.1:27123/test/app"
COSIGN_DIGEST = "sha256:c80ac8f46dd89963d604b97fede5c20833696217d8f910abf00041c384b1556e"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _keys() -> list[PrivateKey]:
    return [
        PrivateKey(ec.generate_private_key(ec.SECP256R1())),
        PrivateKey(ec.generate_private_key(ec.SECP384R1())),
        PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        PrivateKey(ed25519.Ed25519PrivateKey.generate()),
    ]


KEYS = _keys()


# --- byte layout against real cosign ------------------------------------------------------------


def test_payload_config_and_manifest_are_cosigns_bytes() -> None:
    payload = (FIX / "payload.json").read_bytes()
    manifest = (FIX / "signature-manifest.json").read_bytes()
    assert build_payload(COSIGN_REPO, COSIGN_DIGEST) == payload
    layers = parse_signature_manifest(manifest)
    assert len(layers) == 1 and layers[0].payload_digest == sha256_digest(payload)
    built = build_signature_manifest(layers)
    assert built.config == (FIX / "config.json").read_bytes()
    assert built.manifest == manifest
    # a fresh layer made from the payload and the raw signature writes the same manifest
    fresh = SignatureLayer.for_payload(payload, decode_signature(layers[0].signature))
    assert build_signature_manifest([fresh]).manifest == manifest


def test_cosign_signature_verifies_and_hostile_variants_do_not() -> None:
    payload = (FIX / "payload.json").read_bytes()
    key = load_public_key((FIX / "cosign.pub").read_bytes())
    sig = parse_signature_manifest((FIX / "signature-manifest.json").read_bytes())[0].signature
    claims = verify_attachment(key, payload, sig, COSIGN_DIGEST, COSIGN_REPO)
    assert (claims.manifest_digest, claims.repository, claims.creator) == (COSIGN_DIGEST, COSIGN_REPO, None)
    raw = bytearray(decode_signature(sig))
    raw[-1] ^= 1
    with pytest.raises(SignatureError):
        verify_attachment(key, payload, base64.b64encode(bytes(raw)).decode(), COSIGN_DIGEST)
    with pytest.raises(SignatureError):  # altered payload (one byte of the repository)
        verify_attachment(key, payload.replace(b"test/app", b"test/apq"), sig, COSIGN_DIGEST)
    with pytest.raises(SignatureError):  # valid signature, other digest
        verify_attachment(key, payload, sig, OTHER)
    with pytest.raises(SignatureError):  # valid signature, other repository
        verify_attachment(key, payload, sig, COSIGN_DIGEST, "127.0.0.1:27123/test/other")
    with pytest.raises(SignatureError):  # wrong key
        verify_attachment(KEYS[0].public_key(), payload, sig, COSIGN_DIGEST)


# --- payloads -----------------------------------------------------------------------------------


def test_skopeo_variant_with_tag_creator_and_timestamp() -> None:
    raw = json.dumps({
        "critical": {"identity": {"docker-reference": "127.0.0.1:5000/a/b:v1"},
                     "image": {"docker-manifest-digest": DIGEST}, "type": "cosign container image signature"},
        "optional": {"creator": "containers/image 5.34.2", "timestamp": 1764700000, "other": [1]},
    }).encode()
    p = parse_payload(raw)
    assert (p.docker_reference, p.repository, p.manifest_digest) == ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b", DIGEST)
    assert (p.creator, p.timestamp) == ("containers/image 5.34.2", 1764700000)
    assert parse_payload(build_payload("127.0.0.1:5000/a/b", DIGEST)).repository == "127.0.0.1:5000/a/b"


def _doc(**critical: object) -> dict[str, object]:
    base: dict[str, object] = {"identity": {"docker-reference": "r/x"}, "image": {"docker-manifest-digest": DIGEST},
                               "type": "cosign container image signature"}
    base.update(critical)
    return {"critical": base, "optional": None}


@pytest.mark.parametrize("raw", [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'{"critical":{}}',
    b'{"optional":null}',
    json.dumps({**_doc(), "extra": 1}).encode(),
    json.dumps(_doc(type="atomic container signature")).encode(),
    json.dumps(_doc(identity={"docker-reference": ""})).encode(),
    json.dumps(_doc(identity={"docker-reference": 5})).encode(),
    json.dumps(_doc(identity={"docker-reference": "r", "x": 1})).encode(),
    json.dumps(_doc(image={"docker-manifest-digest": "sha256:abc"})).encode(),
    json.dumps(_doc(image={"docker-manifest-digest": "md5:" + "a" * 32})).encode(),
    json.dumps(_doc(image=[])).encode(),
    json.dumps(_doc(extra=True)).encode(),
    json.dumps({**_doc(), "optional": "x"}).encode(),
    json.dumps({**_doc(), "optional": {"timestamp": "1"}}).encode(),
    json.dumps({**_doc(), "optional": {"timestamp": True}}).encode(),
    json.dumps({**_doc(), "optional": {"creator": 3}}).encode(),
    b'{"critical":' + json.dumps(_doc()["critical"]).encode() + b',"critical":{},"optional":null}',  # duplicate key
    b'{"critical":{"identity":' + b"[" * 10000 + b"]" * 10000 + b"}}",  # deep
    b'{"critical":1,"optional":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}',  # oversized
    b"\xff\xfe{}",
    b'{"critical":NaN}',
])
def test_hostile_payloads_are_format_errors(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_payload(raw)


# --- tags and manifests -------------------------------------------------------------------------


def test_signature_tag_round_trip() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    assert signed_digest_of_tag(signature_tag(DIGEST)) == DIGEST
    for tag in ["latest", "sha256-abc.sig", ".sig", "sha256" + "ab" * 32 + ".sig", "md5-" + "a" * 32 + ".sig",
                "sha256-" + "AB" * 32 + ".sig", "sha256-" + "ab" * 32 + ".att"]:
        assert signed_digest_of_tag(tag) is None
    with pytest.raises(FormatError):
        signature_tag("sha256:xyz")


def test_manifest_keeps_other_annotations_and_skips_other_layers() -> None:
    payload = build_payload("r/x", DIGEST)
    layer = SignatureLayer(sha256_digest(payload), len(payload), "c2ln",
                           ((SIGNATURE_ANNOTATION, "c2ln"), ("dev.sigstore.cosign/bundle", "{}")))
    man = json.loads(build_signature_manifest([layer, layer]).manifest)
    man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 1, "digest": OTHER})
    parsed = parse_signature_manifest(json.dumps(man).encode())
    assert parsed == (layer, layer)
    assert parsed[0].descriptor()["annotations"] == {SIGNATURE_ANNOTATION: "c2ln", "dev.sigstore.cosign/bundle": "{}"}


def _man(layers: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {}, "layers": layers}).encode()


LAYER = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 10, "digest": DIGEST}


@pytest.mark.parametrize("raw", [
    b"garbage",
    b'{"schemaVersion":1,"layers":[]}',
    b'{"schemaVersion":2}',
    _man({}),
    _man([LAYER]),  # no annotation
    _man([{**LAYER, "annotations": {"other": "x"}}]),
    _man([{**LAYER, "annotations": {SIGNATURE_ANNOTATION: 5}}]),
    _man([{**LAYER, "annotations": {SIGNATURE_ANNOTATION: "A" * 5000}}]),
    _man([{**LAYER, "digest": "sha256:zz", "annotations": {SIGNATURE_ANNOTATION: "x"}}]),
    _man([{**LAYER, "size": -1, "annotations": {SIGNATURE_ANNOTATION: "x"}}]),
    _man([{**LAYER, "annotations": {SIGNATURE_ANNOTATION: "eA=="}}] * 1001),
    b'{"schemaVersion":2,"layers":' + b"[" * 100 + b"]" * 100 + b"}",
])
def test_hostile_signature_manifests_are_format_errors(raw: bytes) -> None:
    with pytest.raises(FormatError):
        parse_signature_manifest(raw)


def test_build_manifest_needs_layers() -> None:
    with pytest.raises(FormatError):
        build_signature_manifest([])


# --- signing and verifying ----------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS, ids=["p256", "p384", "rsa2048", "ed25519"])
def test_sign_verify_every_key_kind(key: PrivateKey) -> None:
    payload = build_payload("registry.test/app", DIGEST)
    sig = base64.b64encode(sign_payload(key, payload)).decode()
    # through the PEM a user hands to cosign, and through the trustbox key itself
    for pub in (load_public_key(public_key_pem(key.public_key())), key.public_key()):
        verify_attachment(pub, payload, sig, DIGEST, "registry.test/app")
        with pytest.raises(SignatureError):
            verify_attachment(pub, build_payload("registry.test/app", OTHER), sig, OTHER)
        with pytest.raises(SignatureError):
            verify_attachment(pub, payload, sig, OTHER)
    other = next(k for k in KEYS if k is not key)
    with pytest.raises(TrustboxError):
        verify_attachment(other.public_key(), payload, sig, DIGEST)


def test_ecdsa_is_der_not_notary_raw() -> None:
    key = KEYS[0]
    payload = build_payload("r/x", DIGEST)
    der = sign_payload(key, payload)
    assert der[0] == 0x30  # ASN.1 SEQUENCE
    with pytest.raises(SignatureError):
        verify_signature(key.public_key(), payload, key.sign(payload))  # DCT's raw r||s is refused here


def test_x509_notary_key_verifies() -> None:
    key = KEYS[0]
    cert = make_root_certificate(key, "registry.test/app", datetime(2026, 1, 1, tzinfo=UTC))
    x509_key = PublicKey.from_certificate(cert)
    assert x509_key.is_x509
    payload = build_payload("registry.test/app", DIGEST)
    verify_attachment(x509_key, payload, base64.b64encode(sign_payload(key, payload)).decode(), DIGEST)
    assert b"BEGIN PUBLIC KEY" in public_key_pem(x509_key)


@pytest.mark.parametrize("sig", ["", "!!!", "YQ", "YR==", "A" * 5000, "MEQ=\n"])
def test_garbage_signature_annotations(sig: str) -> None:
    with pytest.raises(FormatError):
        decode_signature(sig)


def test_garbage_der_is_a_signature_error() -> None:
    payload = build_payload("r/x", DIGEST)
    for raw in (b"\x30\x00", b"\x30" * 70, b"\x00" * 64):
        with pytest.raises(SignatureError):
            verify_signature(KEYS[0].public_key(), payload, raw)


def test_unsupported_keys_refused() -> None:
    p521 = ec.generate_private_key(ec.SECP521R1())
    pem = p521.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(UnsupportedKeyError):
        load_public_key(pem)
    with pytest.raises(UnsupportedKeyError):
        sign_payload(PrivateKey(p521), b"x")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(FormatError):
        load_public_key(small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for junk in (b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"-----BEGIN FOO-----\n-----END FOO-----\n"):
        with pytest.raises(FormatError):
            load_public_key(junk)

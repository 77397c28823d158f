"""Sigstore "attachment" signatures as cosign writes them: simple-signing payloads, the ``.sig``
tag, the signature manifest and its config blob, and signing/verifying a payload.

Pure (bytes in, bytes out). The format, as cosign 2.5 and containers/image write it:

- the payload (the signed bytes, stored as one layer blob) is Go's ``json.Marshal`` of
  ``{"critical":{"identity":{"docker-reference":REPO},"image":{"docker-manifest-digest":DIGEST},
  "type":"cosign container image signature"},"optional":null}``; skopeo/podman write the
  reference with its tag and ``optional`` with ``creator``/``timestamp``;
- the signatures of manifest ``sha256:<hex>`` are one OCI image manifest tagged
  ``sha256-<hex>.sig`` in the same repository, one layer per signature (media type
  :data:`SIMPLESIGNING_MEDIA_TYPE`), the base64 signature in the layer annotation
  :data:`SIGNATURE_ANNOTATION`;
- signatures: ASN.1 DER ECDSA over SHA-256 (P-256; P-384 is also verified over SHA-256, as cosign
  does), RSA PKCS#1 v1.5 with SHA-256, Ed25519. Docker Content Trust signs with the same keys but
  encodes ECDSA as raw ``r||s`` (:mod:`trustbox.tuf.keys`); this module uses DER.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from trustbox.errors import FormatError, SignatureError, UnsupportedKeyError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import parse_digest, sha256_digest
from trustbox.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST
from trustbox.tuf.canonical import html_escape, loads
from trustbox.tuf.keys import CryptoPublicKey, PrivateKey, PublicKey

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_TAG_SUFFIX = ".sig"

#: largest payload accepted (cosign's are ~250 bytes, containers/image's ~350)
MAX_PAYLOAD_BYTES = 64 * 1024
#: longest base64 signature accepted (RSA-8192 is 1368 characters)
MAX_SIGNATURE_B64 = 4096
#: longest docker reference in a payload (docker's own name limit is 255 plus host and tag)
MAX_REFERENCE = 1024
#: most signatures (layers) read from one signature manifest
MAX_SIGNATURES = 1000
#: largest signature manifest parsed (the registry's manifest limit)
MAX_SIGNATURE_MANIFEST_BYTES = 4 * 1024 * 1024

_ZERO_TIME = "0001-01-01T00:00:00Z"
_CURVES = (ec.SECP256R1, ec.SECP384R1)


# --- payload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimpleSigningPayload:
    """A parsed simple-signing payload and its exact bytes."""

    docker_reference: str
    manifest_digest: str
    raw: bytes
    creator: str | None = None
    timestamp: int | None = None

    @property
    def repository(self) -> str:
        """The reference without tag or digest (what cosign writes as identity)."""
        return reference_repository(self.docker_reference)


def _go_marshal(value: Any) -> bytes:
    """Go's ``json.Marshal`` of a value whose keys are already in struct order."""
    return html_escape(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def build_payload(repository: str, digest: str) -> bytes:
    """The payload cosign signs for manifest ``digest`` in ``repository`` (no tag), byte for byte.

    Raises:
        DigestFormatError: ``digest`` is not a valid digest.
        FormatError: ``repository`` is empty or longer than :data:`MAX_REFERENCE`.
    """
    parse_digest(digest)
    if not repository or len(repository) > MAX_REFERENCE:
        raise FormatError("simple-signing identity must be a non-empty repository name")
    doc = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return _go_marshal(doc)


def reference_repository(reference: str) -> str:
    """``reference`` without its ``@digest`` and ``:tag`` (the tag colon follows the last ``/``)."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _exact_object(value: Any, keys: set[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"simple-signing {where} must be a JSON object")
    if set(value) != keys:
        raise FormatError(f"simple-signing {where} must hold exactly {sorted(keys)}, got {sorted(value)[:10]}")
    return value


def parse_payload(raw: bytes) -> SimpleSigningPayload:
    """Parse an untrusted simple-signing payload (cosign's or containers/image's), strictly.

    ``critical`` must hold exactly ``identity``, ``image`` and ``type`` (each with its one field),
    ``type`` must be cosign's; ``optional`` may be missing, null or an object whose ``creator``
    (string) and ``timestamp`` (integer) are read and other fields ignored.

    Raises:
        FormatError: oversized, not strict JSON (duplicate keys, too deep), or not of that shape.
        DigestFormatError: the manifest digest is malformed.
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise FormatError(f"simple-signing payload larger than {MAX_PAYLOAD_BYTES} bytes")
    doc = loads(raw)
    if not isinstance(doc, dict) or "critical" not in doc or not set(doc) <= {"critical", "optional"}:
        raise FormatError("simple-signing payload must be an object with 'critical' and 'optional' only")
    critical = _exact_object(doc["critical"], {"identity", "image", "type"}, "critical")
    if critical["type"] != SIGNATURE_TYPE:
        raise FormatError(f"simple-signing type must be {SIGNATURE_TYPE!r}")
    identity = _exact_object(critical["identity"], {"docker-reference"}, "identity")
    image = _exact_object(critical["image"], {"docker-manifest-digest"}, "image")
    ref, digest = identity["docker-reference"], image["docker-manifest-digest"]
    if not isinstance(ref, str) or not ref or len(ref) > MAX_REFERENCE:
        raise FormatError("simple-signing docker-reference must be a non-empty string")
    if not isinstance(digest, str):
        raise FormatError("simple-signing docker-manifest-digest must be a string")
    parse_digest(digest)
    creator: str | None = None
    timestamp: int | None = None
    optional = doc.get("optional")
    if optional is not None:
        if not isinstance(optional, dict):
            raise FormatError("simple-signing optional must be null or an object")
        creator = optional.get("creator")
        timestamp = optional.get("timestamp")
        if creator is not None and not isinstance(creator, str):
            raise FormatError("simple-signing creator must be a string")
        if timestamp is not None and (not isinstance(timestamp, int) or isinstance(timestamp, bool)):
            raise FormatError("simple-signing timestamp must be an integer")
    return SimpleSigningPayload(ref, digest, bytes(raw), creator, timestamp)


# --- the attachment tag ----------------------------------------------------------------------


def signature_tag(digest: str) -> str:
    """The tag cosign stores the signatures of ``digest`` under: ``sha256-<hex>.sig``.

    Raises:
        DigestFormatError: ``digest`` is not a valid digest.
    """
    d = parse_digest(digest)
    return f"{d.algorithm}-{d.hex}{SIGNATURE_TAG_SUFFIX}"


def signed_digest_of_tag(tag: str) -> str | None:
    """The digest whose signatures tag ``tag`` holds, or None if it is no ``.sig`` tag."""
    if not tag.endswith(SIGNATURE_TAG_SUFFIX):
        return None
    alg, sep, hexpart = tag[: -len(SIGNATURE_TAG_SUFFIX)].partition("-")
    if not sep:
        return None
    candidate = f"{alg}:{hexpart}"
    try:
        parse_digest(candidate)
    except FormatError:
        return None
    return candidate


# --- the signature manifest ------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureLayer:
    """One signature of a signature manifest: the payload blob's descriptor and the signature."""

    payload_digest: str
    payload_size: int
    signature: str  # base64, as in the annotation
    annotations: tuple[tuple[str, str], ...] = ()  # every annotation of the layer, in order

    @classmethod
    def for_payload(cls, payload: bytes, signature: bytes) -> SignatureLayer:
        """The layer for ``payload`` signed with raw ``signature`` bytes."""
        sig = base64.b64encode(signature).decode("ascii")
        return cls(sha256_digest(payload), len(payload), sig, ((SIGNATURE_ANNOTATION, sig),))

    def descriptor(self) -> dict[str, Any]:
        """The layer descriptor as cosign writes it."""
        annotations = dict(self.annotations) or {SIGNATURE_ANNOTATION: self.signature}
        return {
            "mediaType": SIMPLESIGNING_MEDIA_TYPE,
            "size": self.payload_size,
            "digest": self.payload_digest,
            "annotations": annotations,
        }


@dataclass(frozen=True)
class SignatureManifest:
    """A signature manifest ready to push: its bytes and its config blob's bytes."""

    manifest: bytes
    config: bytes
    layers: tuple[SignatureLayer, ...]

    @property
    def digest(self) -> str:
        """The manifest's sha256 digest."""
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        """The config blob's sha256 digest."""
        return sha256_digest(self.config)


def build_signature_manifest(layers: list[SignatureLayer] | tuple[SignatureLayer, ...]) -> SignatureManifest:
    """The signature manifest and config blob cosign would push for these signatures, in order.

    Raises:
        FormatError: no layers, or more than :data:`MAX_SIGNATURES`.
    """
    if not layers or len(layers) > MAX_SIGNATURES:
        raise FormatError(f"a signature manifest holds 1 to {MAX_SIGNATURES} signatures")
    config = _go_marshal({
        "architecture": "",
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.payload_digest for layer in layers]},
        "config": {},
    })
    manifest = _go_marshal({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [layer.descriptor() for layer in layers],
    })
    return SignatureManifest(manifest, config, tuple(layers))


def parse_signature_manifest(raw: bytes) -> tuple[SignatureLayer, ...]:
    """The simple-signing signatures of an untrusted signature manifest (other layers skipped).

    Raises:
        FormatError: oversized, not strict JSON, not an image manifest, a malformed descriptor or
            signature annotation, or more than :data:`MAX_SIGNATURES` layers.
    """
    if len(raw) > MAX_SIGNATURE_MANIFEST_BYTES:
        raise FormatError(f"signature manifest larger than {MAX_SIGNATURE_MANIFEST_BYTES} bytes")
    doc = loads(raw)
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise FormatError("signature manifest must be a schemaVersion 2 object")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise FormatError("signature manifest has no layers list")
    if len(layers) > MAX_SIGNATURES:
        raise FormatError(f"signature manifest has more than {MAX_SIGNATURES} layers")
    out: list[SignatureLayer] = []
    for i, item in enumerate(layers):
        desc = Descriptor.from_json(item, f"layers[{i}]", strict=True)
        if desc.media_type != SIMPLESIGNING_MEDIA_TYPE:
            continue
        ann = item.get("annotations")
        if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
            raise FormatError(f"layers[{i}]: annotations must map strings to strings")
        sig = ann.get(SIGNATURE_ANNOTATION)
        if sig is None:
            raise FormatError(f"layers[{i}]: no {SIGNATURE_ANNOTATION} annotation")
        if len(sig) > MAX_SIGNATURE_B64:
            raise FormatError(f"layers[{i}]: signature longer than {MAX_SIGNATURE_B64} characters")
        out.append(SignatureLayer(desc.digest, desc.size, sig, tuple(ann.items())))
    return tuple(out)


# --- signing and verifying -------------------------------------------------------------------


def sign_payload(key: PrivateKey, payload: bytes) -> bytes:
    """Sign ``payload`` as cosign does: DER ECDSA-SHA256, RSA PKCS#1 v1.5 SHA-256, or Ed25519.

    Raises:
        UnsupportedKeyError: an ECDSA key on a curve cosign does not verify with SHA-256.
    """
    k = key.key
    if isinstance(k, ec.EllipticCurvePrivateKey):
        if not isinstance(k.curve, _CURVES):
            raise UnsupportedKeyError(f"ECDSA curve {k.curve.name} is not supported for sigstore signatures")
        return k.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(k, rsa.RSAPrivateKey):
        return k.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    return k.sign(payload)


def load_public_key(pem: bytes) -> PublicKey:
    """A verification key from PEM: a ``PUBLIC KEY`` (SubjectPublicKeyInfo) or a certificate.

    Raises:
        FormatError: no PEM block, malformed key, RSA shorter than 2048 bits.
        UnsupportedKeyError: a key type other than ECDSA P-256/P-384, RSA or Ed25519.
    """
    key = PublicKey.from_pem(pem)
    _verifier(key)
    return key


def public_key_pem(key: PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``key`` (the certificate's key for x509 keys), for
    ``cosign verify --key`` and containers-policy ``keyPath``.

    Raises:
        FormatError: the key material is malformed.
    """
    return key.crypto_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _verifier(key: PublicKey) -> CryptoPublicKey:
    pub = key.crypto_key()
    if isinstance(pub, ec.EllipticCurvePublicKey) and not isinstance(pub.curve, _CURVES):
        raise UnsupportedKeyError(f"ECDSA curve {pub.curve.name} is not supported for sigstore signatures")
    return pub


def decode_signature(text: str) -> bytes:
    """The raw bytes of a base64 signature annotation (standard alphabet, padded, canonical).

    Raises:
        FormatError: empty, longer than :data:`MAX_SIGNATURE_B64`, or not canonical base64.
    """
    if not isinstance(text, str) or not text or len(text) > MAX_SIGNATURE_B64:
        raise FormatError("signature annotation must be a non-empty base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise FormatError("signature annotation is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError("signature annotation is not canonical base64")
    return raw


def verify_signature(key: PublicKey, payload: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``payload`` with ``key`` as cosign does.

    Raises:
        SignatureError: the signature does not verify.
        FormatError / UnsupportedKeyError: the key is malformed or of an unsupported kind.
    """
    pub = _verifier(key)
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(signature, payload)
        else:  # pragma: no cover - crypto_key returns only these
            raise UnsupportedKeyError("unsupported key")
    except InvalidSignature as exc:
        raise SignatureError("sigstore signature does not verify") from exc
    except ValueError as exc:  # malformed DER is refused by cryptography with ValueError on some versions
        raise SignatureError(f"sigstore signature is malformed: {exc}") from exc


def verify_attachment(
    key: PublicKey,
    payload: bytes,
    signature: str,
    digest: str,
    repository: str | None = None,
) -> SimpleSigningPayload:
    """Verify one attachment signature for manifest ``digest``: the signature over the payload
    bytes first, then the payload's claims (its digest is ``digest``; when ``repository`` is
    given, its identity names that repository, with or without a tag).

    Raises:
        SignatureError: the signature does not verify, or the payload is for another digest or
            repository.
        FormatError: malformed signature annotation or payload.
        UnsupportedKeyError: an unsupported key.
    """
    verify_signature(key, payload, decode_signature(signature))
    claims = parse_payload(payload)
    if claims.manifest_digest != digest:
        raise SignatureError(f"sigstore signature is for {claims.manifest_digest}, not {digest}")
    if repository is not None and claims.repository != repository:
        raise SignatureError(f"sigstore signature names {claims.repository!r}, not {repository!r}")
    return claims

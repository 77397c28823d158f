"""Sigstore attachment signatures in a registry: read, add, remove and verify the
``sha256-<hex>.sig`` signature manifests cosign, skopeo and podman use, through
:class:`~trustbox.client.images.distribution.RegistryClient`.

The format (payload, tag, manifest and config bytes, signature encoding and every check on
untrusted bytes) is the pure core's, :mod:`trustbox.oci.simplesigning`; this module only moves
bytes to and from the registry:

* adding a signature appends one layer to the signature manifest of the image digest (the payload
  blob, then the config blob, then the manifest re-pushed under the same tag), unless a layer of
  that key for that digest is already there;
* removing signatures drops the layers that verify with the given public keys; when none is left
  the signature manifest is deleted;
* verifying reads every layer (payloads at most ``MAX_PAYLOAD_BYTES``, each checked against its
  digest while it streams) and accepts a layer whose signature verifies with one of the keys and
  whose payload names the digest (like cosign, the identity is reported, not required: a copy to
  another registry keeps the original name).

Two writers appending to the same digest at the same moment can lose one layer (the registry has
no compare-and-swap for tags, as with cosign); ``trustbox trust attach`` writes it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trustbox.client.images.distribution import RegistryClient
from trustbox.errors import (
    FormatError,
    NotFoundError,
    SignatureError,
    UnsupportedKeyError,
    VerificationError,
)
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.manifest import Manifest, parse_manifest
from trustbox.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST
from trustbox.oci.simplesigning import (
    MAX_PAYLOAD_BYTES,
    SIMPLESIGNING_MEDIA_TYPE,
    SignatureLayer,
    build_payload,
    build_signature_manifest,
    parse_signature_manifest,
    sign_payload,
    signature_tag,
    verify_attachment,
)
from trustbox.tuf.keys import PrivateKey, PublicKey

#: deepest index nesting followed when listing the digests to sign (an index of indexes)
MAX_INDEX_DEPTH = 2


class NoSignatureError(VerificationError):
    """No sigstore signature of an image verifies with the given keys (or there is none)."""


@dataclass(frozen=True)
class VerifiedSignature:
    """One attachment signature that verified: the image digest, the key, the payload's identity."""

    digest: str
    key: PublicKey
    identity: str
    payload_digest: str


def image_digests(client: RegistryClient, repo: str, top: Manifest) -> list[str]:
    """The manifest digests a signature covers: ``top`` and, for an index, every child manifest
    (what ``cosign sign --recursive`` signs, so ``cosign verify`` works on each platform).

    Raises:
        DigestMismatchError, NotFoundError, NetworkError: reading a child manifest failed.
    """
    out = [top.digest]

    def walk(m: Manifest, depth: int) -> None:
        if not m.is_index or depth >= MAX_INDEX_DEPTH:
            return
        for desc in m.manifests:
            if desc.digest in out:
                continue
            out.append(desc.digest)
            walk(client.get_manifest(repo, desc.digest, desc), depth + 1)

    walk(top, 0)
    return out


def read_layers(client: RegistryClient, repo: str, digest: str) -> tuple[SignatureLayer, ...]:
    """The simple-signing layers of ``digest``'s signature manifest (empty when there is none).

    Raises:
        FormatError: the signature manifest is malformed.
        NetworkError, RegistryAuthError, DigestMismatchError: see :meth:`RegistryClient.get_manifest`.
    """
    try:
        m = client.get_manifest(repo, signature_tag(digest))
    except NotFoundError:
        return ()
    return parse_signature_manifest(m.raw)


def read_payload(client: RegistryClient, repo: str, layer: SignatureLayer) -> bytes:
    """The payload blob of a layer, checked against its digest and size while it streams.

    Raises:
        FormatError: the layer claims a payload larger than ``MAX_PAYLOAD_BYTES``.
        NotFoundError, DigestMismatchError, NetworkError: see :meth:`RegistryClient.open_blob`.
    """
    if layer.payload_size > MAX_PAYLOAD_BYTES:
        raise FormatError(f"signature payload {layer.payload_digest} claims {layer.payload_size} bytes")
    desc = Descriptor(SIMPLESIGNING_MEDIA_TYPE, layer.payload_digest, layer.payload_size)
    with client.open_blob(repo, desc) as chunks:
        return b"".join(chunks)


def _verify_layer(
    client: RegistryClient, repo: str, layer: SignatureLayer, digest: str, keys: Sequence[PublicKey],
    payloads: dict[str, bytes],
) -> tuple[PublicKey, str] | str:
    """(key, identity) of the first key the layer verifies with, else why it does not."""
    try:
        payload = payloads.get(layer.payload_digest)
        if payload is None:
            payload = payloads[layer.payload_digest] = read_payload(client, repo, layer)
    except (FormatError, NotFoundError, VerificationError) as exc:
        return exc.message
    reason = "no key given"
    for key in keys:
        try:
            claims = verify_attachment(key, payload, layer.signature, digest)
        except (SignatureError, FormatError, UnsupportedKeyError) as exc:
            reason = exc.message
            continue
        return key, claims.docker_reference
    return reason


def _ensure_blob(client: RegistryClient, repo: str, media_type: str, data: bytes) -> str:
    desc = Descriptor(media_type, sha256_digest(data), len(data))
    if client.blob_size(repo, desc.digest, push=True) is None:
        client.upload_blob(repo, desc, [data])
    return desc.digest


def _push(client: RegistryClient, repo: str, digest: str, layers: Sequence[SignatureLayer],
          payloads: Mapping[str, bytes]) -> None:
    """Upload new payloads, the config blob, then the signature manifest under its tag."""
    sm = build_signature_manifest(list(layers))
    for data in payloads.values():
        _ensure_blob(client, repo, SIMPLESIGNING_MEDIA_TYPE, data)
    _ensure_blob(client, repo, OCI_CONFIG, sm.config)
    client.put_manifest(repo, signature_tag(digest), parse_manifest(sm.manifest, OCI_MANIFEST))


def add_signature(client: RegistryClient, repo: str, identity: str, digest: str, key: PrivateKey) -> bool:
    """Sign ``digest`` with ``key`` (payload identity ``identity``, the repository without tag as
    cosign writes it) and append the layer to its signature manifest. False when a layer of this
    key for this digest is already there (nothing is written).

    Raises:
        UnsupportedKeyError: a key cosign cannot verify (an ECDSA curve other than P-256/P-384).
        FormatError: the existing signature manifest is malformed (it is not overwritten).
        NetworkError, RegistryAuthError, RegistryResponseError: the registry refused or failed.
    """
    layers = read_layers(client, repo, digest)
    public = key.public_key()
    payloads: dict[str, bytes] = {}
    for layer in layers:
        if isinstance(_verify_layer(client, repo, layer, digest, [public], payloads), tuple):
            return False
    payload = build_payload(identity, digest)
    layer = SignatureLayer.for_payload(payload, sign_payload(key, payload))
    _push(client, repo, digest, [*layers, layer], {layer.payload_digest: payload})
    return True


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign_image` wrote: the digests covered, the signatures added (present ones are
    kept), the key IDs given, and the keys skipped because cosign cannot verify them (key ID, why)."""

    digests: list[str]
    added: int
    keys: list[str]
    skipped: list[tuple[str, str]]


def sign_image(
    client: RegistryClient, repo: str, identity: str, top: Manifest, keys: Sequence[PrivateKey]
) -> SignResult:
    """Sign ``top`` and, for an index, each child manifest (:func:`image_digests`) with every key
    cosign can verify (others are skipped and reported): the attachments ``trust sign`` and
    ``push --sign`` write.

    Raises:
        see :func:`add_signature` (except UnsupportedKeyError) and :func:`image_digests`.
    """
    digests = image_digests(client, repo, top)
    added = 0
    skipped: list[tuple[str, str]] = []
    for key in keys:
        try:
            for d in digests:
                added += add_signature(client, repo, identity, d, key)
        except UnsupportedKeyError as exc:
            skipped.append((key.keyid, exc.message))
    return SignResult(digests, added, [k.keyid for k in keys], skipped)


def remove_signatures(client: RegistryClient, repo: str, digest: str, keys: Iterable[PublicKey]) -> int:
    """Drop the layers of ``digest``'s signature manifest that verify with one of ``keys``;
    delete the manifest when none is left. Returns how many layers were removed.

    Raises:
        FormatError: the signature manifest is malformed.
        NetworkError, RegistryAuthError, RegistryResponseError: the registry refused or failed
            (e.g. deletes disabled when the last layer goes).
    """
    wanted = list(keys)
    layers = read_layers(client, repo, digest)
    payloads: dict[str, bytes] = {}
    keep = [layer for layer in layers if not isinstance(_verify_layer(client, repo, layer, digest, wanted, payloads), tuple)]
    removed = len(layers) - len(keep)
    if removed == 0:
        return 0
    if keep:
        _push(client, repo, digest, keep, {})
    else:
        current = client.get_manifest(repo, signature_tag(digest))
        client.delete_manifest(repo, current.digest)
    return removed


def verify_signatures(client: RegistryClient, repo: str, digest: str, keys: Sequence[PublicKey]) -> list[VerifiedSignature]:
    """Every attachment signature of ``digest`` that verifies with one of ``keys``.

    Raises:
        NoSignatureError: no signature manifest, or none of its layers verifies (the message says
            why for the first one).
        FormatError: the signature manifest is malformed.
        NetworkError, RegistryAuthError: the registry could not be read.
    """
    layers = read_layers(client, repo, digest)
    where = f"{client.host}/{repo}"
    if not layers:
        raise NoSignatureError(f"no sigstore signature for {digest} in {where} (no tag {signature_tag(digest)})")
    out: list[VerifiedSignature] = []
    first_failure = ""
    payloads: dict[str, bytes] = {}
    for layer in layers:
        found = _verify_layer(client, repo, layer, digest, keys, payloads)
        if isinstance(found, tuple):
            out.append(VerifiedSignature(digest, found[0], found[1], layer.payload_digest))
        elif not first_failure:
            first_failure = found
    if not out:
        raise NoSignatureError(
            f"none of the {len(layers)} sigstore signature(s) of {digest} in {where} verifies with the given "
            f"key(s): {first_failure}"
        )
    return out


__all__ = [
    "NoSignatureError",
    "SignResult",
    "VerifiedSignature",
    "add_signature",
    "image_digests",
    "read_layers",
    "read_payload",
    "remove_signatures",
    "sign_image",
    "verify_signatures",
]

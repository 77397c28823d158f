"""``trust sign`` (lookup_manifest) and push/pull/verify (RegistryClient.get_manifest) read a
manifest through one path (distribution.read_manifest): same Accept header, same checks, same words."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from trustbox.client.images.distribution import (
    MANIFEST_ACCEPT,
    RegistryClient,
    RegistryOptions,
    lookup_manifest,
)
from trustbox.oci.errors import DigestMismatchError
from trustbox.oci.reference import parse_reference

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}'
LIE = "sha256:" + "ab" * 32


def _lying_registry(accepts: list[str]) -> httpx.MockTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return httpx.Response(200)
        accepts.append(req.headers["accept"])
        return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": LIE,
                                                             "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    return httpx.MockTransport(handler)


def test_trust_sign_and_push_read_manifests_alike() -> None:
    accepts: list[str] = []
    with pytest.raises(DigestMismatchError) as by_lookup:
        with httpx.Client(transport=_lying_registry(accepts)) as http:
            lookup_manifest(parse_reference("127.0.0.1:5000/team/app:v1"), http=http)
    with RegistryClient("127.0.0.1:5000", RegistryOptions(transport=_lying_registry(accepts))) as client:
        with pytest.raises(DigestMismatchError) as by_client:
            client.get_manifest("team/app", "v1")
    assert accepts == [MANIFEST_ACCEPT, MANIFEST_ACCEPT]
    assert by_lookup.value.message == by_client.value.message == (
        f"manifest v1: registry says {LIE} but content hashes to sha256:"
        + hashlib.sha256(MANIFEST).hexdigest()
    )

"""Images of random bytes pushed straight into a registry (no layout on disk), for copy tests and
the migration benchmark. Plain Python (no pytest)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from trustbox.client.images.distribution import RegistryClient
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.manifest import Manifest, parse_manifest
from trustbox.oci.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST


def _blob(client: RegistryClient, repo: str, media_type: str, data: bytes) -> Descriptor:
    desc = Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    if client.blob_size(repo, desc.digest, push=True) is None:
        client.upload_blob(repo, desc, [data])
    return desc


def _manifest(doc: dict[str, object]) -> Manifest:
    raw = json.dumps(doc, indent=3).encode()  # not compact: byte-for-byte copies are visible
    return parse_manifest(raw)


def push_random_image(
    client: RegistryClient,
    repo: str,
    tag: str | None,
    layer_sizes: Sequence[int] = (4096,),
    *,
    architectures: Sequence[str] = ("amd64",),
    extra_layers: Sequence[Descriptor] = (),
) -> Manifest:
    """Push an image whose layers are fresh random bytes (one image per architecture; more than one
    makes an OCI index over them) under ``tag`` (None: by digest). ``extra_layers``: blobs already in
    ``repo`` added to each image. Returns the top manifest."""
    children: list[tuple[str, Manifest]] = []
    for arch in architectures:
        layers = [_blob(client, repo, OCI_LAYER_GZIP, os.urandom(n)) for n in layer_sizes]
        layers.extend(extra_layers)
        config = _blob(client, repo, OCI_CONFIG, json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]}}
        ).encode())
        m = _manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                       "layers": [d.to_json() for d in layers]})
        children.append((arch, m))
    if len(children) == 1:
        top = children[0][1]
    else:
        for _arch, m in children:
            client.put_manifest(repo, m.digest, m)
        top = _manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {**m.descriptor().to_json(), "platform": {"architecture": a, "os": "linux"}} for a, m in children]})
    client.put_manifest(repo, tag or top.digest, top)
    return top


def push_referrer(client: RegistryClient, repo: str, subject: Manifest, artifact_type: str, payload: bytes) -> Manifest:
    """Push an OCI 1.1 artifact manifest whose ``subject`` is ``subject`` (found through the referrers API)."""
    empty = _blob(client, repo, "application/vnd.oci.empty.v1+json", b"{}")
    layer = _blob(client, repo, "application/octet-stream", payload)
    m = _manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                   "config": empty.to_json(), "layers": [layer.to_json()], "subject": subject.descriptor().to_json()})
    client.put_manifest(repo, m.digest, m)
    return m

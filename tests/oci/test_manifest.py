"""The one manifest model: the client's reader and the registry's push validation share loader and descriptors."""

from __future__ import annotations

import json

import pytest

from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.errors import ImageError
from trustbox.oci.manifest import parse_manifest, validate_manifest
from trustbox.oci.mediatypes import OCI_MANIFEST

CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "a" * 64, "size": 2}


def test_both_entry_points_refuse_deep_nesting() -> None:
    """The client's reader gets the registry's depth bound (it used to hit Python's recursion limit)."""
    deep = b'{"schemaVersion":2,"annotations":' + b"[" * 5000 + b"]" * 5000 + b"}"
    for parse in (lambda b: parse_manifest(b), lambda b: validate_manifest(b, OCI_MANIFEST)):
        with pytest.raises(ImageError, match="nests deeper than 64"):
            parse(deep)


def test_same_descriptor_type_from_both() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": []}).encode()
    read, pushed = parse_manifest(body), validate_manifest(body, OCI_MANIFEST)
    assert isinstance(read.config, Descriptor) and read.config == pushed.config
    assert read.digest == pushed.digest and pushed.artifact_type == CONFIG["mediaType"]


def test_registry_takes_sha512_client_stores_sha256_only() -> None:
    cfg = dict(CONFIG, digest="sha512:" + "c" * 128)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": []}).encode()
    assert validate_manifest(body, None).config == Descriptor.from_json(cfg, strict=True)
    with pytest.raises(ImageError, match="only sha256"):
        parse_manifest(body)


def test_digest_is_computed_once_and_may_be_given() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": []}).encode()
    m = parse_manifest(body)
    assert "digest" not in m.__dict__  # lazy: the registry's push path never hashes through the model
    assert m.digest == sha256_digest(body) and m.__dict__["digest"] == m.digest
    assert parse_manifest(body, None, "sha256:" + "0" * 64).digest == "sha256:" + "0" * 64  # the caller's hash is kept

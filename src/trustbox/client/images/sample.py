"""A tiny, deterministic sample image (OCI layout) for tests, demos and the sandbox.

No busybox: each layer is a gzip'd tar of a couple of text files. Same arguments, same bytes.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from trustbox.client.images.layout import OCILayoutDestination
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.manifest import Manifest, dump_json, parse_manifest
from trustbox.oci.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST

_CREATED = "2016-06-10T17:26:00Z"  # the day of the tutorial's trusttest push


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _image(arch: str, message: str, blobs: dict[str, bytes]) -> Manifest:
    base = _tar({"etc/trustbox-release": b"trustbox sample image\n", "hello.txt": f"{message}\n".encode()})
    arch_layer = _tar({"etc/arch": f"{arch}\n".encode()})
    layers_raw = [base, arch_layer]
    layers_gz = [_gzip(x) for x in layers_raw]
    config = {
        "created": _CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/cat", "/hello.txt"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(x) for x in layers_raw]},
        "history": [
            {"created": _CREATED, "created_by": "trustbox sample: base files"},
            {"created": _CREATED, "created_by": f"trustbox sample: {arch}"},
        ],
    }
    config_raw = dump_json(config)
    blobs[sha256_digest(config_raw)] = config_raw
    for g in layers_gz:
        blobs[sha256_digest(g)] = g
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor(OCI_CONFIG, sha256_digest(config_raw), len(config_raw)).to_json(),
        "layers": [Descriptor(OCI_LAYER_GZIP, sha256_digest(g), len(g)).to_json() for g in layers_gz],
    }
    return parse_manifest(dump_json(doc), OCI_MANIFEST)


def write_sample_image(
    directory: str | Path,
    ref: str | None = "latest",
    *,
    multi_arch: bool = False,
    message: str = "Hello from a trustbox sample image",
    architectures: tuple[str, ...] = ("amd64", "arm64"),
) -> Manifest:
    """Write a small valid OCI image layout to ``directory`` and return its top manifest.

    ``multi_arch`` writes an OCI image index over one image per architecture. ``message``
    changes the content (and so every digest), which tests use to make distinct images.
    An existing layout in ``directory`` gains the image under ``ref``.
    """
    blobs: dict[str, bytes] = {}
    if multi_arch:
        children = [(arch, _image(arch, message, blobs)) for arch in architectures]
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                Descriptor(m.media_type, m.digest, m.size, platform={"architecture": a, "os": "linux"}).to_json()
                for a, m in children
            ],
        }
        top = parse_manifest(dump_json(doc), OCI_INDEX)
        manifests = [m for _, m in children]
    else:
        top = _image(architectures[0], message, blobs)
        manifests = []
    dest = OCILayoutDestination(Path(directory), ref)
    try:
        for digest, data in sorted(blobs.items()):
            d = Descriptor("application/octet-stream", digest, len(data))
            if not dest.has_blob(d):
                dest.put_blob(d, [data])
        for m in manifests:
            dest.put_manifest(m, top=False)
        dest.put_manifest(top, top=True)
        dest.commit()
    except BaseException:
        dest.abort()
        raise
    return top

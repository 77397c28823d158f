"""Build small OCI image layouts (random gzip layers, config, manifest, index) for tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_layer(size: int = 4096) -> tuple[bytes, str]:
    """A gzip tar with one random file; returns (compressed bytes, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        payload = os.urandom(size)
        info = tarfile.TarInfo(f"data-{payload[:4].hex()}.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha256(raw)


@dataclass
class Image:
    """One image: blobs by digest, its manifest bytes and digest."""

    manifest: bytes
    digest: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    platform: dict[str, str] | None = None


def make_image(layers: int = 2, layer_size: int = 4096, arch: str = "amd64") -> Image:
    """A runnable-looking linux image with ``layers`` random layers."""
    blobs: dict[str, bytes] = {}
    descs = []
    diff_ids = []
    for _ in range(layers):
        comp, diff_id = random_layer(layer_size)
        d = sha256(comp)
        blobs[d] = comp
        descs.append({"mediaType": OCI_LAYER, "digest": d, "size": len(comp)})
        diff_ids.append(diff_id)
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    cd = sha256(config)
    blobs[cd] = config
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
        "layers": descs,
    }, sort_keys=True).encode()
    return Image(manifest, sha256(manifest), blobs, {"architecture": arch, "os": "linux"})


def make_index(images: list[Image]) -> tuple[bytes, str]:
    """An OCI index over ``images`` (with their platforms)."""
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": im.digest, "size": len(im.manifest), "platform": im.platform}
            for im in images
        ],
    }, sort_keys=True).encode()
    return index, sha256(index)


def write_layout(path: Path, top: bytes, top_media_type: str, images: list[Image], tag: str = "latest") -> None:
    """Write an OCI image layout whose index.json points at ``top`` (a manifest or an index)."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha256(data)
        (blobs_dir / d.split(":")[1]).write_bytes(data)
        return d

    for im in images:
        for data in im.blobs.values():
            put(data)
        put(im.manifest)
    td = put(top)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (path / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": top_media_type, "digest": td, "size": len(top),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))


def layout_blobs(path: Path) -> dict[str, bytes]:
    """All blobs of a layout by digest."""
    out = {}
    for f in (path / "blobs" / "sha256").iterdir():
        out["sha256:" + f.name] = f.read_bytes()
    return out


def layout_top_digest(path: Path) -> str:
    """Digest the layout's index.json points at."""
    return str(json.loads((path / "index.json").read_text())["manifests"][0]["digest"])

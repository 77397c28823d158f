"""docker-archive sources: tarballs built by hand the way ``docker save`` writes them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from trustbox.client.images.layout import DockerArchiveSource, OCILayoutSource, open_destination, open_source
from trustbox.client.images.transfer import Reporter, copy_image
from trustbox.oci.errors import ImageError
from trustbox.oci.mediatypes import DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def docker_save(
    path: Path,
    layers: list[bytes],
    tags: list[str],
    *,
    gzip_layers: bool = False,
    symlink_duplicate: bool = False,
    oci_style: bool = False,
    bad_diff_id: bool = False,
) -> bytes:
    """Write a ``docker save`` style archive; return the config bytes."""
    diff_ids = ["sha256:" + _sha(x) for x in layers]
    if bad_diff_id:
        diff_ids[0] = "sha256:" + "0" * 64
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
        separators=(",", ":"),
    ).encode()
    cfg_hex = _sha(config)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))

        layer_names = []
        for i, layer in enumerate(layers):
            data = gzip.compress(layer, mtime=0) if gzip_layers else layer
            if oci_style:
                name = f"blobs/sha256/{_sha(data)}"
            else:
                lid = _sha(f"layer{i}".encode())
                name = f"{lid}/layer.tar"
                add(f"{lid}/VERSION", b"1.0")
                add(f"{lid}/json", b"{}")
            if symlink_duplicate and i == 1:
                link = tarfile.TarInfo(name)
                link.type = tarfile.SYMTYPE
                link.linkname = "../" + layer_names[0]
                t.addfile(link)
            elif oci_style and any(n == name for n in layer_names):
                pass
            else:
                add(name, data)
            layer_names.append(name)
        config_name = f"blobs/sha256/{cfg_hex}" if oci_style else f"{cfg_hex}.json"
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]).encode())
        if not oci_style:
            add("repositories", json.dumps({t.split(":")[0]: {t.split(":")[1]: _sha(b"top")} for t in tags}).encode())
    path.write_bytes(buf.getvalue())
    return config


LAYERS = [_tar({"hello.txt": b"hello\n"}), _tar({"etc/motd": b"welcome\n"})]


def test_docker_save_archive_becomes_docker_schema2(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    config = docker_save(archive, LAYERS, ["test/trusttest:latest"])
    src = DockerArchiveSource(archive, None)
    try:
        m = src.top()
        doc = json.loads(m.raw)
        assert m.media_type == DOCKER_MANIFEST and doc["mediaType"] == DOCKER_MANIFEST
        # field order as Go's schema2 structs marshal it (what skopeo pushes)
        assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
        assert list(doc["config"]) == ["mediaType", "size", "digest"]
        assert doc["config"] == {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": "sha256:" + _sha(config)}
        assert [x["mediaType"] for x in doc["layers"]] == [DOCKER_LAYER_GZIP] * 2
        # the gzip'd layers decompress to exactly the layer tars
        for desc, raw in zip(m.layers, LAYERS, strict=True):
            with src.open_blob(desc) as chunks:
                data = b"".join(chunks)
            assert gzip.decompress(data) == raw
    finally:
        src.close()


def test_compression_is_deterministic(tmp_path: Path) -> None:
    docker_save(tmp_path / "a.tar", LAYERS, ["x:1"])
    docker_save(tmp_path / "b.tar", LAYERS, ["x:1"])
    a, b = DockerArchiveSource(tmp_path / "a.tar", None), DockerArchiveSource(tmp_path / "b.tar", None)
    try:
        assert a.top().digest == b.top().digest
    finally:
        a.close()
        b.close()


def test_gzip_layers_are_used_as_they_are(tmp_path: Path) -> None:
    archive = tmp_path / "gz.tar"
    docker_save(archive, LAYERS, ["x:1"], gzip_layers=True)
    src = DockerArchiveSource(archive, None)
    try:
        m = src.top()
        assert m.layers[0].digest == "sha256:" + _sha(gzip.compress(LAYERS[0], mtime=0))
    finally:
        src.close()


def test_symlinked_duplicate_layers_and_oci_style_archives(tmp_path: Path) -> None:
    same = [LAYERS[0], LAYERS[0]]
    docker_save(tmp_path / "link.tar", same, ["x:1"], symlink_duplicate=True)
    docker_save(tmp_path / "oci.tar", LAYERS, ["x:1"], oci_style=True)
    for name in ("link.tar", "oci.tar"):
        src = open_source(f"docker-archive:{tmp_path / name}")
        try:
            res = copy_image(src, open_destination(f"oci:{tmp_path / (name + '.out')}:x"), Reporter())
        finally:
            src.close()
        assert len(res.top.layers) == 2
        assert OCILayoutSource(tmp_path / (name + ".out"), "x").top().digest == res.top.digest


def test_selection_by_tag_and_index(tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    docker_save(archive, LAYERS, ["registry.test/a/b:v1", "registry.test/a/b:v2"])
    for ref in ("registry.test/a/b:v2", "@0", "a/b:v1"):
        DockerArchiveSource(archive, ref).close()
    with pytest.raises(ImageError, match="no image tagged"):
        DockerArchiveSource(archive, "other:v1")
    with pytest.raises(ImageError, match="no image number"):
        DockerArchiveSource(archive, "@3")


def test_diff_id_mismatch_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    docker_save(archive, LAYERS, ["x:1"], bad_diff_id=True)
    with pytest.raises(ImageError, match="does not match diff_id"):
        DockerArchiveSource(archive, None)


def test_not_an_archive(tmp_path: Path) -> None:
    p = tmp_path / "junk.tar"
    p.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageError, match="cannot read docker archive"):
        DockerArchiveSource(p, None)
    empty = tmp_path / "empty.tar"
    empty.write_bytes(_tar({"something": b"x"}))
    with pytest.raises(ImageError, match="manifest.json"):
        DockerArchiveSource(empty, None)

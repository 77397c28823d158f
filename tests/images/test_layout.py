"""OCI layouts and archives: sample image, round trips, selection, corruption, atomicity."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from trustbox.client.images.layout import (
    OCILayoutDestination,
    OCILayoutSource,
    open_destination,
    open_source,
    parse_local_ref,
)
from trustbox.client.images.sample import write_sample_image
from trustbox.client.images.transfer import Reporter, copy_image
from trustbox.oci.errors import DigestMismatchError, ImageError
from trustbox.oci.manifest import Manifest, parse_manifest
from trustbox.oci.mediatypes import OCI_INDEX, OCI_MANIFEST


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_sample_image_is_deterministic_and_valid(tmp_path: Path) -> None:
    a = write_sample_image(tmp_path / "a", "v1")
    b = write_sample_image(tmp_path / "b", "v1")
    assert a.digest == b.digest
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    c = write_sample_image(tmp_path / "c", "v1", message="other")
    assert c.digest != a.digest
    assert a.media_type == OCI_MANIFEST and len(a.layers) == 2
    # every blob is present and hashes to its name; layers are gzip'd tars with the files
    for d in a.blobs():
        data = _blob(tmp_path / "a", d.digest).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d.digest and len(data) == d.size
    layer = gzip.decompress(_blob(tmp_path / "a", a.layers[0].digest).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        assert set(t.getnames()) == {"etc/trustbox-release", "hello.txt"}
    config = json.loads(_blob(tmp_path / "a", a.blobs()[0].digest).read_bytes())
    assert config["rootfs"]["diff_ids"][0] == "sha256:" + hashlib.sha256(layer).hexdigest()
    index = json.loads((tmp_path / "a" / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    assert (tmp_path / "a" / "oci-layout").read_bytes() == b'{"imageLayoutVersion": "1.0.0"}'


def test_multi_arch_sample(multi: tuple[Path, Manifest]) -> None:
    root, top = multi
    assert top.media_type == OCI_INDEX and top.is_index
    assert [d.platform_string() for d in top.manifests] == ["linux/amd64", "linux/arm64"]
    src = OCILayoutSource(root, "m")
    children = [src.manifest(d) for d in top.manifests]
    assert children[0].config != children[1].config
    assert children[0].layers[0] == children[1].layers[0]  # shared base layer


def test_parse_local_ref() -> None:
    r = parse_local_ref("oci:/tmp/x:v1")
    assert r is not None and r.transport == "oci" and str(r.path) == "/tmp/x" and r.ref == "v1"
    r = parse_local_ref("oci-archive:img.tar")
    assert r is not None and r.ref is None
    assert parse_local_ref("127.0.0.1:5000/x:v1") is None
    with pytest.raises(ImageError):
        parse_local_ref("oci:")


@pytest.mark.parametrize("fixture", ["sample", "multi"])
def test_layout_round_trip_is_byte_identical(fixture: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root, top = request.getfixturevalue(fixture)
    ref = "v1" if fixture == "sample" else "m"
    src = open_source(f"oci:{root}:{ref}")
    result = copy_image(src, open_destination(f"oci:{tmp_path / 'copy'}:{ref}"), Reporter())
    assert result.top.digest == top.digest
    assert _tree(tmp_path / "copy") == _tree(root)


def test_oci_archive_round_trip(multi: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = multi
    archive = tmp_path / "img.tar"
    copy_image(open_source(f"oci:{root}:m"), open_destination(f"oci-archive:{archive}:m"), Reporter())
    with tarfile.open(archive) as t:
        names = t.getnames()
    assert "index.json" in names and "oci-layout" in names
    assert f"blobs/sha256/{top.digest.split(':')[1]}" in names
    src = open_source(f"oci-archive:{archive}:m")
    try:
        back = copy_image(src, open_destination(f"oci:{tmp_path / 'back'}:m"), Reporter())
    finally:
        src.close()
    assert back.top.digest == top.digest
    assert _tree(tmp_path / "back") == _tree(root)


def test_corrupted_blob_is_refused_and_leaves_no_output(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = sample
    victim = top.layers[0]
    _blob(root, victim.digest).write_bytes(b"Malicious data\n")
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError) as ei:
        copy_image(open_source(f"oci:{root}:v1"), open_destination(f"oci:{dest}"), Reporter())
    assert victim.digest in str(ei.value)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_same_size_corruption_is_caught_by_the_hash(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = sample
    victim = top.layers[1]
    p = _blob(root, victim.digest)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        copy_image(open_source(f"oci:{root}:v1"), open_destination(f"oci:{tmp_path / 'out'}"), Reporter())
    assert not (tmp_path / "out").exists()


def test_failure_leaves_an_existing_layout_untouched(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = sample
    existing = tmp_path / "existing"
    other = write_sample_image(existing, "keep", message="keep me")
    before = _tree(existing)
    bad = tmp_path / "bad"
    write_sample_image(bad, "v1", message="to be corrupted")
    bad_top = OCILayoutSource(bad, "v1").top()
    _blob(bad, bad_top.layers[0].digest).write_bytes(b"x" * bad_top.layers[0].size)
    with pytest.raises(DigestMismatchError):
        copy_image(open_source(f"oci:{bad}:v1"), open_destination(f"oci:{existing}:new"), Reporter())
    assert _tree(existing) == before
    # a good copy adds the second ref and keeps the first
    copy_image(open_source(f"oci:{root}:v1"), open_destination(f"oci:{existing}:new"), Reporter())
    assert OCILayoutSource(existing, "keep").top().digest == other.digest
    assert OCILayoutSource(existing, "new").top().digest == top.digest


def test_ref_selection(tmp_path: Path) -> None:
    d = tmp_path / "two"
    write_sample_image(d, "a", message="a")
    write_sample_image(d, "b", message="b")
    with pytest.raises(ImageError, match="holds 2 images"):
        OCILayoutSource(d, None)
    with pytest.raises(ImageError, match="no image named 'c'"):
        OCILayoutSource(d, "c")
    assert OCILayoutSource(d, "a").top().digest != OCILayoutSource(d, "b").top().digest


def test_manifest_parsing_rejects_bad_documents() -> None:
    with pytest.raises(ImageError, match="not valid JSON"):
        parse_manifest(b"{nope")
    with pytest.raises(ImageError, match="schema 1"):
        parse_manifest(b'{"schemaVersion":1,"name":"x"}')
    with pytest.raises(ImageError, match="digest"):
        parse_manifest(b'{"schemaVersion":2,"config":{"digest":"md5:00","size":1},"layers":[]}')
    m = parse_manifest(b'{"schemaVersion":2,"manifests":[]}')
    assert m.media_type == OCI_INDEX


def test_missing_blob_names_it(sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, top = sample
    _blob(root, top.layers[1].digest).unlink()
    with pytest.raises(ImageError, match=top.layers[1].digest):
        copy_image(open_source(f"oci:{root}:v1"), open_destination(f"oci:{tmp_path / 'o'}"), Reporter())
    assert not (tmp_path / "o").exists()


def test_destination_refuses_non_layout_directory(tmp_path: Path) -> None:
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "file.txt").write_text("hi")
    with pytest.raises(ImageError, match="not an OCI image layout"):
        OCILayoutDestination(d, None)

"""skopeo against a real ``trustbox serve registry`` process: copies in and out, TLS, auth, tampering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from .conftest import s3_store
from .ocilayout import (
    OCI_INDEX,
    OCI_MANIFEST,
    layout_blobs,
    layout_top_digest,
    make_image,
    make_index,
    write_layout,
)
from .servers import make_tls, registry_process

SKOPEO = shutil.which("skopeo")
pytestmark = [pytest.mark.interop, pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed")]


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": os.environ.get("HOME", "/tmp")}
    p = subprocess.run([SKOPEO or "skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                       timeout=120, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(params=["fs", "s3", "ceph"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A registry process on the filesystem, on the moto S3 server or on Ceph's radosgw."""
    if request.param == "fs":
        args = ["--storage", str(tmp_path / "store")]
        env: dict[str, str] = {}
    else:
        store = s3_store(request, "moto" if request.param == "s3" else "ceph")
        args = store.args()
        env = {**store.env, "TRUSTBOX_SPOOL_DIR": str(tmp_path / "spool")}
    with registry_process(args, env) as addr:
        yield {"addr": addr, "kind": request.param, "store": tmp_path / "store"}


def multiarch_layout(path: Path) -> str:
    images = [make_image(layers=2, arch="amd64"), make_image(layers=3, arch="arm64")]
    index, digest = make_index(images)
    write_layout(path, index, OCI_INDEX, images)
    return digest


def test_layout_to_registry_to_layout_multiarch(server: dict[str, Any], tmp_path: Path) -> None:
    addr = server["addr"]
    src = tmp_path / "src"
    top = multiarch_layout(src)
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{addr}/lib/multi:v1")
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{addr}/lib/multi:v1").stdout
    assert json.loads(raw)["mediaType"] == OCI_INDEX
    dst = tmp_path / "dst"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{addr}/lib/multi:v1", f"oci:{dst}:latest")
    assert layout_top_digest(dst) == top
    assert layout_blobs(dst) == layout_blobs(src)
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{addr}/lib/multi").stdout)
    assert tags["Tags"] == ["v1"]


def test_single_image_roundtrip_by_digest(server: dict[str, Any], tmp_path: Path) -> None:
    addr = server["addr"]
    im = make_image(layers=2)
    src = tmp_path / "src"
    write_layout(src, im.manifest, OCI_MANIFEST, [im])
    skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{addr}/one:latest")
    dst = tmp_path / "dst"
    skopeo("copy", "--src-tls-verify=false", f"docker://{addr}/one@{im.digest}", f"oci:{dst}:x")
    assert layout_top_digest(dst) == im.digest


def test_registry_to_registry(server: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "src"
    top = multiarch_layout(src)
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{server['addr']}/a/b:1")
    with registry_process(["--storage", str(tmp_path / "other")]) as other:
        skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
               f"docker://{server['addr']}/a/b:1", f"docker://{other}/c/d:2")
        raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{other}/c/d:2").stdout
        assert json.loads(raw)["manifests"][0]["digest"] in raw
        dst = tmp_path / "dst"
        skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{other}/c/d:2", f"oci:{dst}:latest")
        assert layout_top_digest(dst) == top
    # and within one registry (cross-repository mount)
    skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{server['addr']}/a/b:1", f"docker://{server['addr']}/mounted:1")
    dst2 = tmp_path / "dst2"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{server['addr']}/mounted:1", f"oci:{dst2}:l")
    assert layout_top_digest(dst2) == top


def test_tampered_layer_refused_by_skopeo(tmp_path: Path) -> None:
    store = tmp_path / "store"
    im = make_image(layers=1, layer_size=20000)
    src = tmp_path / "src"
    write_layout(src, im.manifest, OCI_MANIFEST, [im])
    layer = json.loads(im.manifest)["layers"][0]["digest"].split(":")[1]
    with registry_process(["--storage", str(store)]) as addr:
        skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{addr}/victim:1")
        path = store / "blobs" / "sha256" / layer[:2] / layer
        data = bytearray(path.read_bytes())
        data[5000] ^= 0xFF
        path.write_bytes(bytes(data))
        p = skopeo("copy", "--src-tls-verify=false", f"docker://{addr}/victim:1", f"oci:{tmp_path / 'out'}:x",
                   check=False)
        assert p.returncode != 0
        out = (p.stderr + p.stdout).lower()
        assert f"reading blob sha256:{layer}" in out
        assert "404" in out or "blob unknown" in out
        # re-pushing the good image heals the registry
        skopeo("copy", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{addr}/victim:1")
        skopeo("copy", "--src-tls-verify=false", f"docker://{addr}/victim:1", f"oci:{tmp_path / 'out2'}:x")


def test_tls_and_basic_auth(tmp_path: Path) -> None:
    ca, cert, key = make_tls(tmp_path / "tls")
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("bob:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode() + "\n")
    im = make_image(layers=1)
    src = tmp_path / "src"
    write_layout(src, im.manifest, OCI_MANIFEST, [im])
    args = ["--storage", str(tmp_path / "store"), "--tls-cert", str(cert), "--tls-key", str(key),
            "--htpasswd", str(htpasswd)]
    with registry_process(args, tls_ca=ca) as addr:
        p = skopeo("copy", f"--dest-cert-dir={certs}", f"oci:{src}:latest", f"docker://{addr}/secure:1", check=False)
        assert p.returncode != 0 and "unauthorized" in (p.stderr + p.stdout).lower()
        skopeo("copy", f"--dest-cert-dir={certs}", "--dest-creds=bob:pw", f"oci:{src}:latest",
               f"docker://{addr}/secure:1")
        dst = tmp_path / "dst"
        skopeo("copy", f"--src-cert-dir={certs}", "--src-creds=bob:pw", f"docker://{addr}/secure:1", f"oci:{dst}:x")
        assert layout_top_digest(dst) == im.digest
        # without the CA, TLS verification fails
        p = skopeo("inspect", "--creds=bob:pw", f"docker://{addr}/secure:1", check=False)
        assert p.returncode != 0

"""Real clients and the upstream registry on a real S3 store (Ceph's radosgw, one-node cluster):
skopeo copies images into trustbox's registry on radosgw and back with identical digests, and the
upstream ``docker-registry`` 2.8 with its ``s3`` driver on the same radosgw does too (the
baseline: the store works for upstream the way it works for trustbox)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.ceph import S3Account
from tests.helpers.net import free_port, stop_process, wait_http

from .ocilayout import OCI_INDEX, layout_blobs, layout_top_digest, make_image, make_index, write_layout
from .servers import registry_process
from .test_interop_skopeo import skopeo

UPSTREAM = shutil.which("docker-registry")
pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed"),
              pytest.mark.skipif(UPSTREAM is None, reason="docker-registry not installed")]


@contextmanager
def upstream_on_s3(workdir: Path, account: S3Account, bucket: str) -> Iterator[str]:
    """docker-registry 2.8 with ``storage: s3`` on ``bucket`` (path-style through
    ``regionendpoint``, plain HTTP, redirects off so blobs come through the registry), started
    with a clean environment as in tests/images/registries.py; yields ``host:port``."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n  s3:\n"
        f"    accesskey: {account.access_key}\n    secretkey: {account.secret_key}\n"
        f"    region: {account.region}\n    regionendpoint: {account.endpoint}\n"
        f"    bucket: {bucket}\n    rootdirectory: /upstream\n    secure: false\n    v4auth: true\n"
        "  redirect:\n    disable: true\n  delete:\n    enabled: true\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: trustbox-test\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    log = workdir / "registry.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([UPSTREAM or "docker-registry", "serve", str(config)], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/", proc, log)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process(proc)


def raw_digest(addr: str, ref: str) -> str:
    """sha256 of the manifest bytes the registry serves for ``ref``."""
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{addr}/{ref}").stdout
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def test_skopeo_through_docker_registry_28_and_trustbox_on_radosgw(ceph_s3: S3Account, tmp_path: Path) -> None:
    images = [make_image(layers=2, arch="amd64", layer_size=300_000), make_image(layers=3, arch="arm64")]
    index, top = make_index(images)
    src = tmp_path / "src"
    write_layout(src, index, OCI_INDEX, images)
    bucket = ceph_s3.new_bucket("interop")
    s3 = ceph_s3.client()
    with upstream_on_s3(tmp_path / "upstream", ceph_s3, bucket) as upstream:
        skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{upstream}/lib/app:v1")
        assert raw_digest(upstream, "lib/app:v1") == top
        back = tmp_path / "from-upstream"
        skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{upstream}/lib/app:v1", f"oci:{back}:latest")
        assert layout_top_digest(back) == top and layout_blobs(back) == layout_blobs(src)
        # upstream's objects are in the bucket (its layout under its root directory)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="upstream/")["Contents"]]
        assert any(k.startswith("upstream/docker/registry/v2/blobs/sha256/") for k in keys), keys[:5]
        # trustbox on the same radosgw (same bucket, its own prefix): registry to registry, and back out
        args = ["--storage", f"s3://{bucket}/trustbox", "--s3-endpoint-url", ceph_s3.endpoint]
        with registry_process(args, {**ceph_s3.env(), "TRUSTBOX_SPOOL_DIR": str(tmp_path / "spool")}) as ours:
            skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                   f"docker://{upstream}/lib/app:v1", f"docker://{ours}/lib/app:v1")
            assert raw_digest(ours, "lib/app:v1") == top
            out = tmp_path / "from-trustbox"
            skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{ours}/lib/app:v1", f"oci:{out}:latest")
            assert layout_top_digest(out) == top and layout_blobs(out) == layout_blobs(src)
            tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{ours}/lib/app").stdout)
            assert tags["Tags"] == ["v1"]
            # and back into upstream under a new name: identical again
            skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                   f"docker://{ours}/lib/app:v1", f"docker://{upstream}/lib/again:v2")
            assert raw_digest(upstream, "lib/again:v2") == top

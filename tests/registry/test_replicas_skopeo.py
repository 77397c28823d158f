"""skopeo through a round-robin load balancer in front of two registry processes on one S3
bucket: every request may reach the other process, uploads included."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.rrproxy import round_robin_proxy

from .conftest import make_bucket
from .ocilayout import OCI_INDEX, layout_blobs, layout_top_digest, make_image, make_index, write_layout
from .servers import registry_process
from .test_interop_skopeo import skopeo

pytestmark = [pytest.mark.interop, pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")]

_UPLOAD = re.compile(r"/blobs/uploads/([0-9a-f-]{36})")


def test_skopeo_copies_through_two_replicas_behind_a_round_robin_balancer(moto_endpoint: str,
                                                                         tmp_path: Path) -> None:
    bucket = make_bucket(moto_endpoint)
    args = ["--storage", f"s3://{bucket}/r", "--s3-endpoint-url", moto_endpoint]
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    images = [make_image(layers=3, arch="amd64"), make_image(layers=2, arch="arm64")]
    index, top = make_index(images)
    src = tmp_path / "src"
    write_layout(src, index, OCI_INDEX, images)
    with registry_process(args, {**env, "TRUSTBOX_SPOOL_DIR": str(tmp_path / "s1")}) as one, \
            registry_process(args, {**env, "TRUSTBOX_SPOOL_DIR": str(tmp_path / "s2")}) as two, \
            round_robin_proxy([f"http://{one}", f"http://{two}"]) as (lb, proxy):
        skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{lb}/lb/multi:v1")
        # some upload session was continued by the other process than the one that opened it
        backends_per_session: dict[str, set[int]] = {}
        for _method, path, backend in proxy.log:
            m = _UPLOAD.search(path)
            if m:
                backends_per_session.setdefault(m.group(1), set()).add(backend)
        # the session's own requests (PATCH, PUT) went to both processes for some upload
        assert any(len(b) == 2 for b in backends_per_session.values()), proxy.log
        dst = tmp_path / "dst"
        skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{lb}/lb/multi:v1", f"oci:{dst}:latest")
        assert layout_top_digest(dst) == top
        assert layout_blobs(dst) == layout_blobs(src)
        # each process alone serves the complete image too
        for addr in (one, two):
            out = tmp_path / f"from-{addr.rsplit(':', 1)[1]}"
            skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{addr}/lb/multi:v1", f"oci:{out}:latest")
            assert layout_blobs(out) == layout_blobs(src)

"""Taking over a registry:2 deployment: the real docker-registry 2.8 on a filesystem, images
pushed by skopeo; docker-registry stopped and ``trustbox serve registry`` started with the same
``config.yml`` on the same storage; skopeo, podman and ctr pull the same tags with identical
digests; skopeo pushes new ones; docker-registry started again on the storage serves them.
Webhook events of a skopeo push and pull equal registry:2's field by field (ids, timestamps,
instance ids and ports aside)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import boto3
import httpx
import pytest

from tests.helpers.containerclients import (
    CONTAINERD,
    CTR,
    PODMAN,
    containerd,
    ctr_pull,
    podman_digest,
    podman_pull,
    podman_store,
)
from tests.helpers.net import free_port
from tests.helpers.webhook import Receiver, start_receiver
from tests.images.registries import (
    docker_registry_with_config,
    have_docker_registry,
    trustbox_registry_with_config,
)

from .conftest import make_bucket
from .ocilayout import OCI_INDEX, layout_blobs, layout_top_digest, make_image, make_index, write_layout

SKOPEO = shutil.which("skopeo")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed"),
    pytest.mark.skipif(not have_docker_registry(), reason="docker-registry (distribution 2.8) not installed"),
]


def skopeo(*args: str) -> str:
    p = subprocess.run([SKOPEO or "skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                       timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def raw_digest(addr: str, ref: str) -> str:
    """The sha256 digest of the manifest bytes the registry serves for ``ref``."""
    raw = subprocess.run([SKOPEO or "skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{addr}/{ref}"],
                         capture_output=True, timeout=60).stdout
    assert raw, f"no manifest for {ref}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def write_config(path: Path, root: Path, port: int, receiver: Receiver | None = None,
                 s3: dict[str, str] | None = None, htpasswd: Path | None = None) -> None:
    """A registry:2 config.yml as an operator would have it (Debian's shape; htpasswd auth when
    given), on the filesystem under ``root`` or on S3 (``s3``: endpoint and bucket)."""
    if s3 is None:
        driver = f"  filesystem:\n    rootdirectory: {root}\n"
    else:
        driver = (f"  s3:\n    accesskey: testing\n    secretkey: testing\n    region: {s3.get('region', 'us-east-1')}\n"
                  f"    regionendpoint: {s3['endpoint']}\n    bucket: {s3['bucket']}\n    rootdirectory: /pre\n"
                  "  redirect:\n    disable: true\n")
    text = (
        "version: 0.1\n"
        "log:\n  level: error\n  fields:\n    service: registry\n  accesslog:\n    disabled: true\n"
        f"storage:\n  cache:\n    blobdescriptor: inmemory\n{driver}"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: takeover-test\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
        "health:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    threshold: 3\n"
    )
    if htpasswd is not None:
        text += f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n"
    if receiver is not None:
        text += (
            "notifications:\n  endpoints:\n    - name: test\n"
            f"      url: {receiver.url}\n      headers:\n        X-Hook: [takeover]\n"
            "      timeout: 2s\n      threshold: 3\n      backoff: 1s\n"
        )
    path.write_text(text)


class Storage:
    """The deployment's storage seen directly: files under a root, or objects in a bucket."""

    def __init__(self, root: Path, s3: dict[str, str] | None) -> None:
        self.root = root
        self.s3 = s3

    def _client(self) -> Any:
        assert self.s3 is not None
        return boto3.client("s3", endpoint_url=self.s3["endpoint"], region_name=self.s3.get("region", "us-east-1"),
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self) -> list[str]:
        """Every stored object or file (relative to the storage root)."""
        if self.s3 is None:
            return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=self.s3["bucket"], Prefix="pre/")
        return sorted(o["Key"][len("pre/"):] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        """One object's bytes."""
        if self.s3 is None:
            return (self.root / key).read_bytes()
        body: bytes = self._client().get_object(Bucket=self.s3["bucket"], Key=f"pre/{key}")["Body"].read()
        return body


@pytest.fixture(scope="module", params=["fs", "s3", "ceph"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registry:2 deployment (on a filesystem, on S3 served by moto, or on Ceph's radosgw, a real
    S3 store whose account keys are the process's ``testing`` keys) with a multi-arch OCI
    index and a Docker schema 2 image pushed by skopeo, docker-registry stopped again; what it
    served is recorded."""
    work = tmp_path_factory.mktemp("takeover")
    root = work / "storage"
    port = free_port()
    config = work / "config.yml"
    s3 = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        s3 = {"endpoint": endpoint, "bucket": make_bucket(endpoint)}
    elif request.param == "ceph":
        account = request.getfixturevalue("ceph_s3")
        s3 = {"endpoint": account.endpoint, "bucket": account.new_bucket("takeover"), "region": account.region}
    write_config(config, root, port, s3=s3)
    storage = Storage(root, s3)
    addr = f"127.0.0.1:{port}"
    src = work / "src"
    images = [make_image(layers=2, arch="amd64"), make_image(layers=3, arch="arm64")]
    index, _top = make_index(images)
    write_layout(src, index, OCI_INDEX, images)
    single = work / "single"
    one = make_image(layers=2)
    write_layout(single, one.manifest, "application/vnd.oci.image.manifest.v1+json", [one])
    with docker_registry_with_config(config, work, port):
        skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:latest", f"docker://{addr}/lib/multi:v1")
        skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{single}:latest",
               f"docker://{addr}/app/single:v1")
        before = {ref: raw_digest(addr, ref) for ref in ("lib/multi:v1", "app/single:v1")}
    assert any(k.startswith("docker/registry/v2/repositories/lib/multi/_layers/") for k in storage.keys())
    yield {"work": work, "storage": storage, "port": port, "addr": addr, "config": config, "before": before,
           "src": src}


def test_trustbox_serves_registry2_storage_in_place(deployment: dict[str, Any], tmp_path: Path) -> None:
    addr, before = deployment["addr"], deployment["before"]
    listing_before = deployment["storage"].keys()
    with trustbox_registry_with_config(deployment["config"], deployment["work"], deployment["port"]):
        for ref, digest in before.items():
            assert raw_digest(addr, ref) == digest, ref
        dst = tmp_path / "pulled"
        skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{addr}/lib/multi:v1", f"oci:{dst}:latest")
        assert layout_top_digest(dst) == before["lib/multi:v1"]
        assert layout_blobs(dst) == layout_blobs(deployment["src"])
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{addr}/app/single"))
        assert tags["Tags"] == ["v1"]
    # served without a copy or a conversion: nothing was added or moved by reading
    assert deployment["storage"].keys() == listing_before


@pytest.mark.skipif(PODMAN is None, reason="podman not installed")
def test_podman_pulls_the_same_digests(deployment: dict[str, Any], tmp_path: Path) -> None:
    addr, before = deployment["addr"], deployment["before"]
    with trustbox_registry_with_config(deployment["config"], deployment["work"], deployment["port"]), \
            podman_store() as store:
        podman_pull(store, f"{addr}/app/single:v1")
        assert podman_digest(store, f"{addr}/app/single:v1") == before["app/single:v1"]
        podman_pull(store, f"{addr}/lib/multi:v1")
        assert podman_digest(store, f"{addr}/lib/multi:v1") == before["lib/multi:v1"]


@pytest.mark.skipif(CTR is None or CONTAINERD is None, reason="containerd (ctr) not installed")
def test_ctr_pulls_the_same_digests(deployment: dict[str, Any], tmp_path: Path) -> None:
    addr, before = deployment["addr"], deployment["before"]
    with trustbox_registry_with_config(deployment["config"], deployment["work"], deployment["port"]), \
            containerd(tmp_path / "containerd") as sock:
        assert ctr_pull(sock, f"{addr}/app/single:v1") == before["app/single:v1"]
        assert ctr_pull(sock, f"{addr}/lib/multi:v1", all_platforms=True) == before["lib/multi:v1"]


def test_pushed_to_trustbox_then_served_by_registry2_again(deployment: dict[str, Any], tmp_path: Path) -> None:
    addr, before = deployment["addr"], deployment["before"]
    new = tmp_path / "new"
    img = make_image(layers=3)
    write_layout(new, img.manifest, "application/vnd.oci.image.manifest.v1+json", [img])
    with trustbox_registry_with_config(deployment["config"], deployment["work"], deployment["port"]):
        skopeo("copy", "--dest-tls-verify=false", f"oci:{new}:latest", f"docker://{addr}/app/new:v2")
        # a new tag of an existing repository, and the existing image under another tag
        skopeo("copy", "--dest-tls-verify=false", f"oci:{new}:latest", f"docker://{addr}/app/single:v2")
        skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
               f"docker://{addr}/lib/multi:v1", f"docker://{addr}/lib/multi:again")
        pushed = {ref: raw_digest(addr, ref) for ref in ("app/new:v2", "app/single:v2", "lib/multi:again")}
    assert pushed["app/new:v2"] == img.digest
    assert pushed["lib/multi:again"] == before["lib/multi:v1"]
    storage, hexd = deployment["storage"], img.digest.split(":")[1]
    assert storage.read(f"docker/registry/v2/blobs/sha256/{hexd[:2]}/{hexd}/data") == img.manifest
    assert storage.read("docker/registry/v2/repositories/app/new/_manifests/tags/v2/current/link") \
        == img.digest.encode()
    with docker_registry_with_config(deployment["config"], deployment["work"], deployment["port"]):
        for ref, digest in {**before, **pushed}.items():
            assert raw_digest(addr, ref) == digest, ref
        dst = tmp_path / "back"
        skopeo("copy", "--src-tls-verify=false", f"docker://{addr}/app/new:v2", f"oci:{dst}:latest")
        assert layout_top_digest(dst) == img.digest
        assert layout_blobs(dst) == layout_blobs(new)
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{addr}/app/single"))
        assert sorted(tags["Tags"]) == ["v1", "v2"]


def _normalised(events: list[dict[str, Any]], port: int) -> list[str]:
    """Events without what differs between any two runs (ids, timestamps, instance id, the
    client's port), the registry's address made neutral; sorted (skopeo pushes layers in parallel)."""
    out = []
    for e in events:
        e = json.loads(json.dumps(e).replace(f"127.0.0.1:{port}", "REGISTRY"))
        e.pop("id", None)
        e.pop("timestamp", None)
        e["request"].pop("id", None)
        e["request"]["addr"] = e["request"].get("addr", "").rsplit(":", 1)[0]
        e["source"].pop("instanceID", None)
        e["source"]["addr"] = e["source"].get("addr", "").rsplit(":", 1)[0]
        out.append(json.dumps(e, sort_keys=True))
    return sorted(out)


def _push_and_pull_events(server: Any, config: Path, work: Path, port: int, receiver: Receiver,
                          image_dir: Path, out: Path, creds: list[str]) -> list[dict[str, Any]]:
    addr = f"127.0.0.1:{port}"
    receiver.clear()
    dest = [f"--dest-creds={c}" for c in creds]
    src = [f"--src-creds={c}" for c in creds]
    with server(config, work, port):
        skopeo("copy", "--dest-tls-verify=false", *dest, f"oci:{image_dir}:latest", f"docker://{addr}/ev/img:v1")
        pushed = receiver.wait_quiet(at_least=4)
        skopeo("copy", "--src-tls-verify=false", *src, f"docker://{addr}/ev/img:v1", f"oci:{out}:latest")
        receiver.wait_quiet(at_least=len(pushed) + 4)
    return receiver.events()


@pytest.mark.parametrize("auth", ["anonymous", "htpasswd"])
def test_webhook_events_match_registry2(tmp_path: Path, auth: str) -> None:
    receiver, http_server = start_receiver()
    htpasswd, creds = None, []
    if auth == "htpasswd":  # events then name the pushing and pulling user (actor)
        htpasswd = tmp_path / "htpasswd"
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
        htpasswd.write_text(f"alice:{hashed}\n")
        creds = ["alice:s3cret"]
    try:
        image_dir = tmp_path / "img"
        img = make_image(layers=2)
        write_layout(image_dir, img.manifest, "application/vnd.oci.image.manifest.v1+json", [img])
        runs: dict[str, list[str]] = {}
        orders: dict[str, list[Any]] = {}
        for name, server in (("registry2", docker_registry_with_config), ("trustbox", trustbox_registry_with_config)):
            work = tmp_path / name
            work.mkdir()
            port = free_port()
            config = work / "config.yml"
            write_config(config, work / "storage", port, receiver, htpasswd=htpasswd)
            events = _push_and_pull_events(server, config, work, port, receiver, image_dir, work / "out", creds)
            deliveries = list(receiver.deliveries)
            assert deliveries and all(d.headers.get("Content-Type") == "application/vnd.docker.distribution.events.v1+json"
                                      and d.headers.get("X-Hook") == "takeover" and len(d.events()) == 1
                                      for d in deliveries), name
            runs[name] = _normalised(events, port)
            orders[name] = sorted({(tuple(e), tuple(e["target"]), tuple(e["request"])) for e in events})
        assert runs["trustbox"] == runs["registry2"]
        assert orders["trustbox"] == orders["registry2"]  # the same fields in the same order
        actions = sorted(json.loads(e)["action"] for e in runs["trustbox"])
        assert actions.count("push") == 4 and actions.count("pull") >= 4  # config, 2 layers, manifest
        actors = {json.dumps(json.loads(e)["actor"]) for e in runs["trustbox"]}
        assert actors == ({'{"name": "alice"}'} if creds else {"{}"})
    finally:
        http_server.shutdown()


def test_registry_environment_overrides_act_alike(tmp_path: Path) -> None:
    """The same config.yml and REGISTRY_* variables (address, root, deletes, a header): both
    servers listen where the variables say, store where they say, and allow deletes."""
    image_dir = tmp_path / "img"
    img = make_image(layers=1)
    write_layout(image_dir, img.manifest, "application/vnd.oci.image.manifest.v1+json", [img])
    for name, server in (("registry2", docker_registry_with_config), ("trustbox", trustbox_registry_with_config)):
        work = tmp_path / name
        work.mkdir()
        config = work / "config.yml"
        write_config(config, work / "configured-root", free_port())  # delete.enabled true in the file
        port = free_port()
        env = {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
               "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(work / "env-root"),
               "REGISTRY_STORAGE_DELETE_ENABLED": "false",
               "REGISTRY_HTTP_HEADERS_X-FROM-ENV": "[yes]"}
        addr = f"127.0.0.1:{port}"
        with server(config, work, port, env):
            skopeo("copy", "--dest-tls-verify=false", f"oci:{image_dir}:latest", f"docker://{addr}/env/img:v1")
            r = httpx.delete(f"http://{addr}/v2/env/img/manifests/{img.digest}")
            assert r.status_code == 405 and r.json()["errors"][0]["code"] == "UNSUPPORTED", (name, r.text)
            assert r.headers.get("x-from-env") == "yes", (name, dict(r.headers))
        assert (work / "env-root/docker/registry/v2/repositories/env/img/_manifests/tags/v1/current/link").is_file()
        assert not (work / "configured-root/docker").exists(), name

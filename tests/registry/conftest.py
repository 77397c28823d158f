"""Fixtures: a registry app on the filesystem driver, on S3 mocked by moto's ThreadedMotoServer
(where faults are injected) and on a real S3 store, Ceph's radosgw (``ceph_s3`` in tests/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

warnings.filterwarnings("ignore", message=".*httpx.*")

from starlette.testclient import TestClient  # noqa: E402

from tests.helpers.ceph import S3Account  # noqa: E402
from tests.helpers.net import free_port  # noqa: E402
from trustbox.registry.app import create_app  # noqa: E402
from trustbox.registry.config import RegistryConfig  # noqa: E402
from trustbox.registry.layout import Layout  # noqa: E402
from trustbox.registry.storage import FilesystemDriver, StorageDriver  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
REALM, SERVICE = "https://auth.test/token", "registry.test"  # token auth in tests (auth.helpers issuers)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3 endpoint served by moto's ThreadedMotoServer for the whole session."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    """Create a fresh bucket on the moto server."""
    import boto3

    name = f"reg-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@dataclass(frozen=True)
class S3Store:
    """A fresh bucket on an S3 endpoint (moto or radosgw) and the environment a registry
    process needs to use it."""

    kind: str  # "moto" or "ceph"
    endpoint: str
    bucket: str
    env: dict[str, str]

    def args(self, prefix: str = "r") -> list[str]:
        """``trustbox serve registry`` options for this bucket."""
        return ["--storage", f"s3://{self.bucket}/{prefix}", "--s3-endpoint-url", self.endpoint]


MOTO_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def s3_store(request: pytest.FixtureRequest, kind: str) -> S3Store:
    """A fresh bucket on moto (``kind="moto"``) or on the session's radosgw (``"ceph"``)."""
    if kind == "ceph":
        account: S3Account = request.getfixturevalue("ceph_s3")
        return S3Store(kind, account.endpoint, account.new_bucket("reg"), account.env())
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3Store(kind, endpoint, make_bucket(endpoint), dict(MOTO_ENV))


@pytest.fixture(params=["moto", "ceph"])
def s3store(request: pytest.FixtureRequest) -> S3Store:
    """A fresh bucket on moto, then on Ceph's radosgw."""
    return s3_store(request, request.param)


def ceph_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Config fragments for a fresh bucket on the session's radosgw (its keys are the
    environment's, see ``ceph_s3``)."""
    store = s3_store(request, "ceph")
    return {"storage": f"s3://{store.bucket}/reg", "s3_endpoint_url": store.endpoint,
            "spool_dir": str(tmp_path / "spool")}


@pytest.fixture(params=["fs", "s3", "ceph", "fs-registry2", "s3-registry2"])
def storage_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Config fragments for a fresh filesystem root, a fresh moto bucket or a fresh bucket on
    Ceph's radosgw, in trustbox's storage layout or in registry:2's (``-registry2``)."""
    kind, _, layout = str(request.param).partition("-")
    extra = {"layout": layout} if layout else {}
    if kind == "fs":
        return {"storage": str(tmp_path / "store"), **extra}
    if kind == "ceph":
        return {**ceph_spec(request, tmp_path), **extra}
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = make_bucket(endpoint)
    return {"storage": f"s3://{bucket}/reg", "s3_endpoint_url": endpoint, "spool_dir": str(tmp_path / "spool"),
            **extra}


class Reg:
    """A TestClient with helpers to push blobs and manifests."""

    def __init__(self, client: TestClient, driver: StorageDriver, paths: Layout = Layout.TRUSTBOX) -> None:
        self.c = client
        self.driver = driver
        self.paths = paths  # the storage layout the registry serves

    def __getattr__(self, item: str) -> Any:
        return getattr(self.c, item)

    def push_blob(self, repo: str, data: bytes, alg: str = "sha256") -> str:
        d = f"{alg}:{hashlib.new(alg, data).hexdigest()}"
        r = self.c.post(f"/v2/{repo}/blobs/uploads/?digest={d}", content=data)
        assert r.status_code == 201, r.text
        return d

    def push_manifest(self, repo: str, ref: str, doc: dict[str, Any] | bytes,
                      media_type: str | None = None) -> Any:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        if media_type is None:
            try:
                parsed = json.loads(body)
                media_type = parsed.get("mediaType") if isinstance(parsed, dict) else None
            except ValueError:
                media_type = None
        mt = media_type or OCI_MANIFEST
        return self.c.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": mt})

    def image(self, repo: str, layers: int = 1, tag: str | None = None, extra: dict[str, Any] | None = None,
              media_type: str = OCI_MANIFEST) -> tuple[str, bytes, dict[str, Any]]:
        """Push config + layers + manifest; return (digest, manifest bytes, manifest doc)."""
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
        cd = self.push_blob(repo, cfg)
        descs = []
        for _ in range(layers):
            data = os.urandom(600)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": self.push_blob(repo, data), "size": len(data)})
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
            "layers": descs,
        }
        doc.update(extra or {})
        body = json.dumps(doc).encode()
        d = "sha256:" + hashlib.sha256(body).hexdigest()
        r = self.push_manifest(repo, tag or d, body, media_type)
        assert r.status_code == 201, r.text
        return d, body, doc


def build_reg(spec: dict[str, Any], **overrides: Any) -> Reg:
    """A Reg over a new app for ``spec`` plus config overrides."""
    config = RegistryConfig(**{**spec, **overrides})
    app = create_app(config)
    return Reg(TestClient(app), app.state.registry.driver, app.state.registry.paths)


@pytest.fixture
def reg(storage_spec: dict[str, Any]) -> Reg:
    """A registry on the parametrised storage driver."""
    return build_reg(storage_spec)


@pytest.fixture
def fsreg(tmp_path: Path) -> Reg:
    """A registry on the filesystem driver only (for tests that touch files on disk)."""
    r = build_reg({"storage": str(tmp_path / "store")})
    assert isinstance(r.driver, FilesystemDriver)
    return r


def error_code(resp: Any) -> str:
    """The first error code of a JSON error response."""
    return str(resp.json()["errors"][0]["code"])


def token_config(tmp_path: Path, issuer_cert: bytes) -> dict[str, Any]:
    """Config fragments for registry:2-style token auth trusting ``issuer_cert`` (issuer "trustbox")."""
    bundle = tmp_path / "token-bundle.pem"
    bundle.write_bytes(issuer_cert)
    return {"auth_token_realm": REALM, "auth_token_service": SERVICE, "auth_token_issuer": "trustbox",
            "auth_token_rootcertbundle": str(bundle)}

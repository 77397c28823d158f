"""trustbox's client against real servers and real clients: notary-server 0.7 and trustbox's own
trust server; the docker CLI (no daemon) and the notary CLI reading/writing the same repositories."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.net import free_port
from tests.helpers.notary_server import run_notary
from tests.interop.servers import ServerHandle, make_tls, start_variant
from trustbox.client.trust.repository import TrustClient
from trustbox.keystore.passphrase import docker_env_retriever

pytestmark = pytest.mark.interop

ROOT_PASS = "root-pass-123"
REPO_PASS = "repo-pass-123"
NOTARY_ENV = {
    "NOTARY_ROOT_PASSPHRASE": ROOT_PASS,
    "NOTARY_TARGETS_PASSPHRASE": REPO_PASS,
    "NOTARY_SNAPSHOT_PASSPHRASE": REPO_PASS,
    "NOTARY_DELEGATION_PASSPHRASE": REPO_PASS,
}
DIGEST = "be9b08c2b2202cea0e0da9ab8a31a4626d43e825e2fb9c9ae27e8be3e6d498bf"


def _variants() -> list[object]:
    out: list[object] = [
        pytest.param("upstream", marks=pytest.mark.skipif(not shutil.which("notary-server"), reason="notary-server not installed"))
    ]
    trustbox_ok = importlib.util.find_spec("trustbox.trustserver.app") is not None
    out.append(pytest.param("trustbox-sqlite", marks=pytest.mark.skipif(not trustbox_ok, reason="trustbox.trustserver not importable")))
    return out


@pytest.fixture(scope="module", params=_variants())
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    work = tmp_path_factory.mktemp(request.param)
    handle = start_variant(request.param, work, make_tls(work / "tls"))
    try:
        yield handle
    finally:
        handle.stop()


class Env:
    """A docker config dir wired to the server (CA under tls/<host:port>/), and runners."""

    def __init__(self, server: ServerHandle, base: Path) -> None:
        self.server = server
        self.dir = base
        self.config = base / "docker"
        tls = self.config / "tls" / server.host_port
        tls.mkdir(parents=True)
        shutil.copy(server.ca_path, tls / "ca.crt")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(base),
            "DOCKER_CONFIG": str(self.config),
            "DOCKER_CONTENT_TRUST_SERVER": server.url,
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
            "DOCKER_HOST": "unix://" + str(base / "no-daemon.sock"),
        }

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, cwd=self.dir, timeout=120, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def trustbox(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(shutil.which("trustbox") or "trustbox", "trust", *args, check=check)

    def notary(self, trust_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_notary(trust_dir, self.server.url, self.server.ca_path, *args, env=NOTARY_ENV, check=check)

    def client(self, gun: str, trust_dir: Path | None = None) -> TrustClient:
        return TrustClient(gun, self.server.url, trust_dir or self.config / "trust", ca_files=[self.server.ca_path],
                           passphrase_retriever=docker_env_retriever(self.env))


@pytest.fixture
def env(server: ServerHandle, tmp_path: Path) -> Env:
    return Env(server, tmp_path)


needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
needs_notary = pytest.mark.skipif(shutil.which("notary") is None, reason="notary CLI not installed")


def _gun(name: str) -> str:
    return f"registry.example.test/{name}/app{int(time.time() * 1000) % 10**8}"


@needs_docker
def test_trustbox_signer_add_is_seen_by_docker_inspect(env: Env) -> None:
    gun = _gun("signer")
    env.run("docker", "trust", "key", "generate", "alice", "--dir", str(env.dir))
    out = env.trustbox("signer", "add", "--key", str(env.dir / "alice.pub"), "alice", gun).stdout
    assert f'Successfully initialized "{gun}"' in out
    inspected = json.loads(env.run("docker", "trust", "inspect", gun).stdout)
    assert [s["Name"] for s in inspected[0]["Signers"]] == ["alice"]
    ours = env.trustbox("inspect", gun).stdout
    assert json.loads(ours) == inspected
    assert env.trustbox("inspect", "--pretty", gun).stdout == env.run("docker", "trust", "inspect", "--pretty", gun).stdout


@needs_docker
@needs_notary
def test_docker_generated_key_cosigns_with_trustbox_sign(env: Env) -> None:
    gun = _gun("cosign")
    for name in ("alice", "bob"):
        env.run("docker", "trust", "key", "generate", name, "--dir", str(env.dir))
        env.trustbox("signer", "add", "--key", str(env.dir / f"{name}.pub"), name, gun)
    # first signature by alice through the notary CLI on the docker trust dir (as in the fixtures)
    env.notary(env.config / "trust", "addhash", gun, "v1", "401", "--sha256", DIGEST,
               "-r", "targets/releases", "-r", "targets/alice", "-p")
    out = env.trustbox("sign", f"{gun}:v1").stdout
    assert out == (
        f"Signing and pushing trust metadata for {gun}:v1\n"
        f"Existing signatures for tag v1 digest {DIGEST} from:\nalice\n"
        f"Successfully signed {gun}:v1\n"
    )
    inspected = json.loads(env.run("docker", "trust", "inspect", f"{gun}:v1").stdout)
    assert inspected[0]["SignedTags"] == [{"SignedTag": "v1", "Digest": DIGEST, "Signers": ["alice", "bob"]}]
    # revoke with trustbox, docker sees it gone; remove a signer for real
    env.trustbox("revoke", f"{gun}:v1")
    assert json.loads(env.run("docker", "trust", "inspect", gun).stdout)[0]["SignedTags"] == []
    env.trustbox("signer", "remove", "bob", gun)
    assert [s["Name"] for s in json.loads(env.run("docker", "trust", "inspect", gun).stdout)[0]["Signers"]] == ["alice"]


@needs_notary
def test_notary_signed_tag_is_verified_by_trustclient(env: Env) -> None:
    gun = _gun("notary")
    ndir = env.dir / "notary-trust"
    payload = env.dir / "payload.txt"
    payload.write_bytes(b"hello trust\n")
    env.notary(ndir, "init", gun)
    env.notary(ndir, "add", gun, "v1", str(payload))
    env.notary(ndir, "publish", gun)
    with env.client(gun) as client:
        t = client.get_signed_target("v1")
        assert (t.role, t.sha256_hex, t.length) == ("targets", hashlib.sha256(b"hello trust\n").hexdigest(), 12)
        assert t.signers == ("Repo Admin",)
    # notary rotates the timestamp key; our cached root must follow the rotation
    env.notary(ndir, "key", "rotate", gun, "timestamp", "-r")
    env.notary(ndir, "add", gun, "v2", str(payload))
    env.notary(ndir, "publish", gun)
    with env.client(gun) as client:
        assert client.get_signed_target("v2").length == 12
        assert client.collection.root.signed.version == 2


@needs_notary
def test_repository_initialised_by_trustbox_is_readable_by_notary(env: Env) -> None:
    gun = _gun("tbinit")
    with env.client(gun) as client:
        client.sign_target("v1", DIGEST, 401)
        client.sign_target("v2", "00" * 32, 7)
    listing = env.notary(env.dir / "notary-reader", "list", gun).stdout
    assert "v1" in listing and DIGEST in listing and "v2" in listing
    # and notary's cache layout is ours: the docker trust dir cache has every role
    meta = env.config / "trust" / "tuf" / gun / "metadata"
    assert {p.name for p in meta.iterdir()} >= {"root.json", "targets.json", "snapshot.json", "timestamp.json"}
    env.notary(env.config / "trust", "list", gun)  # notary reads the cache trustbox wrote


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry not installed")
def test_sign_new_tag_reads_manifest_from_registry(env: Env, tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'reg'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: s\n"
    )
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], env={"PATH": os.environ["PATH"]},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/v2/").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        config_blob = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        cdig = "sha256:" + hashlib.sha256(config_blob).hexdigest()
        r = httpx.post(f"{base}/v2/team/app/blobs/uploads/")
        loc = r.headers["location"]
        loc = loc if loc.startswith("http") else base + loc
        sep = "&" if "?" in loc else "?"
        assert httpx.put(f"{loc}{sep}digest={cdig}", content=config_blob).status_code == 201
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": len(config_blob)},
            "layers": [],
        }).encode()
        r = httpx.put(f"{base}/v2/team/app/manifests/v1", content=manifest,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 201, r.text
        image = f"127.0.0.1:{port}/team/app"
        out = env.trustbox("sign", f"{image}:v1").stdout
        assert out.endswith(f"Successfully signed {image}:v1\n")
        with env.client(image) as client:
            t = client.get_signed_target("v1")
        assert (t.sha256_hex, t.length) == (hashlib.sha256(manifest).hexdigest(), len(manifest))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


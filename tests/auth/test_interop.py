"""Our tokens against the real servers: notary-server 0.7 (notary CLI) and registry 2.8 (skopeo),
both configured with ``auth.token`` pointing at ``trustbox serve auth``; and ``login`` against
registry 2.8."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.auth.conftest import HERE, TokenServer
from tests.helpers.net import free_port, stop_process, wait_http
from trustbox.client.dockerenv import credentials_for

pytestmark = pytest.mark.interop


def need(*binaries: str) -> None:
    for b in binaries:
        if shutil.which(b) is None:
            pytest.skip(f"{b} not installed")


# --- notary ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notary_url(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """notary-server with token auth against our token server."""
    need("notary-server", "notary")
    d = tmp_path_factory.mktemp("notary-server")
    port = free_port()
    config = {
        "server": {"http_addr": f"127.0.0.1:{port}", "tls_cert_file": str(token_server.tls.server_cert),
                   "tls_key_file": str(token_server.tls.server_key)},
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
        "storage": {"backend": "memory"},
        "logging": {"level": "info"},
        "auth": {"type": "token", "options": {"realm": token_server.realm, "service": "notary-server",
                                              "issuer": "trustbox", "rootcertbundle": str(token_server.cert)}},
    }
    (d / "config.json").write_text(json.dumps(config))
    log = d / "notary-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["notary-server", "-config", str(d / "config.json")], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    url = f"https://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_notary_server/health", proc, log, ca=token_server.tls.ca_cert)
        yield url
    finally:
        stop_process(proc)


def notary(url: str, ca: Path, trust_dir: Path, *args: str, user: str, password: str) -> tuple[int, str]:
    """Run the notary CLI, answering each username/password prompt as it appears.

    notary reads every prompt through a fresh buffered reader, so all answers cannot be piped at once.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(trust_dir.parent),
           "NOTARY_ROOT_PASSPHRASE": "rootpass-123", "NOTARY_TARGETS_PASSPHRASE": "targetpass-123",
           "NOTARY_SNAPSHOT_PASSPHRASE": "snappass-123"}
    proc = subprocess.Popen(["notary", "-d", str(trust_dir), "-s", url, "--tlscacert", str(ca), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(4096), b"")))  # type: ignore[union-attr]
    reader.start()
    answered = {"username": 0, "password": 0}
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        out = b"".join(chunks).decode(errors="replace")
        for prompt, answer in (("username", user), ("password", password)):
            if out.count(f"Enter {prompt}:") > answered[prompt]:
                answered[prompt] += 1
                try:
                    proc.stdin.write(answer.encode() + b"\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    pass
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reader.join(10)
    proc.stdin.close()
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def _refused(out: str) -> bool:
    return "unauthorized" in out or "not authorized" in out


def test_notary_accepts_our_tokens(notary_url: str, token_server: TokenServer, tmp_path: Path) -> None:
    ca = token_server.tls.ca_cert
    public, team = "example.test/public/app", "example.test/team/app"
    # alice may push and pull public/* and team/*: init + publish both (a token with push,pull).
    for gun in (public, team):
        rc, out = notary(notary_url, ca, tmp_path / "alice", "init", gun, "-p", user="alice", password="alice-pw")
        assert rc == 0, out
        assert "Enter username" in out  # the challenge really went through our token server
    # notary reads anonymously: "*" may pull public/*, not team/*.
    rc, out = notary(notary_url, ca, tmp_path / "anon", "list", public, user="-", password="-")
    assert rc == 0 and "No targets present" in out, out
    rc, out = notary(notary_url, ca, tmp_path / "anon", "list", team, user="-", password="-")
    assert rc != 0 and _refused(out), out
    # bob only pulls team/*: publishing is refused by notary-server (token lacks push).
    rc, out = notary(notary_url, ca, tmp_path / "bob", "init", "example.test/team/other", "-p", user="bob", password="bob-pw")
    assert rc != 0 and _refused(out), out
    # wrong password: the token server refuses, nothing is published.
    rc, out = notary(notary_url, ca, tmp_path / "eve", "init", "example.test/team/eve", "-p", user="alice", password="wrong")
    assert rc != 0, out
    # deleting needs "*": alice lacks it, root (group admins) has it.
    rc, out = notary(notary_url, ca, tmp_path / "alice", "delete", public, "--remote", user="alice", password="alice-pw")
    assert rc != 0 and _refused(out), out
    rc, out = notary(notary_url, ca, tmp_path / "alice", "delete", public, "--remote", user="root", password="root-pw")
    assert rc == 0, out
    rc, out = notary(notary_url, ca, tmp_path / "anon2", "list", public, user="-", password="-")
    assert rc != 0 and "does not have trust data" in out, out


# --- registry + skopeo ---------------------------------------------------------------------------


@dataclass
class Registry:
    host: str
    certs_dir: Path


@pytest.fixture(scope="module")
def registry(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry 2.8 with ``auth.token`` against our token server (clean environment)."""
    need("docker-registry")
    d = tmp_path_factory.mktemp("registry")
    port = free_port()
    tls = token_server.tls
    (d / "config.yml").write_text(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {d / 'data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {tls.server_cert}
    key: {tls.server_key}
auth:
  token:
    realm: {token_server.realm}
    service: registry.test
    issuer: trustbox
    rootcertbundle: {token_server.cert}
""")
    log = d / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    certs = d / "certs"
    certs.mkdir()
    shutil.copyfile(tls.ca_cert, certs / "ca.crt")
    try:
        wait_http(f"https://127.0.0.1:{port}/v2/", proc, log, ca=tls.ca_cert, ok=(401,))
        yield Registry(f"127.0.0.1:{port}", certs)
    finally:
        stop_process(proc)


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def tiny_oci_layout(layout: Path) -> None:
    """An OCI image layout with one tiny image tagged ``v1``."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = b"hello from trustbox\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    layer_digest, layer_size = _blob(layout, gzip.compress(raw.getvalue(), mtime=0))
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}
    cfg_digest, cfg_size = _blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                            "size": layer_size}]}
    man_digest, man_size = _blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": man_digest, "size": man_size,
                                                "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    (layout / "index.json").write_text(json.dumps(index))


def skopeo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "XDG_RUNTIME_DIR": str(tmp)}
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, env=env, timeout=120)


def test_skopeo_copy_with_our_tokens(registry: Registry, tmp_path: Path) -> None:
    need("skopeo")
    layout = tmp_path / "layout"
    tiny_oci_layout(layout)
    src = f"oci:{layout}:v1"
    dest = f"docker://{registry.host}/team/app:v1"
    certs = ["--dest-cert-dir", str(registry.certs_dir)]
    anon = skopeo(tmp_path, "copy", "--dest-no-creds", *certs, src, dest)
    assert anon.returncode != 0
    reader = skopeo(tmp_path, "copy", "--dest-creds", "bob:bob-pw", *certs, src, dest)  # pull only
    assert reader.returncode != 0
    assert "denied" in reader.stderr.lower() or "unauthorized" in reader.stderr.lower(), reader.stderr
    wrong = skopeo(tmp_path, "copy", "--dest-creds", "alice:nope", *certs, src, dest)
    assert wrong.returncode != 0
    ok = skopeo(tmp_path, "copy", "--dest-creds", "alice:alice-pw", *certs, src, dest)
    assert ok.returncode == 0, ok.stderr
    # bob can read it back; anonymous cannot.
    got = skopeo(tmp_path, "inspect", "--creds", "bob:bob-pw", "--cert-dir", str(registry.certs_dir),
                 f"docker://{registry.host}/team/app:v1")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["Layers"]
    nope = skopeo(tmp_path, "inspect", "--no-creds", "--cert-dir", str(registry.certs_dir),
                  f"docker://{registry.host}/team/app:v1")
    assert nope.returncode != 0


# --- login / logout ---------------------------------------------------------------------------------


def run_cli(args: list[str], docker_config: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    return subprocess.run([sys.executable, str(HERE / "run_cli.py"), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def test_login_logout_against_registry(registry: Registry, tmp_path: Path) -> None:
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"psFormat": "table", "auths": {"other.example": {"auth": "eDp5"}}}))
    bad = run_cli(["login", registry.host, "-u", "alice", "--password-stdin"], cfg, "wrong\n")
    assert bad.returncode != 0 and "incorrect username or password" in bad.stderr
    assert "Traceback" not in bad.stderr
    r = run_cli(["login", registry.host, "-u", "alice", "--password-stdin"], cfg, "alice-pw\n")
    assert r.returncode == 0, r.stderr
    assert "Login Succeeded" in r.stdout
    data = json.loads((cfg / "config.json").read_text())
    assert data["psFormat"] == "table" and data["auths"]["other.example"] == {"auth": "eDp5"}
    assert data["auths"][registry.host] == {"auth": "YWxpY2U6YWxpY2UtcHc="}
    assert oct((cfg / "config.json").stat().st_mode & 0o777) == "0o600"
    assert credentials_for(registry.host, {"DOCKER_CONFIG": str(cfg)}) == ("alice", "alice-pw")
    out = run_cli(["logout", registry.host], cfg)
    assert out.returncode == 0 and "Removing login credentials" in out.stdout
    assert credentials_for(registry.host, {"DOCKER_CONFIG": str(cfg)}) is None
    assert json.loads((cfg / "config.json").read_text())["auths"] == {"other.example": {"auth": "eDp5"}}

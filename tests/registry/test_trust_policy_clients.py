"""Registry-side enforcement seen by clients that know nothing about content trust: skopeo 1.9,
podman 4.3 and containerd's ``ctr`` 1.6 (Debian 12) pull from ``trustbox serve registry
--trust-policy`` backed by ``trustbox serve trust`` (images signed by ``trustbox push --sign`` and
the real ``notary`` client) and by a small static trust server serving crafted data (short-lived
timestamps, hostile answers)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.stack import trust_server
from tests.helpers.net import free_port, stop_process, wait_http
from tests.helpers.simulator import RepositorySimulator
from tests.registry.ocilayout import OCI_INDEX, OCI_MANIFEST, make_image, make_index, write_layout
from tests.registry.test_trust_policy import stable_roots

SKOPEO, PODMAN, CTR, CONTAINERD, NOTARY = (shutil.which(t) for t in ("skopeo", "podman", "ctr", "containerd", "notary"))
pytestmark = [pytest.mark.interop]


def need(tool: str | None, name: str) -> None:
    if tool is None:
        pytest.skip(f"{name} not installed")


class StaticTrust(http.server.ThreadingHTTPServer):
    """A trust server answering GETs from a dict (``docs[gun][name]``); ``hostile`` replaces every answer."""

    docs: dict[str, dict[str, bytes]]
    hostile: bytes | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StaticTrust

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body: bytes | None = self.server.hostile
        if body is None:
            path = self.path
            for gun, docs in self.server.docs.items():
                prefix = f"/v2/{gun}/_trust/tuf/"
                if path.startswith(prefix) and path.endswith(".json"):
                    body = docs.get(path[len(prefix):-5])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Live:
    addr: str
    pub_addr: str  # the same storage without a policy: the publishers' endpoint
    work: Path
    env: dict[str, str]
    trust_url: str
    ca: Path
    log: Path
    static: StaticTrust
    static_builders: dict[str, RepositorySimulator] = field(default_factory=dict)

    def tb(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "trustbox", *args], env=self.env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"trustbox {' '.join(args)}: {p.stdout}\n{p.stderr}")
        return p

    def push(self, repo_tag: str, *, sign: bool, index: bool = False, to: str | None = None) -> str:
        """Push a fresh image (or two-platform index) to ``repo_tag``; returns the top digest."""
        layout = self.work / "layouts" / f"{repo_tag.replace('/', '_').replace(':', '_')}-{time.monotonic_ns()}"
        if index:
            images = [make_image(1, 512, "amd64"), make_image(1, 512, "arm64")]
            top, digest = make_index(images)
            write_layout(layout, top, OCI_INDEX, images)
        else:
            im = make_image(1, 512)
            write_layout(layout, im.manifest, OCI_MANIFEST, [im])
            digest = im.digest
        flag = "--sign" if sign else "--disable-content-trust"
        self.tb("push", flag, f"oci:{layout}:latest", f"{to or self.addr}/{repo_tag}")
        return digest

    def publish_static(self, repo: str, builder: RepositorySimulator) -> None:
        docs = builder.publish()
        out = dict(docs)
        for role, data in docs.items():
            if role != "timestamp":
                out[f"{role}.{hashlib.sha256(data).hexdigest()}"] = data
        self.static.docs[f"{self.addr}/{repo}"] = out

    def log_lines(self, word: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if word in line]


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKOPEO or "skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("policy-live")
    static = StaticTrust(("127.0.0.1", 0), _Handler)
    static.docs = {}
    threading.Thread(target=static.serve_forever, daemon=True).start()
    with trust_server("trustbox", work / "trust") as (url, ca):
        port, pub_port = free_port(), free_port()
        addr, pub_addr = f"127.0.0.1:{port}", f"127.0.0.1:{pub_port}"
        policy = work / "policy.toml"
        policy.write_text(
            f'[[rule]]\nname = "signed"\nrepositories = ["signed/**"]\ntrust_server = "{url}"\n'
            f'trust_server_ca = "{ca}"\ngun_prefix = "{addr}/"\ncache_seconds = 2\n\n'
            f'[[rule]]\nname = "static"\nrepositories = ["static/*"]\n'
            f'trust_server = "http://127.0.0.1:{static.server_address[1]}"\ngun_prefix = "{addr}/"\ncache_seconds = 1\n\n'
            f'[[rule]]\nname = "published"\nrepositories = ["pub/**"]\ntrust_server = "{url}"\n'
            f'trust_server_ca = "{ca}"\ngun_prefix = "{pub_addr}/"\n'
        )
        log = work / "registry.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_"))}
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trustbox", "serve", "registry", "--listen", addr,
                 "--storage", str(work / "data"), "--trust-policy", str(policy), "--log-level", "warning"],
                env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(work / "pub.log", "wb") as fh:
            pub = subprocess.Popen(
                [sys.executable, "-m", "trustbox", "serve", "registry", "--listen", pub_addr,
                 "--storage", str(work / "data"), "--log-level", "warning"],
                env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_http(f"http://{addr}/v2/", proc, log)
            wait_http(f"http://{pub_addr}/v2/", pub, work / "pub.log")
            docker = work / "docker"
            tls = docker / "tls" / url.split("//", 1)[1]
            tls.mkdir(parents=True)
            shutil.copy(ca, tls / "ca.crt")
            cenv = {**env, "HOME": str(work), "DOCKER_CONFIG": str(docker), "DOCKER_CONTENT_TRUST_SERVER": url,
                    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root passphrase 1234",
                    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo passphrase 1234"}
            yield Live(addr, pub_addr, work, cenv, url, ca, log, static)
        finally:
            stop_process(proc, group=True)
            stop_process(pub, group=True)
            static.shutdown()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need(CONTAINERD, "containerd")
    need(CTR, "ctr")
    d = tmp_path_factory.mktemp("containerd")
    sock = d / "c.sock"
    (d / "config.toml").write_text(
        f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{d}/c.ttrpc.sock"\n[debug]\n  address = ""\n')
    with open(d / "containerd.log", "wb") as fh:
        proc = subprocess.Popen([CONTAINERD or "containerd", "--config", str(d / "config.toml")],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([CTR or "ctr", "--address", str(sock), "version"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"containerd did not start: {(d / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield str(sock)
    finally:
        stop_process(proc, group=True)


def ctr_pull(sock: str, ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CTR or "ctr", "--address", sock, "images", "pull", "--plain-http", ref],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def podman_run() -> Iterator[Path]:
    """podman's runroot: a short path (podman refuses one over 50 characters)."""
    need(PODMAN, "podman")
    run = Path(tempfile.mkdtemp(prefix="tbpm-", dir="/tmp"))
    yield run
    shutil.rmtree(run, ignore_errors=True)


def podman_pull(work: Path, run: Path, ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PODMAN or "podman", "--root", str(work / "podman"), "--runroot", str(run), "--storage-driver", "vfs",
         "--cgroup-manager", "cgroupfs", "--events-backend", "file", "pull", "--tls-verify=false", ref],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(work)})


def refused(p: subprocess.CompletedProcess[str], rule: str = "signed") -> None:
    out = (p.stdout + p.stderr).lower()
    assert p.returncode != 0, p.stdout + p.stderr
    assert "denied" in out or "403" in out, out


# --- the three clients ---------------------------------------------------------------------------------


def test_skopeo_signed_unsigned_repointed(live: Live, tmp_path: Path) -> None:
    need(SKOPEO, "skopeo")
    d1 = live.push("signed/sk:v1", sign=True)
    live.push("signed/sk:v2", sign=False)
    p = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/sk:v1")
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout.encode()).hexdigest() == d1.split(":")[1]
    p = skopeo("copy", "--src-tls-verify=false", f"docker://{live.addr}/signed/sk:v1", f"oci:{tmp_path / 'o'}:x")
    assert p.returncode == 0, p.stderr
    p = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/sk:v2")
    refused(p)
    assert "trust policy rule 'signed'" in p.stderr and "not signed" in p.stderr
    # by digest: the signed one only
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/sk@{d1}").returncode == 0
    # re-pointed by a push to an unsigned manifest: refused
    live.push("signed/sk:v1", sign=False)
    p = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/sk:v1")
    refused(p)
    assert "is signed for" in p.stderr
    # an unprotected repository is served as before
    live.push("free/sk:v1", sign=False)
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/free/sk:v1").returncode == 0


def test_podman_signed_unsigned_and_index(live: Live, podman_run: Path) -> None:
    live.push("signed/pm:v1", sign=True)
    live.push("signed/pm:v2", sign=False)
    live.push("signed/pm:multi", sign=True, index=True)
    p = podman_pull(live.work, podman_run, f"{live.addr}/signed/pm:v1")
    assert p.returncode == 0, p.stderr
    p = podman_pull(live.work, podman_run, f"{live.addr}/signed/pm:multi")  # the index, then the amd64 child by digest
    assert p.returncode == 0, p.stderr
    refused(podman_pull(live.work, podman_run, f"{live.addr}/signed/pm:v2"))


def test_ctr_signed_unsigned_and_index(live: Live, containerd: str) -> None:
    live.push("signed/ctr:v1", sign=True)
    live.push("signed/ctr:v2", sign=False)
    live.push("signed/ctr:multi", sign=True, index=True)
    p = ctr_pull(containerd, f"{live.addr}/signed/ctr:v1")
    assert p.returncode == 0, p.stdout + p.stderr
    p = ctr_pull(containerd, f"{live.addr}/signed/ctr:multi")
    assert p.returncode == 0, p.stdout + p.stderr
    refused(ctr_pull(containerd, f"{live.addr}/signed/ctr:v2"))


def test_repointed_and_revoked_refused_by_every_client(live: Live, containerd: str, podman_run: Path) -> None:
    need(SKOPEO, "skopeo")
    live.push("signed/all:rp", sign=True)
    live.push("signed/all:rv", sign=True)
    pulls = {
        "ctr": lambda ref: ctr_pull(containerd, ref),
        "podman": lambda ref: podman_pull(live.work, podman_run, ref),
        "skopeo": lambda ref: skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{ref}"),
    }
    for name, pull in pulls.items():
        for tag in ("rp", "rv"):
            p = pull(f"{live.addr}/signed/all:{tag}")
            assert p.returncode == 0, (name, tag, p.stdout + p.stderr)
    # re-pointed by a push to an unsigned manifest: refused at once
    live.push("signed/all:rp", sign=False)
    # revoked in the trust data: refused once the rule's cache bound (2 s) has passed
    live.tb("trust", "revoke", "-y", f"{live.addr}/signed/all:rv")
    time.sleep(2.2)
    for name, pull in pulls.items():
        for tag in ("rp", "rv"):
            p = pull(f"{live.addr}/signed/all:{tag}")
            assert p.returncode != 0 and ("denied" in (p.stdout + p.stderr).lower() or "403" in p.stdout + p.stderr), (
                name, tag, p.stdout + p.stderr)


def test_signed_with_the_real_notary_client(live: Live) -> None:
    need(NOTARY, "notary")
    need(SKOPEO, "skopeo")
    digest = live.push("signed/nt:v1", sign=False)
    live.push("signed/nt:v2", sign=False)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/nt:v1")
    refused(raw)
    # the manifest's size from the unprotected path of the same storage is not available: use the push layout's
    size = len(next(p.read_bytes() for p in (live.work / "layouts").rglob(digest.split(":")[1])))
    gun = f"{live.addr}/signed/nt"
    trust_dir = live.work / "notary"
    base = [NOTARY or "notary", "-s", live.trust_url, "-d", str(trust_dir), "--tlscacert", str(live.ca)]
    env = {**os.environ, "NOTARY_ROOT_PASSPHRASE": "root passphrase 1234",
           "NOTARY_TARGETS_PASSPHRASE": "targets passphrase 1234",
           "NOTARY_SNAPSHOT_PASSPHRASE": "snapshot passphrase 1234"}
    for args in (["init", gun], ["addhash", gun, "v1", str(size), "--sha256", digest.split(":")[1]],
                 ["publish", gun]):
        p = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"notary {args}: {p.stdout}{p.stderr}"
    time.sleep(1.1)  # the registry does not ask again within a second of a failed fetch (RETRY_SECONDS)
    p = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/nt:v1")
    assert p.returncode == 0, p.stderr
    refused(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/signed/nt:v2"))


def test_signed_with_trustbox_trust_sign_through_the_publishers_endpoint(live: Live, podman_run: Path) -> None:
    """``trust sign`` reads the tag's manifest back: publishers use the endpoint without the policy
    (same storage); the policy registry serves what they signed, to podman here."""
    need(SKOPEO, "skopeo")
    live.push("pub/ts:v1", sign=False, to=live.pub_addr)
    live.push("pub/ts:v2", sign=False, to=live.pub_addr)
    refused(podman_pull(live.work, podman_run, f"{live.addr}/pub/ts:v1"))
    time.sleep(1.1)  # past the pause after that failed fetch
    live.tb("trust", "sign", f"{live.pub_addr}/pub/ts:v1")
    p = podman_pull(live.work, podman_run, f"{live.addr}/pub/ts:v1")
    assert p.returncode == 0, p.stderr
    refused(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/pub/ts:v2"))
    # the publishers' endpoint itself is unprotected
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.pub_addr}/pub/ts:v2").returncode == 0


# --- crafted trust data: expiry and hostile answers --------------------------------------------------


def test_expired_timestamp_refused_by_every_client(live: Live, containerd: str, podman_run: Path) -> None:
    need(SKOPEO, "skopeo")
    digest = live.push("static/exp:v1", sign=False)
    body = next(p.read_bytes() for p in (live.work / "layouts").rglob(digest.split(":")[1]))
    b = RepositorySimulator(gun=f"{live.addr}/static/exp", now=datetime.now(UTC) - timedelta(hours=1))
    stable_roots(b)
    b.expiry["timestamp"] = timedelta(hours=1, seconds=4)  # expires 4 s from now
    b.add_target("v1", body)
    live.publish_static("static/exp", b)
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/static/exp:v1").returncode == 0
    time.sleep(4.5)
    refused(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/static/exp:v1"))
    refused(ctr_pull(containerd, f"{live.addr}/static/exp:v1"))
    refused(podman_pull(live.work, podman_run, f"{live.addr}/static/exp:v1"))


@pytest.mark.parametrize("answer", [b"garbage{", b"{" + b" " * (1024 * 1024 + 1) + b"}"], ids=["garbage", "oversized"])
def test_hostile_static_server_logged_in_one_line(live: Live, answer: bytes) -> None:
    need(SKOPEO, "skopeo")
    repo = f"static/h{len(answer) % 97}"
    digest = live.push(f"{repo}:v1", sign=False)
    body = next(p.read_bytes() for p in (live.work / "layouts").rglob(digest.split(":")[1]))
    b = RepositorySimulator(gun=f"{live.addr}/{repo}", now=datetime.now(UTC) - timedelta(hours=1))
    stable_roots(b)
    b.add_target("v1", body)
    live.publish_static(repo, b)
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/{repo}:v1").returncode == 0
    time.sleep(1.1)
    live.static.hostile = answer
    try:
        before = len(live.log_lines(f"{live.addr}/{repo}"))
        p = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/{repo}:v1")
        refused(p)
        assert "failed verification" in p.stderr
        lines = live.log_lines(f"{live.addr}/{repo}")[before:]
        assert len(lines) == 1 and "trust data refused" in lines[0], lines
    finally:
        live.static.hostile = None
    # nothing was kept: with the honest server back, the data is fetched and verified again
    time.sleep(1.1)
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{live.addr}/{repo}:v1").returncode == 0
    assert json.loads(b.root_doc())["signed"]["version"] == 1

"""Sigstore attachments against the real tools (cosign 2.5, skopeo 1.9, podman 4.3, docker-registry 2.8).

* ``trustbox trust sign`` writes attachments that ``cosign verify --key`` accepts, for one image and
  for each platform of a multi-arch index; the key comes from ``trust key export-public``;
* ``trustbox verify --sigstore-key`` accepts what ``cosign sign --tlog-upload=false`` wrote;
* both refuse another key, a flipped signature byte, an altered payload, a signature for another digest;
* a second signer appends a layer, ``trust revoke`` removes it again;
* attachments travel with ``skopeo copy`` to a docker-registry with no trust server, and verify there
  with ``--require sigstore``;
* ``trustbox resolve`` output pulled by podman and by containerd's ``ctr`` gives the signed digest; a ``docker-archive:`` written
  by ``trustbox pull`` loads with ``podman load`` under its tag.

Trust data here is made now (fresh keys, no fixtures), so no time is pinned.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.stack import Stack, missing, start_stack
from tests.helpers.containerclients import CONTAINERD, CTR, containerd, ctr_pull
from tests.helpers.net import free_port
from tests.images.registries import RunningRegistry, have_docker_registry, upstream_registry
from trustbox.client.images.attachments import read_payload
from trustbox.client.images.distribution import RegistryClient
from trustbox.client.images.sample import write_sample_image
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import sha256_digest
from trustbox.oci.manifest import Manifest, parse_manifest
from trustbox.oci.mediatypes import OCI_MANIFEST
from trustbox.oci.simplesigning import (
    SignatureLayer,
    build_signature_manifest,
    parse_signature_manifest,
    signature_tag,
)

pytestmark = pytest.mark.interop


@dataclass
class World:
    """The trustbox trust server + registry, the client environment, pushed images."""

    stack: Stack
    env: dict[str, str]
    work: Path

    @property
    def reg(self) -> str:
        return self.stack.registry.host


def tb(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``trustbox ARGS`` in ``env`` (this checkout's sources through PYTHONPATH, as the stack's servers)."""
    return subprocess.run([sys.executable, "-m", "trustbox", *args], env=env, capture_output=True, text=True,
                          timeout=180, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    why = missing("trustbox")
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("sigstore")
    with start_stack("trustbox", work / "stack") as stack:
        env = stack.env(work / "docker-config")
        env.pop("DOCKER_CONTENT_TRUST", None)
        yield World(stack, env, work)


def push(w: World, name: str, *, multi: bool = False, sign: bool = True) -> Manifest:
    """Push a sample image (unique content) to ``<reg>/test/<name>`` and (``sign``) ``trust sign`` it."""
    d = w.work / f"img-{name.replace(':', '-')}"
    top = write_sample_image(d, "v", multi_arch=multi, message=f"sigstore interop {name}")
    ok(tb(w.env, "push", "--disable-content-trust", f"oci:{d}:v", f"{w.reg}/test/{name}"))
    if sign:
        p = tb(w.env, "trust", "sign", f"{w.reg}/test/{name}")
        # stdout is docker's; the attachment is reported on stderr
        assert ok(p).splitlines()[-1] == f"Successfully signed {w.reg}/test/{name}"
        assert "Sigstore signature" in p.stderr, p.stderr
    return top


def export_key(w: World, repo: str, *args: str) -> Path:
    path = w.work / f"key-{repo.replace('/', '_').replace(':', '_')}-{'-'.join(args) or 'all'}.pem"
    ok(tb(w.env, "trust", "key", "export-public", f"{w.reg}/{repo}", *args, "-o", str(path)))
    return path


def run_cosign(cosign: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """cosign with a clean environment (no ambient docker credentials, no sigstore TUF cache in HOME)."""
    home = Path(tempfile.gettempdir()) / "trustbox-cosign-home"
    home.mkdir(exist_ok=True)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TUF_ROOT": str(home / "tuf-root"),
            **(env or {})}
    return subprocess.run([str(cosign), *args], env=base, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def cosign_verify(cosign: Path, key: Path, ref: str) -> subprocess.CompletedProcess[str]:
    return run_cosign(cosign, "verify", "--key", str(key), "--insecure-ignore-tlog=true",
                      "--allow-http-registry=true", ref)


def other_key(tmp: Path) -> Path:
    k = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp / "other.pem"
    path.write_bytes(k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def sig_layers(w: World, repo: str, digest: str) -> tuple[SignatureLayer, ...]:
    with RegistryClient(w.reg) as rc:
        return parse_signature_manifest(rc.get_manifest(repo, signature_tag(digest)).raw)


# --- trustbox writes, cosign verifies -------------------------------------------------------------


def test_cosign_verifies_trust_sign_attachment(world: World, cosign: Path) -> None:
    top = push(world, "app:1")
    key = export_key(world, "test/app", "--role", "targets")
    assert key.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    # the default export (no signers yet) is the same repository key
    assert ok(tb(world.env, "trust", "key", "export-public", f"{world.reg}/test/app")) == key.read_text()
    for ref in (f"{world.reg}/test/app:1", f"{world.reg}/test/app@{top.digest}"):
        p = cosign_verify(cosign, key, ref)
        assert p.returncode == 0, p.stderr
        claims = json.loads(p.stdout)
        assert claims[0]["critical"]["image"]["docker-manifest-digest"] == top.digest
    assert len(sig_layers(world, "test/app", top.digest)) == 1
    # trustbox checks the same attachment: bound to the TUF-signed digest (both), or alone
    p = tb(world.env, "verify", "--json", "--sigstore-key", str(key), f"{world.reg}/test/app:1")
    verdict = json.loads(ok(p))
    assert verdict["require"] == "both" and verdict["signed"]["digest"] == top.digest
    assert [s["digest"] for s in verdict["sigstore"]] == [top.digest]
    ok(tb(world.env, "verify", "--require", "sigstore", "--sigstore-key", str(key), f"{world.reg}/test/app:1"))
    # signing again adds nothing: the key's layer is there
    ok(tb(world.env, "trust", "sign", "--local", f"{world.reg}/test/app:1"))
    assert len(sig_layers(world, "test/app", top.digest)) == 1


def test_cosign_verifies_each_platform_of_an_index(world: World, cosign: Path) -> None:
    top = push(world, "multi:1", multi=True)
    assert top.is_index and len(top.manifests) == 2
    key = export_key(world, "test/multi", "--role", "targets")
    for child in top.manifests:
        p = cosign_verify(cosign, key, f"{world.reg}/test/multi@{child.digest}")
        assert p.returncode == 0, f"{child.platform_string()}: {p.stderr}"
    assert cosign_verify(cosign, key, f"{world.reg}/test/multi:1").returncode == 0


def test_no_sigstore_flag_and_setting(world: World) -> None:
    top = push(world, "plain:1", sign=False)
    p = tb(world.env, "trust", "sign", "--no-sigstore", f"{world.reg}/test/plain:1")
    assert "Sigstore" not in ok(p) + p.stderr
    p = tb({**world.env, "TRUSTBOX_SIGSTORE": "off"}, "trust", "sign", "--local", f"{world.reg}/test/plain:1")
    assert "Sigstore" not in ok(p) + p.stderr
    with RegistryClient(world.reg) as rc:
        assert rc.head_manifest("test/plain", signature_tag(top.digest)) is None
    bad = tb({**world.env, "TRUSTBOX_SIGSTORE": "maybe"}, "trust", "sign", f"{world.reg}/test/plain:1")
    assert bad.returncode == 1 and "TRUSTBOX_SIGSTORE" in bad.stderr
    # trust attach writes it afterwards, with the key that signed
    out = ok(tb(world.env, "trust", "attach", f"{world.reg}/test/plain:1"))
    assert "1 added for 1 manifest(s)" in out
    assert len(sig_layers(world, "test/plain", top.digest)) == 1
    out = ok(tb(world.env, "trust", "attach", "--all-tags", f"{world.reg}/test/plain"))
    assert "0 added for 1 manifest(s)" in out


# --- cosign writes, trustbox verifies -------------------------------------------------------------


def test_trustbox_verifies_cosign_signature(world: World, cosign: Path, tmp_path: Path) -> None:
    top = push(world, "cos:1", sign=False)
    env = {"COSIGN_PASSWORD": "cosign test password"}
    p = run_cosign(cosign, "generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign"), env=env)
    assert p.returncode == 0, p.stderr
    p = run_cosign(cosign, "sign", "--key", str(tmp_path / "cosign.key"), "--tlog-upload=false",
                   "--allow-http-registry=true", "-y", f"{world.reg}/test/cos@{top.digest}", env=env)
    assert p.returncode == 0, p.stderr
    pub = tmp_path / "cosign.pub"
    for ref in (f"{world.reg}/test/cos:1", f"{world.reg}/test/cos@{top.digest}"):
        out = ok(tb(world.env, "verify", "--require", "sigstore", "--sigstore-key", str(pub), ref))
        assert out.startswith("Verified:") and top.digest in out
    # the tag is not signed in trust data: both checks together refuse (exit 1)
    p = tb(world.env, "verify", "--sigstore-key", str(pub), f"{world.reg}/test/cos:1")
    assert p.returncode == 1, p.stderr


# --- both refuse ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def negatives(world: World) -> tuple[Manifest, Manifest, Path]:
    """Two signed images in ``test/neg`` (a, b) and the repository key."""
    a = push(world, "neg:a")
    b = push(world, "neg:b")
    return a, b, export_key(world, "test/neg", "--role", "targets")


def _put_sig(w: World, repo: str, digest: str, layers: list[SignatureLayer], payloads: dict[str, bytes]) -> None:
    sm = build_signature_manifest(layers)
    with RegistryClient(w.reg) as rc:
        for data in [*payloads.values(), sm.config]:
            rc.upload_blob(repo, Descriptor("application/octet-stream", sha256_digest(data), len(data)), [data])
        rc.put_manifest(repo, signature_tag(digest), parse_manifest(sm.manifest, OCI_MANIFEST))


@pytest.mark.parametrize("case", ["other-key", "flipped-signature-byte", "altered-payload", "other-digest"])
def test_both_refuse(world: World, cosign: Path, negatives: tuple[Manifest, Manifest, Path], case: str, tmp_path: Path) -> None:
    a, b, key = negatives
    repo = "test/neg"
    good = sig_layers(world, repo, a.digest)
    good_b = sig_layers(world, repo, b.digest)
    assert len(good) == 1 and len(good_b) == 1
    with RegistryClient(world.reg) as rc:
        payload = read_payload(rc, repo, good[0])
    target, use_key = a.digest, key
    if case == "other-key":
        use_key = other_key(tmp_path)
    elif case == "flipped-signature-byte":
        raw = bytearray(base64.b64decode(good[0].signature))
        raw[len(raw) // 2] ^= 0x01
        layer = SignatureLayer.for_payload(payload, bytes(raw))
        _put_sig(world, repo, a.digest, [layer], {})
    elif case == "altered-payload":
        altered = payload.replace(b'"optional":null', b'"optional":{}')
        assert altered != payload
        sig = base64.b64decode(good[0].signature)
        _put_sig(world, repo, a.digest, [SignatureLayer.for_payload(altered, sig)], {"p": altered})
    else:  # a valid signature of a, stored as b's
        target = b.digest
        _put_sig(world, repo, b.digest, list(good), {})
    try:
        ref = f"{world.reg}/{repo}@{target}"
        p = cosign_verify(cosign, use_key, ref)
        assert p.returncode != 0, f"cosign accepted {case}: {p.stdout}"
        p = tb(world.env, "verify", "--require", "sigstore", "--sigstore-key", str(use_key), ref)
        assert p.returncode == 1, f"trustbox: exit {p.returncode} for {case}: {p.stdout} {p.stderr}"
        assert p.stderr.startswith("Not verified:"), p.stderr
    finally:
        _put_sig(world, repo, a.digest, list(good), {})
        _put_sig(world, repo, b.digest, list(good_b), {})
    # the restored attachment verifies again with both tools: the refusals above were the tampering's
    assert cosign_verify(cosign, key, f"{world.reg}/{repo}@{target}").returncode == 0
    ok(tb(world.env, "verify", "--require", "sigstore", "--sigstore-key", str(key), f"{world.reg}/{repo}@{target}"))


# --- a second signer appends, revoke removes ------------------------------------------------------


def test_signer_appends_and_revoke_removes(world: World, cosign: Path, tmp_path: Path) -> None:
    top = push(world, "team:1")
    admin = export_key(world, "test/team", "--role", "targets")
    ok(tb(world.env, "trust", "key", "generate", "alice", "--dir", str(tmp_path)))
    ok(tb(world.env, "trust", "signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", f"{world.reg}/test/team"))
    p = tb(world.env, "trust", "sign", f"{world.reg}/test/team:1")
    assert ok(p).splitlines()[-1] == f"Successfully signed {world.reg}/test/team:1"
    assert "1 added" in p.stderr, p.stderr
    assert len(sig_layers(world, "test/team", top.digest)) == 2
    alice = export_key(world, "test/team", "--signer", "alice")
    assert alice.read_bytes() != admin.read_bytes()
    for k in (admin, alice):
        assert cosign_verify(cosign, k, f"{world.reg}/test/team:1").returncode == 0
    p = tb(world.env, "trust", "revoke", "-y", f"{world.reg}/test/team:1")
    assert ok(p) == f"Successfully deleted signature for {world.reg}/test/team:1\n"
    assert "Removed 1 sigstore signature(s)" in p.stderr, p.stderr
    assert len(sig_layers(world, "test/team", top.digest)) == 1
    assert cosign_verify(cosign, alice, f"{world.reg}/test/team:1").returncode != 0
    assert cosign_verify(cosign, admin, f"{world.reg}/test/team:1").returncode == 0


# --- attachments travel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if not have_docker_registry():
        pytest.skip("docker-registry not installed")
    with upstream_registry(tmp_path_factory.mktemp("second-registry")) as r:
        yield r


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo not installed")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=180)


def test_attachments_travel_with_skopeo_copy(world: World, cosign: Path, second_registry: RunningRegistry) -> None:
    top = push(world, "travel:1", multi=True)
    key = export_key(world, "test/travel", "--role", "targets")
    src, dst = f"{world.reg}/test/travel", f"{second_registry.host}/test/travel"
    # containers/image copies sigstore attachments of registries configured to use them (Debian's
    # skopeo 1.9 cannot check them, but finds and copies them)
    regd = world.work / "registries.d"
    regd.mkdir(exist_ok=True)
    (regd / "sigstore.yaml").write_text(
        f"docker:\n  {world.reg}:\n    use-sigstore-attachments: true\n  {second_registry.host}:\n"
        "    use-sigstore-attachments: true\n"
    )
    p = _skopeo("copy", "--all", "--registries.d", str(regd), "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{src}:1", f"docker://{dst}:1")
    assert p.returncode == 0, p.stderr
    with RegistryClient(second_registry.host) as rc:
        tags = set(rc.list_tags("test/travel"))
    assert tags == {"1"} | {signature_tag(d) for d in [top.digest] + [c.digest for c in top.manifests]}
    # no trust server at all: a closed port
    env = {**world.env, "DOCKER_CONTENT_TRUST_SERVER": f"https://127.0.0.1:{free_port()}"}
    out = ok(tb(env, "verify", "--require", "sigstore", "--sigstore-key", str(key), f"{dst}:1"))
    assert top.digest in out
    for c in top.manifests:
        ok(tb(env, "verify", "--require", "sigstore", "--sigstore-key", str(key), f"{dst}@{c.digest}"))
        assert cosign_verify(cosign, key, f"{dst}@{c.digest}").returncode == 0
    # the content-trust check needs the trust server: unreachable is exit 3
    assert tb(env, "verify", "--sigstore-key", str(key), f"{dst}:1").returncode == 3
    # another key is refused there too
    assert tb(env, "verify", "--require", "sigstore", "--sigstore-key", str(other_key(world.work)), f"{dst}:1").returncode == 1


# --- resolve, podman, docker-archive --------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_root() -> Iterator[Path]:
    """Short storage folders for podman (it refuses a run root longer than 50 characters)."""
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    root = Path(tempfile.mkdtemp(prefix="tbpm-", dir="/tmp"))
    try:
        yield root
    finally:
        subprocess.run(["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "vfs",
                        "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _podman(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = ["podman", "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "XDG_RUNTIME_DIR": str(root / "xdg")}
    (root / "xdg").mkdir(parents=True, exist_ok=True)
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=300, env=env)


def test_resolve_pulled_by_podman(world: World, podman_root: Path, tmp_path: Path) -> None:
    app = push(world, "res:1")
    multi = push(world, "res:2", multi=True)
    out = ok(tb(world.env, "resolve", f"{world.reg}/test/res:1"))
    assert out == f"{world.reg}/test/res@{app.digest}\n"
    p = _podman(podman_root, "pull", "--tls-verify=false", out.strip())
    assert p.returncode == 0, p.stderr
    p = _podman(podman_root, "image", "inspect", "--format", "{{.Digest}}", out.strip())
    assert p.returncode == 0 and p.stdout.strip() == app.digest, p.stdout + p.stderr
    # a file of references, in order; an unsigned one fails the batch but the others are printed
    push(world, "res:3", sign=False)
    refs = tmp_path / "refs.txt"
    refs.write_text(f"# images\n{world.reg}/test/res:2\n\n{world.reg}/test/res:3\n{world.reg}/test/res:1\n")
    p = tb(world.env, "resolve", "--from-file", str(refs))
    assert p.returncode == 1
    assert p.stdout.splitlines() == [f"{world.reg}/test/res@{multi.digest}", f"{world.reg}/test/res@{app.digest}"]
    assert "Not verified" in p.stderr or "No valid trust data" in p.stderr, p.stderr
    docs = json.loads(tb(world.env, "resolve", "--json", "--from-file", "-", stdin=refs.read_text()).stdout)
    assert [d["resolved"] for d in docs] == [f"{world.reg}/test/res@{multi.digest}", None, f"{world.reg}/test/res@{app.digest}"]
    assert [d["exit_code"] for d in docs] == [0, 1, 0]
    one = json.loads(ok(tb(world.env, "resolve", "--json", f"{world.reg}/test/res:1")))
    assert one["resolved"] == f"{world.reg}/test/res@{app.digest}" and one["verified"] is True
    assert tb(world.env, "resolve").returncode == 2
    assert tb(world.env, "resolve", f"{world.reg}/test/res@{app.digest}").returncode == 2


def test_resolve_pulled_by_ctr(world: World) -> None:
    """containerd's ``ctr`` (Debian's 1.6, no content trust) pulls what ``resolve`` printed and
    records the signed digest, for one image and for a multi-arch index."""
    if CTR is None or CONTAINERD is None:
        pytest.skip("containerd / ctr not installed")
    app = push(world, "ctr:1")
    multi = push(world, "ctr:2", multi=True)
    work = Path(tempfile.mkdtemp(prefix="ctrd", dir="/tmp"))  # short: the socket path is limited
    try:
        with containerd(work) as sock:
            for tag, image in (("ctr:1", app), ("ctr:2", multi)):
                out = ok(tb(world.env, "resolve", f"{world.reg}/test/{tag}")).strip()
                assert out == f"{world.reg}/test/ctr@{image.digest}"
                assert ctr_pull(sock, out) == image.digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_docker_archive_loads_with_podman(world: World, podman_root: Path, tmp_path: Path) -> None:
    app = push(world, "arch:1")
    multi = push(world, "arch:2", multi=True)
    env = {**world.env, "DOCKER_CONTENT_TRUST": "1"}
    archive = tmp_path / "app.tar"
    out = ok(tb(env, "pull", f"{world.reg}/test/arch:1", f"docker-archive:{archive}"))
    assert f"Pull (1 of 1): {world.reg}/test/arch:1@{app.digest}" in out
    p = _podman(podman_root, "load", "-i", str(archive))
    assert p.returncode == 0, p.stderr
    assert f"{world.reg}/test/arch:1" in p.stdout, p.stdout
    p = _podman(podman_root, "image", "inspect", "--format", "{{.Id}}", f"{world.reg}/test/arch:1")
    assert app.config is not None and p.stdout.strip() == app.config.digest.split(":", 1)[1], p.stdout + p.stderr
    # one platform of an index, under another name
    archive2 = tmp_path / "multi.tar"
    ok(tb(env, "pull", "--platform", "linux/arm64", f"{world.reg}/test/arch:2", f"docker-archive:{archive2}:mine/app:arm"))
    p = _podman(podman_root, "load", "-i", str(archive2))
    assert p.returncode == 0, p.stderr
    arm = next(d for d in multi.manifests if d.platform_string() == "linux/arm64")
    with RegistryClient(world.reg) as rc:
        arm_manifest = rc.get_manifest("test/arch", arm.digest, arm)
    p = _podman(podman_root, "image", "inspect", "--format", "{{.Id}} {{.Architecture}}", "mine/app:arm")
    assert arm_manifest.config is not None
    assert p.stdout.split() == [arm_manifest.config.digest.split(":", 1)[1], "arm64"], p.stdout + p.stderr

"""``trustbox copy``: registry to registry against the real docker-registry 2.8 and trustbox's
registry, with skopeo creating and reading images and cosign signing and verifying attachments.

Proves: manifests byte for byte (top and every child of an index), blobs skipped when present and
mounted within one registry (token auth: one token for push on the target and pull on the
source), auth on both sides from docker's config.json, a hostile source (bytes that do not match
their digest) refused with nothing tagged and the upload session aborted, bounded memory and no
temporary files for a large layer, cosign signatures / attestations and OCI referrers copied along.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.cosign import cosign_binary
from tests.images.fake_registry import FakeRegistry
from tests.images.randimage import push_random_image, push_referrer
from tests.images.registries import (
    RunningRegistry,
    have_docker_registry,
    htpasswd_file,
    token_server,
    trustbox_registry,
    upstream_registry,
)
from trustbox.cli import cli
from trustbox.client.images.copy import CopyOptions, CopyStats, copy_image_ref
from trustbox.client.images.distribution import RegistryAuthError, RegistryClient, RegistryOptions
from trustbox.client.images.sample import write_sample_image
from trustbox.errors import NotFoundError
from trustbox.oci.errors import DigestMismatchError

pytestmark = pytest.mark.interop

RULES = """
[[rule]]
subject = "root"
repository = "*"
actions = ["*"]

[[rule]]
subject = "alice"
repository = "ro/*"
actions = ["pull"]

[[rule]]
subject = "alice"
repository = "dst/*"
actions = ["pull", "push"]
"""
USERS = {"root": "root-pw", "alice": "alice-pw"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if not have_docker_registry():
        pytest.skip("docker-registry not installed")
    with upstream_registry(tmp_path_factory.mktemp("upstream")) as r:
        yield r


@pytest.fixture(scope="module")
def tbreg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with trustbox_registry(tmp_path_factory.mktemp("trustbox")) as r:
        yield r


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """trustbox's registry behind ``trustbox serve auth`` (root: everything; alice: pull ro/*, push dst/*)."""
    d = tmp_path_factory.mktemp("token")
    with token_server(d / "auth", USERS, RULES) as auth, trustbox_registry(d / "registry", auth.registry_args) as r:
        yield r


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """trustbox's registry with htpasswd Basic auth (user bob)."""
    d = tmp_path_factory.mktemp("basic")
    htpasswd = htpasswd_file(d / "htpasswd", {"bob": "bob-pw"})
    with trustbox_registry(d, ("--htpasswd", str(htpasswd))) as r:
        yield r


def _skopeo() -> str:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo not installed")
    return exe


def skopeo(*args: str) -> bytes:
    p = subprocess.run([_skopeo(), *args], capture_output=True, timeout=120)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr.decode()}"
    return p.stdout


def raw(ref: str) -> bytes:
    return skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def docker_auth(entries: dict[str, tuple[str, str]]) -> None:
    """Write ``$DOCKER_CONFIG/config.json`` with these registries' credentials."""
    cfg = Path(os.environ["DOCKER_CONFIG"])
    cfg.mkdir(parents=True, exist_ok=True)
    auths = {h: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for h, (u, p) in entries.items()}
    (cfg / "config.json").write_text(json.dumps({"auths": auths}))


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def tags(client: RegistryClient, repo: str) -> list[str]:
    """The repository's tags ([] when the registry does not know it)."""
    try:
        return client.list_tags(repo)
    except NotFoundError:
        return []


def copy(src: str, dst: str, **kw: object) -> tuple[object, CopyStats]:
    stats: list[CopyStats] = []
    result = copy_image_ref(src, dst, options=CopyOptions(**kw), on_stats=stats.append)  # type: ignore[arg-type]
    return result, stats[0]


# --- digests preserved, every child, both registries -------------------------------------


@pytest.mark.parametrize("multi_arch", [False, True], ids=["image", "index"])
@pytest.mark.parametrize("direction", ["upstream-to-trustbox", "trustbox-to-upstream"])
def test_copy_preserves_every_manifest_byte_for_byte(
    upstream: RunningRegistry, tbreg: RunningRegistry, tmp_path: Path, direction: str, multi_arch: bool
) -> None:
    src, dst = (upstream, tbreg) if direction.startswith("upstream") else (tbreg, upstream)
    write_sample_image(tmp_path / "img", "v1", multi_arch=multi_arch, message=f"copy {direction} {multi_arch}")
    src_ref = f"{src.host}/copy/{direction}:v1"
    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{tmp_path / 'img'}:v1", f"docker://{src_ref}")
    dst_ref = f"{dst.host}/moved/{direction}-{int(multi_arch)}:release"
    code, out, err = run("copy", src_ref, dst_ref)
    assert code == 0, err
    top = raw(src_ref)
    digest = "sha256:" + hashlib.sha256(top).hexdigest()
    assert out.splitlines()[-1].startswith(f"Copied {src_ref} -> {dst_ref}@{digest} ")
    assert raw(dst_ref) == top
    children = [c["digest"] for c in json.loads(top).get("manifests", [])]
    assert len(children) == (2 if multi_arch else 0)
    for child in children:
        assert raw(f"{dst.host}/moved/{direction}-{int(multi_arch)}@{child}") == raw(f"{src.host}/copy/{direction}@{child}")
    # everything readable at the destination, identical to the original layout
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", f"docker://{dst_ref}", f"oci:{tmp_path / 'back'}:v1")
    assert _tree(tmp_path / "back") == _tree(tmp_path / "img")


def test_destination_without_tag_or_by_digest(upstream: RunningRegistry, tbreg: RunningRegistry) -> None:
    with RegistryClient(upstream.host) as c:
        top = push_random_image(c, "defaults/src", "v7")
    result, _ = copy(f"{upstream.host}/defaults/src:v7", f"{tbreg.host}/defaults/dst")
    assert raw(f"{tbreg.host}/defaults/dst:v7") == top.raw  # the source's tag
    result, _ = copy(f"{upstream.host}/defaults/src@{top.digest}", f"{tbreg.host}/defaults/bydigest@{top.digest}")
    with RegistryClient(tbreg.host) as c:
        assert c.get_manifest("defaults/bydigest", top.digest).raw == top.raw
        assert tags(c, "defaults/bydigest") == []  # nothing tagged
    code, _, err = run("copy", f"{upstream.host}/defaults/src:v7", f"{tbreg.host}/x@sha256:{'0' * 64}")
    assert code == 1 and err.startswith("Error: a destination digest needs a source pinned by the same digest")


# --- work avoided: present blobs, present tags, mounts -----------------------------------


def test_blobs_the_destination_has_are_skipped(upstream: RunningRegistry, tbreg: RunningRegistry) -> None:
    with RegistryClient(upstream.host) as c:
        v1 = push_random_image(c, "skip/app", "v1", (50_000, 60_000))
        shared = v1.layers[0]
        v2 = push_random_image(c, "skip/app", "v2", (70_000,), extra_layers=[shared])
    result, stats = copy(f"{upstream.host}/skip/app:v1", f"{tbreg.host}/skip/app:v1")
    assert (stats.blobs_copied, stats.blobs_present, stats.blobs_mounted) == (3, 0, 0)
    assert stats.bytes_copied == sum(d.size for d in v1.blobs())
    result, stats = copy(f"{upstream.host}/skip/app:v2", f"{tbreg.host}/skip/app:v2")
    assert (stats.blobs_copied, stats.blobs_present) == (2, 1)  # new layer + config; the shared layer is there
    assert raw(f"{tbreg.host}/skip/app:v2") == v2.raw
    result, stats = copy(f"{upstream.host}/skip/app:v1", f"{tbreg.host}/skip/app:v1")
    assert result.present and result.manifests == 0  # type: ignore[attr-defined]
    assert stats.blobs_copied + stats.blobs_present + stats.blobs_mounted == 0
    code, out, _ = run("copy", f"{upstream.host}/skip/app:v1", f"{tbreg.host}/skip/app:v1")
    assert code == 0 and out.strip() == f"Already present: {tbreg.host}/skip/app:v1 is {v1.digest}"


def test_same_registry_mounts_with_one_token_for_both_repositories(token_registry: RunningRegistry) -> None:
    host = token_registry.host
    with RegistryClient(host, RegistryOptions(credentials=("root", "root-pw"))) as c:
        top = push_random_image(c, "ro/base", "v1", (30_000, 40_000), architectures=("amd64", "arm64"))
    docker_auth({host: ("alice", "alice-pw")})  # alice may only pull ro/*: a mount needs both scopes in one token
    result, stats = copy(f"{host}/ro/base:v1", f"{host}/dst/base:v1")
    assert (stats.blobs_mounted, stats.blobs_copied, stats.blobs_present) == (6, 0, 0)
    assert result.manifests == 3  # type: ignore[attr-defined]
    with RegistryClient(host) as c:
        assert c.get_manifest("dst/base", "v1").raw == top.raw
        # alice cannot push into ro/*: refused before anything is read
        with pytest.raises(RegistryAuthError):
            copy_image_ref(f"{host}/dst/base:v1", f"{host}/ro/other:v1", options=CopyOptions())
    code, _, err = run("copy", f"{host}/dst/base:v1", f"{host}/ro/other:v1")
    assert code == 1 and err.startswith(f"Error: registry {host} ")


def test_auth_on_both_sides_from_docker_config(basic_registry: RunningRegistry, token_registry: RunningRegistry) -> None:
    src, dst = basic_registry.host, token_registry.host
    with RegistryClient(src, RegistryOptions(credentials=("bob", "bob-pw"))) as c:
        top = push_random_image(c, "team/app", "v1", (20_000,))
    docker_auth({dst: ("alice", "alice-pw")})  # no credentials for the source yet
    code, _, err = run("copy", f"{src}/team/app:v1", f"{dst}/dst/app:v1")
    assert code == 1 and err.splitlines()[0] == f"Error: registry {src} requires a username and password"
    docker_auth({src: ("bob", "bob-pw"), dst: ("alice", "alice-pw")})
    code, out, err = run("copy", f"{src}/team/app:v1", f"{dst}/dst/app:v1")
    assert code == 0, err
    with RegistryClient(dst) as c:
        assert c.get_manifest("dst/app", "v1").raw == top.raw


# --- hostile and broken sources -----------------------------------------------------------


def _uploads(registry: RunningRegistry) -> list[Path]:
    return [p for p in (registry.root / "uploads").rglob("*") if p.is_file()] if (registry.root / "uploads").exists() else []


def _small_uploads() -> RegistryOptions:
    """Destination options that upload a blob in one ``PUT`` up to 1 MiB, else in ``PATCH`` chunks
    of 1 MiB: the tests' small and large blobs take both ways of sending, and both must stop."""
    return RegistryOptions(monolithic_limit=1024 * 1024, chunk_size=1024 * 1024)


@pytest.mark.parametrize("tamper", ["flip", "truncate"])
@pytest.mark.parametrize("size", [100_000, 12 * 1024 * 1024], ids=["monolithic", "chunked"])
def test_hostile_source_is_refused_and_nothing_is_tagged(
    upstream: RunningRegistry, tbreg: RunningRegistry, tamper: str, size: int
) -> None:
    repo = f"hostile/{tamper}-{size}"
    with RegistryClient(upstream.host) as c:
        top = push_random_image(c, repo, "v1", (size, 5000), architectures=("amd64", "arm64"))
        victim = c.get_manifest(repo, top.manifests[1].digest).layers[0]
    path = upstream.blob_file(victim.digest)
    data = bytearray(path.read_bytes())
    if tamper == "flip":
        data[len(data) // 2] ^= 1
    elif tamper == "truncate":
        del data[-10:]
    else:
        data += b"more"
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=victim.digest):
        copy(f"{upstream.host}/{repo}:v1", f"{tbreg.host}/{repo}:v1", destination=_small_uploads())
    with RegistryClient(tbreg.host) as c:
        assert c.head_manifest(repo, "v1") is None
        assert c.head_manifest(repo, top.digest) is None
        assert c.blob_size(repo, victim.digest) is None
        assert tags(c, repo) == []
    assert _uploads(tbreg) == []  # the upload session was aborted
    code, _, err = run("copy", f"{upstream.host}/{repo}:v1", f"{tbreg.host}/{repo}:v1")
    assert code == 1 and len(err.splitlines()) == 1 and victim.digest in err and ("mismatch" in err or "incomplete" in err)


@pytest.mark.parametrize("size", [100_000, 12 * 1024 * 1024], ids=["monolithic", "chunked"])
def test_source_sending_more_than_the_descriptor_is_refused(tbreg: RunningRegistry, size: int) -> None:
    fake = FakeRegistry(stream_blobs=True)
    source = RegistryOptions(transport=fake.transport())
    with RegistryClient(fake.host, source) as c:
        top = push_random_image(c, "hostile/longer", "v1", (size,))
    victim = top.layers[0]
    fake.corrupt_blob(victim.digest, fake.blobs[victim.digest] + b"appended")
    repo = f"hostile/longer-{size}"
    with pytest.raises(DigestMismatchError, match=f"{victim.digest}: more than {size} bytes"):
        copy_image_ref(f"{fake.host}/hostile/longer:v1", f"{tbreg.host}/{repo}:v1",
                       options=CopyOptions(source=source, destination=_small_uploads()))
    with RegistryClient(tbreg.host) as c:
        assert c.head_manifest(repo, "v1") is None and tags(c, repo) == []
        assert c.blob_size(repo, victim.digest) is None
    assert _uploads(tbreg) == []


def test_manifest_not_matching_its_digest_is_refused(upstream: RunningRegistry, tbreg: RunningRegistry) -> None:
    with RegistryClient(upstream.host) as c:
        top = push_random_image(c, "hostile/manifest", "v1")
    path = upstream.blob_file(top.digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion"', b'"schemaVersion" '))
    code, _, err = run("copy", f"{upstream.host}/hostile/manifest:v1", f"{tbreg.host}/hostile/manifest:v1")
    assert code == 1 and top.digest in err
    with RegistryClient(tbreg.host) as c:
        assert c.head_manifest("hostile/manifest", "v1") is None


def test_unreachable_source_is_one_line(tbreg: RunningRegistry) -> None:
    code, out, err = run("copy", "127.0.0.1:1/x/y:v1", f"{tbreg.host}/x/y:v1")
    assert code == 1 and err.startswith("Error: cannot reach registry 127.0.0.1:1") and "Traceback" not in err


# --- streaming: bounded memory, nothing on disk --------------------------------------------


def _max_rss_kib(argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, err


def test_large_layer_streams_with_bounded_memory_and_no_temp_files(
    upstream: RunningRegistry, tbreg: RunningRegistry, tmp_path: Path
) -> None:
    size = 160 * 1024 * 1024
    with RegistryClient(upstream.host) as c:
        push_random_image(c, "big/app", "v1", (size,))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    code, baseline, err = _max_rss_kib([sys.executable, "-m", "trustbox", "copy", "--help"], env)
    assert code == 0, err
    code, peak, err = _max_rss_kib(
        [sys.executable, "-m", "trustbox", "copy", "-q", f"{upstream.host}/big/app:v1", f"{tbreg.host}/big/app:v1"], env)
    assert code == 0, err
    assert (peak - baseline) < 48 * 1024, (baseline, peak)  # a fraction of the 160 MiB layer
    assert list(tmp.iterdir()) == []
    with RegistryClient(tbreg.host) as c:
        assert c.blob_size("big/app", c.get_manifest("big/app", "v1").layers[0].digest) == size


# --- attachments: cosign signatures and attestations, referrers ----------------------------


def _cosign(*args: str, env: dict[str, str]) -> str:
    exe = cosign_binary()
    if exe is None:
        pytest.skip("cosign not available ($COSIGN, PATH or /work/shared/tools/get-cosign.sh)")
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, f"cosign {' '.join(args)}: {p.stderr}"
    return p.stdout


def test_cosign_signatures_attestations_and_referrers_come_along(
    upstream: RunningRegistry, tbreg: RunningRegistry, tmp_path: Path
) -> None:
    env = {**os.environ, "COSIGN_PASSWORD": "", "HOME": str(tmp_path), "COSIGN_YES": "true"}
    _cosign("generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign"), env=env)
    with RegistryClient(tbreg.host) as c:
        top = push_random_image(c, "signed/app", "v1", (10_000,), architectures=("amd64", "arm64"))
        child = c.get_manifest("signed/app", top.manifests[0].digest)
        referrer = push_referrer(c, "signed/app", top, "application/vnd.example.sbom", b"sbom bytes")
    src = f"{tbreg.host}/signed/app@{top.digest}"
    flags = ["--allow-insecure-registry", "--allow-http-registry"]
    _cosign("sign", "--key", str(tmp_path / "cosign.key"), "--tlog-upload=false", *flags, src, env=env)
    (tmp_path / "pred.json").write_text('{"builder": "test"}')
    _cosign("attest", "--key", str(tmp_path / "cosign.key"), "--tlog-upload=false", "--type", "custom",
            "--predicate", str(tmp_path / "pred.json"), *flags, src, env=env)
    # a signature on one child too (cosign sign --recursive signs every platform)
    _cosign("sign", "--key", str(tmp_path / "cosign.key"), "--tlog-upload=false", *flags,
            f"{tbreg.host}/signed/app@{child.digest}", env=env)
    hexd, child_hex = top.digest.split(":")[1], child.digest.split(":")[1]
    result, _ = copy(f"{tbreg.host}/signed/app:v1", f"{upstream.host}/copied/app:v1")
    assert sorted(result.attachments) == sorted([  # type: ignore[attr-defined]
        f"sha256-{hexd}.sig", f"sha256-{hexd}.att", f"sha256-{child_hex}.sig", referrer.digest,
        f"sha256-{hexd}"])  # distribution 2.8 has no referrers API: the referrers tag schema lists it
    fallback = json.loads(raw(f"{upstream.host}/copied/app:sha256-{hexd}"))
    assert [(d["digest"], d["artifactType"]) for d in fallback["manifests"]] == [
        (referrer.digest, "application/vnd.example.sbom")]
    for tag in (f"sha256-{hexd}.sig", f"sha256-{hexd}.att", f"sha256-{child_hex}.sig"):
        assert raw(f"{upstream.host}/copied/app:{tag}") == raw(f"{tbreg.host}/signed/app:{tag}")
    assert raw(f"{upstream.host}/copied/app@{referrer.digest}") == referrer.raw
    dst = f"{upstream.host}/copied/app@{top.digest}"
    out = _cosign("verify", "--key", str(tmp_path / "cosign.pub"), "--insecure-ignore-tlog", *flags, dst, env=env)
    assert json.loads(out)[0]["critical"]["image"]["docker-manifest-digest"] == top.digest
    _cosign("verify-attestation", "--key", str(tmp_path / "cosign.pub"), "--insecure-ignore-tlog", "--type", "custom",
            *flags, dst, env=env)
    # into trustbox's registry (referrers API): the referrer is listed for the subject there too
    result, _ = copy(f"{upstream.host}/copied/app:v1", f"{tbreg.host}/again/app:v1")
    assert sorted(result.attachments) == sorted([  # type: ignore[attr-defined]
        f"sha256-{hexd}.sig", f"sha256-{hexd}.att", f"sha256-{child_hex}.sig", f"sha256-{hexd}"])
    with RegistryClient(tbreg.host) as c:
        assert [d.digest for d in c.referrers("again/app", top.digest) or []] == [referrer.digest]
    # --no-attachments leaves them behind
    code, _, err = run("copy", "--no-attachments", f"{tbreg.host}/signed/app:v1", f"{tbreg.host}/bare/app:v1")
    assert code == 0, err
    with RegistryClient(tbreg.host) as c:
        assert c.list_tags("bare/app") == ["v1"]
        assert c.referrers("bare/app", top.digest) == []

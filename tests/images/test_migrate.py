"""``trustbox trust migrate``: repositories with signed tags on a source pair (docker-registry 2.8 +
a trust server) moved to a destination pair (trustbox's registry + trust server).

Proves: every signed tag's digest copied byte for byte and verifiable with content trust at the
destination (``verify_image``: signed and served), the delegation's own digests copied too,
``--dry-run`` changes nothing, a second run skips what is done after checking the destination,
a missing image at the source fails that repository only (exit 1, the others moved), a rerun
brings across what the source signed since (and refuses to replace what was signed at the
destination), and a
migration killed (SIGKILL) at random moments leaves the destination consistent (no trust data
naming an image its registry lacks) and resumable to completion.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.net import free_port, stop_process, wait_http
from tests.images.randimage import push_random_image
from tests.images.registries import (
    RunningRegistry,
    have_docker_registry,
    trustbox_registry,
    upstream_registry,
)
from trustbox.cli import cli
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.migrate import signed_images
from trustbox.client.images.transfer import NotaryTrust, Reporter, TransferOptions, verify_image
from trustbox.client.trust.repository import TrustClient
from trustbox.oci.manifest import Manifest
from trustbox.tuf.keys import PublicKey

pytestmark = pytest.mark.interop

PASSPHRASES = {"DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root-secret", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo-secret"}


@dataclass
class TrustServer:
    url: str


def _trust_server(workdir: Path) -> Iterator[TrustServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, "-m", "trustbox", "serve", "trust", "--listen", f"127.0.0.1:{port}",
            "--db", f"sqlite:///{workdir / 'trust.db'}", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    log = workdir / "trust.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/_notary_server/health", proc, log)
        yield TrustServer(f"http://127.0.0.1:{port}")
    finally:
        stop_process(proc)


@dataclass
class Pairs:
    src_registry: RunningRegistry
    src_trust: TrustServer
    dst_registry: RunningRegistry
    dst_trust: TrustServer


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pairs]:
    if not have_docker_registry():
        pytest.skip("docker-registry not installed")
    d = tmp_path_factory.mktemp("pairs")
    with upstream_registry(d / "src-registry") as src, trustbox_registry(d / "dst-registry") as dst:
        src_trust = _trust_server(d / "src-trust")
        dst_trust = _trust_server(d / "dst-trust")
        try:
            yield Pairs(src, next(src_trust), dst, next(dst_trust))
        finally:
            for gen in (src_trust, dst_trust):
                gen.close()


@pytest.fixture(autouse=True)
def _passphrases(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in PASSPHRASES.items():
        monkeypatch.setenv(k, v)


def trust_dir() -> Path:
    return Path(os.environ["DOCKER_CONFIG"]) / "trust"


def publish(pairs: Pairs, repo: str, tags: dict[str, tuple[int, ...]], role_digests: bool = False) -> dict[str, Manifest]:
    """Push one random image per tag to the source registry and sign each tag on the source server."""
    gun = f"{pairs.src_registry.host}/{repo}"
    images: dict[str, Manifest] = {}
    with RegistryClient(pairs.src_registry.host) as c:
        for tag, sizes in tags.items():
            images[tag] = push_random_image(c, repo, tag, sizes)
    with TrustClient(gun, pairs.src_trust.url, trust_dir()) as tc:
        for tag, m in images.items():
            tc.sign_target(tag, m.digest.split(":")[1], m.size)
    return images


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["trust", "migrate", *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def base_args(pairs: Pairs, state: Path) -> list[str]:
    return ["--from-server", pairs.src_trust.url, "--to-server", pairs.dst_trust.url,
            "--to-registry", pairs.dst_registry.host, "--state", str(state), "-q"]


def assert_migrated(pairs: Pairs, repo: str, images: dict[str, Manifest], fresh: Path) -> None:
    """Content trust at the destination (a fresh trust folder: trust on first use) resolves every tag
    to its digest and the destination registry serves exactly that manifest."""
    gun = f"{pairs.dst_registry.host}/{repo}"
    opts = TransferOptions(registry=RegistryOptions(), trust=NotaryTrust(server_url=pairs.dst_trust.url, trust_dir=fresh))
    for tag, m in images.items():
        verdict = verify_image(f"{gun}:{tag}", deep=True, opts=opts, reporter=Reporter())
        assert verdict.verified, verdict.reason
        assert verdict.signed_digest == m.digest and verdict.registry_digest == m.digest


def test_migrate_moves_signed_images_and_trust_then_skips(pairs: Pairs, tmp_path: Path) -> None:
    a = publish(pairs, "acme/app", {"v1": (20_000, 30_000), "v2": (25_000,), "latest": (10_000,)})
    b = publish(pairs, "acme/tool", {"1.0": (5_000,)})
    state = tmp_path / "state.json"
    repos = [f"{pairs.src_registry.host}/acme/app", f"{pairs.src_registry.host}/acme/tool"]
    # dry run: nothing changes at the destination, nothing recorded
    code, out, err = run(*base_args(pairs, state), "--dry-run", *repos)
    assert code == 0, out + err
    assert out.strip().endswith("2 would move") and "3 of 3 images to copy, trust data to import" in out
    assert not state.exists()
    with RegistryClient(pairs.dst_registry.host) as c:
        assert c.head_manifest("acme/app", "v1") is None
    # the migration
    (tmp_path / "list").write_text(f"# repositories\n{repos[0]}\n\n{repos[1]}  # the tool\n")
    code, out, err = run(*base_args(pairs, state), "--file", str(tmp_path / "list"))
    assert code == 0, out + err
    assert out.strip().endswith("2 moved"), out
    assert_migrated(pairs, "acme/app", a, tmp_path / "fresh-a")
    assert_migrated(pairs, "acme/tool", b, tmp_path / "fresh-b")
    doc = json.loads(state.read_text())
    assert {k: v["status"] for k, v in doc["repositories"].items()} == {r: "done" for r in repos}
    # a second run skips both, after checking the destination
    code, out, err = run(*base_args(pairs, state), *repos)
    assert code == 0 and out.strip().endswith("2 skipped") and "done in an earlier run" in out, out + err
    # a destination that lost an image is repaired by the next run (the check is real)
    with RegistryClient(pairs.dst_registry.host) as c:
        _delete(c, "acme/tool", b["1.0"].digest)
    code, out, err = run(*base_args(pairs, state), repos[1])
    assert code == 0 and out.strip().endswith("1 moved"), out + err
    assert_migrated(pairs, "acme/tool", b, tmp_path / "fresh-c")


def test_a_rerun_brings_across_what_the_source_signed_since(pairs: Pairs, tmp_path: Path) -> None:
    """A repository done before is exported again on the next run: tags signed at the source since
    are copied and their trust data published (byte for byte, versions above), and a consumer that
    pinned the destination after the first run accepts it; once something was signed at the
    destination, a change at the source is refused for that repository and replaces nothing."""
    repo = "acme/resync"
    src_gun, dst_gun = f"{pairs.src_registry.host}/{repo}", f"{pairs.dst_registry.host}/{repo}"
    first = publish(pairs, repo, {"v1": (6_000, 3_000)})
    state = tmp_path / "state.json"
    code, out, err = run(*base_args(pairs, state), src_gun)
    assert code == 0 and out.strip().endswith("1 moved"), out + err
    pinned = tmp_path / "pinned"  # a consumer that pinned the destination after the first run
    assert_migrated(pairs, repo, first, pinned)
    code, out, err = run(*base_args(pairs, state), src_gun)
    assert code == 0 and out.strip().endswith("1 skipped"), out + err
    # signed at the source after the migration
    second = publish(pairs, repo, {"v2": (7_000,)})
    code, out, err = run(*base_args(pairs, state), "--dry-run", src_gun)
    assert code == 0 and "1 of 2 images to copy, trust data to import" in out, out + err
    code, out, err = run(*base_args(pairs, state), src_gun)
    assert code == 0 and out.strip().endswith("1 moved") and "re-synced: targets changed at the source" in out, out + err
    assert_migrated(pairs, repo, {**first, **second}, pinned)  # v2 exists only in the new data
    assert_migrated(pairs, repo, {**first, **second}, tmp_path / "fresh")
    code, out, err = run(*base_args(pairs, state), src_gun)
    assert code == 0 and out.strip().endswith("1 skipped"), out + err
    # signed at the destination (the repository's home now), then once more at the source
    with RegistryClient(pairs.dst_registry.host) as c:
        third = push_random_image(c, repo, "v3", (5_000,))
    with TrustClient(dst_gun, pairs.dst_trust.url, trust_dir()) as tc:
        tc.sign_target("v3", third.digest.split(":")[1], third.size)
    publish(pairs, repo, {"v4": (4_000,)})
    code, out, err = run(*base_args(pairs, state), src_gun)
    assert code == 1 and "signed there after the import" in out + err and "nothing was uploaded" in out + err, out + err
    assert_migrated(pairs, repo, {**first, **second, "v3": third}, pinned)
    with TrustClient(dst_gun, pairs.dst_trust.url, tmp_path / "peek") as tc:
        tc.update()
        assert sorted(t.name for t in tc.list_signed_targets()) == ["v1", "v2", "v3"]


def test_importing_a_newer_export_over_an_import_is_refused_before_uploading(pairs: Pairs, tmp_path: Path) -> None:
    """``trust import`` alone does not know which targets the earlier import published: a server
    serving other targets than the archive's is refused (nothing uploaded), not overwritten."""
    repo = "acme/reimport"
    src_gun, dst_gun = f"{pairs.src_registry.host}/{repo}", f"{pairs.dst_registry.host}/{repo}"
    publish(pairs, repo, {"v1": (3_000,)})

    def trust(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(cli, ["trust", *args], catch_exceptions=False)
        return r.exit_code, r.stdout + r.stderr

    assert trust("export", src_gun, "--server", pairs.src_trust.url, "-o", str(tmp_path / "a.tar"))[0] == 0
    code, out = trust("import", str(tmp_path / "a.tar"), "--server", pairs.dst_trust.url, "--as", dst_gun)
    assert code == 0, out
    publish(pairs, repo, {"v2": (3_000,)})
    assert trust("export", src_gun, "--server", pairs.src_trust.url, "-o", str(tmp_path / "b.tar"))[0] == 0
    with TrustClient(dst_gun, pairs.dst_trust.url, tmp_path / "before") as tc:
        tc.update()
        assert tc.collection.targets is not None
        before = tc.collection.targets.to_bytes()
    code, out = trust("import", str(tmp_path / "b.tar"), "--server", pairs.dst_trust.url, "--as", dst_gun)
    assert code == 1 and "not the one imported earlier" in out and "nothing was uploaded" in out, out
    assert len(out.strip().splitlines()) <= 2, out  # the message and its hint, no traceback
    with TrustClient(dst_gun, pairs.dst_trust.url, tmp_path / "after") as tc:
        tc.update()
        assert tc.collection.targets is not None and tc.collection.targets.to_bytes() == before


def _delete(c: RegistryClient, repo: str, digest: str) -> None:
    with c._request("DELETE", f"/v2/{repo}/manifests/{digest}", repo, True) as resp:
        assert resp.status_code == 202, resp.status_code


def test_every_signer_digest_is_copied_and_a_missing_image_fails_only_its_repository(pairs: Pairs, tmp_path: Path) -> None:
    good = publish(pairs, "team/good", {"v1": (1000,)})
    broken = publish(pairs, "team/broken", {"v1": (1000,), "v2": (1000,)})
    with RegistryClient(pairs.src_registry.host) as c:
        _delete(c, "team/broken", broken["v2"].digest)  # signed, but gone from the source registry
    repos = [f"{pairs.src_registry.host}/team/broken", f"{pairs.src_registry.host}/team/good"]
    code, out, err = run(*base_args(pairs, tmp_path / "s.json"), *repos)
    assert code == 1, out + err
    assert "1 moved, 1 failed" in out and "1 of 2 images not copied" in out
    assert_migrated(pairs, "team/good", good, tmp_path / "fresh")
    # nothing of the broken repository's trust data reached the destination
    with TrustClient(f"{pairs.dst_registry.host}/team/broken", pairs.dst_trust.url, tmp_path / "fresh2") as tc:
        with pytest.raises(Exception, match="does not have trust data|not exist"):
            tc.update()


def test_signed_images_prefers_released_roles_and_keeps_other_digests(pairs: Pairs, tmp_path: Path) -> None:
    images = publish(pairs, "sig/app", {"v1": (100,), "v2": (100,)})
    with TrustClient(f"{pairs.src_registry.host}/sig/app", pairs.src_trust.url, trust_dir()) as tc:
        tc.update()
        plan = signed_images(tc.collection)
    assert [(r.tag, r.reference) for r in plan.requests] == [("v1", images["v1"].digest), ("v2", images["v2"].digest)]
    assert all(r.expected is not None and r.expected.size == images[r.tag or ""].size for r in plan.requests)


def test_killed_migration_is_consistent_and_resumable(pairs: Pairs, tmp_path: Path) -> None:
    seed = int(os.environ.get("TRUSTBOX_KILL_SEED", time.time()))
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(3):
        repos = {f"kill{round_}/r{i}": publish(pairs, f"kill{round_}/r{i}", {"a": (300_000, 200_000), "b": (400_000,)})
                 for i in range(3)}
        state = tmp_path / f"state{round_}.json"
        argv = [sys.executable, "-m", "trustbox", "trust", "migrate", *base_args(pairs, state),
                *(f"{pairs.src_registry.host}/{r}" for r in repos)]
        delay = rng.uniform(0.3, 4.0)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # consistent: trust data at the destination only for repositories whose every image is there
        for repo in repos:
            gun = f"{pairs.dst_registry.host}/{repo}"
            with TrustClient(gun, pairs.dst_trust.url, tmp_path / f"peek{round_}") as tc:
                try:
                    tc.update()
                except Exception:  # noqa: BLE001 - no (complete) trust data yet
                    continue
                with RegistryClient(pairs.dst_registry.host) as c:
                    for t in tc.list_signed_targets():
                        found = c.head_manifest(repo, t.digest)
                        assert found is not None, f"seed {seed}: {gun}:{t.name} signed at the destination, image missing"
        # resumable to completion
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"seed {seed} delay {delay:.2f}: {done.stdout}{done.stderr}"
        for repo, images in repos.items():
            assert_migrated(pairs, repo, images, tmp_path / f"fresh{round_}-{repo.replace('/', '-')}")


def test_root_key_outside_the_trust_folder(pairs: Pairs, tmp_path: Path) -> None:
    """Without the root key in the trust folder the repository fails (nothing imported) and says
    why; ``--root-key FILE`` (the key kept elsewhere, e.g. offline) completes it."""
    images = publish(pairs, "acme/offline-root", {"v1": (4_000,)})
    gun = f"{pairs.src_registry.host}/acme/offline-root"
    root = json.loads((trust_dir() / "tuf" / gun / "metadata" / "root.json").read_text())["signed"]
    (cert_id,) = root["roles"]["root"]["keyids"]
    key_file = trust_dir() / "private" / f"{PublicKey.from_dict(root['keys'][cert_id]).canonical_keyid}.key"
    kept = tmp_path / "offline-root.key"
    kept.write_bytes(key_file.read_bytes())
    key_file.unlink()
    state = tmp_path / "state.json"
    code, out, err = run(*base_args(pairs, state), gun)
    assert code == 1 and "root key" in (out + err).lower(), out + err
    with RegistryClient(pairs.dst_registry.host) as c:  # images went first; no trust data names them yet
        assert c.head_manifest("acme/offline-root", "v1") is not None
    code, out, err = run(*base_args(pairs, state), "--root-key", str(kept), gun)
    assert code == 0 and out.strip().endswith("1 moved"), out + err
    assert_migrated(pairs, "acme/offline-root", images, tmp_path / "fresh")


def test_a_rerun_from_the_trust_cache_re_syncs(pairs: Pairs, tmp_path: Path) -> None:
    """With no source server (``--from-cache``: docker's trust cache is the only copy), a rerun after
    the cache learnt newer trust data (a pull before the server closed) brings the new tags across
    and a consumer that pinned the destination accepts it; an unchanged cache is skipped."""
    repo = "acme/cached"
    src_gun = f"{pairs.src_registry.host}/{repo}"

    def refresh_cache() -> None:  # what a docker pull with content trust leaves in the cache
        with TrustClient(src_gun, pairs.src_trust.url, trust_dir()) as tc:
            tc.update()

    first = publish(pairs, repo, {"v1": (4_000, 2_000)})
    refresh_cache()
    state = tmp_path / "state.json"
    args = ["--from-cache", "--to-server", pairs.dst_trust.url, "--to-registry", pairs.dst_registry.host,
            "--state", str(state), "-q", src_gun]
    code, out, err = run(*args)
    assert code == 0 and out.strip().endswith("1 moved"), out + err
    pinned = tmp_path / "pinned"
    assert_migrated(pairs, repo, first, pinned)
    code, out, err = run(*args)
    assert code == 0 and out.strip().endswith("1 skipped"), out + err
    second = publish(pairs, repo, {"v2": (3_000,)})
    refresh_cache()
    code, out, err = run(*args)
    assert code == 0 and out.strip().endswith("1 moved") and "re-synced: targets changed at the source" in out, out + err
    assert_migrated(pairs, repo, {**first, **second}, pinned)
    assert_migrated(pairs, repo, {**first, **second}, tmp_path / "fresh")
    code, out, err = run(*args)
    assert code == 0 and out.strip().endswith("1 skipped"), out + err

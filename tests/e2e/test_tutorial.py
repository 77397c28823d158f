"""The seed tutorial ("Play in a content trust sandbox") end to end, with the trustbox CLI.

1. a trusted pull of a repository without trust data is refused with docker's message;
2. push an unsigned image; a trusted pull is still refused;
3. push with DOCKER_CONTENT_TRUST=1 (creating root and repository keys), and ``trust sign`` another tag;
4. ``trustbox trust inspect`` shows the signatures; a trusted pull succeeds and writes an OCI
   layout with the signed digests; ``trustbox verify`` passes;
5. tamper with a layer in the registry's storage ("Malicious data"); a trusted pull is refused
   and leaves no output; ``verify --deep`` fails.

Run against upstream (notary-server + docker-registry) and trustbox's own servers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, missing, start_stack
from trustbox.client.images.layout import OCILayoutSource
from trustbox.client.images.sample import write_sample_image

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=["upstream", "trustbox"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    why = missing(request.param)
    if why:
        pytest.skip(why)
    with start_stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}")) as s:
        yield s


def tb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("trustbox", path=env["PATH"]) or str(Path(sys.executable).with_name("trustbox"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _files(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "blobs" / "sha256").iterdir()}


def test_tutorial(stack: Stack, tmp_path: Path) -> None:
    dc = tmp_path / "docker-config"
    env = stack.env(dc, DOCKER_CONTENT_TRUST="1")
    trust_hostport = stack.trust_url.split("//", 1)[1]
    repo = f"{stack.registry.host}/test/trusttest"
    image = tmp_path / "trusttest"
    top = write_sample_image(image, "latest", message=f"trusttest on {stack.name}")

    # 5. pull the test image: no trust data yet
    r = tb(env, "pull", repo, f"oci:{tmp_path / 'out0'}")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"Error: remote trust data does not exist for {repo}: {trust_hostport} does not have trust data for {repo}"
    )
    assert not (tmp_path / "out0").exists()

    # an unsigned push; the trusted pull is still refused
    r = tb(env, "push", "--disable-content-trust", f"oci:{image}:latest", f"{repo}:unsigned")
    assert r.returncode == 0, r.stderr
    assert f"unsigned: digest: {top.digest} size: {top.size}" in r.stdout
    assert "Signing" not in r.stdout
    r = tb(env, "pull", f"{repo}:unsigned", f"oci:{tmp_path / 'out1'}")
    assert r.returncode == 1 and "remote trust data does not exist" in r.stderr
    assert not (tmp_path / "out1").exists()

    # 6. push and sign (first push: root and repository keys are created)
    r = tb(env, "push", f"oci:{image}:latest", f"{repo}:latest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-2:] == ["Signing and pushing trust metadata", f"Successfully signed {repo}:latest"]
    keys = list((dc / "trust" / "private").glob("*.key"))
    assert len(keys) >= 2  # root + repository key

    # the tag pushed unsigned before is still not trusted
    r = tb(env, "pull", f"{repo}:unsigned", f"oci:{tmp_path / 'out2'}")
    assert r.returncode == 1 and r.stderr.strip() == "No valid trust data for unsigned"
    assert not (tmp_path / "out2").exists()

    # sign it with trust sign (reads the manifest from the registry)
    r = tb(env, "trust", "sign", f"{repo}:unsigned")
    assert r.returncode == 0, r.stdout + r.stderr

    # trust inspect shows both signed tags with the pushed digest
    r = tb(env, "trust", "inspect", repo)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    signed = {t["SignedTag"]: t for t in doc[0]["SignedTags"]}
    assert set(signed) == {"latest", "unsigned"}
    assert signed["latest"]["Digest"] == top.digest.split(":")[1]
    assert signed["latest"]["Signers"] == ["Repo Admin"]
    assert doc[0]["AdministrativeKeys"][0]["Name"] == "Root"

    # 7. the trusted pull works and writes exactly the signed image
    out = tmp_path / "pulled"
    r = tb(env, "pull", repo, f"oci:{out}:latest")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["Using default tag: latest", f"Pull (1 of 1): {repo}:latest@{top.digest}"]
    assert OCILayoutSource(out, "latest").top().digest == top.digest
    assert _files(out) == _files(image)
    r = tb(env, "verify", f"{repo}:latest")
    assert r.returncode == 0, r.stdout + r.stderr

    # tamper with a layer in the registry's storage
    victim = top.layers[0].digest
    stack.registry.blob_file(victim).write_bytes(b"Malicious data\n")

    # 9. the trusted pull is refused and leaves nothing behind
    out2 = tmp_path / "pulled-after-tamper"
    r = tb(env, "pull", repo, f"oci:{out2}")
    assert r.returncode == 1
    assert f"Pull (1 of 1): {repo}:latest@{top.digest}" in r.stdout
    assert victim in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert not out2.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pulled")]
    r = tb(env, "verify", "--deep", "--json", f"{repo}:latest")
    assert r.returncode == 1
    verdict = json.loads(r.stdout)
    assert verdict["verified"] is False and victim in verdict["reason"]
    # the earlier good pull is untouched
    assert _files(out) == _files(image)

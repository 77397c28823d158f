"""Sigstore attachments with the real cosign 2.5 against ``trustbox serve registry --trust-policy``:
cosign-signed images pass a ``sigstore_keys`` rule and unsigned ones are refused (skopeo as the
puller); trustbox-made attachments (trustbox.oci.simplesigning) are accepted by ``cosign verify``
and cosign-made ones by trustbox; both refuse another key, a flipped signature byte, an altered
payload and a signature for another digest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.cosign import cosign_binary
from tests.helpers.net import free_port, stop_process, wait_http
from tests.registry.ocilayout import OCI_MANIFEST, make_image, write_layout
from trustbox.errors import SignatureError
from trustbox.oci.simplesigning import (
    SignatureLayer,
    build_payload,
    build_signature_manifest,
    load_public_key,
    parse_signature_manifest,
    public_key_pem,
    sign_payload,
    signature_tag,
    verify_attachment,
)
from trustbox.tuf.keys import PrivateKey

SKOPEO = shutil.which("skopeo")
pytestmark = [pytest.mark.interop]


@dataclass
class World:
    addr: str
    pub_addr: str  # the same storage without a policy: where publishers (cosign sign) read and write
    work: Path
    cosign: str
    tb_key: PrivateKey
    http: httpx.Client

    def push(self, repo_tag: str) -> tuple[str, bytes]:
        im = make_image(1, 512)
        layout = self.work / f"l-{im.digest[7:19]}"
        write_layout(layout, im.manifest, OCI_MANIFEST, [im])
        p = subprocess.run([SKOPEO or "skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                            f"oci:{layout}:latest", f"docker://{self.addr}/{repo_tag}"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return im.digest, im.manifest

    def blob(self, repo: str, data: bytes) -> None:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.http.post(f"http://{self.addr}/v2/{repo}/blobs/uploads/?digest={d}", content=data)
        assert r.status_code == 201, r.text

    def attach(self, repo: str, digest: str, layers: list[SignatureLayer], payloads: list[bytes]) -> None:
        for payload in payloads:
            self.blob(repo, payload)
        sm = build_signature_manifest(layers)
        self.blob(repo, sm.config)
        r = self.http.put(f"http://{self.addr}/v2/{repo}/manifests/{signature_tag(digest)}", content=sm.manifest,
                          headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text

    def cosign_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.cosign, *args], capture_output=True, text=True, timeout=120, cwd=self.work,
                              env={**os.environ, "COSIGN_PASSWORD": "", "HOME": str(self.work)})

    def verify(self, ref: str, key: str) -> subprocess.CompletedProcess[str]:
        return self.cosign_run("verify", "--key", key, "--insecure-ignore-tlog=true", "--allow-http-registry=true",
                               f"{self.addr}/{ref}")

    def inspect(self, ref: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SKOPEO or "skopeo", "--insecure-policy", "inspect", "--tls-verify=false", "--raw",
                               f"docker://{self.addr}/{ref}"], capture_output=True, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if SKOPEO is None:
        pytest.skip("skopeo not installed")
    cosign = cosign_binary()
    if cosign is None:
        pytest.skip("cosign not available (no cosign on PATH, ../shared/tools/get-cosign.sh failed)")
    work = tmp_path_factory.mktemp("cosign")
    p = subprocess.run([cosign, "generate-key-pair"], capture_output=True, text=True, cwd=work,
                       env={**os.environ, "COSIGN_PASSWORD": "", "HOME": str(work)})
    assert p.returncode == 0, p.stderr
    tb_key = PrivateKey.generate("ecdsa")
    (work / "tb.pub").write_bytes(public_key_pem(tb_key.public_key()))
    (work / "policy.toml").write_text(
        '[[rule]]\nname = "cosigned"\nrepositories = ["cs/**"]\nsigstore_keys = ["cosign.pub"]\n\n'
        '[[rule]]\nname = "tbsigned"\nrepositories = ["tb/**"]\nsigstore_keys = ["tb.pub"]\n')
    addr, pub_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = work / "registry.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_"))}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "trustbox", "serve", "registry", "--listen", addr, "--storage",
                                 str(work / "data"), "--trust-policy", str(work / "policy.toml"), "--log-level", "warning"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    with open(work / "pub.log", "wb") as fh:
        pub = subprocess.Popen([sys.executable, "-m", "trustbox", "serve", "registry", "--listen", pub_addr,
                                "--storage", str(work / "data"), "--log-level", "warning"],
                               env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://{addr}/v2/", proc, log)
        wait_http(f"http://{pub_addr}/v2/", pub, work / "pub.log")
        with httpx.Client(timeout=30) as http:
            yield World(addr, pub_addr, work, cosign, tb_key, http)
    finally:
        stop_process(proc, group=True)
        stop_process(pub, group=True)


def _denied(p: subprocess.CompletedProcess[str], rule: str) -> None:
    assert p.returncode != 0
    assert "denied" in p.stderr and f"trust policy rule '{rule}'" in p.stderr, p.stderr


def test_cosign_signed_passes_the_policy_and_trustbox_verifies_it(world: World) -> None:
    d1, _ = world.push("cs/app:v1")
    world.push("cs/app:v2")
    _denied(world.inspect("cs/app:v1"), "cosigned")
    # cosign sign reads the image first: publishers sign through the endpoint without the policy
    p = world.cosign_run("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry=true", "-y",
                         f"{world.pub_addr}/cs/app@{d1}")
    assert p.returncode == 0, p.stderr
    assert world.inspect("cs/app:v1").returncode == 0
    assert world.inspect(f"cs/app@{d1}").returncode == 0
    _denied(world.inspect("cs/app:v2"), "cosigned")
    # cosign verifies through the policy registry (it reads the image and its .sig tag)
    assert world.verify("cs/app:v1", "cosign.pub").returncode == 0
    # trustbox verifies what cosign wrote
    sig = world.http.get(f"http://{world.addr}/v2/cs/app/manifests/{signature_tag(d1)}",
                         headers={"Accept": OCI_MANIFEST})
    assert sig.status_code == 200
    (layer,) = parse_signature_manifest(sig.content)
    payload = world.http.get(f"http://{world.addr}/v2/cs/app/blobs/{layer.payload_digest}").content
    key = load_public_key((world.work / "cosign.pub").read_bytes())
    assert verify_attachment(key, payload, layer.signature, d1).repository == f"{world.pub_addr}/cs/app"
    with pytest.raises(SignatureError):
        verify_attachment(world.tb_key.public_key(), payload, layer.signature, d1)


def test_trustbox_attachment_verified_by_cosign_and_the_policy(world: World) -> None:
    d1, _ = world.push("tb/app:v1")
    d2, _ = world.push("tb/app:v2")
    d3, _ = world.push("tb/app:v3")
    d4, _ = world.push("tb/app:v4")
    repo = f"{world.addr}/tb/app"
    # v1: good; v2: flipped signature byte; v3: a valid signature for another digest; v4: altered payload
    good = build_payload(repo, d1)
    world.attach("tb/app", d1, [SignatureLayer.for_payload(good, sign_payload(world.tb_key, good))], [good])
    p2 = build_payload(repo, d2)
    raw = bytearray(sign_payload(world.tb_key, p2))
    raw[-1] ^= 1
    world.attach("tb/app", d2, [SignatureLayer.for_payload(p2, bytes(raw))], [p2])
    world.attach("tb/app", d3, [SignatureLayer.for_payload(good, sign_payload(world.tb_key, good))], [good])
    altered = build_payload(repo, d4)
    signed_other = sign_payload(world.tb_key, altered.replace(b"tb/app", b"tb/apq"))
    world.attach("tb/app", d4, [SignatureLayer.for_payload(altered, signed_other)], [altered])
    tb_pub = str(world.work / "tb.pub")
    assert world.verify("tb/app:v1", tb_pub).returncode == 0
    assert world.verify("tb/app:v1", "cosign.pub").returncode != 0  # another key
    for tag in ("v2", "v3", "v4"):
        assert world.verify(f"tb/app:{tag}", tb_pub).returncode != 0, tag
    assert world.inspect("tb/app:v1").returncode == 0
    for tag in ("v2", "v3", "v4"):
        _denied(world.inspect(f"tb/app:{tag}"), "tbsigned")
    # the payload cosign would have written is the one trustbox wrote
    sig = world.http.get(f"http://{world.addr}/v2/tb/app/manifests/{signature_tag(d1)}",
                         headers={"Accept": OCI_MANIFEST})
    layer = parse_signature_manifest(sig.content)[0]
    assert base64.b64decode(layer.signature)[0] == 0x30 and json.loads(good)["optional"] is None

"""``trust sign`` / ``revoke`` / ``attach`` / ``key export-public`` with sigstore attachments, against the
in-memory notary server and the in-memory registry (time pinned to the fake server's NOW)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import NOW
from tests.images.fake_registry import FakeRegistry
from trustbox.cli import cli
from trustbox.client.images.attachments import read_layers, verify_signatures
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.layout import open_source
from trustbox.client.images.sample import write_sample_image
from trustbox.client.images.transfer import RegistryDestination, Reporter, copy_image
from trustbox.client.trust.verbs import TrustContext
from trustbox.oci.manifest import Manifest
from trustbox.oci.simplesigning import load_public_key
from trustbox.tuf.keys import PublicKey

HOST = "registry.test"
REPO = "test/app"
GUN = f"{HOST}/{REPO}"


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(host=HOST)


def _rc(registry: FakeRegistry) -> RegistryClient:
    return RegistryClient(HOST, RegistryOptions(transport=registry.transport()))


@pytest.fixture
def image(registry: FakeRegistry, tmp_path: Path) -> Manifest:
    write_sample_image(tmp_path / "img", "v1")
    with _rc(registry) as c:
        return copy_image(open_source(f"oci:{tmp_path / 'img'}:v1"), RegistryDestination(c, REPO, "v1"), Reporter()).top


def _context(tmp_path: Path, notary: FakeNotary, registry: FakeRegistry, config: str = "docker") -> TrustContext:
    env = {
        "DOCKER_CONFIG": str(tmp_path / config),
        "DOCKER_CONTENT_TRUST_SERVER": "https://notary.example.test",
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root-pass-123",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo-pass-123",
    }
    return TrustContext(
        environ=env, now=NOW, http_factory=notary.client,
        registry_http_factory=lambda: httpx.Client(transport=registry.transport()),
        registry_transport=registry.transport(), out=io.StringIO(), err=io.StringIO(), confirm=lambda msg: True,
    )


def run(ctx: TrustContext, *args: str) -> tuple[int, str, str]:
    ctx.out, ctx.err = io.StringIO(), io.StringIO()
    ctx.sigstore = None
    result = CliRunner().invoke(cli, ["trust", *args], obj={"trust_context": ctx})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, ctx.out.getvalue() + result.stdout, ctx.err.getvalue() + result.stderr


def _pem_key(pem: str) -> PublicKey:
    return load_public_key(pem.encode())


def test_sign_attach_export_revoke(tmp_path: Path, registry: FakeRegistry, image: Manifest) -> None:
    notary = FakeNotary(NOW)
    ctx = _context(tmp_path, notary, registry)
    code, out, err = run(ctx, "sign", f"{GUN}:v1")
    assert code == 0, err
    assert out.splitlines()[-1] == f"Successfully signed {GUN}:v1"  # stdout stays docker's
    assert err.startswith(f"Sigstore signature {GUN}:sha256-{image.digest[7:]}.sig: 1 added for 1 manifest(s)")
    code, pem, err = run(ctx, "key", "export-public", "--role", "targets", GUN)
    assert code == 0, err
    admin = _pem_key(pem)
    with _rc(registry) as c:
        (sig,) = verify_signatures(c, REPO, image.digest, [admin])
    assert sig.identity == GUN
    # a signer: its key appends a layer; export-public --signer prints exactly its key
    code, out, err = run(ctx, "key", "generate", "alice", "--dir", str(tmp_path))
    assert code == 0, err
    assert run(ctx, "signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", GUN)[0] == 0
    code, pem, err = run(ctx, "key", "export-public", "--signer", "alice", GUN)
    assert code == 0, err
    alice = _pem_key(pem)
    generated = serialization.load_pem_public_key(
        b"".join(ln + b"\n" for ln in (tmp_path / "alice.pub").read_bytes().splitlines() if not ln.startswith(b"role:"))
    )
    assert alice.crypto_key().public_numbers() == generated.public_numbers()  # type: ignore[union-attr]
    code, pem_all, _ = run(ctx, "key", "export-public", GUN)
    assert code == 0 and pem_all.count("BEGIN PUBLIC KEY") == 2
    assert run(ctx, "sign", f"{GUN}:v1")[0] == 0
    with _rc(registry) as c:
        assert len(read_layers(c, REPO, image.digest)) == 2
        assert len(verify_signatures(c, REPO, image.digest, [alice])) == 1
    # revoke (alice's roles): her layer goes, the repository key's stays
    code, out, err = run(ctx, "revoke", f"{GUN}:v1")
    assert code == 0, err
    assert out == f"Successfully deleted signature for {GUN}:v1\n" and "Removed 1 sigstore signature(s)" in err
    with _rc(registry) as c:
        assert [s.key for s in verify_signatures(c, REPO, image.digest, [alice, admin])] == [admin]


def test_export_public_errors(tmp_path: Path, registry: FakeRegistry, image: Manifest) -> None:
    ctx = _context(tmp_path, FakeNotary(NOW), registry)
    assert run(ctx, "sign", "--no-sigstore", f"{GUN}:v1")[0] == 0
    assert signature_tags(registry) == []
    code, _, err = run(ctx, "key", "export-public", "--signer", "bob", GUN)
    assert code == 1 and err == f"Error: no signer bob with keys in the trust data of {GUN}\n"
    code, _, err = run(ctx, "key", "export-public", "--signer", "bob", "--role", "targets", GUN)
    assert code == 1 and "not both" in err
    code, _, err = run(ctx, "key", "export-public", f"{HOST}/test/none")
    assert code == 1 and err.startswith("Error:")


def signature_tags(registry: FakeRegistry) -> list[str]:
    return [t for t in registry.tags.get(REPO, {}) if t.endswith(".sig")]


def test_attach_reports_missing_keys(tmp_path: Path, registry: FakeRegistry, image: Manifest) -> None:
    notary = FakeNotary(NOW)
    ctx = _context(tmp_path, notary, registry)
    assert run(ctx, "sign", "--no-sigstore", f"{GUN}:v1")[0] == 0
    # another machine: trust data but no private key
    other = _context(tmp_path, notary, registry, config="elsewhere")
    code, out, err = run(other, "attach", "--all-tags", GUN)
    assert code == 1
    assert f"{GUN}:v1: not attached: no private key of its signer(s) (Repo Admin)" in err
    assert f"Error: could not attach 1 of 1 signed tag(s) of {GUN}" in err
    assert signature_tags(registry) == []
    code, out, err = run(ctx, "attach", f"{GUN}:v1")
    assert code == 0, err
    assert signature_tags(registry) == [f"sha256-{image.digest[7:]}.sig"]
    for args, why in [((GUN,), "--all-tags"), (("--all-tags", f"{GUN}:v1"), "not both"), ((f"{GUN}:v9",), "v9")]:
        code, _, err = run(ctx, "attach", *args)
        assert code == 1 and why in err, err


def test_sign_warns_when_the_registry_refuses_the_attachment(tmp_path: Path, registry: FakeRegistry, image: Manifest) -> None:
    ctx = _context(tmp_path, FakeNotary(NOW), registry)
    registry.manifests.clear()  # the registry lost the image: the trust signature stands, a warning says why
    registry.manifests[(REPO, image.digest)] = (b"{}", "application/vnd.oci.image.manifest.v1+json")
    ctx.registry_http_factory = lambda: httpx.Client(transport=httpx.MockTransport(
        lambda r: httpx.Response(200, content=image.raw, headers={"Docker-Content-Digest": image.digest})))
    code, out, err = run(ctx, "sign", f"{GUN}:v1")
    assert code == 0, err
    assert "Successfully signed" in out
    assert err.startswith(f"Warning: {GUN}:v1 is signed in the trust data, but its sigstore signature was not written: ")
    assert f"(retry with: trustbox trust attach {GUN}:v1)" in err

"""The docker-trust verbs end to end against the in-memory notary server."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import NOW
from trustbox.cli import cli
from trustbox.client.trust.verbs import TrustContext
from trustbox.tuf.metadata import Metadata

GUN = "registry.example.test/team/app"
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}'


@pytest.fixture
def fake() -> FakeNotary:
    return FakeNotary(NOW)


def _registry(req: httpx.Request) -> httpx.Response:
    if req.url.path == "/v2/team/app/manifests/v2":
        return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": "sha256:" + hashlib.sha256(MANIFEST).hexdigest()})
    return httpx.Response(404)


@pytest.fixture
def ctx(tmp_path: Path, fake: FakeNotary) -> TrustContext:
    env = {
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DOCKER_CONTENT_TRUST_SERVER": "https://notary.example.test",
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root-pass-123",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo-pass-123",
        "TRUSTBOX_SIGSTORE": "0",  # this registry is a stub; attachments: tests/client/test_sigstore_verbs.py
    }
    return TrustContext(
        environ=env,
        now=NOW,
        http_factory=fake.client,
        registry_http_factory=lambda: httpx.Client(transport=httpx.MockTransport(_registry)),
        out=io.StringIO(),
        err=io.StringIO(),
        confirm=lambda msg: False,
    )


def run(ctx: TrustContext, *args: str) -> tuple[int, str, str]:
    ctx.out = io.StringIO()
    ctx.err = io.StringIO()
    result = CliRunner().invoke(cli, ["trust", *args], obj={"trust_context": ctx})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, ctx.out.getvalue() + result.stdout, ctx.err.getvalue() + result.stderr


def _doc(fake: FakeNotary, role: str) -> dict:
    return Metadata.parse(fake.repo(GUN).current[role], role).signed_value


@pytest.fixture
def alice(ctx: TrustContext, tmp_path: Path) -> Path:
    code, out, err = run(ctx, "key", "generate", "alice", "--dir", str(tmp_path))
    assert code == 0, err
    assert out.endswith(f"Corresponding public key available: {tmp_path}/alice.pub\n")
    pem = (tmp_path / "alice.pub").read_text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\nrole: alice\n\n")
    assert oct(os.stat(tmp_path / "alice.pub").st_mode & 0o777) == "0o600"
    return tmp_path / "alice.pub"


def test_signer_add_initialises_like_docker(ctx: TrustContext, fake: FakeNotary, alice: Path) -> None:
    code, out, err = run(ctx, "signer", "add", "--key", str(alice), "alice", GUN)
    assert code == 0, err
    assert out == (
        f'Adding signer "alice" to {GUN}...\nInitializing signed repository for {GUN}...\n'
        f'Successfully initialized "{GUN}"\nSuccessfully added signer: alice to {GUN}\n\n'
    )
    names = [p for p, _ in fake.posts[0]]
    assert names == ["root", "targets"]  # server-managed snapshot, no timestamp
    root, targets = _doc(fake, "root"), _doc(fake, "targets")
    assert root["version"] == 1 and targets["version"] == 2
    assert [r["name"] for r in targets["delegations"]["roles"]] == ["targets/alice", "targets/releases"]
    assert all(r["paths"] == [""] for r in targets["delegations"]["roles"])
    assert targets["expires"].startswith("2029-11-22")
    requests = [p.rsplit("/tuf/", 1)[-1] for _, p in fake.requests]
    assert "timestamp.key" in requests and "snapshot.key" in requests


def test_sign_new_tag_reads_registry_and_signs_into_signer_roles(ctx: TrustContext, fake: FakeNotary, alice: Path) -> None:
    assert run(ctx, "signer", "add", "--key", str(alice), "alice", GUN)[0] == 0
    code, out, err = run(ctx, "sign", f"{GUN}:v2")
    assert code == 0, err
    assert out == f"Signing and pushing trust metadata for {GUN}:v2\nSuccessfully signed {GUN}:v2\n"
    digest = hashlib.sha256(MANIFEST).digest()
    for role in ("targets/alice", "targets/releases"):
        tgt = Metadata.parse(fake.repo(GUN).current[role], role).signed.targets["v2"]
        assert tgt.hashes == {"sha256": digest} and tgt.length == len(MANIFEST)
    # co-signing an existing tag prints who signed it already
    code, out, _ = run(ctx, "sign", f"{GUN}:v2")
    assert code == 0
    assert f"Existing signatures for tag v2 digest {digest.hex()} from:\nalice\n" in out


def test_sign_without_delegations_signs_targets(ctx: TrustContext, fake: FakeNotary) -> None:
    code, out, err = run(ctx, "sign", f"{GUN}:v2")
    assert code == 0, err
    assert "v2" in _doc(fake, "targets")["targets"]


def test_revoke_and_remove_signer(ctx: TrustContext, fake: FakeNotary, alice: Path, tmp_path: Path) -> None:
    assert run(ctx, "key", "generate", "bob", "--dir", str(tmp_path))[0] == 0
    for name in ("alice", "bob"):
        assert run(ctx, "signer", "add", "--key", str(tmp_path / f"{name}.pub"), name, GUN)[0] == 0
    assert run(ctx, "sign", f"{GUN}:v2")[0] == 0
    # removing bob leaves alice's signature on releases: no prompt, really removed
    code, out, err = run(ctx, "signer", "remove", "bob", GUN)
    assert code == 0, err
    assert out == f'Removing signer "bob" from {GUN}...\nSuccessfully removed bob from {GUN}\n\n'
    roles = [r["name"] for r in _doc(fake, "targets")["delegations"]["roles"]]
    assert roles == ["targets/alice", "targets/releases"]
    releases = next(r for r in _doc(fake, "targets")["delegations"]["roles"] if r["name"] == "targets/releases")
    assert len(releases["keyids"]) == 1
    # alice is the last signer of the release: declined prompt keeps her
    code, out, _ = run(ctx, "signer", "remove", "alice", GUN)
    assert code == 0 and "Successfully removed" not in out
    assert "targets/alice" in [r["name"] for r in _doc(fake, "targets")["delegations"]["roles"]]
    # revoke the tag, then nothing is left
    code, out, err = run(ctx, "revoke", f"{GUN}:v2")
    assert code == 0, err
    assert out == f"Successfully deleted signature for {GUN}:v2\n"
    assert "v2" not in _doc(fake, "targets/releases")["targets"]
    code, _, err = run(ctx, "revoke", "-y", GUN)
    assert code == 1
    assert err.strip() == f"Error: could not remove signature for {GUN}: no signed tags to remove"
    # -f removes the last signer without asking
    code, out, _ = run(ctx, "signer", "remove", "-f", "alice", GUN)
    assert code == 0 and "Successfully removed alice" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("signer", "add", "--key", "x.pub", "releases", GUN), "Error: releases is a reserved keyword, use a different signer name"),
        (("signer", "add", "alice", GUN), "Error: path to a public key must be provided using the `--key` flag"),
        (("signer", "add", "--key", "x.pub", "Alice", GUN), 'Error: signer name "Alice" must start with lowercase'),
        (("signer", "remove", "releases", GUN), "releases is a reserved keyword and cannot be removed"),
        (("sign", GUN), f"Error: no tag specified for {GUN}"),
        (("sign", GUN + "@sha256:" + "a" * 64), "Error: cannot use a digest reference for IMAGE:TAG"),
        (("revoke", GUN), "Error: trust revoke has been cancelled"),
        (("sign", f"{GUN}:v9"), f"Error: failed to sign {GUN}:v9: manifest for {GUN}:v9 not found in the registry"),
        (("revoke", "localhost:5000/none:v1"), "Error: could not remove signature for localhost:5000/none:v1: notary.example.test does not have trust data for localhost:5000/none"),
    ],
)
def test_errors_are_one_line_like_docker(ctx: TrustContext, args: tuple[str, ...], message: str) -> None:
    code, _, err = run(ctx, *args)
    assert code == 1
    assert message in err
    assert err.strip().splitlines()[-1].startswith("Error: ")


def test_no_trust_data_message(ctx: TrustContext) -> None:
    from trustbox.client.trust.verbs import notary_error
    from trustbox.errors import TrustboxError
    from trustbox.oci.reference import parse_reference

    client = ctx.client(parse_reference("localhost:25000/spec/none:latest"))
    with pytest.raises(TrustboxError) as info:
        client.get_signed_target("latest")
    text = notary_error("localhost:25000/spec/none", info.value).message
    assert text == (
        "Error: remote trust data does not exist for localhost:25000/spec/none: "
        "notary.example.test does not have trust data for localhost:25000/spec/none"
    )


def test_key_load_and_list(ctx: TrustContext, tmp_path: Path) -> None:
    from tests.testdata import FIXTURES

    src = tmp_path / "bob.key"
    src.write_bytes((FIXTURES / "docker-demo" / "keys" / "bob.key").read_bytes())
    src.chmod(0o644)
    code, _, err = run(ctx, "key", "load", str(src), "--name", "bob")
    assert code == 1 and "must not be readable or writable by others" in err
    src.chmod(0o600)
    code, out, err = run(ctx, "key", "load", str(src), "--name", "bob")
    assert code == 0, err
    assert out == f'Loading key from "{src}"...\nSuccessfully imported key from {src}\n'
    code, out, _ = run(ctx, "key", "list")
    assert "b9b5f0590d7a8d7d9041d638d4668a401549c4e47b7a75e940c43ff82cbfc4f7   bob" in out

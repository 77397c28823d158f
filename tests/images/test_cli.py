"""``trustbox push / pull / verify`` with a fake registry and a fake trust client.

The fake trust client speaks the real TrustClient API (update, get_signed_target, sign_target)
and raises the real client errors, so docker's wording is checked end to end through the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.images.fake_registry import FakeRegistry
from trustbox.cli import cli
from trustbox.client.errors import NoSuchTargetError, RepositoryNotExistError
from trustbox.client.images import transfer as images_mod
from trustbox.client.images.distribution import RegistryOptions
from trustbox.client.images.layout import OCILayoutSource
from trustbox.errors import NetworkError
from trustbox.oci.manifest import Manifest

HOST = "127.0.0.1:5000"
TRUST_HOST = "127.0.0.1:4443"


@dataclass
class _Signed:
    name: str
    sha256_hex: str
    length: int
    role: str = "targets"
    signers: tuple[str, ...] = ("Repo Admin",)


@dataclass
class FakeTrust:
    """Trust data per GUN; ``down`` simulates an unreachable trust server."""

    repos: dict[str, dict[str, _Signed]] = field(default_factory=dict)
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def factory(self, image_ref: str, **opts: Any) -> Any:
        trust = self
        gun = image_ref

        class Client:
            stale_reason = None

            def close(self) -> None:
                pass

            def update(self) -> None:
                trust.calls.append(f"update {gun}")
                if trust.down:
                    raise NetworkError("dial tcp 127.0.0.1:4443: connection refused")
                if gun not in trust.repos:
                    raise RepositoryNotExistError(TRUST_HOST, gun)

            def get_signed_target(self, tag: str) -> _Signed:
                t = trust.repos[gun].get(tag)
                if t is None:
                    raise NoSuchTargetError(tag)
                return t

            def list_signed_targets(self) -> list[_Signed]:
                return list(trust.repos[gun].values())

            def sign_target(self, tag: str, sha256_hex: str, length: int) -> None:
                trust.calls.append(f"sign {gun}:{tag}")
                trust.repos.setdefault(gun, {})[tag] = _Signed(tag, sha256_hex, length)

        return Client()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRegistry, FakeTrust]:
    fake = FakeRegistry(host=HOST)
    trust = FakeTrust()
    real_from_env = RegistryOptions.from_env

    def from_env(insecure: Any = (), ca_certs: Any = ()) -> RegistryOptions:
        opts = real_from_env(insecure, ca_certs)
        opts.transport = fake.transport()
        return opts

    monkeypatch.setattr(RegistryOptions, "from_env", staticmethod(from_env))
    monkeypatch.setattr(images_mod, "trust_client_for", trust.factory)
    return fake, trust


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


DCT = {"DOCKER_CONTENT_TRUST": "1"}
IMG = f"{HOST}/test/trusttest"


def test_unsigned_push_then_trusted_pull_is_refused(env: Any, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake, trust = env
    root, top = sample
    r = run("push", f"oci:{root}:v1", f"{IMG}:latest")
    assert r.exit_code == 0, r.output
    assert f"latest: digest: {top.digest} size: {top.size}" in r.output
    assert "Signing" not in r.output and trust.calls == []
    r = run("pull", IMG, f"oci:{tmp_path / 'out'}", env=DCT)
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == (
        f"Error: remote trust data does not exist for {IMG}: {TRUST_HOST} does not have trust data for {IMG}"
    )
    assert not (tmp_path / "out").exists()
    # without content trust the same pull works
    r = run("pull", IMG, f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 0, r.output
    assert OCILayoutSource(tmp_path / "out", None).top().digest == top.digest


def test_signed_push_and_trusted_pull(env: Any, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake, trust = env
    root, top = sample
    r = run("push", f"oci:{root}:v1", f"{IMG}:latest", env=DCT)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[-2:] == ["Signing and pushing trust metadata", f"Successfully signed {IMG}:latest"]
    signed = trust.repos[IMG]["latest"]
    assert (signed.sha256_hex, signed.length) == (top.digest.split(":")[1], top.size)
    r = run("pull", f"{IMG}:latest", f"oci:{tmp_path / 'out'}:latest", env=DCT)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == f"Pull (1 of 1): {IMG}:latest@{top.digest}"
    assert OCILayoutSource(tmp_path / "out", "latest").top().digest == top.digest
    # unsigned tag of a signed repo
    run("push", "--disable-content-trust", f"oci:{root}:v1", f"{IMG}:v2", env=DCT)
    r = run("pull", f"{IMG}:v2", f"oci:{tmp_path / 'o2'}", env=DCT)
    assert r.exit_code == 1 and r.output.strip() == "No valid trust data for v2"
    # --disable-content-trust skips the lookup
    r = run("pull", "--disable-content-trust", f"{IMG}:v2", f"oci:{tmp_path / 'o3'}", env=DCT)
    assert r.exit_code == 0, r.output


def test_push_with_sign_flag_and_quiet(env: Any, sample: tuple[Path, Manifest]) -> None:
    fake, trust = env
    root, _ = sample
    r = run("push", "--sign", "-q", f"oci:{root}:v1", f"{IMG}:latest")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["Signing and pushing trust metadata", f"Successfully signed {IMG}:latest"]


def test_tag_moved_after_signing_is_refused(env: Any, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    """The registry tag now points elsewhere: pull still fetches the signed digest; a length
    mismatch in the trust data is refused with no output."""
    fake, trust = env
    root, top = sample
    run("push", f"oci:{root}:v1", f"{IMG}:latest", env=DCT)
    other = tmp_path / "other"
    from trustbox.client.images.sample import write_sample_image

    evil = write_sample_image(other, "v1", message="evil")
    run("push", f"oci:{other}:v1", f"{IMG}:latest")  # unsigned overwrite of the tag
    assert fake.tags["test/trusttest"]["latest"] == evil.digest
    r = run("pull", f"{IMG}:latest", f"oci:{tmp_path / 'out'}", env=DCT)
    assert r.exit_code == 0 and OCILayoutSource(tmp_path / "out", None).top().digest == top.digest
    r = run("verify", f"{IMG}:latest")
    assert r.exit_code == 1 and "registry serves" in r.output
    # trust data with the right digest but a different length
    t = trust.repos[IMG]["latest"]
    trust.repos[IMG]["latest"] = _Signed(t.name, t.sha256_hex, t.length + 1)
    r = run("pull", f"{IMG}:latest", f"oci:{tmp_path / 'out2'}", env=DCT)
    assert r.exit_code == 1 and "size mismatch" in r.output
    assert not (tmp_path / "out2").exists()


def test_pull_by_digest_skips_trust(env: Any, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake, trust = env
    root, top = sample
    run("push", f"oci:{root}:v1", f"{IMG}:latest")
    r = run("pull", f"{IMG}@{top.digest}", f"oci:{tmp_path / 'out'}", env=DCT)
    assert r.exit_code == 0, r.output
    assert trust.calls == [] and "Pull (1 of 1)" not in r.output


def test_trusted_pull_of_tampered_layer_is_refused(env: Any, sample: tuple[Path, Manifest], tmp_path: Path) -> None:
    fake, trust = env
    root, top = sample
    run("push", f"oci:{root}:v1", f"{IMG}:latest", env=DCT)
    fake.corrupt_blob(top.layers[0].digest)
    r = run("pull", IMG, f"oci:{tmp_path / 'out'}", env=DCT)
    assert r.exit_code == 1
    assert r.output.splitlines()[:2][-1].startswith("Pull (1 of 1): ")
    assert r.output.strip().splitlines()[-1].startswith(f"Error: blob {top.layers[0].digest}: ")
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()
    r = run("verify", "--deep", "--json", f"{IMG}:latest")
    assert r.exit_code == 1 and top.layers[0].digest in json.loads(r.output)["reason"]
    r = run("verify", f"{IMG}:latest")  # shallow verify only checks the manifest
    assert r.exit_code == 0


def test_verify_exit_codes(env: Any, multi: tuple[Path, Manifest]) -> None:
    fake, trust = env
    root, top = multi
    r = run("verify", f"{IMG}:latest")
    assert r.exit_code == 1 and "remote trust data does not exist" in r.output
    run("push", "--sign", f"oci:{root}:m", f"{IMG}:latest")
    r = run("verify", "--json", f"{IMG}:latest")
    assert r.exit_code == 0
    v = json.loads(r.output)
    assert v["verified"] is True and v["signed"]["digest"] == top.digest and v["registry"]["digest"] == top.digest
    assert v["platforms"] == ["linux/amd64", "linux/arm64"]
    assert run("verify", "--signer", "Repo Admin", f"{IMG}:latest").exit_code == 0
    r = run("verify", "--signer", "alice", f"{IMG}:latest")
    assert r.exit_code == 1 and "not signed by alice" in r.output
    assert run("verify", f"{IMG}@{top.digest}").exit_code == 2
    assert run("verify").exit_code == 2
    trust.down = True
    r = run("verify", "--json", f"{IMG}:latest")
    assert r.exit_code == 3 and json.loads(r.output)["reason"].startswith("Error: error contacting notary server")


def test_errors_are_one_line(env: Any, tmp_path: Path) -> None:
    r = run("push", f"oci:{tmp_path / 'missing'}", f"{IMG}:latest")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1
    r = run("pull", f"{IMG}:latest", str(tmp_path / "plain-dir"))
    assert r.exit_code == 1 and "must be oci:DIR" in r.output
    r = run("push", f"oci:{tmp_path}", "Bad/Name:latest")
    assert r.exit_code == 1 and "invalid reference format" in r.output


@pytest.mark.parametrize(("value", "enabled"), [("1", True), ("true", True), ("yes", True), ("0", False), ("false", False), ("", False)])
def test_content_trust_env(value: str, enabled: bool) -> None:
    assert images_mod.content_trust_enabled({"DOCKER_CONTENT_TRUST": value}) is enabled


def test_verify_unreachable_trust_server_prints_one_prefix(env: Any, multi: tuple[Path, Manifest]) -> None:
    """The verdict's reason is docker's line already: ``Error:`` is not printed twice."""
    _fake, trust = env
    trust.down = True
    r = run("verify", f"{IMG}:latest")
    assert r.exit_code == 3
    assert r.stderr.strip().splitlines()[-1] == (
        "Error: error contacting notary server: dial tcp 127.0.0.1:4443: connection refused"
    )


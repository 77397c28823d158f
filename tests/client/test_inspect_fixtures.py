"""``trust inspect`` over the golden metadata equals docker 28's output byte for byte."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import NOW
from tests.testdata import FIXTURES
from trustbox.cli import cli
from trustbox.client.trust.verbs import TrustContext, inspect, inspect_pretty
from trustbox.oci.reference import parse_reference

CLI_OUT = FIXTURES / "docker-demo" / "cli-output"
DEMOS = ("docker-demo", "notary-demo")


@pytest.fixture
def ctx(tmp_path: Path) -> TrustContext:
    fake = FakeNotary(NOW)
    for demo in DEMOS:
        fake.load_dir(f"localhost:25000/spec/{demo}", FIXTURES / demo / "server" / "_trust" / "tuf")
    return TrustContext(
        environ={"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTENT_TRUST_SERVER": "https://localhost:24443"},
        now=NOW,
        http_factory=fake.client,
        out=io.StringIO(),
        err=io.StringIO(),
    )


@pytest.mark.parametrize(
    ("fixture", "arg"),
    [
        ("docker-trust-inspect-docker-demo.json", "localhost:25000/spec/docker-demo"),
        ("docker-trust-inspect-docker-demo-v1.json", "localhost:25000/spec/docker-demo:v1"),
        ("docker-trust-inspect-notary-demo.json", "localhost:25000/spec/notary-demo"),
    ],
)
def test_inspect_json_matches_docker(ctx: TrustContext, fixture: str, arg: str) -> None:
    out, errors = inspect(ctx, [arg])
    assert errors == []
    assert out.rstrip("\n") == (CLI_OUT / fixture).read_text().rstrip("\n")


@pytest.mark.parametrize("demo", DEMOS)
def test_inspect_pretty_matches_docker(ctx: TrustContext, demo: str) -> None:
    out = inspect_pretty(ctx, f"localhost:25000/spec/{demo}")
    assert out.rstrip("\n") == (CLI_OUT / f"docker-trust-inspect-pretty-{demo}.txt").read_text().rstrip("\n")


def test_inspect_missing_repo_like_docker(ctx: TrustContext) -> None:
    result = CliRunner().invoke(
        cli, ["trust", "inspect", "localhost:25000/spec/none"], obj={"trust_context": ctx}
    )
    expected = (CLI_OUT / "docker-trust-inspect-nonexistent.txt").read_text().splitlines()
    assert result.exit_code == 1
    assert ctx.out.getvalue() == expected[0] + "\n"  # type: ignore[attr-defined]
    assert result.stderr.strip() == expected[1]


def test_inspect_non_https_server_like_docker(ctx: TrustContext) -> None:
    ctx.environ = {**ctx.environ, "DOCKER_CONTENT_TRUST_SERVER": "http://localhost:24443"}
    result = CliRunner().invoke(
        cli, ["trust", "inspect", "localhost:25000/spec/docker-demo"], obj={"trust_context": ctx}
    )
    expected = (CLI_OUT / "dct-server-not-https.txt").read_text().splitlines()
    assert result.exit_code == 1
    assert ctx.out.getvalue().strip() == expected[0]  # type: ignore[attr-defined]
    assert result.stderr.strip() == expected[1]


def test_inspect_unknown_tag_gives_empty_signatures(ctx: TrustContext) -> None:
    out, errors = inspect(ctx, ["localhost:25000/spec/docker-demo:nope"])
    assert errors == []
    assert '"SignedTags": []' in out
    pretty = inspect_pretty(ctx, "localhost:25000/spec/docker-demo:nope")
    assert pretty.startswith("\nNo signatures for localhost:25000/spec/docker-demo:nope\n\n")


def test_pull_lookup_matches_docker_pull_output(ctx: TrustContext) -> None:
    """``Pull (1 of 1): <name>:<tag>@sha256:<digest>``: the digest docker resolved, from our client."""
    client = ctx.client(parse_reference("localhost:25000/spec/docker-demo:v1"))
    t = client.get_signed_target("v1")
    line = (CLI_OUT / "dct-pull-v1-no-daemon.txt").read_text().splitlines()[0]
    assert line == f"Pull (1 of 1): localhost:25000/spec/docker-demo:v1@{t.digest}"
    assert (t.length, t.signers) == (401, ("alice", "bob"))

"""Every body the client reads is capped, end to end: the CLI (``pull``, ``verify``, ``trust sign``,
``trust inspect``, ``login``) against a real HTTPS server (the in-memory notary and registry fakes
behind a socket) that answers chosen requests with a 64 MiB body: the ``/v2/`` ping, the token
realm, 401/404/500 error bodies, manifests, a blob longer than its descriptor (directly and behind
a redirect), trust metadata, keys and update answers. Each command fails with a one-line error or
carries on, and no endless body gave more than the cap of its kind plus the socket buffers:
never the 64 MiB a client reading whole bodies takes (see ``test_unbounded_client_takes_it_all``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.client.endless import SOCKET_SLACK, TOTAL, Bodies, TLSServer
from tests.client.fakeserver import FakeNotary
from tests.helpers.certs import CertFiles, write_ca_and_server_cert
from tests.helpers.simulator import RepositorySimulator
from tests.images.fake_registry import FakeRegistry
from trustbox.cli import cli
from trustbox.client.capped import SMALL_BODY_LIMIT, TOKEN_BODY_LIMIT
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.layout import open_source
from trustbox.client.images.sample import write_sample_image
from trustbox.client.images.transfer import RegistryDestination, Reporter, copy_image
from trustbox.client.transport import basic_auth_header
from trustbox.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from trustbox.tuf.metadata import FileMeta, Metadata, Targets
from trustbox.tuf.verify import MAX_TIMESTAMP_SIZE

REPO = "team/app"
Factory = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return write_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    d = tmp_path_factory.mktemp("img") / "sample"
    return d, write_sample_image(d, "v1")


@dataclass
class World:
    """One HTTPS server playing trust server, registry and token service; ``on`` overrides."""

    notary: FakeNotary
    registry: FakeRegistry
    bodies: Bodies = field(default_factory=Bodies)
    overrides: list[tuple[str, str | None, Factory]] = field(default_factory=list)
    host: str = ""
    top: Manifest | None = None

    @property
    def gun(self) -> str:
        return f"{self.host}/{REPO}"

    def on(self, pattern: str, factory: Factory, method: str | None = None) -> None:
        """Answer requests whose path matches ``pattern`` (first match wins) with ``factory``."""
        self.overrides.append((pattern, method, factory))

    def endless(self, pattern: str, status: int = 200, headers: dict[str, str] | None = None,
                method: str | None = None) -> None:
        """Answer matching requests with an endless body."""
        self.on(pattern, lambda req: self.bodies.response(status, headers), method)

    def app(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for pattern, method, factory in self.overrides:
            if re.search(pattern, path) and method in (None, request.method):
                return factory(request)
        if "/_trust/tuf/" in path:
            return self.notary.handle(request)
        return self.registry.handle(request)

    def sign_image(self) -> None:
        """Trust data for ``<gun>:v1`` = the pushed image (root, targets, releases, snapshot, timestamp)."""
        assert self.top is not None
        meta = FileMeta(self.top.size, {"sha256": bytes.fromhex(self.top.digest.split(":")[1])})
        RepositorySimulator(gun=self.gun, now=datetime.now(UTC)).initial({"v1": meta}).serve(self.notary)

    def blob_digest(self) -> str:
        """The digest of the image's largest layer."""
        assert self.top is not None
        return max(self.top.layers, key=lambda d: d.size).digest


@pytest.fixture
def world(certs: CertFiles, image: tuple[Path, Manifest], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(FakeNotary(datetime.now(UTC)), FakeRegistry())
    root, _ = image
    with RegistryClient(w.registry.host, RegistryOptions(transport=w.registry.transport())) as c:
        w.top = copy_image(open_source(f"oci:{root}:v1"), RegistryDestination(c, REPO, "v1"), Reporter()).top
    for var in ("DOCKER_CONTENT_TRUST", "TRUSTBOX_INSECURE_REGISTRIES", "DOCKER_CONTENT_TRUST_SERVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("TRUSTBOX_CA_CERT", str(certs.ca_cert))
    monkeypatch.setenv("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "root-pass-123")
    monkeypatch.setenv("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "repo-pass-123")
    with TLSServer(w.app, certs) as server:
        w.host = server.host
        monkeypatch.setenv("DOCKER_CONTENT_TRUST_SERVER", server.url)
        yield w


def run(*args: str, stdin: str | None = None, trust: bool = False) -> Result:
    env = {"DOCKER_CONTENT_TRUST": "1"} if trust else None
    return CliRunner().invoke(cli, list(args), input=stdin, env=env, catch_exceptions=False)


def last_line(result: Result) -> str:
    lines = result.output.strip().splitlines()
    return lines[-1] if lines else ""


def bounded(world: World, limit: int) -> None:
    world.bodies.assert_bounded(limit, SOCKET_SLACK)


# --- the server's side of the count ------------------------------------------------------------


def test_unbounded_client_takes_it_all(world: World) -> None:
    """What the count shows for a client that reads whole bodies (httpx without stream=True)."""
    world.endless("^/v2/$", 401)
    with httpx.Client(verify=False) as c:
        c.get(f"https://{world.host}/v2/")
    assert world.bodies.sent >= TOTAL


# --- pull --------------------------------------------------------------------------------------


def test_pull_passes_endless_pings_and_refuses_an_endless_manifest(world: World, tmp_path: Path) -> None:
    world.sign_image()
    world.endless("^/v2/$")  # both pings (trust server and registry) stream without end
    world.endless(f"^/v2/{REPO}/manifests/")
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}", trust=True)
    assert r.exit_code == 1
    assert world.top is not None
    assert last_line(r) == f"Error: manifest {world.top.digest}: more than {world.top.size} bytes"
    assert not (tmp_path / "out").exists()
    assert len(world.bodies.made) >= 3
    bounded(world, SMALL_BODY_LIMIT)  # the manifest's cap is its signed length, smaller still


def test_pull_refuses_a_blob_longer_than_its_descriptor(world: World, tmp_path: Path) -> None:
    world.sign_image()
    digest = world.blob_digest()
    world.endless(f"^/v2/{REPO}/blobs/{digest}$", method="GET")
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}", trust=True)
    assert r.exit_code == 1
    assert last_line(r) == f"Error: blob {digest}: more than {len(world.registry.blobs[digest])} bytes"
    assert not (tmp_path / "out").exists()
    bounded(world, len(world.registry.blobs[digest]) + 1024 * 1024)  # + one read chunk


def _redirect(to: str, bodies: Bodies) -> Factory:
    return lambda req: bodies.response(307, {"Location": to})


def test_pull_follows_a_blob_redirect_with_an_endless_body(world: World, tmp_path: Path) -> None:
    """An S3-style redirect: its own body is never read; the target's body is."""
    digest = world.blob_digest()
    data = world.registry.blobs[digest]
    world.on(f"^/v2/{REPO}/blobs/{digest}$", _redirect(f"/s3/{digest}?sig=1", world.bodies), method="GET")
    world.on(f"^/s3/{digest}$", lambda req: httpx.Response(200, content=data))
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    bounded(world, SMALL_BODY_LIMIT)


def test_pull_refuses_an_endless_blob_behind_a_redirect(world: World, tmp_path: Path) -> None:
    digest = world.blob_digest()
    world.on(f"^/v2/{REPO}/blobs/{digest}$", _redirect(f"https://{world.host}/s3/{digest}", world.bodies), method="GET")
    world.endless(f"^/s3/{digest}$")
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 1
    assert last_line(r) == f"Error: blob {digest}: more than {len(world.registry.blobs[digest])} bytes"
    assert len(world.bodies.made) == 2
    bounded(world, len(world.registry.blobs[digest]) + 1024 * 1024)


@pytest.mark.parametrize(("status", "message"), [
    (404, "Error: manifest unknown: {host}/team/app:v1 not found"),
    (500, "Error: GET manifest {host}/team/app:v1: HTTP 500 Internal Server Error"),
    (403, "Error: GET manifest {host}/team/app:v1: HTTP 403 Forbidden"),
])
def test_pull_error_bodies_are_read_only_for_their_message(world: World, tmp_path: Path, status: int,
                                                           message: str) -> None:
    world.endless(f"^/v2/{REPO}/manifests/", status)
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 1
    assert last_line(r) == message.format(host=world.host)
    bounded(world, SMALL_BODY_LIMIT)


def test_pull_with_endless_challenge_and_token_bodies(world: World, tmp_path: Path) -> None:
    challenge = {"WWW-Authenticate": f'Bearer realm="https://{world.host}/token",service="registry"'}
    world.endless("^/v2/$", 401, challenge)
    world.endless(f"^/v2/{REPO}/", 401, challenge)
    world.endless("^/token$")
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 1
    assert last_line(r) == f"Error: token service of {world.host}: more than {TOKEN_BODY_LIMIT} bytes"
    bounded(world, TOKEN_BODY_LIMIT)


def test_pull_of_an_unsigned_tag_with_an_endless_manifest(world: World, tmp_path: Path) -> None:
    world.endless(f"^/v2/{REPO}/manifests/v1$")
    r = run("pull", f"{world.gun}:v1", f"oci:{tmp_path / 'out'}")
    assert r.exit_code == 1
    assert last_line(r) == f"Error: manifest v1: more than {MAX_MANIFEST_BYTES} bytes"
    bounded(world, MAX_MANIFEST_BYTES)


# --- verify ------------------------------------------------------------------------------------


def test_verify_refuses_an_endless_manifest(world: World) -> None:
    world.sign_image()
    world.endless(f"^/v2/{REPO}/manifests/v1$")
    r = run("verify", f"{world.gun}:v1")
    assert r.exit_code == 1
    assert last_line(r) == f"Not verified: manifest v1: more than {MAX_MANIFEST_BYTES} bytes"
    bounded(world, MAX_MANIFEST_BYTES)


def test_verify_with_endless_trust_error_bodies(world: World) -> None:
    world.endless("/_trust/tuf/root.json$", 500)
    r = run("verify", f"{world.gun}:v1")
    assert r.exit_code == 3
    assert last_line(r).endswith("error contacting notary server: unable to reach trust server at this time: 500.")
    bounded(world, SMALL_BODY_LIMIT)


# --- trust inspect ------------------------------------------------------------------------------


def test_trust_inspect_carries_on_past_an_endless_ping(world: World) -> None:
    world.sign_image()
    world.endless("^/v2/$")
    r = run("trust", "inspect", world.gun)
    assert r.exit_code == 0, r.output
    assert world.top is not None and f'"Digest": "{world.top.digest.split(":")[1]}"' in r.output
    bounded(world, SMALL_BODY_LIMIT)


def test_trust_inspect_refuses_endless_metadata(world: World) -> None:
    world.sign_image()
    world.endless("^/v2/$")
    world.endless("/_trust/tuf/timestamp.json$")
    r = run("trust", "inspect", world.gun)
    assert r.exit_code == 1
    assert last_line(r) == f"no signatures or cannot access {world.gun}"
    bounded(world, MAX_TIMESTAMP_SIZE)


def test_trust_inspect_with_an_endless_404(world: World) -> None:
    world.endless("/_trust/tuf/root.json$", 404)
    r = run("trust", "inspect", world.gun)
    assert r.exit_code == 1
    assert last_line(r) == f"no signatures or cannot access {world.gun}"
    bounded(world, SMALL_BODY_LIMIT)


def test_trust_inspect_with_endless_challenge_and_token(world: World) -> None:
    world.sign_image()
    challenge = {"WWW-Authenticate": f'Bearer realm="https://{world.host}/token",service="notary"'}
    world.endless("^/v2/$", 401, challenge)
    world.endless("/_trust/tuf/", 401, challenge)
    world.endless("^/token$")
    r = run("trust", "inspect", world.gun)
    assert r.exit_code == 1
    assert last_line(r) == f"no signatures or cannot access {world.gun}"
    bounded(world, TOKEN_BODY_LIMIT)


# --- trust sign ---------------------------------------------------------------------------------


def test_trust_sign_refuses_an_endless_manifest(world: World) -> None:
    world.endless("/_trust/tuf/root.json$", 404)  # a new repository: the manifest is read
    world.endless(f"^/v2/{REPO}/manifests/v1$")
    r = run("trust", "sign", f"{world.gun}:v1")
    assert r.exit_code == 1
    assert last_line(r).endswith(f"manifest of {world.gun}:v1: more than {MAX_MANIFEST_BYTES} bytes")
    bounded(world, MAX_MANIFEST_BYTES)
    assert world.notary.posts == []


def test_trust_sign_refuses_an_endless_server_key(world: World) -> None:
    world.endless("/_trust/tuf/timestamp.key$")
    r = run("trust", "sign", f"{world.gun}:v1")
    assert r.exit_code == 1
    assert "timestamp.key: more than 65536 bytes" in last_line(r)
    bounded(world, 64 * 1024)
    assert world.notary.posts == []


def test_trust_sign_with_an_endless_rejection(world: World) -> None:
    body = b'{"errors":[{"code":"INVALID_UPDATE","message":"update invalid","detail":{}}]}'
    world.on(f"^/v2/{world.host}/{REPO}/_trust/tuf/$",
             lambda req: world.bodies.response(400, prefix=body[:-1] + b" "), method="POST")
    r = run("trust", "sign", f"{world.gun}:v1")
    assert r.exit_code == 1
    # the body is cut at 64 KiB, so it is no JSON and gives no message: docker's words alone
    assert r.stderr == f"Error: failed to sign {world.gun}:v1: trust server rejected operation\n"
    bounded(world, SMALL_BODY_LIMIT)


def test_trust_sign_carries_on_past_an_endless_update_answer(world: World) -> None:
    """A 200 to the update with an endless body: the body is not needed, the sign succeeds."""
    posted: list[int] = []

    def accept(req: httpx.Request) -> httpx.Response:
        world.notary.handle(req)
        posted.append(1)
        return world.bodies.response(200)

    world.on(f"^/v2/{world.host}/{REPO}/_trust/tuf/$", accept, method="POST")
    r = run("trust", "sign", f"{world.gun}:v1")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == f"Successfully signed {world.gun}:v1"  # stderr: the sigstore line
    assert posted == [1]
    assert world.top is not None
    targets = Metadata.parse(world.notary.repo(world.gun).current["targets"], "targets").signed
    assert isinstance(targets, Targets)
    assert targets.targets["v1"].hashes["sha256"].hex() == world.top.digest.split(":")[1]
    bounded(world, SMALL_BODY_LIMIT)


# --- login --------------------------------------------------------------------------------------


def _basic_world(world: World) -> None:
    def ping(req: httpx.Request) -> httpx.Response:
        if req.headers.get("authorization") == basic_auth_header("alice", "pw"):
            return world.bodies.response(200)
        return world.bodies.response(401, {"WWW-Authenticate": 'Basic realm="registry"'})

    world.on("^/v2/$", ping)


def test_login_with_basic_auth_carries_on_past_endless_pings(world: World) -> None:
    _basic_world(world)
    r = run("login", world.host, "-u", "alice", "--password-stdin", stdin="pw\n")
    assert r.exit_code == 0, r.output
    assert last_line(r) == "Login Succeeded"
    assert len(world.bodies.made) == 2
    bounded(world, SMALL_BODY_LIMIT)


def test_login_refuses_an_endless_token_answer(world: World) -> None:
    world.endless("^/v2/$", 401, {"WWW-Authenticate": f'Bearer realm="https://{world.host}/token",service="r"'})
    world.endless("^/token$")
    r = run("login", world.host, "-u", "alice", "--password-stdin", stdin="pw\n")
    assert r.exit_code == 1
    assert last_line(r) == f"Error: token server https://{world.host}/token: more than {TOKEN_BODY_LIMIT} bytes"
    bounded(world, TOKEN_BODY_LIMIT)


def test_login_with_an_endless_500(world: World) -> None:
    world.endless("^/v2/$", 500)
    r = run("login", world.host, "-u", "alice", "--password-stdin", stdin="pw\n")
    assert r.exit_code == 1
    assert last_line(r) == f"Error: login attempt to https://{world.host}/v2/ failed with status: 500"
    bounded(world, SMALL_BODY_LIMIT)

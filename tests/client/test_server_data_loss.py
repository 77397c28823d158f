"""A trust server that lost a repository the client still has in its cache (issue 15, item 1).

The state arises on every move to a new, wiped or restored trust server: the cache under
``$DOCKER_CONFIG/trust/tuf/<gun>`` holds valid metadata, the server answers 404. Reads behave like
notary 0.7 / docker 28 (cached data within its expiry, notary's warning on stderr, reported as
``from_cache``); a publish is done only when the server has answered 2xx to the update, and the
cached repository is uploaded whole (notary's initial publish) so the server takes it or refuses it.

Most tests run trustbox's real trust server in-process (``ServerFarm.wipe()`` replaces it by a new
server on fresh storage); the cases a real server cannot produce use the in-memory fake.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from click.testing import CliRunner

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import NOW
from tests.images.fake_registry import FakeRegistry
from tests.trustserver.ts_asgi import ASGIClient
from tests.trustserver.ts_env import make_app
from trustbox.cli import cli
from trustbox.client.errors import ServerRejectedError
from trustbox.client.images import transfer as images_mod
from trustbox.client.images.distribution import RegistryOptions
from trustbox.client.images.sample import write_sample_image
from trustbox.client.trust.repository import TrustClient, trust_client_for
from trustbox.client.trust.updater import CACHED_TIMESTAMP_WARNING
from trustbox.client.trust.verbs import TrustContext
from trustbox.keystore.passphrase import constant_retriever
from trustbox.oci.manifest import Manifest

GUN = "registry.example.test/team/app"
TRUST_URL = "https://notary.example.test"
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}'
LOST = f"notary.example.test does not have trust data for {GUN} but the local cache does"
HOST = "127.0.0.1:5000"
IMG = f"{HOST}/test/trusttest"


class ServerFarm:
    """trustbox trust servers in-process; the newest one is "the" server."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.apps: list[Any] = []
        self.clients: list[ASGIClient] = []
        self.wipe()

    def wipe(self) -> None:
        """Replace the server by a new one on fresh storage (``sandbox down -v`` + ``up``)."""
        self.apps.append(make_app({"db": f"sqlite:///{self.tmp}/trust-{len(self.apps)}.db", "table_prefix": ""}))

    def client(self) -> httpx.Client:
        """An httpx client talking to the current server."""
        c = ASGIClient(self.apps[-1])
        self.clients.append(c)
        return c

    def status(self, gun: str, name: str) -> int:
        """The current server's status for ``GET <gun>/_trust/tuf/<name>``."""
        return self.client().get(f"{TRUST_URL}/v2/{gun}/_trust/tuf/{name}").status_code

    def close(self) -> None:
        for c in self.clients:
            c.close()
        for a in self.apps:
            a.close()


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[ServerFarm]:
    f = ServerFarm(tmp_path)
    yield f
    f.close()


def _registry(req: httpx.Request) -> httpx.Response:
    if req.url.path.startswith("/v2/team/app/manifests/"):
        return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": "sha256:" + hashlib.sha256(MANIFEST).hexdigest()})
    return httpx.Response(404)


def _context(tmp_path: Path, http_factory: Any, now: Any = None) -> TrustContext:
    env = {
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DOCKER_CONTENT_TRUST_SERVER": TRUST_URL,
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root-pass-123",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repo-pass-123",
        "TRUSTBOX_SIGSTORE": "0",  # this registry is a stub; attachments: tests/client/test_sigstore_verbs.py
    }
    return TrustContext(
        environ=env,
        now=now,
        http_factory=http_factory,
        registry_http_factory=lambda: httpx.Client(transport=httpx.MockTransport(_registry)),
        confirm=lambda msg: True,
    )


def trust(ctx: TrustContext, *args: str) -> tuple[int, str, str]:
    """``trustbox trust ARGS`` with ``ctx``: (exit code, stdout, stderr)."""
    ctx.out, ctx.err = io.StringIO(), io.StringIO()
    result = CliRunner().invoke(cli, ["trust", *args], obj={"trust_context": ctx})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, ctx.out.getvalue() + result.stdout, ctx.err.getvalue() + result.stderr


def sign_and_read(ctx: TrustContext, tag: str) -> None:
    """``trust sign GUN:TAG``, then a read that fills the cache (a publish caches only a new root)."""
    code, _, err = trust(ctx, "sign", f"{GUN}:{tag}")
    assert code == 0, err
    code, _, err = trust(ctx, "inspect", GUN)
    assert code == 0, err


def _cache(ctx: TrustContext, gun: str = GUN) -> dict[str, bytes]:
    root = ctx.trust_dir / "tuf" / gun
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- writes: trustbox trust ... against a server that lost the repository ------------------------------


@pytest.mark.parametrize(
    ("args", "ok_text"),
    [
        (("sign", f"{GUN}:v1"), "Successfully signed"),  # co-signing the same digest: nothing new
        (("sign", f"{GUN}:v2"), "Successfully signed"),  # a new tag
        (("revoke", f"{GUN}:v1"), "Successfully deleted"),
    ],
)
def test_writes_to_a_wiped_server_fail_loudly_and_leave_the_cache(
    farm: ServerFarm, tmp_path: Path, args: tuple[str, ...], ok_text: str
) -> None:
    ctx = _context(tmp_path, farm.client)
    sign_and_read(ctx, "v1")  # as in the tutorial: the reads fill the cache
    before = _cache(ctx)
    farm.wipe()
    code, out, err = trust(ctx, *args)
    assert code == 1
    assert ok_text not in out
    line = err.strip()
    assert len(line.splitlines()) == 1 and line.startswith("Error: ")
    assert LOST in line
    # docker's reason (the server's refusal of the cached repository) and what to do
    assert "no snapshot was included in update and server does not hold current snapshot key" in line
    assert f"remove the cache {ctx.trust_dir / 'tuf' / GUN} to start a new repository" in line
    assert farm.status(GUN, "root.json") == 404  # nothing was accepted
    assert _cache(ctx) == before  # the cache claims nothing the server did not take


def test_restored_server_that_kept_its_keys_gets_the_whole_cached_repository(tmp_path: Path) -> None:
    """The initial publish succeeds when the server can take it: root, targets and every
    delegation as cached, plus the change; a fresh client then reads everything from the server."""
    old = FakeNotary(NOW)
    ctx = _context(tmp_path, old.client, NOW)
    assert trust(ctx, "key", "generate", "alice", "--dir", str(tmp_path))[0] == 0
    assert trust(ctx, "signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", GUN)[0] == 0
    sign_and_read(ctx, "v1")
    restored = FakeNotary(NOW)
    restored.repo(GUN).server_keys.update(old.repo(GUN).server_keys)  # key store survived, metadata lost
    ctx.http_factory = restored.client
    code, out, err = trust(ctx, "sign", f"{GUN}:v2")
    assert code == 0, err
    assert out.endswith(f"Successfully signed {GUN}:v2\n")
    # root and the unchanged targets as cached, the changed delegations re-signed; the server signs the snapshot
    assert [[role for role, _ in post] for post in restored.posts] == [["root", "targets/alice", "targets/releases", "targets"]]
    fresh = TrustClient(GUN, TRUST_URL, tmp_path / "other", now=NOW, http=restored.client(),
                        passphrase_retriever=constant_retriever("x"))
    assert {t.name for t in fresh.list_signed_targets()} == {"v1", "v2"}
    assert fresh.get_signed_target("v1").signers == ("alice",)
    assert not fresh.from_cache


@pytest.mark.parametrize("status", [400, 500])
def test_publish_is_done_only_when_the_server_answers_2xx(tmp_path: Path, status: int) -> None:
    old = FakeNotary(NOW)
    ctx = _context(tmp_path, old.client, NOW)
    sign_and_read(ctx, "v1")
    before = _cache(ctx)
    new = FakeNotary(NOW)
    new.overrides[(GUN, "")] = lambda req: httpx.Response(
        status, json={"errors": [{"code": "UNKNOWN", "message": "refused by test", "detail": {}}]}
    )
    ctx.http_factory = new.client
    code, out, err = trust(ctx, "sign", f"{GUN}:v1")
    assert code == 1
    assert "Successfully signed" not in out
    assert ("POST", f"/v2/{GUN}/_trust/tuf/") in new.requests  # it was sent, and refused
    assert (LOST in err and "refused by test" in err) if status == 400 else "unable to reach trust server at this time: 500." in err
    assert _cache(ctx) == before


def test_an_unusable_cache_is_not_replaced_by_a_new_repository(tmp_path: Path) -> None:
    """Only a root cached (a signer that never read) and a server without the repository: no
    silent new repository over the pinned root, nothing sent."""
    ctx = _context(tmp_path, FakeNotary(NOW).client, NOW)
    assert trust(ctx, "sign", f"{GUN}:v1")[0] == 0
    meta = ctx.trust_dir / "tuf" / GUN / "metadata"
    for p in meta.iterdir():
        if p.name != "root.json":
            p.unlink()
    root = (meta / "root.json").read_bytes()
    new = FakeNotary(NOW)
    ctx.http_factory = new.client
    code, out, err = trust(ctx, "sign", f"{GUN}:v2")
    assert code == 1
    assert LOST in err and "(the cached copy cannot be published again: no cached timestamp)" in err
    assert not new.posts
    assert (meta / "root.json").read_bytes() == root


def test_nothing_to_publish_is_an_error_when_the_server_did_not_confirm_its_state(tmp_path: Path) -> None:
    fake = FakeNotary(NOW)
    ctx = _context(tmp_path, fake.client, NOW)
    sign_and_read(ctx, "v2")
    # the server has the repository and answers for root.json, but not for timestamp.json
    fake.overrides[(GUN, "timestamp.json")] = lambda req: httpx.Response(503)
    posts = len(fake.posts)
    code, out, err = trust(ctx, "sign", f"{GUN}:v2")
    assert code == 1
    assert "Successfully signed" not in out
    assert "nothing to publish" in err and "cannot be confirmed to hold these versions" in err
    assert len(fake.posts) == posts
    # the same co-sign against a server that confirms its state is a genuine no-op
    del fake.overrides[(GUN, "timestamp.json")]
    code, out, err = trust(ctx, "sign", f"{GUN}:v2")
    assert code == 0, err


# --- reads: the cached timestamp stands in like notary's downloadTimestamp ---------------------------


@pytest.mark.parametrize(
    ("answer", "falls_back"),
    [
        (lambda req: httpx.Response(404), True),
        (lambda req: httpx.Response(503), True),
        (lambda req: httpx.Response(401), True),
        (lambda req: (_ for _ in ()).throw(httpx.ConnectError("down")), True),
        (lambda req: httpx.Response(400, json={"errors": []}), False),  # notary: ErrInvalidOperation, no fallback
    ],
    ids=["404", "503", "401", "network", "400"],
)
def test_cached_timestamp_is_used_on_the_errors_notary_tolerates(tmp_path: Path, answer: Any, falls_back: bool) -> None:
    fake = FakeNotary(NOW)
    ctx = _context(tmp_path, fake.client, NOW)
    sign_and_read(ctx, "v2")
    fake.overrides[(GUN, "timestamp.json")] = answer
    warnings: list[str] = []
    client = TrustClient(GUN, TRUST_URL, ctx.trust_dir, now=NOW, http=fake.client(),
                         passphrase_retriever=constant_retriever("x"), warn=warnings.append)
    if not falls_back:
        with pytest.raises(ServerRejectedError):
            client.update()
        return
    client.update()
    assert client.from_cache
    assert warnings == [CACHED_TIMESTAMP_WARNING]
    assert client.get_signed_target("v2").length == len(MANIFEST)


def test_inspect_warns_with_notarys_text(farm: ServerFarm, tmp_path: Path) -> None:
    ctx = _context(tmp_path, farm.client)
    assert trust(ctx, "sign", f"{GUN}:v1")[0] == 0
    assert trust(ctx, "inspect", GUN) == (0, ANY, "")
    farm.wipe()
    code, out, err = trust(ctx, "inspect", GUN)
    assert code == 0, err
    assert err == CACHED_TIMESTAMP_WARNING + "\n"
    assert json.loads(out)[0]["SignedTags"][0]["SignedTag"] == "v1"


# --- push / pull / verify ---------------------------------------------------------------------------


@pytest.fixture
def images_env(farm: ServerFarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRegistry, Path, Manifest]:
    """A fake registry, the farm as the trust server, and a sample image at ``tmp/sample``."""
    for var in ("DOCKER_CONTENT_TRUST", "TRUSTBOX_INSECURE_REGISTRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("DOCKER_CONTENT_TRUST_SERVER", TRUST_URL)
    monkeypatch.setenv("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "root-pass-123")
    monkeypatch.setenv("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "repo-pass-123")
    registry = FakeRegistry(host=HOST)
    real_from_env = RegistryOptions.from_env

    def from_env(insecure: Any = (), ca_certs: Any = ()) -> RegistryOptions:
        opts = real_from_env(insecure, ca_certs)
        opts.transport = registry.transport()
        return opts

    def factory(image_ref: str, **opts: Any) -> TrustClient:
        return trust_client_for(image_ref, http=farm.client(), **opts)

    monkeypatch.setattr(RegistryOptions, "from_env", staticmethod(from_env))
    monkeypatch.setattr(images_mod, "trust_client_for", factory)
    sample = tmp_path / "sample"
    return registry, sample, write_sample_image(sample, "v1")


def tb(*args: str, dct: bool = False) -> Any:
    return CliRunner().invoke(cli, list(args), env={"DOCKER_CONTENT_TRUST": "1"} if dct else None, catch_exceptions=False)


@pytest.mark.parametrize("read_before", [True, False], ids=["full-cache", "root-only-cache"])
def test_push_with_content_trust_to_a_wiped_server_fails(farm: ServerFarm, images_env: Any, read_before: bool) -> None:
    _, sample, top = images_env
    r = tb("push", f"oci:{sample}:v1", f"{IMG}:latest", dct=True)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == f"Successfully signed {IMG}:latest"
    if read_before:
        assert tb("verify", f"{IMG}:latest").exit_code == 0
    farm.wipe()
    r = tb("push", f"oci:{sample}:v1", f"{IMG}:latest", dct=True)
    assert r.exit_code != 0
    assert "Successfully signed" not in r.stdout
    assert f"does not have trust data for {IMG} but the local cache does" in r.stderr
    assert farm.status(IMG, "root.json") == 404


def test_verify_and_pull_use_the_cache_with_a_warning_and_say_so(farm: ServerFarm, images_env: Any, tmp_path: Path) -> None:
    _, sample, top = images_env
    assert tb("push", f"oci:{sample}:v1", f"{IMG}:latest", dct=True).exit_code == 0
    r = tb("verify", "--json", "--require-fresh", f"{IMG}:latest")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["from_cache"] is False
    assert r.stderr == ""

    farm.wipe()
    r = tb("verify", f"{IMG}:latest")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Verified: ")
    assert r.stderr == CACHED_TIMESTAMP_WARNING + "\n"

    r = tb("verify", "--json", f"{IMG}:latest")
    assert r.exit_code == 0, r.output
    verdict = json.loads(r.stdout)
    assert verdict["verified"] is True and verdict["from_cache"] is True

    r = tb("verify", "--require-fresh", f"{IMG}:latest")
    assert r.exit_code == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines == [CACHED_TIMESTAMP_WARNING, lines[1]] and lines[1].startswith("Not verified: the trust server did not serve current trust data")
    r = tb("verify", "--json", "--require-fresh", f"{IMG}:latest")
    assert r.exit_code == 1
    verdict = json.loads(r.stdout)
    assert verdict["verified"] is False and verdict["from_cache"] is True and "--require-fresh" in verdict["reason"]

    # a trusted pull keeps docker's behaviour: the cached data within its expiry, with the warning
    r = tb("pull", f"{IMG}:latest", f"oci:{tmp_path / 'out'}", dct=True)
    assert r.exit_code == 0, r.output
    assert CACHED_TIMESTAMP_WARNING in r.stderr


def test_require_fresh_on_an_unreachable_server_is_a_network_failure(farm: ServerFarm, images_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, sample, _ = images_env
    assert tb("push", f"oci:{sample}:v1", f"{IMG}:latest", dct=True).exit_code == 0
    assert tb("verify", f"{IMG}:latest").exit_code == 0

    def down(image_ref: str, **opts: Any) -> TrustClient:
        fail = httpx.Client(transport=httpx.MockTransport(lambda req: (_ for _ in ()).throw(httpx.ConnectError("refused"))))
        return trust_client_for(image_ref, http=fail, **opts)

    monkeypatch.setattr(images_mod, "trust_client_for", down)
    assert tb("verify", f"{IMG}:latest").exit_code == 0
    r = tb("verify", "--require-fresh", f"{IMG}:latest")
    assert r.exit_code == 3
    assert r.stderr.strip().splitlines()[-1].startswith("Error: the trust server did not serve current trust data")

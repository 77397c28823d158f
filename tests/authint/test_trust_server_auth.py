"""Token and htpasswd auth in front of the trust server (in-process, through the ASGI app the
server runs when auth is on): challenges byte-identical to notary-server 0.7, scopes, config."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tests.authint.conftest import ISSUER, REALM, Minter, other_issuer
from tests.testdata import FIXTURES
from trustbox.auth.htpasswd import add_user
from trustbox.auth.scopes import CATALOG, repository
from trustbox.cli import cli
from trustbox.errors import ConfigError
from trustbox.trustserver.config import ServerConfig, load_config_file
from trustbox.trustserver.server import build_app, with_auth

SERVICE = "notary.example.test"
TRANSCRIPT = FIXTURES / "transcripts" / "04-token-auth-challenges.txt"


def _config(tmp_path: Path, auth: dict[str, object] | None) -> ServerConfig:
    raw: dict[str, object] = {"storage": {"db_url": f"sqlite:///{tmp_path / 'trust.db'}"},
                              "trustbox": {"insecure_dev_keys": True}}
    if auth is not None:
        raw["auth"] = auth
    (tmp_path / "server.json").write_text(json.dumps(raw))
    return ServerConfig(**load_config_file(tmp_path / "server.json"))


@pytest.fixture
def token_client(tmp_path: Path, minter: Minter) -> Iterator[TestClient]:
    """The trust server with notary's token auth section, as a config file gives it."""
    config = _config(tmp_path, {"type": "token", "options": {"realm": REALM, "service": SERVICE, "issuer": ISSUER,
                                                             "rootcertbundle": str(minter.bundle)}})
    app = build_app(config)
    try:
        yield TestClient(with_auth(app, config), base_url="https://notary.example.test")
    finally:
        app.close()


def _transcript() -> list[tuple[str, str, int, dict[str, str], bytes]]:
    """(method, path, status, headers, body) of every exchange in the upstream transcript."""
    out = []
    for chunk in TRANSCRIPT.read_text().split("### ")[1:]:
        request, _, response = chunk.partition("\n")
        head, _, body = response.partition("\n\n")
        lines = head.splitlines()
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        method, path = request.split()
        out.append((method, path, status, headers, body.rstrip("\n").encode() + (b"\n" if status == 401 else b"")))
    return out


def test_unauthenticated_requests_match_notary_server(token_client: TestClient) -> None:
    exchanges = _transcript()
    assert len(exchanges) >= 7
    for method, path, status, headers, body in exchanges:
        r = token_client.request(method, path)
        assert r.status_code == status, (method, path, r.text)
        if status == 401:
            assert r.headers["www-authenticate"] == headers["www-authenticate"], path
            assert r.headers["content-type"] == headers["content-type"]
            assert r.content == body, path
            assert r.headers["content-length"] == headers["content-length"]
        else:  # health is exempt
            assert r.content == body.rstrip(b"\n") or r.content == b"{}"


def test_scopes_decide(token_client: TestClient, minter: Minter, tmp_path: Path) -> None:
    gun = "example/repo"
    root = f"/v2/{gun}/_trust/tuf/root.json"

    def auth(*access: object, **kw: object) -> dict[str, str]:
        return {"Authorization": "Bearer " + minter.token(SERVICE, *access, **kw)}  # type: ignore[arg-type]

    # pull reaches the app (no trust data yet: notary's 404), push,pull gets a key
    r = token_client.get(root, headers=auth(repository(gun, "pull")))
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "METADATA_NOT_FOUND"
    assert token_client.get(f"/v2/{gun}/_trust/tuf/timestamp.key", headers=auth(repository(gun, "push", "pull"))).status_code == 200
    # pull only: GET .key and POST refused with insufficient_scope and the upstream body
    for method, path in (("GET", f"/v2/{gun}/_trust/tuf/timestamp.key"), ("POST", f"/v2/{gun}/_trust/tuf/")):
        r = token_client.request(method, path, headers=auth(repository(gun, "pull")))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == (
            f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:{gun}:push,pull",error="insufficient_scope"')
        assert r.json()["errors"][0]["detail"][0] == {"Type": "repository", "Class": "", "Name": gun, "Action": "push"}
    # another repository's token, another audience, another signer: refused
    assert token_client.get(root, headers=auth(repository("other/repo", "*"))).status_code == 401
    wrong_aud = {"Authorization": "Bearer " + minter.token("registry.example.test", repository(gun, "pull"))}
    r = token_client.get(root, headers=wrong_aud)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    rogue = auth(repository(gun, "*"), issuer=other_issuer(tmp_path))
    assert token_client.get(root, headers=rogue).status_code == 401
    assert token_client.get(root, headers={"Authorization": "Bearer not.a.token"}).status_code == 401
    # DELETE needs "*", the global changefeed the catalog scope
    assert token_client.delete(f"/v2/{gun}/_trust/tuf/", headers=auth(repository(gun, "push", "pull"))).status_code == 401
    assert token_client.delete(f"/v2/{gun}/_trust/tuf/", headers=auth(repository(gun, "*"))).status_code == 200
    feed = "/v2/_trust/changefeed?change_id=0&records=10"
    assert token_client.get(feed, headers=auth(repository(gun, "*"))).status_code == 401
    assert token_client.get(feed, headers=auth(CATALOG)).status_code == 200
    # metrics stay open
    assert token_client.get("/metrics").status_code == 200


def test_htpasswd_basic_auth(tmp_path: Path) -> None:
    add_user(tmp_path / "htpasswd", "alice", "alice-pw", cost=4)
    (tmp_path / "rules.toml").write_text('[[rule]]\nsubject = "alice"\nrepository = "team/*"\nactions = ["pull"]\n')
    config = _config(tmp_path, {"type": "htpasswd", "options": {"path": str(tmp_path / "htpasswd"),
                                                                "rules": str(tmp_path / "rules.toml")}})
    app = build_app(config)
    try:
        client = TestClient(with_auth(app, config))
        basic = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}
        r = client.get("/v2/team/app/_trust/tuf/root.json")
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="trustbox-notary"'
        assert client.get("/v2/team/app/_trust/tuf/root.json", headers=basic).status_code == 404
        bad = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
        assert client.get("/v2/team/app/_trust/tuf/root.json", headers=bad).status_code == 401
        r = client.post("/v2/team/app/_trust/tuf/", headers=basic)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
    finally:
        app.close()


def test_auth_is_off_by_default(tmp_path: Path) -> None:
    config = _config(tmp_path, None)
    assert config.auth_section() is None
    app = build_app(config)
    try:
        assert with_auth(app, config) is app  # the RSGI fast path stays as it is
        assert TestClient(app).get("/v2/x/y/_trust/tuf/root.json").status_code == 404
    finally:
        app.close()


def test_bad_auth_config_is_one_line_error(tmp_path: Path, minter: Minter) -> None:
    with pytest.raises(ConfigError, match="--auth-token-issuer"):
        ServerConfig(auth_token_realm=REALM, auth_token_service="s", auth_token_rootcertbundle="x").validate()
    (tmp_path / "c.json").write_text(json.dumps({"auth": {"type": "oauth", "options": {}}}))
    with pytest.raises(ConfigError, match="unsupported auth type"):
        load_config_file(tmp_path / "c.json")
    runner = CliRunner()
    r = runner.invoke(cli, ["serve", "trust", "--db", f"sqlite:///{tmp_path / 'db'}", "--insecure-dev-keys",
                            "--auth-token-realm", REALM, "--auth-token-service", SERVICE])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert re.search(r"token auth needs --auth-token-issuer, --auth-token-rootcertbundle", r.output), r.output
    r = runner.invoke(cli, ["serve", "trust", "--db", f"sqlite:///{tmp_path / 'db'}", "--insecure-dev-keys",
                            "--auth-token-realm", REALM, "--auth-token-service", SERVICE, "--auth-token-issuer", ISSUER,
                            "--auth-token-rootcertbundle", str(tmp_path / "missing.pem")])
    assert r.exit_code != 0 and "missing.pem" in r.output and "Traceback" not in r.output

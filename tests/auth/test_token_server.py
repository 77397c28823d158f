"""The token server end to end over HTTPS (started through ``serve auth``)."""

from __future__ import annotations

import ssl

import httpx
import pytest
from click.testing import CliRunner

from tests.auth.conftest import TokenServer
from tests.auth.run_cli import build
from trustbox.auth.scopes import CATALOG, repository
from trustbox.auth.tokens import InvalidTokenError, TokenVerifier


def _client(ts: TokenServer) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ts.tls.ca_cert)), timeout=30)


def _get(ts: TokenServer, params: list[tuple[str, str]], auth: tuple[str, str] | None) -> httpx.Response:
    with _client(ts) as c:
        return c.get(ts.realm, params=params, auth=auth)


def test_get_token_grants_intersection(token_server: TokenServer) -> None:
    r = _get(token_server, [("service", "notary"), ("scope", "repository:team/app:pull,push,*"),
                            ("scope", "repository:other/x:pull registry:catalog:*"), ("account", "alice")],
             ("alice", "alice-pw"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    claims = TokenVerifier.from_bundle(token_server.cert, "trustbox", "notary").verify(body["token"])
    assert claims.subject == "alice"
    assert claims.access == (repository("team/app", "pull", "push"),)
    with pytest.raises(InvalidTokenError):
        TokenVerifier.from_bundle(token_server.cert, "trustbox", "registry").verify(body["token"])


def test_admin_and_reader(token_server: TokenServer) -> None:
    r = _get(token_server, [("service", "s"), ("scope", "repository:x/y:*"), ("scope", "registry:catalog:*")],
             ("root", "root-pw"))
    claims = TokenVerifier.from_bundle(token_server.cert, "trustbox", "s").verify(r.json()["token"])
    assert claims.access == (repository("x/y", "*"), CATALOG)
    r = _get(token_server, [("service", "s"), ("scope", "repository:team/a:pull,push")], ("bob", "bob-pw"))
    claims = TokenVerifier.from_bundle(token_server.cert, "trustbox", "s").verify(r.json()["token"])
    assert claims.access == (repository("team/a", "pull"),)


def test_refusals(token_server: TokenServer) -> None:
    scope = [("service", "s"), ("scope", "repository:team/a:pull")]
    bad = _get(token_server, scope, ("alice", "wrong"))
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Basic realm=")
    assert "token" not in bad.text
    assert _get(token_server, scope, ("nobody", "x")).status_code == 401
    anon = _get(token_server, scope + [("scope", "repository:x/public/y:pull,push")], None)
    assert anon.status_code == 200  # anonymous gets a token with only what "*" rules allow
    claims = TokenVerifier.from_bundle(token_server.cert, "trustbox", "s").verify(anon.json()["token"])
    assert claims.subject == "" and claims.access == (repository("x/public/y", "pull"),)
    assert _get(token_server, [("scope", "repository:team/a:pull")], ("alice", "alice-pw")).status_code == 400
    assert _get(token_server, [("service", "s"), ("scope", "bogus")], ("alice", "alice-pw")).status_code == 400
    assert "alice-pw" not in token_server.log.read_text()


def test_post_password_grant(token_server: TokenServer) -> None:
    form = {"grant_type": "password", "username": "alice", "password": "alice-pw", "service": "s",
            "scope": "repository:team/a:pull,push repository:nope:pull", "client_id": "docker"}
    with _client(token_server) as c:
        r = c.post(token_server.realm, data=form)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == "repository:team/a:pull,push"
        claims = TokenVerifier.from_bundle(token_server.cert, "trustbox", "s").verify(body["access_token"])
        assert claims.access == (repository("team/a", "pull", "push"),)
        assert c.post(token_server.realm, data=dict(form, password="x")).status_code == 401
        r = c.post(token_server.realm, data=dict(form, grant_type="refresh_token"))
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_keygen_refuses_overwrite(token_server: TokenServer) -> None:
    r = CliRunner().invoke(build(), ["auth", "keygen", str(token_server.key.parent)])
    assert r.exit_code != 0 and "already exists" in r.output and "Traceback" not in r.output

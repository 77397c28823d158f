"""The ASGI middleware on a tiny Starlette app: challenges, tokens with and without the scope."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.auth.helpers import issuer_and_verifier
from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import HtpasswdFile, add_user
from trustbox.auth.middleware import (
    AuthMiddleware,
    BasicAuthorizer,
    BearerAuthorizer,
    NoAuthorizer,
    authorizer_from_config,
    notary_required_scopes,
    registry_required_scopes,
)
from trustbox.auth.scopes import CATALOG, repository
from trustbox.auth.throttle import FailureThrottle, ThrottleLimits
from trustbox.errors import ConfigError

REALM, SERVICE = "https://auth.test/token", "svc"


async def echo(request: Request) -> JSONResponse:
    info = request.state.auth if hasattr(request.state, "auth") else None
    return JSONResponse({"path": request.url.path, "user": info.user if info else "-"})


def tiny_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "DELETE", "HEAD", "PUT"])])


@pytest.fixture()
def bearer_client() -> tuple[TestClient, object]:
    issuer, verifier, _k, _c = issuer_and_verifier(service=SERVICE)
    app = AuthMiddleware(tiny_app(), BearerAuthorizer(verifier, REALM, SERVICE), notary_required_scopes)
    return TestClient(app), issuer


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_unauthenticated_gets_challenge(bearer_client: tuple[TestClient, object]) -> None:
    client, _ = bearer_client
    r = client.get("/v2/example/repo/_trust/tuf/root.json")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:example/repo:pull"')
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.content == (
        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":'
        b'[{"Type":"repository","Class":"","Name":"example/repo","Action":"pull"}]}]}\n')
    assert client.get("/_notary_server/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    h = client.head("/v2/a/_trust/tuf/root.json")
    assert h.status_code == 401 and h.content == b""


def test_good_token(bearer_client: tuple[TestClient, object]) -> None:
    client, issuer = bearer_client
    tok = issuer.issue("alice", SERVICE, [repository("a/b", "pull", "push")]).token  # type: ignore[attr-defined]
    r = client.get("/v2/a/b/_trust/tuf/root.json", headers=_bearer(tok))
    assert r.status_code == 200 and r.json()["user"] == "alice"
    assert client.post("/v2/a/b/_trust/tuf/", headers=_bearer(tok)).status_code == 200


def test_token_lacking_scope(bearer_client: tuple[TestClient, object]) -> None:
    client, issuer = bearer_client
    tok = issuer.issue("alice", SERVICE, [repository("a/b", "pull")]).token  # type: ignore[attr-defined]
    for method, path, scope in [
        ("POST", "/v2/a/b/_trust/tuf/", "repository:a/b:push,pull"),
        ("DELETE", "/v2/a/b/_trust/tuf/", "repository:a/b:*"),
        ("GET", "/v2/other/_trust/tuf/root.json", "repository:other:pull"),
        ("GET", "/v2/", "registry:catalog:*"),
    ]:
        r = client.request(method, path, headers=_bearer(tok))
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == (
            f'Bearer realm="{REALM}",service="{SERVICE}",scope="{scope}",error="insufficient_scope"')
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    star = issuer.issue("root", SERVICE, [repository("a/b", "*"), CATALOG]).token  # type: ignore[attr-defined]
    assert client.delete("/v2/a/b/_trust/tuf/", headers=_bearer(star)).status_code == 200
    assert client.get("/v2/", headers=_bearer(star)).status_code == 200


def test_invalid_token(bearer_client: tuple[TestClient, object]) -> None:
    client, _issuer = bearer_client
    other, _v, _k, _c = issuer_and_verifier(service=SERVICE)
    tok = other.issue("alice", SERVICE, [repository("a", "pull")]).token
    for header in (f"Bearer {tok}", "Bearer garbage", f"Bearer {tok} extra"):
        r = client.get("/v2/a/_trust/tuf/root.json", headers={"Authorization": header})
        assert r.status_code == 401
        if header.count(" ") == 1:
            assert r.headers["www-authenticate"].endswith(',error="invalid_token"')


def test_registry_mapping_and_extra_headers() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier(service=SERVICE)
    app = AuthMiddleware(tiny_app(), BearerAuthorizer(verifier, REALM, SERVICE), registry_required_scopes,
                         extra_headers={"Docker-Distribution-API-Version": "registry/2.0"})
    client = TestClient(app)
    r = client.get("/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer realm="{REALM}",service="{SERVICE}"'
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert r.json() == {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
    empty = issuer.issue("", SERVICE, []).token
    assert client.get("/v2/", headers=_bearer(empty)).status_code == 200
    assert client.get("/v2/a/manifests/latest", headers=_bearer(empty)).status_code == 401
    push = issuer.issue("u", SERVICE, [repository("a", "pull", "push")]).token
    r = client.post("/v2/a/blobs/uploads/?mount=sha256:00&from=b", headers=_bearer(push))
    assert r.status_code == 401
    assert 'scope="repository:a:pull,push repository:b:pull"' in r.headers["www-authenticate"]
    assert client.get("/debug/health").status_code == 200


def test_basic_authorizer(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    add_user(f, "alice", "pw", cost=4)
    add_user(f, "bob", "pw2", cost=4)
    rules = AccessRules.from_dict({"rule": [{"subject": "alice", "repository": "*", "actions": ["*"]}]})
    client = TestClient(AuthMiddleware(tiny_app(), BasicAuthorizer(HtpasswdFile(f), "reg", rules),
                                       registry_required_scopes))
    r = client.get("/v2/a/manifests/x")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="reg"'
    assert client.get("/v2/a/manifests/x", auth=("alice", "bad")).status_code == 401
    r = client.get("/v2/a/manifests/x", auth=("alice", "pw"))
    assert r.status_code == 200 and r.json()["user"] == "alice"
    r = client.get("/v2/a/manifests/x", auth=("bob", "pw2"))
    assert r.status_code == 403
    assert r.content == b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}\n'
    assert client.get("/v2/", auth=("bob", "pw2")).status_code == 200
    bad = base64.b64encode(b"nocolon").decode()
    assert client.get("/v2/", headers={"Authorization": f"Basic {bad}"}).status_code == 401


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_basic_authorizer_throttles_failures(tmp_path: Path) -> None:
    """registry:2 / trust server Basic auth: the token server's throttle, same 429."""
    f = tmp_path / "htpasswd"
    add_user(f, "alice", "pw", cost=4)
    clock = Clock()
    authorizer = BasicAuthorizer(HtpasswdFile(f), "reg", throttle=FailureThrottle(ThrottleLimits(3, 5, 60), clock))
    app = AuthMiddleware(tiny_app(), authorizer, registry_required_scopes,
                         extra_headers={"Docker-Distribution-API-Version": "registry/2.0"})
    client = TestClient(app, client=("192.0.2.1", 1234))
    for _ in range(5):
        assert client.get("/v2/").status_code == 401  # the challenge round trip is not a failure
    for _ in range(3):
        assert client.get("/v2/", auth=("alice", "bad")).status_code == 401
    for password in ("bad", "pw"):
        r = client.get("/v2/a/manifests/x", auth=("alice", password))
        assert r.status_code == 429 and r.headers["retry-after"] == "20"
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"
        assert r.json() == {"errors": [{"code": "TOOMANYREQUESTS", "message": r.json()["errors"][0]["message"]}]}
    clock.now += 20
    assert client.get("/v2/", auth=("alice", "pw")).status_code == 200
    sprayer = TestClient(app, client=("2001:db8::1", 1234))
    for n in range(5):  # user names sprayed from one address (IPv6: its /64)
        assert sprayer.get("/v2/", auth=(f"nobody{n}", "x")).status_code == 401
    sprayer = TestClient(app, client=("2001:db8::2", 1234))
    assert sprayer.get("/v2/", auth=("nobody9", "x")).status_code == 429
    assert client.get("/v2/", auth=("nobody9", "x")).status_code == 401


def test_no_auth_and_config(tmp_path: Path) -> None:
    client = TestClient(AuthMiddleware(tiny_app(), NoAuthorizer(), notary_required_scopes))
    assert client.get("/v2/").status_code == 200
    _i, _v, _k, cert_pem = issuer_and_verifier()
    bundle = tmp_path / "cert.pem"
    bundle.write_bytes(cert_pem)
    opts = {"realm": REALM, "service": SERVICE, "issuer": "trustbox", "rootcertbundle": str(bundle)}
    assert isinstance(authorizer_from_config({"type": "token", "options": opts}), BearerAuthorizer)
    assert isinstance(authorizer_from_config({"token": opts}), BearerAuthorizer)
    assert isinstance(authorizer_from_config({}), NoAuthorizer)
    f = tmp_path / "h"
    add_user(f, "a", "b", cost=4)
    assert isinstance(authorizer_from_config({"htpasswd": {"realm": "r", "path": str(f)}}), BasicAuthorizer)
    for bad in ({"type": "token", "options": dict(opts, issuer="")}, {"type": "silly"},
                {"token": dict(opts, rootcertbundle=str(tmp_path / "missing"))}):
        with pytest.raises(ConfigError):
            authorizer_from_config(bad)

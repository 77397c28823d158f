"""Token auth in front of the registry (in-process): registry:2's config shape, scopes, 401s
with the API version header, and htpasswd through the shared Basic authorizer."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.authint.conftest import ISSUER, REALM, Minter
from trustbox.auth.htpasswd import add_user
from trustbox.auth.scopes import CATALOG, repository
from trustbox.errors import ConfigError
from trustbox.registry.app import create_app
from trustbox.registry.config import load_config

SERVICE = "registry.example.test"
API = ("docker-distribution-api-version", "registry/2.0")


def _registry(tmp_path: Path, auth_toml: str) -> TestClient:
    cfg = tmp_path / "registry.toml"
    cfg.write_text(f'storage = "{tmp_path / "data"}"\n\n{auth_toml}')
    return TestClient(create_app(load_config(cfg, {}, {})))


@pytest.fixture
def registry(tmp_path: Path, minter: Minter) -> TestClient:
    return _registry(tmp_path, f'[auth.token]\nrealm = "{REALM}"\nservice = "{SERVICE}"\nissuer = "{ISSUER}"\n'
                               f'rootcertbundle = "{minter.bundle}"\n')


def test_challenges(registry: TestClient) -> None:
    r = registry.get("/v2/")
    assert r.status_code == 401 and r.headers[API[0]] == API[1]
    assert r.headers["www-authenticate"] == f'Bearer realm="{REALM}",service="{SERVICE}"'
    assert r.content == b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}\n'
    r = registry.put("/v2/team/app/manifests/v1", content=b"{}")
    assert r.status_code == 401 and r.headers[API[0]] == API[1]
    assert r.headers["www-authenticate"] == f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:team/app:pull,push"'
    r = registry.head("/v2/team/app/blobs/sha256:" + "0" * 64)
    assert r.status_code == 401 and r.content == b""
    r = registry.get("/v2/_catalog")
    assert r.status_code == 401 and 'scope="registry:catalog:*"' in r.headers["www-authenticate"]


def test_scopes(registry: TestClient, minter: Minter) -> None:
    def bearer(*access: object) -> dict[str, str]:
        return {"Authorization": "Bearer " + minter.token(SERVICE, *access)}  # type: ignore[arg-type]

    assert registry.get("/v2/", headers=bearer()).status_code == 200
    pull = bearer(repository("team/app", "pull"))
    r = registry.get("/v2/team/app/tags/list", headers=pull)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    r = registry.post("/v2/team/app/blobs/uploads/", headers=pull)
    assert r.status_code == 401 and r.headers["www-authenticate"].endswith(',error="insufficient_scope"')
    assert registry.post("/v2/team/app/blobs/uploads/", headers=bearer(repository("team/app", "pull", "push"))).status_code == 202
    # a cross-repository mount also needs pull on the source
    mount = "/v2/team/app/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=secret/repo"
    assert registry.post(mount, headers=bearer(repository("team/app", "pull", "push"))).status_code == 401
    assert registry.get("/v2/_catalog", headers=pull).status_code == 401
    assert registry.get("/v2/_catalog", headers=bearer(CATALOG)).status_code == 200
    wrong_service = {"Authorization": "Bearer " + minter.token("notary", repository("team/app", "*"))}
    assert registry.get("/v2/team/app/tags/list", headers=wrong_service).status_code == 401


def test_htpasswd_config_shape(tmp_path: Path) -> None:
    add_user(tmp_path / "htpasswd", "alice", "alice-pw", cost=4)
    client = _registry(tmp_path, f'[auth.htpasswd]\nrealm = "my realm"\npath = "{tmp_path / "htpasswd"}"\n')
    r = client.get("/v2/")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="my realm"' and r.headers[API[0]] == API[1]
    ok = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}
    assert client.get("/v2/", headers=ok).status_code == 200


def test_bad_config(tmp_path: Path, minter: Minter) -> None:
    with pytest.raises(ConfigError, match="--auth-token-issuer"):
        _registry(tmp_path, f'[auth.token]\nrealm = "{REALM}"\nservice = "s"\nrootcertbundle = "{minter.bundle}"\n')
    with pytest.raises(ConfigError, match="unsupported auth 'silly'"):
        _registry(tmp_path, "[auth.silly]\nx = 1\n")
    add_user(tmp_path / "htpasswd", "alice", "alice-pw", cost=4)
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, {"htpasswd": str(tmp_path / "htpasswd"), "auth_token_realm": REALM, "auth_token_service": "s",
                           "auth_token_issuer": "i", "auth_token_rootcertbundle": str(minter.bundle)}, {})

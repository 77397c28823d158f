"""Repository isolation under token auth: a caller learns about, and can link, only blobs of
repositories it may pull; the auth layer and the handlers read one parse of each request.

The setting throughout: ``secret`` holds a blob the user may not pull, ``pub`` one the user may
pull, and the user may push and pull ``mine``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from tests.auth.helpers import issuer_and_verifier
from trustbox.auth.middleware import AuthInfo
from trustbox.auth.scopes import Scope, repository
from trustbox.auth.tokens import TokenIssuer
from trustbox.registry.access_control import required_scopes

from .conftest import OCI_MANIFEST, SERVICE, Reg, build_reg, error_code, token_config


class Setting:
    """A token-auth registry with ``secret`` and ``pub`` filled by an admin."""

    def __init__(self, reg: Reg, issuer: TokenIssuer) -> None:
        self.reg = reg
        self.issuer = issuer
        self.admin = self.token("admin", repository("secret", "*"), repository("pub", "*"), repository("mine", "*"))
        self.user = self.token("user", repository("mine", "pull", "push"), repository("pub", "pull"))
        self.secret_data = b"secret layer " + os.urandom(16)
        self.pub_data = b"public layer " + os.urandom(16)
        self.secret = self.push("secret", self.secret_data, self.admin)
        self.pub = self.push("pub", self.pub_data, self.admin)
        self.never = sha(b"never stored anywhere " + os.urandom(16))

    def token(self, subject: str, *scopes: Scope) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.issuer.issue(subject, SERVICE, list(scopes)).token}

    def push(self, repo: str, data: bytes, headers: dict[str, str]) -> str:
        d = sha(data)
        r = self.reg.post(f"/v2/{repo}/blobs/uploads/?digest={d}", content=data, headers=headers)
        assert r.status_code == 201, r.text
        return d

    def visible_in_mine(self, d: str) -> bool:
        r = self.reg.head(f"/v2/mine/blobs/{d}", headers=self.user)
        assert r.status_code in (200, 404), r.status_code
        return r.status_code == 200


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def setting(storage_spec: dict[str, Any], tmp_path: Path) -> Setting:
    issuer, _verifier, _key, cert = issuer_and_verifier(service=SERVICE)
    return Setting(build_reg(storage_spec, **token_config(tmp_path, cert)), issuer)


def _shape(r: Any) -> tuple[int, str, str]:
    """What a response tells about a blob: status, Location without the session id, body."""
    loc = r.headers.get("location", "")
    if "/blobs/uploads/" in loc:
        loc = loc.rsplit("/", 1)[0]
    return r.status_code, loc, r.text


def test_mount_without_from_does_not_reach_other_repositories(setting: Setting) -> None:
    reg, user = setting.reg, setting.user
    r = reg.post(f"/v2/mine/blobs/uploads/?mount={setting.secret}", headers=user)
    assert r.status_code == 202 and "/v2/mine/blobs/uploads/" in r.headers["location"]
    assert not setting.visible_in_mine(setting.secret)
    assert reg.get(f"/v2/mine/blobs/{setting.secret}", headers=user).status_code == 404
    # even from a repository the user may pull, no `from` means no mount (registry:2)
    r = reg.post(f"/v2/mine/blobs/uploads/?mount={setting.pub}", headers=user)
    assert r.status_code == 202
    assert not setting.visible_in_mine(setting.pub)


def test_mount_from_a_repository_the_user_may_pull(setting: Setting) -> None:
    reg, user = setting.reg, setting.user
    r = reg.post(f"/v2/mine/blobs/uploads/?mount={setting.pub}&from=pub", headers=user)
    assert r.status_code == 201 and r.headers["location"] == f"/v2/mine/blobs/{setting.pub}"
    assert reg.get(f"/v2/mine/blobs/{setting.pub}", headers=user).content == setting.pub_data


def test_mount_from_a_repository_the_user_may_not_pull_is_refused(setting: Setting) -> None:
    """registry:2 (distribution 2.8.2, checked against the real binary): the token lacks
    ``pull`` on ``from``, so the request is answered 401 ``insufficient_scope`` asking for it."""
    reg, user = setting.reg, setting.user
    r = reg.post(f"/v2/mine/blobs/uploads/?mount={setting.secret}&from=secret", headers=user)
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    challenge = r.headers["www-authenticate"]
    assert 'scope="repository:mine:pull,push repository:secret:pull"' in challenge
    assert challenge.endswith('error="insufficient_scope"')
    assert not setting.visible_in_mine(setting.secret)


@pytest.mark.parametrize("query", [
    "mount={secret}&from=pub&from=secret",
    "mount={secret}&from=secret&from=pub",
    "mount={secret}&from=pub&from=secret&from=pub",
])
def test_a_second_from_cannot_slip_past_the_auth_layer(setting: Setting, query: str) -> None:
    """The auth layer once checked the first ``from`` and the handler used the last: every
    ``from`` now needs ``pull``, and the handler refuses a repeated one."""
    reg = setting.reg
    url = f"/v2/mine/blobs/uploads/?{query.format(secret=setting.secret)}"
    r = reg.post(url, headers=setting.user)
    assert r.status_code == 401
    assert "repository:secret:pull" in r.headers["www-authenticate"]
    assert not setting.visible_in_mine(setting.secret)
    # a caller who may pull both still gets no ambiguous mount: 400, nothing linked
    both = setting.token("both", repository("mine", "pull", "push"), repository("pub", "pull"),
                         repository("secret", "pull"))
    r = reg.post(url, headers=both)
    assert r.status_code == 400 and error_code(r) == "NAME_INVALID"
    assert "'from'" in r.json()["errors"][0]["message"]
    assert not setting.visible_in_mine(setting.secret)


def test_no_answer_tells_a_blob_of_another_repository_from_a_missing_one(setting: Setting) -> None:
    """Every path that could reveal that ``secret`` holds a blob answers exactly as for a blob
    stored nowhere: mounts, HEAD/GET, a manifest naming it, an upload claiming its digest."""
    reg, user = setting.reg, setting.user

    def answers(d: str) -> list[tuple[int, str, str]]:
        out = [
            _shape(reg.post(f"/v2/mine/blobs/uploads/?mount={d}", headers=user)),
            _shape(reg.post(f"/v2/mine/blobs/uploads/?mount={d}&from=pub", headers=user)),
            _shape(reg.post(f"/v2/mine/blobs/uploads/?mount={d}&from=mine", headers=user)),
            _shape(reg.head(f"/v2/mine/blobs/{d}", headers=user)),
            _shape(reg.get(f"/v2/mine/blobs/{d}", headers=user)),
            _shape(reg.get(f"/v2/mine/blobs/{d}", headers={**user, "Range": "bytes=0-3"})),
            _shape(reg.delete(f"/v2/mine/blobs/{d}", headers=setting.token("u", repository("mine", "*")))),
            # an upload claiming the digest must bring the content: the stored copy is no shortcut
            _shape(reg.post(f"/v2/mine/blobs/uploads/?digest={d}", content=b"not it", headers=user)),
            _shape(reg.put(reg.post("/v2/mine/blobs/uploads/", headers=user).headers["location"]
                           + f"?digest={d}", content=b"", headers=user)),
        ]
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": setting.pub,
                          "size": len(setting.pub_data)},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 29}]}
        r = reg.put("/v2/mine/manifests/t", content=json.dumps(doc).encode(),
                    headers={**user, "Content-Type": OCI_MANIFEST})
        out.append(_shape(r))
        return [(status, loc, body.replace(d, "<d>").replace(d.split(":")[1], "<hex>")) for status, loc, body in out]

    reg.post(f"/v2/mine/blobs/uploads/?mount={setting.pub}&from=pub", headers=user)  # config for the manifest
    secret, never = answers(setting.secret), answers(setting.never)
    assert secret == never
    assert [status for status, _, _ in secret] == [202, 202, 202, 404, 404, 404, 404, 400, 400, 400]
    assert not setting.visible_in_mine(setting.secret)
    # whoever has the bytes may upload them, as for any blob
    assert setting.push("mine", setting.secret_data, user) == setting.secret
    assert reg.get(f"/v2/mine/blobs/{setting.secret}", headers=user).content == setting.secret_data


def test_reading_another_repository_needs_pull_on_it(setting: Setting) -> None:
    for method in ("HEAD", "GET"):
        r = setting.reg.request(method, f"/v2/secret/blobs/{setting.secret}", headers=setting.user)
        assert r.status_code == 401, method


def test_the_handler_checks_the_mount_source_itself(setting: Setting) -> None:
    """Behind the auth layer, the mount handler still checks the caller's grants: a request
    that reached it without ``pull`` on ``from`` starts an upload and links nothing."""
    registry = setting.reg.c.app.state.registry
    scope = {
        "type": "http", "method": "POST", "path": "/v2/mine/blobs/uploads/", "headers": [],
        "query_string": f"mount={setting.secret}&from=secret".encode(),
        "state": {"auth": AuthInfo("user", (repository("mine", "pull", "push"),), "token")},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    resp = asyncio.run(registry.dispatch(Request(scope, receive)))
    assert resp.status_code == 202
    assert not setting.visible_in_mine(setting.secret)


def test_auth_and_handler_share_one_parse() -> None:
    """The auth layer's scopes come from the parse kept in the ASGI scope, the one the handlers
    read: one ``from`` → one pull; several → a pull on each; the route's repository as the
    handler sees it."""
    def scopes(query: str, path: str = "/v2/mine/blobs/uploads/", method: str = "POST") -> Any:
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
        out = required_scopes(scope)
        assert scope["state"]["trustbox.registry.request"].path == path
        return out

    assert scopes("mount=sha256:00&from=pub") == [repository("mine", "pull", "push"), repository("pub", "pull")]
    assert scopes("from=pub&from=secret&from=pub") == [
        repository("mine", "pull", "push"), repository("pub", "pull"), repository("secret", "pull")]
    assert scopes("from=&mount=x") == [repository("mine", "pull", "push")]
    assert scopes("", "/v2/a/manifests/b/manifests/c", "GET") == [repository("a/manifests/b", "pull")]
    assert scopes("", "/v2/_catalog", "GET") is not None
    assert scopes("", "/health", "GET") is None


DUPLICATES = [  # method, the URL with a parameter twice, the same with it once, the error code
    ("POST", "/v2/mine/blobs/uploads/?mount={d}&mount={d}&from=mine", "/v2/mine/blobs/uploads/?mount={d}&from=mine",
     "DIGEST_INVALID"),
    ("POST", "/v2/mine/blobs/uploads/?digest={d}&digest={d}", "/v2/mine/blobs/uploads/?digest={d}", "DIGEST_INVALID"),
    ("POST", "/v2/mine/blobs/uploads/?mount={d}&from=mine&from=mine", "/v2/mine/blobs/uploads/?mount={d}&from=mine",
     "NAME_INVALID"),
    ("PUT", "{session}?digest={d}&digest={d}", "{session}?digest={d}", "DIGEST_INVALID"),
    ("GET", "/v2/mine/tags/list?n=1&n=2", "/v2/mine/tags/list?n=1", "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/mine/tags/list?last=a&last=b", "/v2/mine/tags/list?last=a", "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/_catalog?n=1&n=1", "/v2/_catalog?n=1", "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/mine/referrers/{d}?artifactType=a&artifactType=b", "/v2/mine/referrers/{d}?artifactType=a",
     "UNSUPPORTED"),
]
BLOB = b"a blob in mine"


@pytest.mark.parametrize("method,twice,once,code", DUPLICATES)
def test_repeated_single_value_parameters_are_refused(fsreg: Reg, method: str, twice: str, once: str, code: str) -> None:
    reg = fsreg
    d = reg.push_blob("mine", BLOB)
    r = reg.push_manifest("mine", "t", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": len(BLOB)}})
    assert r.status_code == 201
    body = BLOB if method != "GET" else None
    session = reg.post("/v2/mine/blobs/uploads/").headers["location"]
    r = reg.request(method, twice.format(d=d, session=session), content=body)
    assert r.status_code == 400, r.text
    assert error_code(r) == code
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert reg.request(method, once.format(d=d, session=session), content=body).status_code in (200, 201)


def test_repeated_tag_parameters_stay_a_list(fsreg: Reg) -> None:
    reg = fsreg
    d = reg.push_blob("mine", b"cfg")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 3}}).encode()
    md = sha(body)
    r = reg.put(f"/v2/mine/manifests/{md}?tag=a&tag=b", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["oci-tag"] == "a, b"

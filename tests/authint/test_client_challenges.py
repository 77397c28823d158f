"""The trust client answers a challenge that comes after an unauthenticated ``/v2/`` ping, with
the registry's credentials or, failing those, the ones stored for the trust server's host."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from trustbox.client.dockerenv import Credentials
from trustbox.client.errors import UnauthorizedError
from trustbox.client.trust.remote import RemoteStore

SERVER = "https://trust.example.test:4443"
CHALLENGE = 'Bearer realm="https://auth.example.test/token",service="notary"'


class FakeServer:
    """``/v2/`` open; everything under the GUN needs ``Bearer tok-<actions>`` from the token endpoint."""

    def __init__(self) -> None:
        self.token_requests: list[tuple[str | None, str]] = []
        self.posts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if request.url.host == "auth.example.test":
            header = request.headers.get("authorization")
            user = base64.b64decode(header.split()[1]).decode() if header else None
            scope = request.url.params["scope"]
            self.token_requests.append((user, scope))
            if user != "alice:pw":
                return httpx.Response(401)
            return httpx.Response(200, json={"token": "tok-" + scope.rsplit(":", 1)[1]})
        auth = request.headers.get("authorization", "")
        need = "tok-pull,push" if request.method == "POST" or request.url.path.endswith(".key") else "tok-pull"
        if auth not in (f"Bearer {need}", "Bearer tok-pull,push"):
            return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE}, json={"errors": []})
        if request.method == "POST":
            self.posts += 1
            return httpx.Response(200)
        if request.url.path.endswith(".key"):
            return httpx.Response(200, content=b'{"keytype":"ed25519","keyval":{"public":"' +
                                  base64.b64encode(b"\x01" * 32) + b'","private":null}}')
        return httpx.Response(200, content=b'{"signed":{}}')


def _store(fake: FakeServer, credentials: Credentials | None = None) -> RemoteStore:
    return RemoteStore(SERVER, "example.test/app", http=httpx.Client(transport=httpx.MockTransport(fake)),
                       credentials=credentials)


def test_challenge_after_the_ping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    fake = FakeServer()
    store = _store(fake, Credentials("alice", "pw"))
    assert store.get_sized("timestamp", 1024) == b'{"signed":{}}'
    assert fake.token_requests == [("alice:pw", "repository:example.test/app:pull")]
    store.use_actions(("pull", "push"))
    assert store.get_key("timestamp").keytype == "ed25519"
    store.post_update([("targets", b"{}")])
    assert fake.posts == 1


def test_trust_server_credentials_are_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    fake = FakeServer()
    with pytest.raises(UnauthorizedError):  # anonymous: the token server refuses
        _store(fake).get_sized("timestamp", 1024)
    assert fake.token_requests == [(None, "repository:example.test/app:pull")]
    auth = base64.b64encode(b"alice:pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"trust.example.test:4443": {"auth": auth}}}))
    assert _store(fake).get_sized("timestamp", 1024) == b'{"signed":{}}'

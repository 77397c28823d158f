"""The one answer to registry auth challenges (client/transport.ChallengeAuth), shared by the
trust client, the registry client, the manifest lookup of trust sign and login."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from trustbox.client.dockerenv import Credentials
from trustbox.client.transport import ChallengeAuth, TokenRefusedError

SRC = Path(__file__).resolve().parents[2] / "src" / "trustbox"
CHALLENGE = 'Bearer realm="https://auth.test/token",service="reg"'


def _with_challenge(auth: ChallengeAuth, header: str = CHALLENGE) -> None:
    assert auth.remember(httpx.Response(401, headers={"WWW-Authenticate": header}))


def _token_client(seen: list[httpx.Request], status: int = 200) -> httpx.Client:
    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(status, json={"token": f"t{len(seen)}"})
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_one_token_per_scope_cached() -> None:
    seen: list[httpx.Request] = []
    http = _token_client(seen)
    auth = ChallengeAuth(Credentials("alice", "pw"))
    _with_challenge(auth)
    pull, push = "repository:a/b:pull", "repository:a/b:pull,push"
    assert auth.authorization(lambda _r: http, pull) == "Bearer t1"
    assert auth.authorization(lambda _r: http, pull) == "Bearer t1"
    assert auth.authorization(lambda _r: http, push) == "Bearer t2"
    assert [dict(r.url.params) for r in seen] == [{"service": "reg", "scope": pull}, {"service": "reg", "scope": push}]
    assert seen[0].headers["authorization"].startswith("Basic ")
    auth.forget(pull)
    assert auth.authorization(lambda _r: http, pull) == "Bearer t3"


def test_refusal_and_missing_token_are_typed() -> None:
    auth = ChallengeAuth()
    _with_challenge(auth)
    with pytest.raises(TokenRefusedError) as err:
        auth.authorization(lambda _r: _token_client([], 403), "repository:a/b:pull")
    assert err.value.status == 403 and err.value.realm == "https://auth.test/token"


def test_basic_needs_credentials_and_fallback_is_lazy() -> None:
    asked: list[int] = []

    def fallback() -> Credentials:
        asked.append(1)
        return Credentials("bob", "pw")

    auth = ChallengeAuth(None, fallback)
    assert auth.authorization(lambda _r: _token_client([]), "x") is None  # no challenge: nothing asked
    assert asked == []
    _with_challenge(auth, 'Basic realm="reg"')
    assert auth.authorization(lambda _r: _token_client([]), "x") == "Basic Ym9iOnB3"
    assert asked == [1]


def test_one_challenge_parser_and_token_fetch() -> None:
    """No client module but transport.py parses challenges or reads token answers itself."""
    offenders = []
    for path in sorted((SRC / "client").rglob("*.py")):
        if path.name in ("transport.py", "capped.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and "challenge" in node.name and node.name.startswith("_parse"):
                offenders.append(f"{path.name}:{node.name}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "read_token":
                offenders.append(f"{path.name}: read_token")
    assert offenders == []

"""The shared access log (``trustbox.accesslog``) in process: the line format, the authenticated
user, what is never written (credentials, tokens, secret query parameters), lines that cannot be
forged, failures, and the level checked once."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from trustbox.accesslog import AccessLogMiddleware, access_log_enabled, redact_query, with_access_log
from trustbox.auth.htpasswd import HtpasswdFile, add_user
from trustbox.auth.middleware import AuthMiddleware, BasicAuthorizer, BearerAuthorizer
from trustbox.auth.scopes import PULL, Scope

LINE = re.compile(
    r'^(?P<client>\S+) - (?P<user>\S+) \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] '
    r'"(?P<method>\S+) (?P<target>\S+) HTTP/(?P<version>[\d.]+)" (?P<status>\d{3}) (?P<bytes>\d+) (?P<secs>\d+\.\d{3})s$'
)


def _inner() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("{}")

    async def big(request: Request) -> Response:
        return PlainTextResponse("x" * 5000)

    async def boom(request: Request) -> Response:
        raise RuntimeError("handler failed")

    return Starlette(routes=[Route("/v2/", hello), Route("/big", big), Route("/token", hello), Route("/boom", boom)])


def _fields(line: str) -> dict[str, str]:
    m = LINE.match(line)
    assert m is not None, line
    return m.groupdict()


def test_line_per_request_with_status_and_bytes() -> None:
    lines: list[str] = []
    with TestClient(AccessLogMiddleware(_inner(), lines.append)) as client:
        assert client.get("/v2/").status_code == 200
        assert client.get("/big").status_code == 200
        assert client.head("/v2/").status_code == 200
        assert client.get("/missing").status_code == 404
    assert len(lines) == 4
    first, second, head, missing = map(_fields, lines)
    assert first | {"secs": ""} == {"client": "testclient", "user": "-", "method": "GET", "target": "/v2/",
                                    "version": "1.1", "status": "200", "bytes": "2", "secs": ""}
    assert (second["target"], second["bytes"]) == ("/big", "5000")
    assert (head["method"], head["status"], head["bytes"]) == ("HEAD", "200", "0")
    assert (missing["status"], missing["bytes"]) == ("404", str(len("Not Found")))


def test_user_of_basic_auth_and_no_credentials(tmp_path: Path) -> None:
    add_user(tmp_path / "htpasswd", "alice", "s3cret-pw", cost=4)
    lines: list[str] = []
    auth = AuthMiddleware(_inner(), BasicAuthorizer(HtpasswdFile(tmp_path / "htpasswd"), "test"))  # type: ignore[arg-type]
    with TestClient(AccessLogMiddleware(auth, lines.append)) as client:
        assert client.get("/v2/", auth=("alice", "s3cret-pw")).status_code == 200
        assert client.get("/v2/", auth=("alice", "wrong-pw")).status_code == 401
        assert client.get("/v2/").status_code == 401
    ok, wrong, anonymous = map(_fields, lines)
    assert (ok["user"], ok["status"]) == ("alice", "200")
    assert (wrong["user"], wrong["status"]) == ("-", "401")  # not authenticated: no user
    assert (anonymous["user"], anonymous["status"], anonymous["bytes"]) == ("-", "401", wrong["bytes"])
    text = "\n".join(lines)
    for secret in ("s3cret-pw", "wrong-pw", base64.b64encode(b"alice:s3cret-pw").decode(), "Basic"):
        assert secret not in text


def test_user_of_a_bearer_token_and_the_token_is_not_logged() -> None:
    from tests.auth.helpers import issuer_and_verifier

    issuer, verifier, _key, _cert = issuer_and_verifier(service="svc")
    token = issuer.issue("bob", "svc", [Scope("repository", "team/app", (PULL,))]).token

    def needs_pull(method: str, path: str, query: str = "") -> list[Scope]:
        return [Scope("repository", "team/app", (PULL,))]

    lines: list[str] = []
    auth = AuthMiddleware(_inner(), BearerAuthorizer(verifier, "https://auth/token", "svc"), needs_pull)  # type: ignore[arg-type]
    with TestClient(AccessLogMiddleware(auth, lines.append)) as client:
        assert client.get("/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get(f"/v2/?access_token={token}").status_code == 401
    assert _fields(lines[0])["user"] == "bob"
    assert _fields(lines[1])["target"] == "/v2/"
    assert all(token not in line and token[:20] not in line for line in lines)


def test_sensitive_query_parameters_are_dropped() -> None:
    lines: list[str] = []
    with TestClient(AccessLogMiddleware(_inner(), lines.append)) as client:
        client.get("/token?service=svc&password=hunter2&scope=repository:a/b:pull&Refresh_Token=rt-123"
                   "&PASS%57ORD=also-secret&account=alice&client_secret=cs&token=tk")
        client.get("/token?password=hunter2")
    first, second = map(_fields, lines)
    assert first["target"] == "/token?service=svc&scope=repository:a/b:pull&account=alice"
    assert second["target"] == "/token"
    text = "\n".join(lines)
    for secret in ("hunter2", "rt-123", "also-secret", "=cs", "=tk"):
        assert secret not in text
    assert redact_query("a=1&&b&password&password=") == "a=1&b"


def _call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_a_request_cannot_forge_or_split_lines() -> None:
    lines: list[str] = []
    scope = {"type": "http", "method": "GET", "path": '/v2/a\nb" 200 0 0.000s\r\n1.2.3.4 - root [x] "é\x00',
             "query_string": b'q="x y"\n\\', "headers": [], "client": ("10.0.0.1", 1234), "http_version": "1.1"}
    _call(AccessLogMiddleware(_ok, lines.append), scope)
    (line,) = lines
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    f = _fields(line)
    assert f["client"] == "10.0.0.1" and f["status"] == "204"
    assert f["target"] == "/v2/a%0Ab%22%20200%200%200.000s%0D%0A1.2.3.4%20-%20root%20%5Bx%5D%20%22%C3%A9%00?q=%22x%20y%22%0A%5C"


def test_a_failing_application_is_logged_as_500() -> None:
    lines: list[str] = []
    with TestClient(AccessLogMiddleware(_inner(), lines.append), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    assert _fields(lines[-1])["status"] == "500"

    async def raises(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("before any response")

    lines.clear()
    with pytest.raises(RuntimeError):
        _call(AccessLogMiddleware(raises, lines.append), {"type": "http", "method": "GET", "path": "/"})
    f = _fields(lines[0])
    assert (f["client"], f["status"], f["bytes"]) == ("-", "500", "0")


def test_lifespan_passes_through_unlogged() -> None:
    lines: list[str] = []
    with TestClient(AccessLogMiddleware(_inner(), lines.append)):
        pass
    assert lines == []


@pytest.mark.parametrize(("level", "shown"), [("debug", True), ("info", True), ("INFO", True), ("warning", False),
                                              ("warn", False), ("error", False), ("bogus", False)])
def test_the_level_is_checked_once_when_the_app_is_built(level: str, shown: bool) -> None:
    app = _inner()
    wrapped = with_access_log(app, level)
    assert access_log_enabled(level) is shown
    assert (wrapped is app) is not shown
    assert isinstance(wrapped, AccessLogMiddleware) is shown

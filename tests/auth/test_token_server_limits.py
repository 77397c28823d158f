"""Abuse limits of the token server, in process: the bounded POST body and failure throttling."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.auth.conftest import RULES
from tests.auth.helpers import issuer_and_verifier
from tests.helpers.net import free_port, stop_process, wait_http
from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import HtpasswdFile, add_user
from trustbox.auth.server import TokenServerConfig, create_app
from trustbox.auth.throttle import FailureThrottle, ThrottleLimits
from trustbox.auth.tokens import generate_signing_material

LIMIT = 8192
CHUNK = 1024
TOKEN_QUERY = [("service", "s"), ("scope", "repository:team/a:pull")]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def app(tmp_path: Path, clock: Clock) -> Starlette:
    f = tmp_path / "htpasswd"
    for user in ("alice", "bob"):
        add_user(f, user, f"{user}-pw", cost=4)
    (tmp_path / "rules.toml").write_text(RULES)
    issuer, _verifier, _k, _c = issuer_and_verifier()
    config = TokenServerConfig(issuer, HtpasswdFile(f), AccessRules.load(tmp_path / "rules.toml"),
                               throttle=FailureThrottle(ThrottleLimits(), clock), max_form_bytes=LIMIT)
    return create_app(config)


def _client(app: Starlette, address: str = "203.0.113.5") -> TestClient:
    return TestClient(app, client=(address, 40000))


# --- POST body bound ------------------------------------------------------------------------------


def _post_streaming(app: Starlette, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]) -> tuple[int, bytes, int]:
    """POST /token with a body from ``chunks``; (status, body, bytes the app took from ``chunks``)."""
    taken = 0
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/token", "raw_path": b"/token", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"auth.test"), *headers], "client": ("203.0.113.5", 40000),
             "server": ("auth.test", 80)}

    async def receive() -> dict[str, Any]:
        nonlocal taken
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += len(chunk)
        if taken > 64 * LIMIT:  # a client streaming forever would never stop: give up for the test
            raise RuntimeError("the app kept reading")
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await app(scope, receive, send)

    anyio.run(main)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body, taken


def _endless() -> Iterator[bytes]:
    while True:
        yield b"a" * CHUNK


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]


def _assert_too_large(status: int, body: bytes) -> None:
    assert status == 413
    err = json.loads(body)["errors"][0]
    assert err["code"] == "SIZE_INVALID" and str(LIMIT) in err["message"]


def test_endless_chunked_body_is_cut_at_the_bound(app: Starlette) -> None:
    status, body, taken = _post_streaming(app, FORM, _endless())
    _assert_too_large(status, body)
    assert taken <= LIMIT + CHUNK  # the app stopped reading one chunk past the bound


def test_announced_oversize_is_refused_before_reading(app: Starlette) -> None:
    status, body, taken = _post_streaming(app, [*FORM, (b"content-length", b"100663296")], _endless())
    _assert_too_large(status, body)
    assert taken == 0


def test_lying_content_length_does_not_lift_the_bound(app: Starlette) -> None:
    status, body, taken = _post_streaming(app, [*FORM, (b"content-length", b"100")], _endless())
    _assert_too_large(status, body)
    assert taken <= LIMIT + CHUNK


def test_form_at_the_bound_is_read(app: Starlette) -> None:
    form = b"grant_type=password&username=alice&password=alice-pw&service=s&scope=repository:team/a:pull"
    padded = form + b"&pad=" + b"x" * (LIMIT - len(form) - 5)
    assert len(padded) == LIMIT
    r = _client(app).post("/token", content=padded, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["scope"] == "repository:team/a:pull"
    r = _client(app).post("/token", content=padded + b"x", headers={"content-type": "application/x-www-form-urlencoded"})
    _assert_too_large(r.status_code, r.content)
    r = _client(app).post("/token", content=form, headers={"content-length": "12x"})
    assert r.status_code == 400


# --- throttling -----------------------------------------------------------------------------------


def _assert_throttled(r: Any, retry_after: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == str(retry_after)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "token" not in r.json()


def test_wrong_passwords_lock_the_account(app: Starlette, clock: Clock) -> None:
    c = _client(app)
    for _ in range(10):
        assert c.get("/token", params=TOKEN_QUERY, auth=("alice", "wrong")).status_code == 401
    _assert_throttled(c.get("/token", params=TOKEN_QUERY, auth=("alice", "wrong")), 6)
    # locked means locked: the right password is refused too (a guess cannot be confirmed)...
    _assert_throttled(c.get("/token", params=TOKEN_QUERY, auth=("alice", "alice-pw")), 6)
    # ...from every address, while other accounts carry on
    _assert_throttled(_client(app, "198.51.100.9").get("/token", params=TOKEN_QUERY, auth=("alice", "alice-pw")), 6)
    assert c.get("/token", params=TOKEN_QUERY, auth=("bob", "bob-pw")).status_code == 200
    clock.now += 60  # the window has passed
    assert c.get("/token", params=TOKEN_QUERY, auth=("alice", "alice-pw")).status_code == 200
    for _ in range(10):
        assert c.get("/token", params=TOKEN_QUERY, auth=("alice", "wrong")).status_code == 401


def test_password_grant_shares_the_throttle(app: Starlette, clock: Clock) -> None:
    c = _client(app)
    form = {"grant_type": "password", "username": "alice", "password": "wrong", "service": "s"}
    for _ in range(5):
        assert c.get("/token", params=TOKEN_QUERY, auth=("alice", "wrong")).status_code == 401
        assert c.post("/token", data=form).status_code == 401
    _assert_throttled(c.post("/token", data=dict(form, password="alice-pw")), 6)
    clock.now += 6  # one failure has drained: one more attempt
    assert c.post("/token", data=dict(form, password="alice-pw")).status_code == 200


def test_spraying_user_names_locks_the_address(app: Starlette, clock: Clock) -> None:
    c = _client(app)
    for n in range(30):  # unknown names count like known ones
        assert c.get("/token", params=TOKEN_QUERY, auth=(f"user{n}", "guess")).status_code == 401
    _assert_throttled(c.get("/token", params=TOKEN_QUERY, auth=("someone", "guess")), 2)
    _assert_throttled(c.post("/token", data={"grant_type": "password", "username": "alice",
                                             "password": "alice-pw", "service": "s"}), 2)
    assert c.get("/token", params=TOKEN_QUERY).status_code == 200  # anonymous: no password to guess
    assert _client(app, "198.51.100.9").get("/token", params=TOKEN_QUERY, auth=("alice", "alice-pw")).status_code == 200
    clock.now += 2
    assert c.get("/token", params=TOKEN_QUERY, auth=("alice", "alice-pw")).status_code == 200


# --- the same through ``serve auth`` (real HTTP server, the CLI flags) --------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serve auth`` over plain HTTP with small limits set by its flags."""
    d = tmp_path_factory.mktemp("limited-token-server")
    key_pem, cert_pem = generate_signing_material()
    (d / "key.pem").write_bytes(key_pem)
    (d / "cert.pem").write_bytes(cert_pem)
    add_user(d / "htpasswd", "alice", "alice-pw", cost=4)
    (d / "rules.toml").write_text(RULES)
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).parent / "run_cli.py"), "serve", "auth", "--listen",
           f"127.0.0.1:{port}", "--htpasswd", str(d / "htpasswd"), "--rules", str(d / "rules.toml"),
           "--issuer", "trustbox", "--signing-key", str(d / "key.pem"), "--cert", str(d / "cert.pem"),
           "--max-form-bytes", "1024", "--max-failures-per-account", "3", "--max-failures-per-address", "5",
           "--failure-window", "3600", "--log-level", "warning"]
    log = d / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log)
        yield url, proc
    finally:
        stop_process(proc)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_server_stops_reading_a_96mib_body(small_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    """A 96 MiB chunked form: the server answers 413 (or drops the connection) without taking it in."""
    url, proc = small_server
    before = _rss(proc.pid)
    port = int(url.rsplit(":", 1)[1])
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        s.setblocking(False)
        try:
            while sent < 96 * 1024 * 1024:
                readable, writable, _ = select.select([s], [s], [], 10)
                if readable:
                    answer = s.recv(65536)
                    break
                if not writable:
                    break  # the server stopped reading and did not answer
                sent += s.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after answering: the answer may be lost with the reset
    assert sent < 16 * 1024 * 1024, "the server kept reading the body"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert _rss(proc.pid) - before < 16 * 1024 * 1024
    # and a declared oversize is refused before the body is sent
    r = httpx.post(f"{url}/token", content=b"x" * 2048, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_server_throttles_with_its_flags(small_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _proc = small_server
    for _ in range(3):
        assert httpx.get(f"{url}/token", params=TOKEN_QUERY, auth=("alice", "wrong")).status_code == 401
    r = httpx.get(f"{url}/token", params=TOKEN_QUERY, auth=("alice", "alice-pw"))
    assert r.status_code == 429 and r.headers["retry-after"] == "1200"  # 3 per hour: one per 20 minutes
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    for n in range(2):
        r = httpx.post(f"{url}/token", data={"grant_type": "password", "username": f"u{n}", "password": "p",
                                              "service": "s"})
        assert r.status_code == 401
    r = httpx.post(f"{url}/token", data={"grant_type": "password", "username": "u9", "password": "p", "service": "s"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 720  # 5 per hour from this address

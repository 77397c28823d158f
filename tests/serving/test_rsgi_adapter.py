"""trustbox.rsgi: an ASGI app served through granian's RSGI interface, unit and end to end."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from trustbox.rsgi import FILE_CHUNK, RSGIAdapter

# -- a fake RSGI protocol ----------------------------------------------------------------------


class FakeStream:
    def __init__(self, proto: FakeProtocol, fail_after: int | None) -> None:
        self.proto = proto
        self.fail_after = fail_after

    async def send_bytes(self, data: bytes) -> None:
        if self.fail_after is not None and len(self.proto.chunks) >= self.fail_after:
            raise RuntimeError("protocol closed")  # what granian raises for a gone client
        self.proto.chunks.append(data)


class FakeProtocol:
    def __init__(self, body: list[bytes], fail_after: int | None = None) -> None:
        self.body = body
        self.fail_after = fail_after
        self.response: tuple[str, int, list[tuple[str, str]]] | None = None
        self.chunks: list[bytes] = []
        self.disconnected = asyncio.Event()

    def __aiter__(self) -> Any:
        async def gen() -> Any:
            for b in self.body:
                yield b
        return gen()

    async def client_disconnect(self) -> None:
        await self.disconnected.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.response = ("bytes", status, headers)
        self.chunks = [body]

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> FakeStream:
        self.response = ("stream", status, headers)
        return FakeStream(self, self.fail_after)


class FakeScope:
    proto = "http"
    http_version = "1.1"
    scheme = "http"
    method = "POST"
    path = "/v2/a b/x"
    query_string = "n=1&x=%20"
    client = "127.0.0.1:5555"
    server = "127.0.0.1:80"

    class headers:  # noqa: N801 - mimics granian's RSGIHeaders
        @staticmethod
        def items() -> list[tuple[str, str]]:
            return [("x-a", "1"), ("x-a", "2"), ("content-type", "text/plain")]


def run(app: Any, proto: FakeProtocol) -> None:
    asyncio.run(RSGIAdapter(app).__rsgi__(FakeScope(), proto))


def test_scope_body_and_single_response():
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["scope"] = scope
        parts = []
        while True:
            msg = await receive()
            parts.append(msg["body"])
            if not msg["more_body"]:
                break
        seen["body"] = b"".join(parts)
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-b", b"y")]})
        await send({"type": "http.response.body", "body": b"done"})

    proto = FakeProtocol([b"ab", b"cd"])
    run(app, proto)
    scope = seen["scope"]
    assert scope["method"] == "POST" and scope["path"] == "/v2/a b/x" and scope["query_string"] == b"n=1&x=%20"
    assert scope["headers"] == [(b"x-a", b"1"), (b"x-a", b"2"), (b"content-type", b"text/plain")]
    assert scope["client"] == ("127.0.0.1", 5555) and scope["server"] == ("127.0.0.1", 80)
    assert "http.response.pathsend" in scope["extensions"]
    assert seen["body"] == b"abcd"
    assert proto.response == ("bytes", 201, [("x-b", "y")]) and proto.chunks == [b"done"]


def test_streamed_response():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"", b"b"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"c", "more_body": False})

    proto = FakeProtocol([])
    run(app, proto)
    assert proto.response is not None and proto.response[0] == "stream"
    assert b"".join(proto.chunks) == b"abc"


def test_receive_after_body_waits_for_the_client_to_go():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["more_body"] is False  # no body at all
        waiter = asyncio.ensure_future(receive())
        await asyncio.sleep(0.05)
        assert not waiter.done()  # no made-up disconnect while the client is there
        proto.disconnected.set()
        assert (await waiter)["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    proto = FakeProtocol([])
    run(app, proto)
    assert proto.response is not None and proto.response[1] == 204


def test_pathsend_streams_the_whole_file(tmp_path: Path):
    data = os.urandom(FILE_CHUNK * 2 + 12345)
    f = tmp_path / "blob"
    f.write_bytes(data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.pathsend", "path": str(f)})

    proto = FakeProtocol([])
    run(app, proto)
    assert proto.response == ("stream", 200, [("content-length", str(len(data)))])
    assert b"".join(proto.chunks) == data
    assert max(len(c) for c in proto.chunks) == FILE_CHUNK


def test_client_gone_during_a_file_is_an_oserror_and_closes_the_file(tmp_path: Path):
    f = tmp_path / "blob"
    f.write_bytes(b"x" * (FILE_CHUNK * 3))
    fds_before = len(os.listdir("/proc/self/fd"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(f)})

    with pytest.raises(OSError, match="client disconnected"):
        run(app, FakeProtocol([], fail_after=1))
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_error_before_the_response_is_a_json_500():
    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("bug")

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    for app in (boom, silent):
        proto = FakeProtocol([])
        run(app, proto)
        assert proto.response is not None and proto.response[1] == 500
        assert b'"errors"' in proto.chunks[0]


# -- the real registry through granian RSGI ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    proc = subprocess.Popen([sys.executable, "-c", "from trustbox.cli import main; main()", "serve", "registry",
                             "--listen", f"127.0.0.1:{port}", "--storage", str(tmp_path / "store")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(f"{base}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, "registry did not start"
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_real_registry_blob_round_trip_through_rsgi(registry: str):
    data = os.urandom(FILE_CHUNK * 3 + 777)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=registry, timeout=30) as c:
        r = c.post(f"/v2/t/app/blobs/uploads/?digest={digest}", content=data,
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        got = c.get(f"/v2/t/app/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        assert got.headers["docker-content-digest"] == digest
        head = c.head(f"/v2/t/app/blobs/{digest}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
        part = c.get(f"/v2/t/app/blobs/{digest}", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
        missing = c.get("/v2/t/app/blobs/sha256:" + "0" * 64)
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        odd = c.get("/v2/t/a%0Ab/tags/list")
        assert odd.status_code in (400, 404) and "errors" in odd.json()

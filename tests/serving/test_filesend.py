"""trustbox.filesend: pathsend turned into 1 MiB body pieces; memory stays bounded for slow clients."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.net import free_port
from trustbox.filesend import FILE_CHUNK, FileSendMiddleware


def _run(app: Any, scope: dict[str, Any] | None = None, fail_after: int | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if fail_after is not None and len(sent) >= fail_after:
            raise OSError("client gone")
        sent.append(message)

    asyncio.run(FileSendMiddleware(app)(scope or {"type": "http", "extensions": {}}, receive, send))
    return sent


def test_pathsend_becomes_body_pieces(tmp_path: Path):
    data = os.urandom(FILE_CHUNK * 2 + 4321)
    f = tmp_path / "blob"
    f.write_bytes(data)
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["ext"] = scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(f)})

    sent = _run(app)
    assert "http.response.pathsend" in seen["ext"]
    assert sent[0]["type"] == "http.response.start"
    bodies = sent[1:]
    assert all(m["type"] == "http.response.body" for m in bodies)
    assert [m["more_body"] for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert b"".join(m["body"] for m in bodies) == data
    assert max(len(m["body"]) for m in bodies) == FILE_CHUNK


def test_other_messages_and_scopes_pass_through():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": [(b"a", b"b")]})
        await send({"type": "http.response.body", "body": b"x"})

    assert _run(app) == [{"type": "http.response.start", "status": 204, "headers": [(b"a", b"b")]},
                         {"type": "http.response.body", "body": b"x"}]
    calls = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope)

    _run(lifespan_app, {"type": "lifespan"})
    assert calls == [{"type": "lifespan"}]  # untouched


def test_file_closed_when_the_client_goes(tmp_path: Path):
    f = tmp_path / "blob"
    f.write_bytes(b"x" * (FILE_CHUNK * 3))
    before = len(os.listdir("/proc/self/fd"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(f)})

    with pytest.raises(OSError, match="client gone"):
        _run(app, fail_after=2)
    assert len(os.listdir("/proc/self/fd")) == before


# -- the real registry (granian) ---------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    port = free_port()
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
        yield base, proc.pid, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _tree_rss_mib(pgid: int) -> float:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in out:
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        if m:
            total += int(m.group(1))
    return total / 1024


def _push(base: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{base}/v2/t/app/blobs/uploads/?digest={digest}", content=data,
                   headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 201, r.text
    return digest


def test_blob_download_through_the_real_server(registry: Any):
    base, _pid, _port = registry
    data = os.urandom(FILE_CHUNK * 3 + 777)
    digest = _push(base, data)
    with httpx.Client(base_url=base, timeout=30) as c:
        got = c.get(f"/v2/t/app/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["docker-content-digest"] == digest
        head = c.head(f"/v2/t/app/blobs/{digest}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
        part = c.get(f"/v2/t/app/blobs/{digest}", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]


def test_slow_client_does_not_make_the_server_buffer_the_blob(registry: Any):
    """A client reading at a trickle: the server must wait, not read the blob into memory."""
    base, pgid, port = registry
    size = 96 << 20
    digest = _push(base, os.urandom(size))
    httpx.get(f"{base}/v2/t/app/blobs/{digest}", timeout=60)  # warm: first-read verification
    before = _tree_rss_mib(pgid)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(f"GET /v2/t/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = 0
        deadline = time.time() + 2
        while time.time() < deadline:
            got += len(s.recv(65536))
            time.sleep(0.005)
        during = _tree_rss_mib(pgid)
    assert got < size // 2  # the client really was slow
    assert during - before < 32, f"server RSS grew {during - before:.0f} MiB for a slow client"


def test_registry_with_one_worker_is_one_process(registry: Any):
    """``--workers 1`` (the default) serves from the started process: no supervisor + worker pair."""
    base, pid, _port = registry
    assert httpx.get(f"{base}/v2/", timeout=10).status_code == 200
    assert Path(f"/proc/{pid}/task/{pid}/children").read_text().split() == []

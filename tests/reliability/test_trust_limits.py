"""Trust server limits, probed on the real process: a 64 MiB update body (notary-server reads it
whole and grows to ~360 MiB RSS) is refused with 413 without memory growth, oversized headers get
431, and stalled uploads do not block other clients."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.crashlib import KillableServer  # noqa: E402


def tree_rss_mib(pid: int) -> float:
    """VmRSS summed over the process group of ``pid``."""
    pgid = os.getpgid(pid)
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in out:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableServer]:
    d = tmp_path_factory.mktemp("trust-limits")
    server = KillableServer(["trust", "--db", f"sqlite:///{d}/t.db"],
                            {"TRUSTBOX_KEY_PASSPHRASE": "limits test passphrase 0123456789", "TRUSTBOX_BODY_TIMEOUT": "2"},
                            "/_notary_server/health")
    server.start()
    yield server
    server.stop()


UPDATE = "/v2/example.com/limits/app/_trust/tuf/"
CT = {"content-type": "multipart/form-data; boundary=xyz"}


def test_64mib_update_is_refused_without_growing(trust: KillableServer) -> None:
    assert trust.proc is not None
    before = tree_rss_mib(trust.proc.pid)

    def endless() -> Iterator[bytes]:
        chunk = b"x" * (1 << 20)
        for _ in range(64):
            yield chunk

    with httpx.Client(base_url=trust.url, timeout=60) as c:
        for content in (b"x" * (64 << 20), endless()):
            try:
                r = c.post(UPDATE, content=content, headers=CT)
            except httpx.WriteError:
                continue  # the server answered and closed while we were still sending
            assert r.status_code == 413, r.text
            assert r.json()["errors"][0]["code"] == "MALFORMED_UPLOAD"
        assert c.get("/_notary_server/health").status_code == 200
    after = tree_rss_mib(trust.proc.pid)
    assert after - before < 32, f"RSS grew from {before:.0f} to {after:.0f} MiB"


def test_oversized_headers_are_431(trust: KillableServer) -> None:
    try:
        r = httpx.get(trust.url + "/v2/", headers={"x-big": "a" * (1 << 20)}, timeout=10)
    except httpx.HTTPError:
        r = None
    if r is not None:
        assert 400 <= r.status_code < 500
    assert httpx.get(trust.url + "/v2/", timeout=10).status_code == 200


def test_stalled_uploads_do_not_block_other_clients(trust: KillableServer) -> None:
    socks = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", trust.port))
            s.sendall(f"POST {UPDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                      "Content-Length: 100000\r\n\r\n--x".encode())
            socks.append(s)
        time.sleep(0.5)
        with httpx.Client(base_url=trust.url, timeout=10) as c:
            for _ in range(20):
                assert c.get("/v2/").status_code == 200
                assert c.get("/v2/example.com/limits/other/_trust/tuf/timestamp.key").status_code == 200
    finally:
        for s in socks:
            s.close()


def test_stalled_update_body_gets_408_and_the_connection_is_closed(trust: KillableServer) -> None:
    """notary-server waits forever for a body that stops; trustbox answers after --body-timeout."""
    with socket.create_connection(("127.0.0.1", trust.port), timeout=15) as s:
        s.sendall(f"POST {UPDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                  "Content-Length: 1000\r\n\r\n--x\r\n".encode())
        t0 = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert time.monotonic() - t0 < 14
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert b'"code":"MALFORMED_UPLOAD"' in body and b"stalled" in body, body


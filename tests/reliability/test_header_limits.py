"""Header size and header-read timeout are configurable on both servers (TRUSTBOX_MAX_HEADER_BYTES,
TRUSTBOX_HEADER_TIMEOUT), applied through trustbox.serving to granian."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.reliability.crashlib import KillableServer  # noqa: E402
from trustbox.errors import ConfigError
from trustbox.serving import http1_settings


def test_settings_parsing() -> None:
    assert http1_settings({}) == {}
    assert http1_settings({"TRUSTBOX_HEADER_TIMEOUT": "2.5", "TRUSTBOX_MAX_HEADER_BYTES": "8192"}) == {
        "header_read_timeout": 2500, "max_buffer_size": 8192}
    for bad in ({"TRUSTBOX_HEADER_TIMEOUT": "0"}, {"TRUSTBOX_HEADER_TIMEOUT": "soon"},
                {"TRUSTBOX_MAX_HEADER_BYTES": "10"}, {"TRUSTBOX_MAX_HEADER_BYTES": "-5"}):
        with pytest.raises(ConfigError):
            http1_settings(bad)


@pytest.mark.parametrize("kind", ["trust", "registry"])
def test_limits_apply_to_the_real_servers(tmp_path: Path, kind: str) -> None:
    env = {"TRUSTBOX_MAX_HEADER_BYTES": "8192", "TRUSTBOX_HEADER_TIMEOUT": "1"}
    if kind == "trust":
        server = KillableServer(["trust", "--db", f"sqlite:///{tmp_path}/t.db"],
                                env | {"TRUSTBOX_KEY_PASSPHRASE": "header limits passphrase 0123456789"},
                                "/_notary_server/health")
    else:
        server = KillableServer(["registry", "--storage", str(tmp_path / "reg")], env, "/v2/")
    server.start()
    try:
        # a 16 KiB header is over the configured 8 KiB: 431
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 431")
        # a 4 KiB header is fine
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 4096 + b"\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        # a client that never finishes its headers is dropped after ~1 s, not the 30 s default
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            while s.recv(4096):
                pass
            assert time.monotonic() - t0 < 10
    finally:
        server.stop()

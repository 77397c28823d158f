"""--max-header-bytes / --header-timeout on both ``serve`` commands (same effect as the env variables)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.net import free_port

CLI = [sys.executable, "-c", "from trustbox.cli import main; main()", "serve"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}


@pytest.mark.parametrize("kind", ["trust", "registry"])
def test_flags_limit_the_request_head(tmp_path: Path, kind: str) -> None:
    port = free_port()
    extra = (["--db", f"sqlite:///{tmp_path}/t.db"] if kind == "trust" else ["--storage", str(tmp_path / "reg")])
    env = _env() | {"TRUSTBOX_KEY_PASSPHRASE": "header limits passphrase 0123456789"}
    proc = subprocess.Popen([*CLI, kind, "--listen", f"127.0.0.1:{port}", "--max-header-bytes", "8192",
                             "--header-timeout", "1", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 431")
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            while s.recv(4096):
                pass
            assert time.monotonic() - t0 < 10
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.parametrize(("kind", "flag", "value"), [("trust", "--max-header-bytes", "10"),
                                                     ("registry", "--header-timeout", "-1")])
def test_bad_values_are_one_line_errors(tmp_path: Path, kind: str, flag: str, value: str) -> None:
    out = subprocess.run([*CLI, kind, flag, value, "--listen", "127.0.0.1:1"], env=_env(), capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1

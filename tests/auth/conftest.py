"""Fixtures for the auth tests: TLS material, a running token server (subprocess)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from auth.run_cli import build
from helpers.certs import CertFiles, write_ca_and_server_cert

HERE = Path(__file__).resolve().parent
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
RULES = """
[groups]
admins = ["root"]

[[rule]]
subject = "alice"
repository = "*team/*"
actions = ["pull", "push"]

[[rule]]
subject = "alice"
repository = "*public/*"
actions = ["pull", "push"]

[[rule]]
subject = "*"
repository = "*public/*"
actions = ["pull"]

[[rule]]
subject = "bob"
repository = "*team/*"
actions = ["pull"]

[[rule]]
subject = "group:admins"
repository = "*"
actions = ["*"]

[[rule]]
subject = "group:admins"
type = "registry"
repository = "catalog"
actions = ["*"]
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, ca: Path | None, proc: subprocess.Popen[bytes], log: Path, ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok`` (raise with the log if the process dies)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url, verify=verify, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one process we started (by its own handle)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class TokenServer:
    """A running ``serve auth`` subprocess."""

    url: str
    realm: str
    tls: CertFiles
    cert: Path
    key: Path
    htpasswd: Path
    log: Path
    issuer: str = "trustbox"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """One CA and a server certificate for localhost/127.0.0.1, shared by every server."""
    return write_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory, tls: CertFiles) -> Iterator[TokenServer]:
    """``serve auth`` over TLS with users alice/bob/root, started through the CLI."""
    d = tmp_path_factory.mktemp("token-server")
    runner = CliRunner()
    r = runner.invoke(build(), ["auth", "keygen", str(d / "keys")])
    assert r.exit_code == 0, r.output
    for user, pw in PASSWORDS.items():
        r = runner.invoke(build(), ["auth", "htpasswd", "add", "--password-stdin", "--cost", "4",
                                    str(d / "htpasswd"), user], input=pw + "\n")
        assert r.exit_code == 0, r.output
    (d / "rules.toml").write_text(RULES)
    port = free_port()
    log = d / "server.log"
    env = dict(os.environ, TRUSTBOX_AUTH_ISSUER="trustbox", TRUSTBOX_AUTH_RULES=str(d / "rules.toml"))
    cmd = [sys.executable, str(HERE / "run_cli.py"), "serve", "auth", "--listen", f"127.0.0.1:{port}",
           "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key),
           "--htpasswd", str(d / "htpasswd"), "--signing-key", str(d / "keys" / "signing-key.pem"),
           "--cert", str(d / "keys" / "cert.pem"), "--log-level", "warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", tls.ca_cert, proc, log)
        yield TokenServer(url, f"{url}/token", tls, d / "keys" / "cert.pem", d / "keys" / "signing-key.pem",
                          d / "htpasswd", log)
    finally:
        stop(proc)

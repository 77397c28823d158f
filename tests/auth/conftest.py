"""Fixtures for the auth tests: TLS material, a running token server (subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.auth.run_cli import build
from tests.helpers.certs import CertFiles, write_ca_and_server_cert
from tests.helpers.net import free_port, stop_process, wait_http

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
        wait_http(f"{url}/health", proc, log, ca=tls.ca_cert)
        yield TokenServer(url, f"{url}/token", tls, d / "keys" / "cert.pem", d / "keys" / "signing-key.pem",
                          d / "htpasswd", log)
    finally:
        stop_process(proc)

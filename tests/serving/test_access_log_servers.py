"""Access lines from the three real servers (``trustbox serve trust|registry|auth``): one line per
request on stderr at ``--log-level info`` with status, bytes and the authenticated user, never a
password or token; none at ``--log-level warning``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.net import free_port, stop_process, wait_http
from trustbox.auth.htpasswd import add_user
from trustbox.auth.tokens import generate_signing_material

CLI = [sys.executable, "-c", "from trustbox.cli import main; main()", "serve"]
ACCESS = re.compile(r'^(\S+) - (\S+) \[[^\]]+\] "(\S+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+) \d+\.\d{3}s$', re.M)
PASSWORD = "pw-that-must-not-leak"


def _command(kind: str, d: Path, port: int) -> list[str]:
    add_user(d / "htpasswd", "alice", PASSWORD, cost=4)
    listen = ["--listen", f"127.0.0.1:{port}"]
    if kind == "trust":
        return [*CLI, "trust", *listen, "--db", f"sqlite:///{d}/t.db", "--htpasswd", str(d / "htpasswd")]
    if kind == "registry":
        return [*CLI, "registry", *listen, "--storage", str(d / "reg"), "--htpasswd", str(d / "htpasswd")]
    key, cert = generate_signing_material("test issuer")
    (d / "key.pem").write_bytes(key)
    (d / "cert.pem").write_bytes(cert)
    (d / "rules.toml").write_text('[[rule]]\nsubject = "alice"\nrepository = "*"\nactions = ["*"]\n')
    return [*CLI, "auth", *listen, "--htpasswd", str(d / "htpasswd"), "--rules", str(d / "rules.toml"),
            "--issuer", "test", "--signing-key", str(d / "key.pem"), "--cert", str(d / "cert.pem")]


HEALTH = {"trust": "/_notary_server/health", "registry": "/v2/", "auth": "/health"}
# an authenticated request, its expected status and logged target
AUTHENTICATED = {
    "trust": ("/v2/example.test/app/_trust/tuf/root.json", 404, "/v2/example.test/app/_trust/tuf/root.json"),
    "registry": ("/v2/", 200, "/v2/"),
    "auth": (f"/token?service=svc&scope=repository:a/b:pull&password={PASSWORD}&refresh_token=rt-secret",
             200, "/token?service=svc&scope=repository:a/b:pull"),
}


def _serve_and_request(kind: str, level: str, d: Path) -> tuple[str, list[str]]:
    """Run the server at ``level``, make a health and an authenticated request; its stderr and
    the secrets the responses carried."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    env["TRUSTBOX_KEY_PASSPHRASE"] = "access log test passphrase 0123456789"
    log = d / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*_command(kind, d, port), "--log-level", level], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    secrets: list[str] = []
    try:
        wait_http(base + HEALTH[kind], proc, log, ok=(200, 401))
        path, status, _target = AUTHENTICATED[kind]
        r = httpx.get(base + path, auth=("alice", PASSWORD), timeout=10)
        assert r.status_code == status, r.text
        if kind == "auth":
            secrets.append(r.json()["token"])
        r = httpx.get(base + path, auth=("alice", "wrong-" + PASSWORD), timeout=10)
        assert r.status_code == 401
    finally:
        stop_process(proc, group=True)
    return log.read_text(errors="replace"), secrets


@pytest.mark.parametrize("kind", ["trust", "registry", "auth"])
def test_info_logs_one_line_per_request(tmp_path: Path, kind: str) -> None:
    text, secrets = _serve_and_request(kind, "info", tmp_path)
    lines = ACCESS.findall(text)
    path, status, target = AUTHENTICATED[kind]
    assert ("127.0.0.1", "alice", "GET", target, str(status)) in [line[:5] for line in lines], text
    ok = next(line for line in lines if line[1] == "alice")
    assert int(ok[5]) > 0 or status == 404
    refused = [line for line in lines if line[3] == target and line[4] == "401"]
    assert refused and refused[0][1] == "-", text  # a refused login has no user
    assert any(line[3] == HEALTH[kind] for line in lines), text  # the health polls are logged too
    for secret in [PASSWORD, "rt-secret", "Basic ", "Authorization", *secrets]:
        assert secret not in text, secret


@pytest.mark.parametrize("kind", ["trust", "registry", "auth"])
def test_warning_hides_access_lines(tmp_path: Path, kind: str) -> None:
    text, _secrets = _serve_and_request(kind, "warning", tmp_path)
    assert ACCESS.findall(text) == [], text

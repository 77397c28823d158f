"""Servers for the migration tests: the source (upstream notary-server 0.7 behind docker token
auth from ``trustbox serve auth``) and destination trust servers (trustbox's, upstream's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.auth.conftest import TokenServer, tls, token_server  # noqa: F401  (fixtures reused)
from tests.helpers.certs import CertFiles
from tests.helpers.net import free_port, stop_process, wait_http
from tests.interop.servers import ServerHandle, TLSFiles, start_trustbox, start_upstream


def need(*binaries: str) -> None:
    """Skip (naming the tool) when a real client or server is not installed."""
    for b in binaries:
        if shutil.which(b) is None:
            pytest.skip(f"{b} not installed")


@dataclass
class Source:
    """notary-server with token auth; ``stop()`` ends it (memory storage: its data is gone)."""

    url: str
    ca: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.proc)


def start_source(workdir: Path, tokens: TokenServer) -> Source:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "server": {"http_addr": f"127.0.0.1:{port}", "tls_cert_file": str(tokens.tls.server_cert),
                   "tls_key_file": str(tokens.tls.server_key)},
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
        "storage": {"backend": "memory"},
        "logging": {"level": "error"},
        "auth": {"type": "token", "options": {"realm": tokens.realm, "service": "notary-server",
                                              "issuer": tokens.issuer, "rootcertbundle": str(tokens.cert)}},
    }
    (workdir / "config.json").write_text(json.dumps(config))
    log = workdir / "notary-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["notary-server", "-config", str(workdir / "config.json")], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    url = f"https://127.0.0.1:{port}"
    wait_http(f"{url}/_notary_server/health", proc, log, ca=tokens.tls.ca_cert)
    return Source(url, tokens.tls.ca_cert, proc)


def _tls(certs: CertFiles) -> TLSFiles:
    return TLSFiles(certs.ca_cert, certs.server_cert, certs.server_key)


@pytest.fixture(scope="module")
def destinations(tmp_path_factory: pytest.TempPathFactory, tls: CertFiles,  # noqa: F811
                 token_server: TokenServer) -> Iterator[dict[str, ServerHandle]]:  # noqa: F811
    """Three trustbox trust servers (SQLite; ``trustbox-resume`` behind the same token auth as the
    source) and one upstream notary-server as import destinations."""
    need("notary-server")
    d = tmp_path_factory.mktemp("destinations")
    handles: dict[str, ServerHandle] = {}
    token_env = {"TRUSTBOX_AUTH_TOKEN_REALM": token_server.realm, "TRUSTBOX_AUTH_TOKEN_SERVICE": "notary-server",
                 "TRUSTBOX_AUTH_TOKEN_ISSUER": token_server.issuer,
                 "TRUSTBOX_AUTH_TOKEN_ROOTCERTBUNDLE": str(token_server.cert)}
    try:
        for name in ("trustbox", "trustbox-cache", "trustbox-resume"):
            handles[name] = start_trustbox(d / name, _tls(tls), f"sqlite:///{d / name}.db", name=name,
                                           extra_env=token_env if name == "trustbox-resume" else None)
        handles["upstream"] = start_upstream(d / "upstream", _tls(tls))
        yield handles
    finally:
        for h in handles.values():
            h.stop()

"""A trust server + registry pair for the end-to-end tests.

``upstream``: notary-server 0.7 (TLS, test CA; via tests/helpers) + docker-registry 2.8.
``trustbox``: ``trustbox serve trust`` (TLS, same kind of CA) + ``trustbox serve registry``.
Registries listen on plain HTTP on 127.0.0.1 (a loopback registry, like the tutorial's sandbox).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.certs import write_ca_and_server_cert
from tests.helpers.net import free_port, stop_process, wait_http
from tests.helpers.notary_server import have_notary_server, notary_server
from tests.images.registries import (
    RunningRegistry,
    have_docker_registry,
    trustbox_registry,
    upstream_registry,
)


@dataclass
class Stack:
    """Running servers and the client environment that points at them."""

    name: str
    trust_url: str
    ca: Path
    registry: RunningRegistry
    workdir: Path

    def env(self, docker_config: Path, **extra: str) -> dict[str, str]:
        """A clean environment for ``trustbox`` commands: docker config with the CA, trust server,
        passphrases."""
        hostport = self.trust_url.split("//", 1)[1]
        tls = docker_config / "tls" / hostport
        tls.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca, tls / "ca.crt")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(docker_config.parent),
            "DOCKER_CONFIG": str(docker_config),
            "DOCKER_CONTENT_TRUST_SERVER": self.trust_url,
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "root passphrase for the tutorial",
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repository passphrase for the tutorial",
            "LANG": "C.UTF-8",
        }
        if os.environ.get("PYTHONPATH"):  # a checkout's sources first (``PYTHONPATH=src``), as for the test process
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update(extra)
        return env


def missing(variant: str) -> str | None:
    """Why a variant cannot run here (None if it can)."""
    if variant == "upstream":
        if not have_notary_server():
            return "notary-server not installed"
        if not have_docker_registry():
            return "docker-registry not installed"
        return None
    return None


def _trustbox_exe() -> str:
    return shutil.which("trustbox") or str(Path(sys.executable).with_name("trustbox"))


@contextmanager
def _trustbox_trust_server(workdir: Path) -> Iterator[tuple[str, Path]]:
    certs = write_ca_and_server_cert(workdir / "tls")
    port = free_port()
    argv = [
        _trustbox_exe(), "serve", "trust", "--listen", f"127.0.0.1:{port}",
        "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
        "--db", f"sqlite:///{workdir / 'trust.db'}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_"))}
    log = workdir / "trust.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    url = f"https://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_notary_server/health", proc, log, ca=certs.ca_cert)
        yield url, certs.ca_cert
    finally:
        stop_process(proc)


@contextmanager
def trust_server(variant: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """A trust server of ``variant`` on fresh storage under ``workdir``: ``(url, ca)``."""
    if variant == "upstream":
        with notary_server(_mk(workdir)) as info:
            yield info
    else:
        with _trustbox_trust_server(_mk(workdir)) as info:
            yield info


@contextmanager
def start_stack(variant: str, workdir: Path) -> Iterator[Stack]:
    """Start the servers of ``variant`` under ``workdir``."""
    with ExitStack() as es:
        url, ca = es.enter_context(trust_server(variant, workdir / ("notary" if variant == "upstream" else "trust")))
        if variant == "upstream":
            reg = es.enter_context(upstream_registry(_mk(workdir / "registry")))
        else:
            reg = es.enter_context(trustbox_registry(_mk(workdir / "registry")))
        yield Stack(variant, url, ca, reg, workdir)


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p

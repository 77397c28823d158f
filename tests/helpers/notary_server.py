"""Run the real upstream ``notary-server`` and ``notary`` CLI in tests.

``notary_server()`` (a context manager; also exposed as the pytest fixture
``notary_server_url`` when this module is imported by a conftest or test module) writes a
throw-away CA + server certificate, starts notary-server on a free port with memory storage and
the local trust service, waits for ``/_notary_server/health`` and yields ``(url, ca_path)``.
``run_notary()`` runs the notary CLI against it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.certs import write_ca_and_server_cert
from tests.helpers.net import free_port, stop_process, wait_http

NOTARY_SERVER = "notary-server"
NOTARY = "notary"


def have_notary_server() -> bool:
    """Whether both the notary-server and the notary CLI binaries are installed."""
    return shutil.which(NOTARY_SERVER) is not None and shutil.which(NOTARY) is not None


def wait_healthy(
    url: str, ca_path: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    """Poll ``<url>/_notary_server/health`` until it answers 200 (or raise RuntimeError)."""
    wait_http(f"{url}/_notary_server/health", proc, ca=ca_path, timeout=timeout)


def server_config(
    port: int, cert: Path, key: Path, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """A minimal notary-server JSON config: TLS, local trust service, memory storage."""
    config: dict[str, object] = {
        "server": {"http_addr": f"127.0.0.1:{port}", "tls_cert_file": str(cert), "tls_key_file": str(key)},
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ed25519"},
        "storage": {"backend": "memory"},
        "logging": {"level": "error"},
    }
    config.update(extra or {})
    return config


@contextmanager
def notary_server(
    workdir: Path | None = None, extra_config: Mapping[str, object] | None = None
) -> Iterator[tuple[str, Path]]:
    """Start notary-server; yield ``(url, ca_path)``; stop it (by its own pid) afterwards."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="notary-server-")
        workdir = Path(tmp.name)
    try:
        certs = write_ca_and_server_cert(workdir / "tls")
        port = free_port()
        config_path = workdir / "notary-server.json"
        config_path.write_text(
            json.dumps(server_config(port, certs.server_cert, certs.server_key, extra_config))
        )
        log = open(workdir / "notary-server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [NOTARY_SERVER, "-config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
        url = f"https://127.0.0.1:{port}"
        try:
            try:
                wait_healthy(url, certs.ca_cert, proc)
            except RuntimeError as exc:
                log.flush()
                raise RuntimeError(
                    f"{exc}\n{(workdir / 'notary-server.log').read_text(errors='replace')}"
                ) from exc
            yield url, certs.ca_cert
        finally:
            stop_process(proc)
            log.close()
    finally:
        if tmp is not None:
            tmp.cleanup()


@pytest.fixture(scope="module")
def notary_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """pytest fixture: a running notary-server, ``(url, ca_path)``; skipped if not installed."""
    if not have_notary_server():
        pytest.skip("notary-server / notary not installed")
    with notary_server(tmp_path_factory.mktemp("notary-server")) as info:
        yield info


def run_notary(
    trust_dir: Path | str,
    server_url: str | None,
    ca: Path | str | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``notary -d TRUST_DIR [-s URL] [--tlscacert CA] ARGS...`` with ``env`` added to a
    clean environment (HOME is pointed at the trust dir's parent); raise on failure if ``check``."""
    cmd: list[str] = [NOTARY, "-d", str(trust_dir)]
    if server_url:
        cmd += ["-s", server_url]
    if ca:
        cmd += ["--tlscacert", str(ca)]
    cmd += list(args)
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path(trust_dir).parent),
    }
    full_env.update(env or {})
    proc = subprocess.run(
        cmd,
        env=full_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc

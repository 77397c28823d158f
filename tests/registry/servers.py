"""Run ``trustbox serve registry`` as a real process (granian) for interop tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.certs import write_ca_and_server_cert
from tests.helpers.net import stop_process, wait_http

from .conftest import free_port

__all__ = ["free_port", "make_tls", "registry_process"]


@contextmanager
def registry_process(args: list[str], env: dict[str, str] | None = None, tls_ca: Path | None = None,
                     ) -> Iterator[str]:
    """Start the registry with ``args`` on a free port; yield ``host:port``; stop it."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    full_env.update(env or {})
    # output goes to a file: a pipe nobody reads would fill with access lines and stall the server
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from trustbox.cli import main; main()", "serve", "registry",
         "--listen", addr, *args],
        env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    scheme = "https" if tls_ca else "http"
    try:
        try:
            wait_http(f"{scheme}://{addr}/v2/", proc, ca=tls_ca, ok=(200, 401), timeout=20)
        except RuntimeError as exc:
            log.seek(0)
            out = log.read().decode(errors="replace") if proc.poll() is not None else ""
            raise RuntimeError(f"registry did not start: {exc}\n{out}") from None
        yield addr
    finally:
        stop_process(proc, group=True)
        log.close()


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1/localhost: (ca.crt, server.crt, server.key)."""
    files = write_ca_and_server_cert(directory)
    return files.ca_cert, files.server_cert, files.server_key

"""Fixtures of the interop suite: one throw-away CA, and the same tests against every trust server.

``trust_server`` is parametrized over ``upstream`` (notary-server 0.7), ``trustbox-sqlite`` and
``trustbox-postgres``. Servers are started once per session (lazily, on first use) and stopped at the
end; the PostgreSQL variant runs on a fresh database that is dropped afterwards.

Skips: ``upstream`` only when the notary-server binary is missing; ``trustbox-postgres`` only when
PostgreSQL is unreachable. The trustbox variants never skip otherwise: if the server does not start,
the tests error with the server's log.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    NOTARY,
    VARIANTS,
    ServerHandle,
    TLSFiles,
    make_tls,
    pg_reachable,
    start_variant,
    upstream_available,
)


class ServerPool:
    def __init__(self, root: Path):
        self.root = root
        self.tls: TLSFiles = make_tls(root / "tls")
        self.servers: dict[str, ServerHandle] = {}
        self.failures: dict[str, str] = {}
        self.references: dict[str, Any] = {}

    def get(self, variant: str) -> ServerHandle:
        if variant == "upstream" and not upstream_available():
            pytest.skip("notary-server binary not installed")
        if variant == "trustbox-postgres":
            reason = pg_reachable()
            if reason:
                pytest.skip(reason)
        if variant in self.failures:
            pytest.fail(f"{variant} did not start (see first error): {self.failures[variant][:2000]}", pytrace=False)
        handle = self.servers.get(variant)
        if handle is not None and not handle.alive():
            pytest.fail(
                f"{variant} died (status {handle.proc.returncode}); log tail:\n{handle.log_tail()}", pytrace=False
            )
        if handle is None:
            try:
                handle = start_variant(variant, self.root, self.tls)
            except Exception as exc:
                self.failures[variant] = str(exc)
                raise
            self.servers[variant] = handle
        return handle

    def reference(self, key: str, compute: Callable[[], Any]) -> Any:
        """A scenario result on upstream, computed once per session."""
        if key not in self.references:
            self.references[key] = compute()
        return self.references[key]

    def close(self) -> None:
        for handle in self.servers.values():
            handle.stop()
        self.servers.clear()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    root = Path(tempfile.mkdtemp(prefix="tb-interop-"))
    pool = ServerPool(root)
    try:
        yield pool
    finally:
        pool.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", params=VARIANTS)
def trust_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerHandle:
    """A running trust server; unpacks as ``(url, ca_path)``."""
    return server_pool.get(request.param)


@pytest.fixture(scope="session")
def upstream_server(server_pool: ServerPool) -> ServerHandle:
    """notary-server 0.7, the reference every trustbox variant is compared with."""
    return server_pool.get("upstream")


@pytest.fixture(scope="session")
def notary_bin() -> str:
    if not shutil.which(NOTARY) and not Path(NOTARY).exists():
        pytest.skip("notary client not installed")
    return NOTARY


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temp dir (paths appear in CLI output and are normalised away)."""
    d = Path(tempfile.mkdtemp(prefix="tbi-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)

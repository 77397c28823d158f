"""Fixtures for the trust server tests: one app per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiclient import ASGIClient

from trustbox.trustserver.app import TrustServerApp
from trustbox.trustserver.config import ServerConfig
from trustbox.trustserver.server import build_app
from trustbox.tuf.timefmt import utcnow

PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
_pg_url: str | None | bool = False


def postgres_url() -> str | None:
    """A reachable PostgreSQL URL, or None."""
    global _pg_url
    if _pg_url is False:
        _pg_url = None
        try:
            import psycopg
        except ImportError:  # pragma: no cover
            return None
        for url in PG_URLS:
            try:
                with psycopg.connect(url, connect_timeout=3):
                    _pg_url = url
                    break
            except psycopg.Error:
                continue
    return _pg_url if isinstance(_pg_url, str) else None


class Clock:
    """A settable clock for the server (re-signing tests)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Database settings for one test (a fresh file or a fresh table prefix)."""
    if request.param == "sqlite":
        yield {"db": f"sqlite:///{tmp_path}/trust.db", "table_prefix": ""}
        return
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    prefix = f"tbt_{secrets.token_hex(4)}_"
    yield {"db": url, "table_prefix": prefix}
    from trustbox.trustserver.storage import Storage

    s = Storage(url, prefix)
    s.drop_all()
    s.close()


@pytest.fixture
def clock() -> Clock:
    """The server clock."""
    return Clock()


def make_app(backend: dict[str, Any], clock: Clock | None = None, **overrides: Any) -> TrustServerApp:
    """An app over ``backend`` with a test passphrase."""
    config = ServerConfig(key_passphrase="test-passphrase", **backend).with_overrides(**overrides)
    return build_app(config, clock=clock or Clock())


@pytest.fixture
def app(backend: dict[str, Any], clock: Clock) -> Iterator[TrustServerApp]:
    """A fresh trust server app."""
    a = make_app(backend, clock)
    yield a
    a.close()


@pytest.fixture
def client(app: TrustServerApp) -> Iterator[ASGIClient]:
    """An httpx client talking to ``app``."""
    with ASGIClient(app) as c:
        yield c

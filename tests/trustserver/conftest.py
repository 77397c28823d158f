"""Fixtures for the trust server tests: one app per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.trustserver.ts_asgi import ASGIClient
from tests.trustserver.ts_env import Clock, make_app, postgres_url
from trustbox.trustserver.app import TrustServerApp


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


@pytest.fixture
def app(backend: dict[str, Any], clock: Clock) -> Iterator[TrustServerApp]:
    """A fresh trust server app."""
    a = make_app(backend, clock)
    yield a
    a.close()


@pytest.fixture
def client(app: TrustServerApp) -> Iterator[ASGIClient]:
    """An httpx client talking to ``app`` through httpx.ASGITransport."""
    with ASGIClient(app) as c:
        yield c

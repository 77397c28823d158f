"""Fixtures for the trust server tests: one app per test on SQLite, PostgreSQL and MariaDB (and notary's table layout)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.trustserver.ts_asgi import ASGIClient
from tests.trustserver.ts_env import Clock, make_app, mariadb_url, postgres_url
from trustbox.trustserver.app import TrustServerApp

#: modules run on notary-server's table layout too (the API and changefeed over every storage
#: operation); the limit and consistency tests exercise no layout-specific code beyond them
NOTARY_LAYOUT_MODULES = ("test_api.py", "test_changefeed.py", "test_units.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the ``*-notary`` backends to :data:`NOTARY_LAYOUT_MODULES` (CI time)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("backend") if callspec is not None else None
        if isinstance(param, str) and param.endswith("-notary") and item.path.name not in NOTARY_LAYOUT_MODULES:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=["sqlite", "postgres", "mariadb", "postgres-notary", "mariadb-notary"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Database settings for one test (a fresh file or a fresh table prefix): trustbox's schema on
    SQLite, PostgreSQL and MariaDB, and notary-server's own tables on PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        yield {"db": f"sqlite:///{tmp_path}/trust.db", "table_prefix": ""}
        return
    kind, _, schema = request.param.partition("-")
    url = postgres_url() if kind == "postgres" else mariadb_url()
    if url is None:
        pytest.skip(f"{kind} on 127.0.0.1 is not reachable")
    prefix = f"tbt_{secrets.token_hex(4)}_"
    notary = schema == "notary"
    yield {"db": url, "table_prefix": prefix, "notary_schema": notary}
    from trustbox.trustserver.storage import Storage

    s = Storage(url, prefix, notary_schema=notary)
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

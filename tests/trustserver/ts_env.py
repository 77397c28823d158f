"""Test environment for the trust server: PostgreSQL discovery, a settable clock, app factory."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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


MARIADB_URL = "mysql://root@127.0.0.1:3306/test"
_mariadb_url: str | None | bool = False


def mariadb_url() -> str | None:
    """The machine's MariaDB (root, no password, database ``test``) if reachable, else None."""
    global _mariadb_url
    if _mariadb_url is False:
        _mariadb_url = None
        try:
            import pymysql
        except ImportError:  # pragma: no cover
            return None
        try:
            pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", connect_timeout=3).close()
            _mariadb_url = MARIADB_URL
        except pymysql.Error:
            pass
    return _mariadb_url if isinstance(_mariadb_url, str) else None


class Clock:
    """A settable clock for the server (re-signing tests)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def make_app(backend: dict[str, Any], clock: Clock | None = None, **overrides: Any) -> TrustServerApp:
    """An app over ``backend`` with a test passphrase."""
    config = ServerConfig(key_passphrase="test-passphrase", **backend).with_overrides(**overrides)
    return build_app(config, clock=clock or Clock())

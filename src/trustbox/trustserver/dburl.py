"""Database URLs of the trust server: SQLAlchemy URLs, and the forms notary-server's config holds.

trustbox takes SQLAlchemy URLs (``sqlite:///FILE``, ``postgresql://...``, ``mysql://...`` /
``mariadb://...``) and maps them onto the drivers it ships with (psycopg 3, PyMySQL).
notary-server's ``storage.db_url`` is a driver-specific source string instead: for ``mysql`` a
Go MySQL DSN (``user:pass@tcp(host:port)/db?parseTime=True``), for ``postgres`` a libpq URL,
for ``sqlite3`` a file path. :func:`notary_db_url` turns those into SQLAlchemy URLs.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote

from sqlalchemy.engine import make_url

from trustbox.errors import ConfigError

#: Go MySQL driver DSN parameters trustbox understands (they change nothing PyMySQL needs)
_GO_DSN_HARMLESS = {"parsetime", "loc", "timeout", "readtimeout", "writetimeout", "charset", "collation"}
_GO_DSN = re.compile(
    r"^(?:(?P<user>[^:@/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:(?P<net>[a-z0-9]+)(?:\((?P<addr>[^)]*)\))?)?"
    r"/(?P<db>[^?]*)(?:\?(?P<params>.*))?$"
)


def normalize_db_url(url: str) -> str:
    """Map ``postgres(ql)://`` onto psycopg 3 and ``mysql://``/``mariadb://`` onto PyMySQL; a Go
    MySQL DSN (``user@tcp(host:port)/db``) becomes a PyMySQL URL; anything else is left alone.

    Raises ConfigError for a Go DSN trustbox cannot use.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    for prefix in ("mysql://", "mariadb://"):
        if url.startswith(prefix):
            return "mysql+pymysql://" + url[len(prefix) :]
    if "://" not in url and _GO_DSN.match(url) and ("@tcp(" in url or "@unix(" in url or url.startswith("tcp(")):
        return go_mysql_dsn_to_url(url)
    return url


def go_mysql_dsn_to_url(dsn: str) -> str:
    """A Go MySQL driver DSN (``[user[:password]@][tcp[(host:port)]]/dbname[?params]``) as a
    PyMySQL SQLAlchemy URL. ``parseTime``, ``loc``, timeouts and charset are accepted (trustbox
    reads times as UTC, as notary-server's forced ``parseTime=true`` with the default ``loc``
    does); any other parameter is refused by name.

    Raises ConfigError for a DSN that does not parse, a ``loc`` other than UTC, or an unknown parameter.
    """
    m = _GO_DSN.match(dsn)
    if m is None:
        raise ConfigError("storage.db_url is not a MySQL DSN of the form user:password@tcp(host:port)/dbname")
    net = m.group("net") or "tcp"
    addr = m.group("addr") or ""
    query: dict[str, str] = {}
    for name, value in parse_qsl(m.group("params") or "", keep_blank_values=True):
        key = name.lower()
        if key not in _GO_DSN_HARMLESS:
            raise ConfigError(f"storage.db_url: MySQL DSN parameter {name!r} is not supported by trustbox")
        if key == "loc" and value not in ("UTC", ""):
            raise ConfigError(f"storage.db_url: loc={value} is not supported (trustbox stores times in UTC)")
        if key == "charset":
            query["charset"] = value.split(",")[0]
    user = quote(m.group("user") or "", safe="")
    password = m.group("password")
    auth = user + (":" + quote(password, safe="") if password else "")
    if auth:
        auth += "@"
    if net == "unix":
        if not addr:
            raise ConfigError("storage.db_url: a unix MySQL DSN needs a socket path")
        query["unix_socket"] = addr
        host = "localhost"
    elif net == "tcp":
        host = addr or "127.0.0.1:3306"
    else:
        raise ConfigError(f"storage.db_url: MySQL DSN network {net!r} is not supported (use tcp or unix)")
    qs = "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
    return f"mysql+pymysql://{auth}{host}/{quote(m.group('db'), safe='')}" + (f"?{qs}" if qs else "")


def notary_db_url(backend: str, db_url: str) -> str:
    """The SQLAlchemy URL for notary-server's ``storage.backend`` and ``storage.db_url``.

    Raises ConfigError for a backend trustbox does not support or a source it cannot use.
    """
    if backend == "memory":
        return "sqlite://"
    if not db_url:
        raise ConfigError(f"storage.db_url: must provide a non-empty database source for {backend}")
    if backend == "mysql":
        if "://" in db_url:
            return normalize_db_url(db_url)
        return go_mysql_dsn_to_url(db_url)
    if backend == "postgres":
        if not db_url.startswith(("postgres://", "postgresql://")):
            raise ConfigError("storage.db_url: a postgres source must be a postgres:// URL")
        return normalize_db_url(db_url)
    if backend == "sqlite3":
        if db_url.startswith("file:") or "?" in db_url:
            raise ConfigError("storage.db_url: give the sqlite3 database as a plain file path")
        return "sqlite:///" + db_url
    if backend == "rethinkdb":
        raise ConfigError("storage.backend rethinkdb is not supported by trustbox (use mysql, postgres or sqlite3)")
    raise ConfigError(f"storage.backend: {backend} is not a supported storage backend")


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL (None for in-memory or non-SQLite URLs)."""
    u = make_url(url)
    if not u.drivername.startswith("sqlite"):
        return None
    db = u.database
    if not db or db == ":memory:":
        return None
    return db

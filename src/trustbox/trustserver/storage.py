"""Metadata storage on SQLAlchemy Core: a SQLite file (WAL), PostgreSQL or MySQL/MariaDB, same code.

With ``notary_schema`` the documents live in notary-server 0.7's own ``tuf_files`` and
``changefeed`` tables (see :mod:`trustbox.trustserver.schema`): rows are written as notary-server
writes them (``created_at``/``updated_at`` in UTC, ``sha256``) and soft-deleted rows are skipped
as gorm skips them, so either server can run on the database the other wrote.

Every method is synchronous and short; the ASGI app calls them from worker threads.
Writes that belong together (:meth:`Storage.update_many`, :meth:`Storage.delete`) run in one
transaction: on SQLite it starts with ``BEGIN IMMEDIATE`` (no lock upgrade deadlocks), on
PostgreSQL the unique index on (gun, role, version) makes the second of two concurrent
updates fail, which is reported as :class:`~trustbox.trustserver.errors.VersionConflict`.
PostgreSQL writers also ``NOTIFY`` a channel so other server processes drop their caches.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    true,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from trustbox.errors import ConfigError
from trustbox.trustserver.dburl import normalize_db_url, sqlite_path
from trustbox.trustserver.errors import DocumentTooLarge, VersionConflict
from trustbox.trustserver.schema import Tables, make_tables, migrate

TIMESTAMP = "timestamp"
#: the role a timestamp lists
TIMESTAMP_LISTS = "snapshot"


@dataclass(frozen=True)
class StoredFile:
    """One stored document version."""

    data: bytes
    version: int
    created_ns: int


@dataclass(frozen=True)
class Update:
    """One document to store as part of an atomic update."""

    role: str
    version: int
    data: bytes


@dataclass(frozen=True)
class WriteResult:
    """What a write did: storage time (ns) and the sequence number of its change notification."""

    created_ns: int
    notify_seq: int
    changed: bool = True


@dataclass(frozen=True)
class Change:
    """One changefeed record."""

    id: int
    created_ns: int
    gun: str
    version: int
    sha256: str
    category: str


@dataclass(frozen=True)
class KeyRecord:
    """A server-held key: public part in clear, private part encrypted."""

    gun: str
    role: str
    keyid: str
    keytype: str
    public: bytes
    private_enc: bytes
    created_ns: int


class _SQLiteFast:
    """The hot statements (document reads, the update transaction) on plain ``sqlite3``.

    SQLAlchemy Core costs several hundred microseconds per statement (pool checkout, the
    explicit ``BEGIN``, cache-key generation, reset on return); the driver alone takes tens.
    Each thread gets its own connection (autocommit mode: a lone ``SELECT`` is its own read
    transaction); the statements and their locking (``BEGIN IMMEDIATE`` for writes) are the ones
    the SQLAlchemy path issues.
    """

    def __init__(self, path: str, files_table: str, changefeed_table: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        f, cf = _quote(files_table), _quote(changefeed_table)
        cols = f"SELECT data, version, created_ns FROM {f} WHERE gun = ? AND role = ?"
        self.q_current = cols + " ORDER BY version DESC LIMIT 1"
        self.q_version = cols + " AND version = ? LIMIT 1"
        self.q_checksum = cols + " AND sha256 = ? LIMIT 1"
        self.q_newer = f"SELECT id FROM {f} WHERE gun = ? AND role = ? AND version >= ? LIMIT 1"
        self.q_insert = f"INSERT INTO {f} (gun, role, version, sha256, data, created_ns) VALUES (?, ?, ?, ?, ?, ?)"
        self.q_feed = f"INSERT INTO {cf} (created_ns, gun, version, sha256, category) VALUES (?, ?, ?, ?, 'update')"

    def conn(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA busy_timeout=30000")
            with self._lock:
                self._all.append(c)
            self._local.conn = c
        return c

    def one(self, sql: str, params: tuple[Any, ...]) -> StoredFile | None:
        row = self.conn().execute(sql, params).fetchone()
        if row is None:
            return None
        return StoredFile(bytes(row[0]), int(row[1]), int(row[2]))

    def update_many(self, gun: str, updates: list[Update], now: int) -> None:
        c = self.conn()
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_conflict_text(str(exc)):
                raise VersionConflict() from exc
            raise
        try:
            for u in updates:
                if c.execute(self.q_newer, (gun, u.role, u.version)).fetchone() is not None:
                    raise VersionConflict()
                digest = hashlib.sha256(u.data).hexdigest()
                c.execute(self.q_insert, (gun, u.role, u.version, digest, u.data, now))
                if u.role == TIMESTAMP:
                    c.execute(self.q_feed, (now, gun, u.version, digest))
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise VersionConflict() from exc
            if isinstance(exc, sqlite3.OperationalError) and _is_conflict_text(str(exc)):
                raise VersionConflict() from exc
            raise

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:  # pragma: no cover - already closed
                pass
        self._local = threading.local()


class _MySQLReads:
    """Document reads on MySQL over plain PyMySQL, one autocommit connection per thread.

    SQLAlchemy's pool check-out with its pre-ping costs a round trip and several hundred
    microseconds per statement; reads are the hot path of a server that cannot cache (MySQL has
    no change notification). Each SELECT runs in its own transaction, so it sees every commit. A
    connection the server dropped is re-opened once and the read repeated (reads are idempotent).
    """

    def __init__(self, engine: Engine, files_table: str, notary: bool) -> None:
        # the MySQL driver is loaded only for a MySQL database (its import costs every server
        # process several MiB; SQLAlchemy loads it the same way, from the URL)
        import pymysql

        self._driver: Any = pymysql
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._args = tuple(args)
        self._kwargs = {**kwargs, "autocommit": True}
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        f = "`" + files_table.replace("`", "``") + "`"
        created = "created_at" if notary else "created_ns"
        live = " AND deleted_at IS NULL" if notary else ""
        base = f"FROM {f} WHERE gun = %s AND role = %s{live}"
        current = "updated_at" if notary else "created_ns"
        self.q_current = f"SELECT data, version, {current} {base} ORDER BY version DESC LIMIT 1"
        self.q_version = f"SELECT data, version, {created} {base} AND version = %s LIMIT 1"
        self.q_checksum = f"SELECT data, version, {created} {base} AND sha256 = %s LIMIT 1"

    def _conn(self, fresh: bool = False) -> Any:
        c = getattr(self._local, "conn", None)
        if c is None or fresh:
            if c is not None:
                try:
                    c.close()
                except self._driver.Error:
                    pass
            c = self._driver.connect(*self._args, **self._kwargs)
            with self._lock:
                self._all.append(c)
            self._local.conn = c
        return c

    def one(self, sql: str, params: tuple[Any, ...]) -> StoredFile | None:
        for attempt in (0, 1):
            try:
                with self._conn(fresh=attempt == 1).cursor() as cur:
                    cur.execute(sql, params)
                    row = cur.fetchone()
                break
            except (self._driver.OperationalError, self._driver.InterfaceError):
                if attempt == 1:
                    raise
        if row is None:
            return None
        return StoredFile(bytes(row[0]), int(row[1]), _ns_of(row[2]))

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - already closed or broken
                pass
        self._local = threading.local()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Storage:
    """The trust server's database."""

    def __init__(self, url: str, table_prefix: str = "", notary_schema: bool = False) -> None:
        url = normalize_db_url(url)
        try:
            u = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"invalid database URL {url!r}") from exc
        self.url = url
        self.dialect = u.get_backend_name()
        if self.dialect == "mariadb":
            self.dialect = "mysql"
        if self.dialect not in ("sqlite", "postgresql", "mysql"):
            raise ConfigError(
                f"unsupported database {self.dialect!r}: use sqlite:///FILE, postgresql://... or mysql://..."
            )
        self.prefix = table_prefix
        self.notary_schema = notary_schema
        self.t: Tables = make_tables(table_prefix, notary=notary_schema)
        self.channel = f"{table_prefix}trustbox_changes".lower()
        self.sqlite_file = sqlite_path(url) if self.dialect == "sqlite" else None
        self.sender_id = secrets.token_hex(8)
        self._seq = itertools.count(1)
        self._memory_lock = threading.RLock()
        try:
            self.engine: Engine = self._make_engine(url)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError(f"cannot use database URL {url!r}: {exc}") from exc
        self._max_doc: int | None = None
        self._fast: _SQLiteFast | None = None
        if self.sqlite_file is not None and not notary_schema:
            self._fast = _SQLiteFast(self.sqlite_file, self.t.files.name, self.t.changefeed.name)
        self._listed: dict[tuple[str, str], StoredFile] = {}
        self._mysql: _MySQLReads | None = None
        if self.dialect == "mysql" and self.engine.dialect.driver == "pymysql":
            self._mysql = _MySQLReads(self.engine, self.t.files.name, notary_schema)

    # -- engine ------------------------------------------------------------------------

    def _make_engine(self, url: str) -> Engine:
        if self.dialect == "sqlite":
            if self.sqlite_file is None:
                engine = create_engine(
                    url, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
            else:
                Path(self.sqlite_file).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(
                    url, pool_size=8, max_overflow=8, connect_args={"check_same_thread": False, "timeout": 30}
                )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                if self.sqlite_file is not None:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                immediate = conn.get_execution_options().get("trustbox_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        if self.dialect == "mysql":
            # READ COMMITTED: the "is there a newer version" check sees what other writers
            # committed (REPEATABLE READ would keep the snapshot of the first read); the unique
            # index decides races either way. utf8mb4: GUNs are compared byte-exactly anyway.
            return create_engine(
                url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=3600,
                isolation_level="READ COMMITTED",
            )
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)

    @property
    def fast_reads(self) -> bool:
        """Whether document reads take microseconds (plain sqlite3 on a local file): cheaper to run
        on the calling thread than to hand to a thread pool."""
        return self._fast is not None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._memory_guard(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._memory_guard(), self.engine.connect() as conn:
            conn.execution_options(trustbox_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _memory_guard(self) -> Iterator[None]:
        # an in-memory SQLite database is one shared connection: serialise its users
        if self.dialect == "sqlite" and self.sqlite_file is None:
            with self._memory_lock:
                yield
        else:
            yield

    def migrate(self) -> None:
        """Create or upgrade the schema (safe when several processes start at once)."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                key = int.from_bytes(hashlib.sha256(self.channel.encode()).digest()[:7], "big")
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            elif self.dialect == "mysql":
                # a named lock held by this connection until RELEASE_LOCK (DDL commits implicitly)
                got = conn.execute(text("SELECT GET_LOCK(:n, 60)"), {"n": self.channel[:64]}).scalar()
                if got != 1:
                    raise ConfigError("could not take the schema migration lock on the MySQL database")
                try:
                    migrate(conn, self.t)
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.channel[:64]})
                return
            migrate(conn, self.t)

    def drop_all(self) -> None:
        """Drop every table of this prefix (tests)."""
        with self._write() as conn:
            self.t.metadata.drop_all(conn, checkfirst=True)
            self.t.schema_version.drop(conn, checkfirst=True)

    def close(self) -> None:
        """Release all connections."""
        if self._fast is not None:
            self._fast.close()
        if self._mysql is not None:
            self._mysql.close()
        self.engine.dispose()

    def healthy(self) -> bool:
        """Whether the database answers."""
        try:
            with self._read() as conn:
                conn.execute(select(func.count()).select_from(self.t.schema_version)).scalar()
            return True
        except SQLAlchemyError:
            return False

    # -- documents ---------------------------------------------------------------------

    # notary's rows carry gorm timestamps (UTC DATETIME) instead of nanoseconds, and a
    # ``deleted_at`` gorm's reads skip

    def _live(self, where: ColumnElement[bool]) -> ColumnElement[bool]:
        if self.t.notary:
            return and_(where, self.t.files.c.deleted_at.is_(None))
        return where

    def _file_row(self, gun: str, role: str, version: int, digest: str, data: bytes, now: int) -> dict[str, Any]:
        row: dict[str, Any] = {"gun": gun, "role": role, "version": version, "sha256": digest, "data": data}
        if self.t.notary:
            stamp = _datetime_of(now)
            row.update(created_at=stamp, updated_at=stamp)
        else:
            row["created_ns"] = now
        return row

    def _change_row(self, gun: str, version: int, digest: str, category: str, now: int) -> dict[str, Any]:
        row: dict[str, Any] = {"gun": gun, "version": version, "sha256": digest, "category": category}
        if self.t.notary:
            row["created_at"] = _datetime_of(now)
        else:
            row["created_ns"] = now
        return row

    def _one(self, where: ColumnElement[bool], order_desc: bool = False) -> StoredFile | None:
        f = self.t.files
        created = f.c.created_at if self.t.notary else f.c.created_ns
        if self.t.notary and order_desc:
            created = f.c.updated_at  # notary-server's Last-Modified of current documents
        q = select(f.c.data, f.c.version, created).where(self._live(where))
        if order_desc:
            q = q.order_by(f.c.version.desc())
        q = q.limit(1)
        with self._read() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        return StoredFile(bytes(row[0]), int(row[1]), _ns_of(row[2]))

    def get_current(self, gun: str, role: str) -> StoredFile | None:
        """The newest stored version of ``role``."""
        if self._fast is not None:
            return self._fast.one(self._fast.q_current, (gun, role))
        if self._mysql is not None:
            return self._mysql.one(self._mysql.q_current, (gun, role))
        f = self.t.files
        return self._one(and_(f.c.gun == gun, f.c.role == role), order_desc=True)

    def get_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        """Version ``version`` of ``role``."""
        if self._fast is not None:
            return self._fast.one(self._fast.q_version, (gun, role, version))
        if self._mysql is not None:
            return self._mysql.one(self._mysql.q_version, (gun, role, version))
        f = self.t.files
        return self._one(and_(f.c.gun == gun, f.c.role == role, f.c.version == version))

    def get_checksum(self, gun: str, role: str, sha256_hex: str) -> StoredFile | None:
        """The stored version of ``role`` whose bytes have this SHA-256."""
        if self._fast is not None:
            return self._fast.one(self._fast.q_checksum, (gun, role, sha256_hex.lower()))
        if self._mysql is not None:
            return self._mysql.one(self._mysql.q_checksum, (gun, role, sha256_hex.lower()))
        f = self.t.files
        return self._one(and_(f.c.gun == gun, f.c.role == role, f.c.sha256 == sha256_hex.lower()))

    def max_document_bytes(self) -> int | None:
        """The largest document the database takes in one statement (MySQL: half its
        ``max_allowed_packet``, as PyMySQL sends binary values escaped in the statement text), or
        None when there is no such limit."""
        if self.dialect != "mysql":
            return None
        if self._max_doc is None:
            with self._read() as conn:
                packet = int(conn.execute(text("SELECT @@max_allowed_packet")).scalar() or 0)
            self._max_doc = max(packet // 2 - 64 * 1024, 0)
        return self._max_doc

    def get_listed_snapshot(self, gun: str, sha256_hex: str) -> StoredFile | None:
        """The snapshot a just-read current timestamp lists (by its SHA-256).

        On MySQL (no response cache) it is remembered per process: the bytes behind a checksum
        never change, and it is only asked for after the current timestamp was read from the
        database, so a deleted repository is never served from here.
        """
        if self._mysql is None:
            return self.get_checksum(gun, TIMESTAMP_LISTS, sha256_hex)
        key = (gun, sha256_hex)
        found = self._listed.get(key)
        if found is None:
            found = self.get_checksum(gun, TIMESTAMP_LISTS, sha256_hex)
            if found is not None:
                if len(self._listed) >= 4096:
                    self._listed.clear()
                self._listed[key] = found
        return found

    def update_many(self, gun: str, updates: list[Update]) -> WriteResult:
        """Store all ``updates`` atomically; raise VersionConflict if any version is not new,
        DocumentTooLarge (nothing stored) if the database cannot take a document of that size."""
        f, cf = self.t.files, self.t.changefeed
        now = time.time_ns()
        limit = self.max_document_bytes()
        if limit is not None and updates:
            largest = max(len(u.data) for u in updates)
            if largest > limit:
                raise DocumentTooLarge(
                    f"the database takes documents of at most {limit} bytes, this one has {largest}: "
                    "raise MySQL's max_allowed_packet (to more than twice the document size)"
                )
        if self._fast is not None:
            self._fast.update_many(gun, updates, now)
            return WriteResult(now, next(self._seq))
        try:
            with self._write() as conn:
                for u in updates:
                    # (soft-deleted rows count too: they still hold the unique index)
                    newer = conn.execute(
                        select(f.c.id)
                        .where(and_(f.c.gun == gun, f.c.role == u.role, f.c.version >= u.version))
                        .limit(1)
                    ).first()
                    if newer is not None:
                        raise VersionConflict()
                    digest = hashlib.sha256(u.data).hexdigest()
                    conn.execute(f.insert().values(**self._file_row(gun, u.role, u.version, digest, u.data, now)))
                    if u.role == TIMESTAMP:
                        conn.execute(cf.insert().values(**self._change_row(gun, u.version, digest, "update", now)))
                seq = self._notify(conn, gun)
        except IntegrityError as exc:
            raise VersionConflict() from exc
        except OperationalError as exc:
            # SQLite "database is locked" after the busy timeout, or a PostgreSQL
            # serialization failure: the other writer won.
            if _is_conflict(exc):
                raise VersionConflict() from exc
            if _is_too_large(exc):
                largest = max(len(u.data) for u in updates)
                raise DocumentTooLarge(
                    f"the database refused a {largest}-byte document as too large: raise MySQL's "
                    "max_allowed_packet and innodb_log_file_size (a row may take a tenth of the redo log)"
                ) from exc
            raise
        return WriteResult(now, seq)

    def delete(self, gun: str) -> WriteResult:
        """Delete every document of ``gun``; record a deletion change if anything was there."""
        f, cf = self.t.files, self.t.changefeed
        now = time.time_ns()
        with self._write() as conn:
            res = conn.execute(delete(f).where(f.c.gun == gun))
            if not res.rowcount:
                return WriteResult(now, 0, changed=False)
            conn.execute(cf.insert().values(**self._change_row(gun, 0, "", "deletion", now)))
            seq = self._notify(conn, gun)
        return WriteResult(now, seq)

    def current_roles(self, gun: str | None = None, limit: int = 1_000_000) -> list[tuple[str, str, int]]:
        """``(gun, role, newest version)`` of every stored role (of ``gun`` when given), sorted, at
        most ``limit`` rows."""
        f = self.t.files
        q = select(f.c.gun, f.c.role, func.max(f.c.version))
        q = q.where(self._live(f.c.gun == gun if gun is not None else true())).group_by(f.c.gun, f.c.role)
        q = q.order_by(f.c.gun, f.c.role).limit(limit)
        with self._read() as conn:
            return [(str(g), str(r), int(v)) for g, r, v in conn.execute(q)]

    def _notify(self, conn: Connection, gun: str) -> int:
        seq = next(self._seq)
        if self.dialect == "postgresql":
            payload = f"{self.sender_id}|{seq}|{gun}"
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": self.channel, "p": payload[:7900]})
        return seq

    # -- changefeed --------------------------------------------------------------------

    def get_changes(self, change_id: int, records: int, gun: str | None) -> list[Change]:
        """Changes after ``change_id`` (or before it when reversed), oldest first (upstream rules)."""
        cf = self.t.changefeed
        reversed_ = change_id < 0
        if records < 0:
            reversed_ = True
            records = -records
        created = cf.c.created_at if self.t.notary else cf.c.created_ns
        q = select(cf.c.id, created, cf.c.gun, cf.c.version, cf.c.sha256, cf.c.category)
        if gun is not None:
            q = q.where(cf.c.gun == gun)
        if reversed_:
            if change_id > 0:
                q = q.where(cf.c.id < change_id)
            q = q.order_by(cf.c.id.desc())
        else:
            q = q.where(cf.c.id > change_id).order_by(cf.c.id.asc())
        q = q.limit(records)
        with self._read() as conn:
            rows = conn.execute(q).all()
        out = [Change(int(r[0]), _ns_of(r[1]), r[2], int(r[3]), r[4] or "", r[5]) for r in rows]
        if reversed_:
            out.reverse()
        return out

    def last_change_id(self) -> int:
        """The newest changefeed ID (0 when there is none)."""
        cf = self.t.changefeed
        with self._read() as conn:
            v = conn.execute(select(func.max(cf.c.id))).scalar()
        return int(v or 0)

    # -- server keys -------------------------------------------------------------------

    def add_key(self, rec: KeyRecord) -> None:
        """Store a new server key."""
        with self._write() as conn:
            conn.execute(
                self.t.keys.insert().values(
                    gun=rec.gun, role=rec.role, keyid=rec.keyid, keytype=rec.keytype,
                    public=rec.public, private_enc=rec.private_enc, created_ns=rec.created_ns,
                )
            )

    def _key_query(self, where: Any) -> KeyRecord | None:
        k = self.t.keys
        q = (
            select(k.c.gun, k.c.role, k.c.keyid, k.c.keytype, k.c.public, k.c.private_enc, k.c.created_ns)
            .where(where)
            .order_by(k.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            r = conn.execute(q).first()
        if r is None:
            return None
        return KeyRecord(r[0], r[1], r[2], r[3], bytes(r[4]), bytes(r[5]), int(r[6]))

    def get_key(self, gun: str, keyid: str) -> KeyRecord | None:
        """The server key ``keyid`` held for ``gun``."""
        k = self.t.keys
        return self._key_query(and_(k.c.gun == gun, k.c.keyid == keyid))

    def latest_key(self, gun: str, role: str) -> KeyRecord | None:
        """The most recently created server key of ``role`` for ``gun``."""
        k = self.t.keys
        return self._key_query(and_(k.c.gun == gun, k.c.role == role))

    # -- small named values ------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        """A named value, if set."""
        m = self.t.meta
        with self._read() as conn:
            v = conn.execute(select(m.c.value).where(m.c.name == name)).scalar()
        return bytes(v) if v is not None else None

    def put_meta_if_absent(self, name: str, value: bytes) -> bytes:
        """Set a named value unless already set; return the stored value (first writer wins)."""
        m = self.t.meta
        try:
            with self._write() as conn:
                existing = conn.execute(select(m.c.value).where(m.c.name == name)).scalar()
                if existing is not None:
                    return bytes(existing)
                conn.execute(m.insert().values(name=name, value=value))
                return value
        except IntegrityError:
            stored = self.get_meta(name)
            if stored is None:  # pragma: no cover - deleted in between
                raise
            return stored


def _datetime_of(ns: int) -> datetime:
    """A naive UTC datetime (microseconds) for nanoseconds since the epoch: how gorm stores times."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC).replace(tzinfo=None)


def _ns_of(value: Any) -> int:
    """Nanoseconds since the epoch of a stored time: an integer, or a naive UTC datetime (None: 0)."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1_000_000) * 1000
    return int(value)


def _is_conflict(exc: OperationalError) -> bool:
    return _is_conflict_text(str(exc.orig) if exc.orig is not None else str(exc))


def _is_too_large(exc: OperationalError) -> bool:
    """MySQL/MariaDB refusing a statement for its size: 1153 (packet bigger than
    max_allowed_packet), 1301, or InnoDB's 'greater than 10% of redo log size' (1118)."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return code in (1153, 1301, 1118) or "max_allowed_packet" in str(exc.orig)


def _is_conflict_text(msg: str) -> bool:
    msg = msg.lower()
    return (
        "database is locked" in msg or "could not serialize" in msg or "deadlock" in msg
        or "lock wait timeout" in msg
    )


class SQLiteChangeProbe:
    """Detects commits by any connection to a SQLite file in WAL mode, cheaply enough to run on
    every cache hit.

    The wal-index header at the start of ``<db>-shm`` (two 48-byte copies of ``WalIndexHdr``,
    see SQLite's ``wal.c``) changes with every committed write transaction: its ``iChange``
    counter, frame count, salts and checksums. Reading it through a shared read-only mmap costs
    well under a microsecond. The probe keeps its own connection open, so the ``-shm`` file
    exists for as long as the probe does. If the file cannot be mapped, ``PRAGMA data_version``
    (a real query per call) is used instead.
    """

    HEADER = 96

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        self._mm: mmap.mmap | None = None
        try:
            with open(path + "-shm", "rb") as fh:
                self._mm = mmap.mmap(fh.fileno(), self.HEADER, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            self._mm = None
        self._last_hdr = self._mm[: self.HEADER] if self._mm is not None else b""
        self._last = self._data_version()

    def _data_version(self) -> int:
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def changed(self) -> bool:
        """True once after every commit made through any other connection."""
        if self._mm is not None:
            hdr = self._mm[: self.HEADER]
            if hdr == self._last_hdr:
                return False
            self._last_hdr = hdr
            return True
        v = self._data_version()
        if v != self._last:
            self._last = v
            return True
        return False

    def close(self) -> None:
        """Close the probe connection."""
        if self._mm is not None:
            self._mm.close()
        self._conn.close()

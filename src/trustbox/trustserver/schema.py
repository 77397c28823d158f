"""Database schema of the trust server and its ordered migrations.

Tables (all names carry the configured prefix):

* ``schema_version`` — one row, the number of migration steps applied;
* ``tuf_files`` — every stored version of every role of every GUN, exact bytes, unique on
  (gun, role, version) so that of two concurrent updates only one can win;
* ``changefeed`` — one row per stored timestamp (``update``) or deleted GUN (``deletion``);
* ``server_keys`` — server-held timestamp/snapshot keys, private part encrypted (see
  :mod:`trustbox.trustserver.keys_at_rest`);
* ``server_meta`` — small named values (key-encryption salt and check value).

With ``notary=True`` (:func:`make_tables`) ``tuf_files`` and ``changefeed`` are notary-server
0.7's own tables instead (gorm's ``created_at``/``updated_at``/``deleted_at`` timestamps, ``id``
serial, ``sha256`` nullable, plus its ``change_category`` table): trustbox then reads and extends a
notary-server database in place, and notary-server started again on it serves what trustbox wrote.
Missing tables are created as notary's migrations would create them; existing ones are left as
they are. trustbox's own tables (``schema_version``, ``server_keys``, ``server_meta``) sit beside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects import mysql

from trustbox.errors import ConfigError

# BIGINT on PostgreSQL and MySQL, INTEGER (rowid alias, autoincrement) on SQLite.
_ID = BigInteger().with_variant(Integer(), "sqlite")
# document bytes: BYTEA / BLOB, LONGBLOB on MySQL (its BLOB stops at 64 KiB)
_DATA = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


@dataclass(frozen=True)
class Tables:
    """The tables of one schema instance (one table prefix)."""

    metadata: MetaData
    schema_version: Table
    files: Table
    changefeed: Table
    keys: Table
    meta: Table
    #: notary-server's ``tuf_files``/``changefeed`` layout (timestamps as DATETIME, soft delete)
    notary: bool = False
    #: notary's ``change_category`` (only with ``notary``)
    categories: Table | None = None


def _notary_tables(md: MetaData, prefix: str) -> tuple[Table, Table, Table]:
    """notary-server 0.7's ``tuf_files``, ``change_category`` and ``changefeed`` tables."""
    files = Table(
        f"{prefix}tuf_files",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("created_at", DateTime, nullable=True),
        Column("updated_at", DateTime, nullable=True),
        Column("deleted_at", DateTime, nullable=True),
        Column("gun", String(255), nullable=False),
        Column("role", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        Column("data", _DATA, nullable=False),
        Column("sha256", String(64), nullable=True),
        UniqueConstraint("gun", "role", "version", name=f"{prefix}gun"),
        Index(f"{prefix}tuf_files_sha256_idx", "sha256"),
        mysql_charset="utf8",
        mysql_engine="InnoDB",
    )
    categories = Table(
        f"{prefix}change_category",
        md,
        Column("category", String(20), primary_key=True),
        mysql_charset="utf8",
        mysql_engine="InnoDB",
    )
    changefeed = Table(
        f"{prefix}changefeed",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("created_at", DateTime, nullable=True),
        Column("gun", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        Column("sha256", String(64), nullable=True),
        Column("category", String(20), ForeignKey(categories.c.category), nullable=False),
        Index(f"{prefix}idx_changefeed_gun", "gun"),
        mysql_charset="utf8",
        mysql_engine="InnoDB",
    )
    return files, categories, changefeed


def make_tables(prefix: str = "", notary: bool = False) -> Tables:
    """Build the table objects for ``prefix`` (notary-server's document tables with ``notary``)."""
    md = MetaData()
    schema_version = Table(f"{prefix}schema_version", md, Column("version", Integer, nullable=False))
    keys, meta = _key_tables(md, prefix)
    if notary:
        files, categories, changefeed = _notary_tables(md, prefix)
        return Tables(md, schema_version, files, changefeed, keys, meta, True, categories)
    files = Table(
        f"{prefix}tuf_files",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("gun", String(255), nullable=False),
        Column("role", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("data", _DATA, nullable=False),
        Column("created_ns", BigInteger, nullable=False),
        UniqueConstraint("gun", "role", "version", name=f"{prefix}uq_tuf_files_gun_role_version"),
        Index(f"{prefix}ix_tuf_files_gun_role_sha256", "gun", "role", "sha256"),
    )
    changefeed = Table(
        f"{prefix}changefeed",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("created_ns", BigInteger, nullable=False),
        Column("gun", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("category", String(20), nullable=False),
        Index(f"{prefix}ix_changefeed_gun", "gun", "id"),
    )
    return Tables(md, schema_version, files, changefeed, keys, meta)


def _key_tables(md: MetaData, prefix: str) -> tuple[Table, Table]:
    """trustbox's ``server_keys`` and ``server_meta``."""
    keys = Table(
        f"{prefix}server_keys",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("gun", String(255), nullable=False),
        Column("role", String(255), nullable=False),
        Column("keyid", String(64), nullable=False),
        Column("keytype", String(16), nullable=False),
        Column("public", LargeBinary, nullable=False),
        Column("private_enc", LargeBinary, nullable=False),
        Column("created_ns", BigInteger, nullable=False),
        UniqueConstraint("gun", "keyid", name=f"{prefix}uq_server_keys_gun_keyid"),
        Index(f"{prefix}ix_server_keys_gun_role", "gun", "role", "id"),
    )
    meta = Table(
        f"{prefix}server_meta",
        md,
        Column("name", String(64), primary_key=True),
        Column("value", LargeBinary, nullable=False),
    )
    return keys, meta


def _step1(conn: Connection, t: Tables) -> None:
    if t.notary and t.categories is not None:
        t.categories.create(conn, checkfirst=True)
        if not conn.execute(select(t.categories.c.category).limit(1)).first():
            conn.execute(t.categories.insert(), [{"category": "update"}, {"category": "deletion"}])
    for table in (t.files, t.changefeed, t.keys, t.meta):
        table.create(conn, checkfirst=True)


#: ordered migration steps; step N brings the schema from version N-1 to N
MIGRATIONS: list[Callable[[Connection, Tables], None]] = [_step1]


def current_version(conn: Connection, t: Tables) -> int:
    """The applied schema version (0 for an empty database)."""
    t.schema_version.create(conn, checkfirst=True)
    row = conn.execute(select(t.schema_version.c.version)).first()
    return int(row[0]) if row else 0


def migrate(conn: Connection, t: Tables) -> int:
    """Apply missing migration steps inside the caller's transaction; return the new version."""
    version = current_version(conn, t)
    if version > len(MIGRATIONS):
        raise ConfigError(
            f"database schema version {version} is newer than this trustbox ({len(MIGRATIONS)}); upgrade trustbox"
        )
    for step in MIGRATIONS[version:]:
        step(conn, t)
    if version == 0:
        conn.execute(t.schema_version.insert().values(version=len(MIGRATIONS)))
    elif version != len(MIGRATIONS):
        conn.execute(t.schema_version.update().values(version=len(MIGRATIONS)))
    return len(MIGRATIONS)

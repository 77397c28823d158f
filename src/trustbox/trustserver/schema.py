"""Database schema of the trust server and its ordered migrations.

Tables (all names carry the configured prefix):

* ``schema_version`` — one row, the number of migration steps applied;
* ``tuf_files`` — every stored version of every role of every GUN, exact bytes, unique on
  (gun, role, version) so that of two concurrent updates only one can win;
* ``changefeed`` — one row per stored timestamp (``update``) or deleted GUN (``deletion``);
* ``server_keys`` — server-held timestamp/snapshot keys, private part encrypted (see
  :mod:`trustbox.trustserver.keys_at_rest`);
* ``server_meta`` — small named values (key-encryption salt and check value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
)

from trustbox.errors import ConfigError

# BIGINT on PostgreSQL, INTEGER (rowid alias, autoincrement) on SQLite.
_ID = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class Tables:
    """The tables of one schema instance (one table prefix)."""

    metadata: MetaData
    schema_version: Table
    files: Table
    changefeed: Table
    keys: Table
    meta: Table


def make_tables(prefix: str = "") -> Tables:
    """Build the table objects for ``prefix``."""
    md = MetaData()
    schema_version = Table(f"{prefix}schema_version", md, Column("version", Integer, nullable=False))
    files = Table(
        f"{prefix}tuf_files",
        md,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("gun", String(255), nullable=False),
        Column("role", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("data", LargeBinary, nullable=False),
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
    return Tables(md, schema_version, files, changefeed, keys, meta)


def _step1(conn: Connection, t: Tables) -> None:
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

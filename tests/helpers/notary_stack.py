"""A real notary-server + notary-signer 0.7 deployment on MariaDB or PostgreSQL, for the take-over
tests and the bench: a fresh database, notary's table layout, one ``server.json`` and one
``signer.json``, and starting/stopping notary-server, notary-signer or ``trustbox serve trust``
on the same files.

The tables are created with DDL written here to match notary's migrations (Debian's notary
package ships the binaries only, and notary-server 0.7 does not create its tables itself).

Plain Python (no pytest), so ``bench/`` can use it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.certs import write_ca_and_server_cert
from tests.helpers.net import free_port, stop_process, wait_http

NOTARY_SERVER = "notary-server"
NOTARY_SIGNER = "notary-signer"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}
PG_USERS = ("postgres", "root")
ALIAS = "takeover"
HEALTH = "/_notary_server/health"

_MYSQL_DDL = (
    """CREATE TABLE tuf_files (
        id INT(11) NOT NULL AUTO_INCREMENT, created_at TIMESTAMP NULL DEFAULT NULL,
        updated_at TIMESTAMP NULL DEFAULT NULL, deleted_at TIMESTAMP NULL DEFAULT NULL,
        gun VARCHAR(255) NOT NULL, role VARCHAR(255) NOT NULL, version INT(11) NOT NULL,
        data LONGBLOB NOT NULL, sha256 CHAR(64) DEFAULT NULL,
        PRIMARY KEY (id), UNIQUE KEY gun (gun, role, version), INDEX sha256 (sha256)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
    "CREATE TABLE change_category (category VARCHAR(20) NOT NULL, PRIMARY KEY (category)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "INSERT INTO change_category VALUES ('update'), ('deletion')",
    """CREATE TABLE changefeed (
        id INT(11) NOT NULL AUTO_INCREMENT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        gun VARCHAR(255) NOT NULL, version INT(11) NOT NULL, sha256 CHAR(64) DEFAULT NULL,
        category VARCHAR(20) NOT NULL DEFAULT 'update', PRIMARY KEY (id),
        FOREIGN KEY (category) REFERENCES change_category (category), INDEX idx_changefeed_gun (gun)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
    """CREATE TABLE private_keys (
        id INT(11) NOT NULL AUTO_INCREMENT, created_at TIMESTAMP NULL DEFAULT NULL,
        updated_at TIMESTAMP NULL DEFAULT NULL, deleted_at TIMESTAMP NULL DEFAULT NULL,
        key_id VARCHAR(255) NOT NULL, encryption_alg VARCHAR(255) NOT NULL, keywrap_alg VARCHAR(255) NOT NULL,
        algorithm VARCHAR(50) NOT NULL, passphrase_alias VARCHAR(50) NOT NULL, public BLOB NOT NULL,
        private BLOB NOT NULL, gun VARCHAR(255) NOT NULL, role VARCHAR(255) NOT NULL,
        last_used DATETIME NULL DEFAULT NULL,
        PRIMARY KEY (id), UNIQUE KEY key_id (key_id), UNIQUE KEY key_id_2 (key_id, algorithm)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
)
_PG_DDL = (
    """CREATE TABLE tuf_files (
        id SERIAL PRIMARY KEY, created_at TIMESTAMP NULL DEFAULT NULL, updated_at TIMESTAMP NULL DEFAULT NULL,
        deleted_at TIMESTAMP NULL DEFAULT NULL, gun VARCHAR(255) NOT NULL, role VARCHAR(255) NOT NULL,
        version INTEGER NOT NULL, data BYTEA NOT NULL, sha256 CHAR(64) DEFAULT NULL, UNIQUE (gun, role, version)
    )""",
    "CREATE INDEX tuf_files_sha256_idx ON tuf_files (sha256)",
    "CREATE TABLE change_category (category VARCHAR(20) PRIMARY KEY)",
    "INSERT INTO change_category VALUES ('update'), ('deletion')",
    """CREATE TABLE changefeed (
        id SERIAL PRIMARY KEY, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, gun VARCHAR(255) NOT NULL,
        version INTEGER NOT NULL, sha256 CHAR(64) DEFAULT NULL,
        category VARCHAR(20) NOT NULL DEFAULT 'update' REFERENCES change_category
    )""",
    "CREATE INDEX idx_changefeed_gun ON changefeed (gun)",
    """CREATE TABLE private_keys (
        id SERIAL PRIMARY KEY, created_at TIMESTAMP NULL DEFAULT NULL, updated_at TIMESTAMP NULL DEFAULT NULL,
        deleted_at TIMESTAMP NULL DEFAULT NULL, key_id VARCHAR(255) NOT NULL, encryption_alg VARCHAR(255) NOT NULL,
        keywrap_alg VARCHAR(255) NOT NULL, algorithm VARCHAR(50) NOT NULL, passphrase_alias VARCHAR(50) NOT NULL,
        public BYTEA NOT NULL, private BYTEA NOT NULL, gun VARCHAR(255) NOT NULL, role VARCHAR(255) NOT NULL,
        last_used TIMESTAMP NULL DEFAULT NULL, CONSTRAINT key_id UNIQUE (key_id),
        CONSTRAINT key_id_2 UNIQUE (key_id, algorithm)
    )""",
)


def have_notary_stack() -> str | None:
    """None when notary-server, notary-signer and notary are installed, else what is missing."""
    missing = [b for b in (NOTARY_SERVER, NOTARY_SIGNER, "notary") if shutil.which(b) is None]
    return ", ".join(missing) or None


def _pg_user() -> str | None:
    import psycopg

    for user in PG_USERS:
        try:
            psycopg.connect(f"postgresql://{user}@127.0.0.1:5432/test", connect_timeout=3).close()
            return user
        except psycopg.Error:
            continue
    return None


def database_reachable(kind: str) -> str | None:
    """None when the machine's MariaDB / PostgreSQL answers, else the reason."""
    if kind == "mariadb":
        import pymysql

        try:
            pymysql.connect(**MARIADB, database="test", connect_timeout=3).close()  # type: ignore[arg-type]
        except pymysql.Error as exc:
            return f"MariaDB on 127.0.0.1:3306 unreachable: {exc}"
        return None
    return None if _pg_user() else "PostgreSQL on 127.0.0.1:5432 unreachable"


@dataclass
class NotaryDatabase:
    """A fresh database with notary-server's and notary-signer's tables."""

    kind: str  # mariadb or postgres
    name: str
    server_url: str  # storage.db_url as notary-server takes it
    sqlalchemy_url: str

    @classmethod
    def create(cls, kind: str) -> NotaryDatabase:
        name = "tbnotary_" + secrets.token_hex(5)
        if kind == "mariadb":
            import pymysql

            conn = pymysql.connect(**MARIADB, autocommit=True)  # type: ignore[arg-type]
            try:
                with conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8")
                    cur.execute(f"USE {name}")
                    for stmt in _MYSQL_DDL:
                        cur.execute(stmt)
            finally:
                conn.close()
            return cls(kind, name, f"root@tcp(127.0.0.1:3306)/{name}?parseTime=True",
                       f"mysql://root@127.0.0.1:3306/{name}")
        import psycopg

        user = _pg_user()
        with psycopg.connect(f"postgresql://{user}@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgres://{user}@127.0.0.1:5432/{name}?sslmode=disable"
        with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            for stmt in _PG_DDL:
                conn.execute(stmt)
        return cls(kind, name, url, url)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of one query (tests look at the tables directly)."""
        if self.kind == "mariadb":
            import pymysql

            conn = pymysql.connect(**MARIADB, database=self.name)  # type: ignore[arg-type]
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return list(cur.fetchall())
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.server_url.replace("postgres://", "postgresql://")) as conn:
            return list(conn.execute(sql).fetchall())

    def drop(self) -> None:
        """Drop the database."""
        if self.kind == "mariadb":
            import pymysql

            conn = pymysql.connect(**MARIADB, autocommit=True)  # type: ignore[arg-type]
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS {self.name}")
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(f"postgresql://{_pg_user()}@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Deployment:
    """server.json + signer.json for one database; start and stop the servers on them."""

    root: Path
    db: NotaryDatabase
    port: int = 0
    signer_port: int = 0
    passphrase: str = field(default_factory=lambda: "alias-" + secrets.token_hex(8))
    procs: list[tuple[subprocess.Popen[bytes], object]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        certs = write_ca_and_server_cert(self.root / "tls", ca_name="notary take-over test CA")
        self.ca = certs.ca_cert
        self.port = self.port or free_port()
        self.signer_port = self.signer_port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        signer = {
            "server": {"grpc_addr": f"127.0.0.1:{self.signer_port}", "tls_cert_file": "tls/server.crt",
                       "tls_key_file": "tls/server.key"},
            "logging": {"level": "error"},
            "storage": {"backend": "mysql" if self.db.kind == "mariadb" else "postgres",
                        "db_url": self.db.server_url, "default_alias": ALIAS},
        }
        server = {
            "server": {"http_addr": f"127.0.0.1:{self.port}", "tls_cert_file": "tls/server.crt",
                       "tls_key_file": "tls/server.key"},
            "trust_service": {"type": "remote", "hostname": "127.0.0.1", "port": str(self.signer_port),
                              "tls_ca_file": "tls/ca.crt", "key_algorithm": "ecdsa"},
            "logging": {"level": "error"},
            "storage": {"backend": "mysql" if self.db.kind == "mariadb" else "postgres",
                        "db_url": self.db.server_url},
        }
        self.signer_config = self.root / "signer.json"
        self.server_config = self.root / "server.json"
        self.signer_config.write_text(json.dumps(signer, indent=2))
        self.server_config.write_text(json.dumps(server, indent=2))

    def env(self) -> dict[str, str]:
        """The environment of every server: the alias passphrase as notary-signer reads it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "PYTEST", "NOTARY_"))}
        env[f"NOTARY_SIGNER_{ALIAS.upper()}"] = self.passphrase
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.root, env=self.env())
        self.procs.append((proc, log))
        self.names.append(name)
        return proc

    def running(self) -> list[str]:
        """Names of the servers started and still running, in start order."""
        return [n for n, (p, _log) in zip(self.names, self.procs, strict=True) if p.poll() is None]

    def _wait(self, proc: subprocess.Popen[bytes], name: str) -> None:
        try:
            wait_http(self.url + HEALTH, proc, self.root / f"{name}.log", ca=self.ca, timeout=45)
        except RuntimeError:
            self.stop()
            raise

    def start_upstream(self) -> None:
        """notary-signer, then notary-server, on the deployment's files."""
        signer = self._spawn("notary-signer", [NOTARY_SIGNER, "-config", str(self.signer_config)])
        deadline = time.monotonic() + 30
        while True:  # the gRPC port accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.signer_port), timeout=1).close()
                break
            except OSError:
                if signer.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "notary-signer.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"notary-signer did not start:\n{log}") from None
                time.sleep(0.1)
        proc = self._spawn("notary-server", [NOTARY_SERVER, "-config", str(self.server_config)])
        self._wait(proc, "notary-server")

    def start_trustbox(self, extra: list[str] | None = None) -> None:
        """``trustbox serve trust --config server.json --notary-signer-config signer.json``."""
        argv = [sys.executable, "-m", "trustbox", "serve", "trust", "--config", str(self.server_config),
                "--notary-signer-config", str(self.signer_config), *(extra or [])]
        proc = self._spawn("trustbox", argv)
        self._wait(proc, "trustbox")

    def stop(self) -> None:
        """Stop every server this deployment started (each by its own handle)."""
        while self.procs:
            proc, log = self.procs.pop()
            self.names.pop()
            stop_process(proc)
            close: Callable[[], None] = log.close  # type: ignore[attr-defined]
            close()

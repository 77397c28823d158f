"""notary-signer's key database used in place: a :class:`~trustbox.trustserver.signer.Signer` over
its ``private_keys`` table.

notary-signer 0.7 keeps one row per key: ``key_id``, ``algorithm`` (``ed25519``/``ecdsa``),
``public`` (the key's public bytes as in notary's key JSON), ``private`` (a compact JWE, see
:mod:`trustbox.trustserver.jwe`, of notary's private bytes: the 64-byte seed+public of an ed25519
key, the SEC1 DER of an ECDSA key), ``passphrase_alias`` (whose passphrase is the environment
variable ``NOTARY_SIGNER_<ALIAS>``), ``gun``, ``role`` and ``last_used`` (set when a key first
signs; a key never used is handed out again by its ``Create``). trustbox follows the same rules,
so the timestamp and snapshot keys the existing roots name keep signing with no rotation, and
notary-signer started again reads the keys trustbox created.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    create_engine,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from trustbox.errors import ConfigError, KeyStoreError, TrustboxError, UnsupportedKeyError
from trustbox.trustserver import jwe
from trustbox.trustserver.dburl import normalize_db_url
from trustbox.tuf.keys import PrivateKey, PublicKey

ENV_PREFIX = "NOTARY_SIGNER_"
#: key types notary-signer creates (it cannot generate RSA keys)
ALGORITHMS = ("ed25519", "ecdsa")


def private_keys_table(md: MetaData) -> Table:
    """notary-signer's ``private_keys`` table (after its migrations: gun, role, last_used)."""
    return Table(
        "private_keys",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("created_at", DateTime, nullable=True),
        Column("updated_at", DateTime, nullable=True),
        Column("deleted_at", DateTime, nullable=True),
        Column("key_id", String(255), nullable=False),
        Column("encryption_alg", String(255), nullable=False),
        Column("keywrap_alg", String(255), nullable=False),
        Column("algorithm", String(50), nullable=False),
        Column("passphrase_alias", String(50), nullable=False),
        Column("public", LargeBinary, nullable=False),
        Column("private", LargeBinary, nullable=False),
        Column("gun", String(255), nullable=False),
        Column("role", String(255), nullable=False),
        Column("last_used", DateTime, nullable=True),
        UniqueConstraint("key_id", name="key_id"),
        UniqueConstraint("key_id", "algorithm", name="key_id_2"),
        mysql_charset="utf8",
        mysql_engine="InnoDB",
    )


def alias_passphrase(alias: str) -> str:
    """The passphrase of ``alias`` as notary-signer finds it: ``NOTARY_SIGNER_<ALIAS>``.

    Raises ConfigError when the variable is unset or empty.
    """
    name = ENV_PREFIX + alias.upper()
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"no passphrase for notary-signer key alias {alias!r}: {name} is not set")
    return value


def private_bytes(key: PrivateKey) -> bytes:
    """notary's private bytes of ``key``: seed+public for ed25519, SEC1/PKCS#1 DER otherwise."""
    k = key.key
    if isinstance(k, ed25519.Ed25519PrivateKey):
        seed = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())
        return seed + key.public_key().public
    return k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())


def load_private(algorithm: str, raw: bytes) -> PrivateKey:
    """A :class:`PrivateKey` from notary's private bytes for ``algorithm``.

    Raises KeyStoreError for bytes that are not such a key.
    """
    try:
        if algorithm == "ed25519":
            if len(raw) not in (32, 64):
                raise KeyStoreError("ed25519 private key must be 64 bytes")
            return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32]))
        loaded = serialization.load_der_private_key(raw, password=None)
        return PrivateKey(loaded)  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedKeyError) as exc:
        raise KeyStoreError(f"notary-signer {algorithm} private key does not load: {exc}") from exc


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class NotarySignerKeys:
    """Keys in notary-signer's database, signing in this process (a ``Signer``)."""

    def __init__(self, db_url: str, default_alias: str) -> None:
        url = normalize_db_url(db_url)
        try:
            backend = make_url(url).get_backend_name()
            if backend == "sqlite":
                self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
            else:
                self.engine = create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=3600)
        except (ArgumentError, ModuleNotFoundError) as exc:
            raise ConfigError(f"cannot use notary-signer database URL: {exc}") from exc
        if not default_alias:
            raise ConfigError("notary-signer needs a default alias", hint="set storage.default_alias in its config")
        self.default_alias = default_alias
        alias_passphrase(default_alias)  # fail at start-up, not at the first signature
        self.t = private_keys_table(MetaData())
        self._cache: dict[str, PrivateKey] = {}
        self._marked: set[str] = set()  # keys this process saw marked used
        self._lock = threading.Lock()
        try:
            with self.engine.begin() as conn:
                self.t.create(conn, checkfirst=True)
        except SQLAlchemyError as exc:
            raise ConfigError(f"notary-signer database is not usable: {exc.__class__.__name__}") from exc

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def _live(self) -> object:
        return self.t.c.deleted_at.is_(None)

    def _row_public(self, algorithm: str, public: bytes) -> PublicKey:
        return PublicKey(algorithm, bytes(public))

    def create_key(self, gun: str, role: str, algorithm: str) -> PublicKey:
        """notary-signer's ``Create``: a never-used key of this GUN, role and algorithm if there is
        one, else a new key stored encrypted under the default alias.

        Raises UnsupportedKeyError for RSA (notary-signer cannot create those).
        """
        if algorithm not in ALGORITHMS:
            raise UnsupportedKeyError(f"notary-signer keys are ed25519 or ecdsa, not {algorithm}")
        unused = self._unused(gun, role, algorithm)
        if unused is not None:
            return unused
        key = PrivateKey.generate(algorithm)
        pub = key.public_key()
        sealed = jwe.encrypt(private_bytes(key), alias_passphrase(self.default_alias))
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(self.t.insert().values(
                created_at=now, updated_at=now, key_id=pub.keyid, encryption_alg=jwe.ENC, keywrap_alg=jwe.ALG,
                algorithm=algorithm, passphrase_alias=self.default_alias, public=pub.public,
                private=sealed.encode("ascii"), gun=gun, role=role,
            ))
        with self._lock:
            self._cache[pub.keyid] = key
        return pub

    def _unused(self, gun: str, role: str, algorithm: str) -> PublicKey | None:
        t = self.t
        q = (select(t.c.algorithm, t.c.public)
             .where(and_(t.c.role == role, t.c.gun == gun, t.c.algorithm == algorithm, t.c.last_used.is_(None),
                         t.c.deleted_at.is_(None)))
             .order_by(t.c.key_id).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return self._row_public(row[0], row[1]) if row else None

    def public_key(self, gun: str, keyid: str) -> PublicKey | None:
        """The public key ``keyid`` if notary-signer's table holds it for ``gun`` (or for no GUN)."""
        t = self.t
        q = select(t.c.algorithm, t.c.public, t.c.gun).where(and_(t.c.key_id == keyid, t.c.deleted_at.is_(None)))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None or row[2] not in (gun, ""):
            return None
        return self._row_public(row[0], row[1])

    def latest_key(self, gun: str, role: str) -> PublicKey | None:
        """The key ``create_key`` would hand out again (never used), else the newest of this role."""
        t = self.t
        for algorithm in ALGORITHMS:
            unused = self._unused(gun, role, algorithm)
            if unused is not None:
                return unused
        q = (select(t.c.algorithm, t.c.public)
             .where(and_(t.c.gun == gun, t.c.role == role, t.c.deleted_at.is_(None)))
             .order_by(t.c.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return self._row_public(row[0], row[1]) if row else None

    def _private(self, gun: str, keyid: str) -> PrivateKey:
        with self._lock:
            cached = self._cache.get(keyid)
        if cached is not None:
            return cached
        t = self.t
        q = select(t.c.algorithm, t.c.private, t.c.passphrase_alias, t.c.gun).where(
            and_(t.c.key_id == keyid, t.c.deleted_at.is_(None)))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None or row[3] not in (gun, ""):
            raise KeyStoreError(f"notary-signer holds no key {keyid[:12]} for {gun}")
        try:
            plain = jwe.decrypt(bytes(row[1]).decode("ascii"), alias_passphrase(row[2]))
        except UnicodeDecodeError as exc:
            raise KeyStoreError(f"notary-signer key {keyid[:12]} is not a JWE") from exc
        except TrustboxError as exc:
            raise KeyStoreError(f"notary-signer key {keyid[:12]}: {exc.message}") from exc
        key = load_private(row[0], plain)
        if key.keyid != keyid:
            raise KeyStoreError(f"notary-signer key {keyid[:12]} does not match its ID")
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[keyid] = key
        return key

    def sign(self, gun: str, keyid: str, message: bytes) -> tuple[str, bytes]:
        """Sign with a key of notary-signer's table and mark it used, as notary-signer does."""
        key = self._private(gun, keyid)
        signature = key.sign(message)
        if keyid not in self._marked:
            with self.engine.begin() as conn:
                conn.execute(update(self.t).where(and_(self.t.c.key_id == keyid, self.t.c.last_used.is_(None)))
                             .values(last_used=_now()))
            with self._lock:
                self._marked.add(keyid)
        return key.method, signature

"""Encryption of server-held private keys in the database.

Scheme: a 256-bit master key is derived once at start-up with scrypt (N=2^15, r=8, p=1) from
the configured passphrase and a random 16-byte salt stored in the database
(``server_meta.kdf_salt``). Every private key is stored as PKCS#8 DER encrypted with
AES-256-GCM under that master key: ``b"TBK1" || nonce(12) || ciphertext+tag``; the associated
data binds the ciphertext to its GUN, role and key ID, so a row copied elsewhere does not decrypt.
A check value (``server_meta.kdf_check``) lets the server refuse to start with a wrong passphrase.

Where the passphrase comes from (first match): ``--key-passphrase-file`` /
``TRUSTBOX_KEY_PASSPHRASE_FILE``, ``TRUSTBOX_KEY_PASSPHRASE`` / the config file; else, for a
SQLite file database, a random passphrase kept in ``<db file>.key`` (created 0600 on first
start, whole and durably, by exactly one of the server processes starting together); else ``--insecure-dev-keys`` (a fixed, public passphrase); otherwise start-up fails.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustbox.atomicfile import atomic_create
from trustbox.errors import ConfigError, KeyStoreError, PassphraseError
from trustbox.tuf.keys import PrivateKey

_MAGIC = b"TBK1"
_CHECK_PLAIN = b"trustbox server key check v1"
SCRYPT_N = 2**15
INSECURE_DEV_PASSPHRASE = "trustbox-insecure-dev-keys"


def derive_master_key(passphrase: str, salt: bytes) -> bytes:
    """The AES-256 key for ``passphrase`` and ``salt`` (scrypt)."""
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=SCRYPT_N, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)


class KeyCipher:
    """Seals and opens private keys with the master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(master_key)

    def _seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plain, aad)

    def _open(self, blob: bytes, aad: bytes) -> bytes:
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 12 + 16:
            raise KeyStoreError("stored server key has an unknown format")
        nonce = blob[4:16]
        try:
            return self._aead.decrypt(nonce, blob[16:], aad)
        except InvalidTag as exc:
            raise PassphraseError("stored server key does not decrypt (wrong key passphrase?)") from exc

    @staticmethod
    def _aad(gun: str, role: str, keyid: str) -> bytes:
        return b"\x00".join(s.encode("utf-8") for s in (gun, role, keyid))

    def seal_key(self, key: PrivateKey, gun: str, role: str) -> bytes:
        """Encrypt ``key`` for storage."""
        der = key.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return self._seal(der, self._aad(gun, role, key.keyid))

    def open_key(self, blob: bytes, gun: str, role: str, keyid: str) -> PrivateKey:
        """Decrypt a stored key and check it is the key ``keyid``."""
        der = self._open(blob, self._aad(gun, role, keyid))
        loaded = serialization.load_der_private_key(der, password=None)
        key = PrivateKey(loaded)  # type: ignore[arg-type]
        if key.keyid != keyid:
            raise KeyStoreError(f"stored server key {keyid[:12]} does not match its ID")
        return key

    def make_check(self) -> bytes:
        """A check value proving later that the same passphrase is used."""
        return self._seal(_CHECK_PLAIN, b"check")

    def verify_check(self, blob: bytes) -> None:
        """Raise PassphraseError unless ``blob`` was made with this master key."""
        if self._open(blob, b"check") != _CHECK_PLAIN:
            raise PassphraseError("key passphrase check failed")


def resolve_passphrase(
    *,
    passphrase: str | None,
    passphrase_file: str | None,
    sqlite_file: str | None,
    insecure_dev_keys: bool,
    in_memory: bool = False,
) -> str:
    """Pick the key passphrase following the documented order (see module docstring)."""
    if passphrase_file:
        try:
            value = Path(passphrase_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read key passphrase file {passphrase_file}: {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"key passphrase file {passphrase_file} is empty")
        return value
    if passphrase:
        return passphrase
    if sqlite_file is not None:
        key_file = Path(sqlite_file + ".key")
        if not key_file.exists():  # the first server process to get here creates it, whole
            atomic_create(key_file, (secrets.token_urlsafe(32) + "\n").encode())
        try:
            value = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read key passphrase file {key_file}: {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"key passphrase file {key_file} is empty")
        return value
    if in_memory:
        return secrets.token_urlsafe(32)
    if insecure_dev_keys:
        return INSECURE_DEV_PASSPHRASE
    raise ConfigError(
        "no key passphrase for the server-held signing keys",
        hint="give --key-passphrase-file FILE or TRUSTBOX_KEY_PASSPHRASE (or --insecure-dev-keys for tests)",
    )

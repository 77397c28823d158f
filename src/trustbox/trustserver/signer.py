"""The signing service behind the trust server: create keys, look up public keys, sign.

:class:`LocalSigner` keeps keys in the server database, encrypted at rest
(:mod:`trustbox.trustserver.keys_at_rest`), and signs in-process. Anything with the same three
methods (the :class:`Signer` protocol) can replace it, e.g. a client of a separate signing service.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol

from trustbox.errors import KeyStoreError
from trustbox.trustserver.keys_at_rest import KeyCipher, derive_master_key
from trustbox.trustserver.storage import KeyRecord, Storage
from trustbox.tuf.keys import PrivateKey, PublicKey


class Signer(Protocol):
    """What the trust server needs from a signing service."""

    def create_key(self, gun: str, role: str, algorithm: str) -> PublicKey:
        """Create and keep a new key for ``role`` of ``gun``; return its public part."""
        ...

    def public_key(self, gun: str, keyid: str) -> PublicKey | None:
        """The public key ``keyid`` if this service holds its private part for ``gun``."""
        ...

    def latest_key(self, gun: str, role: str) -> PublicKey | None:
        """The newest key created for ``role`` of ``gun``, if any."""
        ...

    def sign(self, gun: str, keyid: str, message: bytes) -> tuple[str, bytes]:
        """Sign ``message`` with key ``keyid``; return (method, signature)."""
        ...


def _public_from_record(rec: KeyRecord) -> PublicKey:
    return PublicKey(rec.keytype, rec.public)


class LocalSigner:
    """Keys in the database (encrypted), signing in this process."""

    def __init__(self, storage: Storage, passphrase: str) -> None:
        self.storage = storage
        salt = storage.put_meta_if_absent("kdf_salt", secrets.token_bytes(16))
        self.cipher = KeyCipher(derive_master_key(passphrase, salt))
        check = storage.put_meta_if_absent("kdf_check", self.cipher.make_check())
        self.cipher.verify_check(check)
        self._cache: dict[tuple[str, str], PrivateKey] = {}
        self._lock = threading.Lock()

    def create_key(self, gun: str, role: str, algorithm: str) -> PublicKey:
        """Generate a key, store it encrypted, return the public key."""
        key = PrivateKey.generate(algorithm)
        pub = key.public_key()
        rec = KeyRecord(
            gun=gun,
            role=role,
            keyid=pub.keyid,
            keytype=pub.keytype,
            public=pub.public,
            private_enc=self.cipher.seal_key(key, gun, role),
            created_ns=time.time_ns(),
        )
        self.storage.add_key(rec)
        with self._lock:
            self._cache[(gun, pub.keyid)] = key
        return pub

    def public_key(self, gun: str, keyid: str) -> PublicKey | None:
        """The public key ``keyid`` held for ``gun``."""
        with self._lock:
            cached = self._cache.get((gun, keyid))
        if cached is not None:
            return cached.public_key()
        rec = self.storage.get_key(gun, keyid)
        return _public_from_record(rec) if rec else None

    def latest_key(self, gun: str, role: str) -> PublicKey | None:
        """The newest key created for ``role`` of ``gun``."""
        rec = self.storage.latest_key(gun, role)
        return _public_from_record(rec) if rec else None

    def _private(self, gun: str, keyid: str) -> PrivateKey:
        with self._lock:
            cached = self._cache.get((gun, keyid))
        if cached is not None:
            return cached
        rec = self.storage.get_key(gun, keyid)
        if rec is None:
            raise KeyStoreError(f"the server holds no key {keyid[:12]} for {gun}")
        key = self.cipher.open_key(rec.private_enc, rec.gun, rec.role, rec.keyid)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[(gun, keyid)] = key
        return key

    def sign(self, gun: str, keyid: str, message: bytes) -> tuple[str, bytes]:
        """Sign with a held key."""
        key = self._private(gun, keyid)
        return key.method, key.sign(message)

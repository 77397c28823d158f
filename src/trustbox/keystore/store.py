"""The private key directory of a notary/docker trust dir: ``<trust dir>/private/<keyid>.key``.

Files are written 0600 in 0700 directories, atomically (temp file, fsync, rename). The legacy
layouts ``private/root_keys/<keyid>_root.key`` and ``private/tuf_keys/<gun>/<keyid>_<role>.key``
are read as well (never written or migrated).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from trustbox.atomicfile import atomic_write
from trustbox.errors import FormatError, KeyStoreError, PassphraseError, TrustboxError
from trustbox.keystore.passphrase import (
    BASE_ROLES,
    DEFAULT_MAX_ATTEMPTS,
    ROOT,
    PassphraseRetriever,
    PassphraseUnavailable,
    chain_retriever,
    short_id,
)
from trustbox.keystore.pkcs8 import (
    ENCRYPTED_PRIVATE_KEY,
    KeyFileInfo,
    decode_block,
    decode_key_file,
    encode_key_file,
    key_file_info,
)
from trustbox.keystore.pkcs11 import PinSource, Pkcs11URI, TokenKey, env_pin, open_token_key
from trustbox.tuf.keys import ECDSA, PrivateKey, PublicKey, Signer
from trustbox.tuf.pem import PEMBlock, encode_pem_block, parse_pem_blocks

log = logging.getLogger(__name__)

PRIVATE_DIR = "private"
#: records of keys on PKCS#11 tokens (URI, role, gun), one per key ID
TOKEN_DIR = "pkcs11"
ROOT_KEYS_SUBDIR = "root_keys"
NON_ROOT_KEYS_SUBDIR = "tuf_keys"
KEY_EXTENSION = ".key"
FILE_MODE = 0o600
NOTARY_DEFAULT_IMPORT_ROLE = "delegation"
DOCKER_DEFAULT_KEY_NAME = "signer"

_VALID_DOCKER_KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_SAFE_FILE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
_GUN_BOUND_ROLES = ("targets", "snapshot", "timestamp")


class KeyInfo(NamedTuple):
    """A key file's identity: key ID (= file name), role and GUN (None when not GUN-bound)."""

    keyid: str
    role: str
    gun: str | None


def _gun_for_role(role: str, gun: str | None) -> str | None:
    """Notary keeps ``gun`` only for targets/snapshot/timestamp keys."""
    return gun or None if role in _GUN_BOUND_ROLES else None


class KeyStore:
    """Private keys under ``<trust_dir>/private``, decrypted through a passphrase retriever."""

    def __init__(
        self,
        trust_dir: str | os.PathLike[str],
        passphrase_retriever: PassphraseRetriever | None = None,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pin_source: PinSource | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.trust_dir = Path(trust_dir)
        self.private_dir = self.trust_dir / PRIVATE_DIR
        self.token_dir = self.trust_dir / TOKEN_DIR
        self.environ = environ
        self.pin_source: PinSource = pin_source or env_pin(environ)
        self._tokens: dict[str, TokenKey] = {}
        self.retriever: PassphraseRetriever = passphrase_retriever or chain_retriever()
        self.max_attempts = max_attempts
        self._cache: dict[str, tuple[PrivateKey, str]] = {}
        self._lock = threading.RLock()

    # -- scanning ---------------------------------------------------------------------------

    def _scan(self) -> dict[str, tuple[KeyInfo, list[Path]]]:
        """Every key file: keyid -> (info, files). The 0.4+ layout wins over legacy files."""
        found: dict[str, tuple[KeyInfo, list[Path]]] = {}

        def add(path: Path, keyid: str, role_from_name: str | None, gun_from_dir: str | None) -> None:
            try:
                info = key_file_info(path.read_bytes())
            except (OSError, FormatError) as exc:
                log.warning("skipping unreadable key file %s: %s", path, exc)
                return
            role = role_from_name or info.role
            gun = info.gun or gun_from_dir
            if keyid in found:
                found[keyid][1].append(path)
                return
            found[keyid] = (KeyInfo(keyid, role, gun), [path])

        if self.private_dir.is_dir():
            for path in sorted(self.private_dir.glob("*" + KEY_EXTENSION)):
                if path.is_file():
                    add(path, path.name[: -len(KEY_EXTENSION)], None, None)
            legacy_root = self.private_dir / ROOT_KEYS_SUBDIR
            if legacy_root.is_dir():
                for path in sorted(legacy_root.glob("*" + KEY_EXTENSION)):
                    keyid, _, role = path.name[: -len(KEY_EXTENSION)].partition("_")
                    add(path, keyid, role or None, None)
            legacy = self.private_dir / NON_ROOT_KEYS_SUBDIR
            if legacy.is_dir():
                for path in sorted(legacy.rglob("*" + KEY_EXTENSION)):
                    keyid, _, role = path.name[: -len(KEY_EXTENSION)].partition("_")
                    gun = path.parent.relative_to(legacy).as_posix()
                    add(path, keyid, role or None, None if gun == "." else gun)
        return found

    def _token_records(self) -> dict[str, tuple[KeyInfo, str]]:
        """Keys on PKCS#11 tokens this trust dir knows: keyid -> (info, URI), from
        ``<trust dir>/pkcs11/<keyid>.json`` (unreadable records are skipped with a warning)."""
        out: dict[str, tuple[KeyInfo, str]] = {}
        if not self.token_dir.is_dir():
            return out
        for path in sorted(self.token_dir.glob("*.json")):
            keyid = path.name[: -len(".json")]
            try:
                rec = json.loads(path.read_text())
                uri, role = str(rec["uri"]), str(rec["role"])
                gun = rec.get("gun")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable token key record %s: %s", path, exc)
                continue
            out[keyid] = (KeyInfo(keyid, role, str(gun) if gun else None), uri)
        return out

    def list_keys(self) -> list[KeyInfo]:
        """Every stored key as (keyid, role, gun), read from headers without decrypting; keys on
        PKCS#11 tokens included."""
        with self._lock:
            found = {info.keyid: info for info, _ in self._scan().values()}
            for keyid, (info, _) in self._token_records().items():
                found.setdefault(keyid, info)
            return sorted(found.values())

    def find_keys(self, role: str | None = None, gun: str | None = None) -> list[KeyInfo]:
        """Stored keys with the given role and/or GUN (None matches anything)."""
        return [
            k for k in self.list_keys() if (role is None or k.role == role) and (gun is None or k.gun == gun)
        ]

    def key_info(self, keyid: str) -> KeyInfo:
        """(keyid, role, gun) of one stored key; KeyStoreError if absent."""
        entry = self._scan().get(keyid)
        if entry is None:
            token = self._token_records().get(keyid)
            if token is not None:
                return token[0]
            raise KeyStoreError(f"private key {keyid} not found in {self.private_dir}")
        return entry[0]

    def has_key(self, keyid: str) -> bool:
        """Whether a private key with this canonical key ID is stored."""
        return keyid in self._cache or keyid in self._tokens or keyid in self._scan() or keyid in self._token_records()

    def key_path(self, keyid: str) -> Path:
        """The file a key with this ID is (or would be) written to."""
        if not _SAFE_FILE_ID.match(keyid):
            raise KeyStoreError(f"invalid key ID {keyid!r}")
        return self.private_dir / (keyid + KEY_EXTENSION)

    # -- reading ------------------------------------------------------------------------------

    def _decrypt(self, data: bytes, keyid: str, alias: str, what: str) -> PrivateKey:
        info = key_file_info(data)
        if not info.encrypted:
            return decode_key_file(data)[0]
        for attempt in range(self.max_attempts):
            try:
                passphrase = self.retriever(keyid, alias, False, attempt)
            except PassphraseUnavailable as exc:
                raise PassphraseError(f"no passphrase available for {what}", hint=exc.message) from exc
            try:
                return decode_key_file(data, passphrase)[0]
            except PassphraseError:
                log.debug("wrong passphrase for %s (attempt %d)", what, attempt + 1)
        raise PassphraseError(
            f"incorrect passphrase for {what}: giving up after {self.max_attempts} attempts"
        )

    def get_key(self, keyid: str) -> tuple[PrivateKey, str]:
        """Decrypt a stored key: (PrivateKey, role). KeyStoreError/PassphraseError on failure."""
        with self._lock:
            cached = self._cache.get(keyid)
            if cached is not None:
                return cached
            entry = self._scan().get(keyid)
            if entry is None:
                raise KeyStoreError(f"private key {keyid} not found in {self.private_dir}")
            info, paths = entry
            try:
                data = paths[0].read_bytes()
            except OSError as exc:
                raise KeyStoreError(f"cannot read private key file {paths[0]}: {exc.strerror}") from exc
            what = f"{info.role or 'private'} key with ID {short_id(keyid) or keyid}"
            key = self._decrypt(data, keyid, info.role, what)
            if key.keyid != keyid:
                raise KeyStoreError(f"private key file {paths[0]} holds key {key.keyid}, not {keyid}")
            self._cache[keyid] = (key, info.role)
            return key, info.role

    # -- hardware tokens --------------------------------------------------------------------

    def add_token_key(self, uri: str, role: str, gun: str | None = None, *, create: bool = False) -> TokenKey:
        """Record the PKCS#11 key ``uri`` names as a key of ``role`` (made on the token first when
        ``create`` and absent): ``<trust dir>/pkcs11/<keyid>.json`` holds the URI (never the PIN).
        Raises FormatError, ConfigError, KeyStoreError, PassphraseError."""
        if not role:
            raise KeyStoreError("a key needs a role")
        key = open_token_key(uri, self.pin_source, self.environ, create=create)
        gun = _gun_for_role(role, gun)
        record = {"uri": str(Pkcs11URI.parse(uri)), "role": role, "gun": gun}
        with self._lock:
            atomic_write(self.token_dir / (key.keyid + ".json"), json.dumps(record, indent=1).encode() + b"\n")
            self._tokens[key.keyid] = key
        return key

    def get_signer(self, keyid: str) -> tuple[Signer, str]:
        """The signer of a stored key: a PKCS#11 token key if one is recorded, else the decrypted
        key file: (signer, role). Raises KeyStoreError, PassphraseError (PIN or passphrase),
        ConfigError (PKCS#11 module)."""
        with self._lock:
            token = self._tokens.get(keyid)
            record = self._token_records().get(keyid)
            if token is None and record is not None:
                token = open_token_key(record[1], self.pin_source, self.environ)
                if token.keyid != keyid:
                    raise KeyStoreError(f"PKCS#11 key {record[1]} holds key {token.keyid}, not {keyid}")
                self._tokens[keyid] = token
            if token is not None:
                role = record[0].role if record is not None else ""
                return token, role
        return self.get_key(keyid)

    def get_signer_for_public(self, public: PublicKey) -> tuple[Signer, str]:
        """The signer of a public key from metadata (file or token); x509 (root certificate) keys
        are looked up by their canonical key ID (``PublicKey.canonical_keyid``)."""
        canonical = public.canonical()
        key, role = self.get_signer(canonical.keyid)
        if key.public_key() != canonical:
            raise KeyStoreError(f"private key {canonical.keyid} does not match public key {public.keyid}")
        return key, role

    def get_key_for_public(self, public: PublicKey) -> tuple[PrivateKey, str]:
        """The private key (file) of a public key from metadata; x509 (root certificate) keys are
        looked up by their canonical key ID (``PublicKey.canonical_keyid``)."""
        canonical = public.canonical()
        key, role = self.get_key(canonical.keyid)
        if key.public_key() != canonical:
            raise KeyStoreError(f"private key {canonical.keyid} does not match public key {public.keyid}")
        return key, role

    def canonical_id_for(self, public: PublicKey) -> str | None:
        """The canonical key ID of ``public`` if its private key is stored, else None."""
        cid = public.canonical_keyid
        return cid if self.has_key(cid) else None

    def signing_keys(
        self, keys: Mapping[str, PublicKey], keyids: Iterable[str]
    ) -> list[tuple[str, Signer]]:
        """For role key IDs (as listed in root/targets, possibly certificate IDs): the
        (listed keyid, signer) pairs whose private key is stored here (file or token)."""
        out: list[tuple[str, Signer]] = []
        for kid in keyids:
            pub = keys.get(kid)
            if pub is None:
                continue
            try:
                if self.canonical_id_for(pub) is None:
                    continue
            except TrustboxError:
                continue
            out.append((kid, self.get_signer_for_public(pub)[0]))
        return out

    # -- writing ------------------------------------------------------------------------------

    def _new_passphrase(self, keyid: str, role: str) -> str:
        try:
            return self.retriever(keyid, role, True, 0)
        except PassphraseUnavailable as exc:
            raise PassphraseError(
                f"no passphrase available for new {role} key with ID {short_id(keyid) or keyid}",
                hint=exc.message,
            ) from exc

    def add_key(self, key: PrivateKey, role: str, gun: str | None = None) -> KeyInfo:
        """Encrypt ``key`` with a new passphrase from the retriever and store it (role/gun headers)."""
        if not role:
            raise KeyStoreError("a key needs a role")
        with self._lock:
            keyid = key.keyid
            gun = _gun_for_role(role, gun)
            passphrase = self._new_passphrase(keyid, role)
            data = encode_key_file(key, passphrase, role, gun)
            atomic_write(self.key_path(keyid), data)
            self._cache[keyid] = (key, role)
            return KeyInfo(keyid, role, gun)

    def generate_key(self, role: str, gun: str | None = None, keytype: str = ECDSA) -> PrivateKey:
        """Generate a new key (ECDSA P-256 by default) and store it."""
        key = PrivateKey.generate(keytype)
        self.add_key(key, role, gun)
        return key

    def remove_key(self, keyid: str) -> None:
        """Delete every file of a key (current and legacy layouts)."""
        with self._lock:
            self._cache.pop(keyid, None)
            entry = self._scan().get(keyid)
            if entry is None:
                raise KeyStoreError(f"private key {keyid} not found in {self.private_dir}")
            for path in entry[1]:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass

    def export_key(self, keyid: str) -> bytes:
        """The stored key file with a ``path: <keyid>`` header, as ``notary key export`` writes it."""
        entry = self._scan().get(keyid)
        if entry is None:
            raise KeyStoreError(f"private key {keyid} not found in {self.private_dir}")
        out = b""
        for block in parse_pem_blocks(entry[1][0].read_bytes()):
            block.headers["path"] = keyid
            out += encode_pem_block(block)
        return out

    # -- import ------------------------------------------------------------------------------

    def _import_block(self, block: PEMBlock, fallback_role: str, fallback_gun: str | None) -> KeyInfo:
        headers = dict(block.headers)
        raw_path = headers.pop("path", "")
        if raw_path and "/" in raw_path:
            parent, _, base = raw_path.rpartition("/")
            if parent.startswith(NON_ROOT_KEYS_SUBDIR):
                legacy_gun = parent[len(NON_ROOT_KEYS_SUBDIR) :].strip("/")
                if legacy_gun:
                    headers["gun"] = legacy_gun
            raw_path = base
        if not headers.get("gun") and fallback_gun:
            headers["gun"] = fallback_gun
        role = headers.get("role") or fallback_role
        headers["role"] = role
        if role in _GUN_BOUND_ROLES:
            if not headers.get("gun"):
                raise KeyStoreError(
                    f"cannot import a {role} key without a gun: don't know what gun it belongs to"
                )
        else:
            headers.pop("gun", None)
        gun = headers.get("gun")
        encrypted = block.type == ENCRYPTED_PRIVATE_KEY or "DEK-Info" in headers
        if not encrypted:
            key = decode_block(block)
            keyid = key.keyid
            data = encode_key_file(key, self._new_passphrase(keyid, role), role, gun)
        else:
            if not raw_path:
                raise KeyStoreError(
                    "Invalid key generated, key may be encrypted and does not contain path header"
                )
            keyid = raw_path
            data = encode_pem_block(PEMBlock(block.type, block.der, headers))
        with self._lock:
            atomic_write(self.key_path(keyid), data)
            self._cache.pop(keyid, None)
        return KeyInfo(keyid, role, gun)

    def import_keys(self, data: bytes, role: str | None = None, gun: str | None = None) -> list[KeyInfo]:
        """Like ``notary key import``: each PEM block is stored under its ``path:`` header (key ID)
        or, if unencrypted, under its computed key ID, re-encrypted with a new passphrase.
        ``role``/``gun`` are fallbacks for blocks without those headers (role default "delegation")."""
        blocks = parse_pem_blocks(data)
        if not blocks:
            raise FormatError("no PEM blocks found in key import data")
        imported = []
        errors = []
        for block in blocks:
            try:
                key_file_info(encode_pem_block(block))
                imported.append(self._import_block(block, role or NOTARY_DEFAULT_IMPORT_ROLE, gun))
            except (FormatError, KeyStoreError) as exc:
                if isinstance(exc, PassphraseError):
                    raise
                errors.append(exc.message)
        if errors:
            raise KeyStoreError(f"failed to import all keys: {', '.join(errors)}")
        return imported

    def load_docker_key(self, path: str | os.PathLike[str], name: str = DOCKER_DEFAULT_KEY_NAME) -> KeyInfo:
        """Like ``docker trust key load FILE --name NAME``: check permissions, decrypt if needed,
        store re-encrypted with role = NAME."""
        path = Path(path)
        if not _VALID_DOCKER_KEY_NAME.match(name):
            raise KeyStoreError(
                f'key name "{name}" must start with lowercase alphanumeric characters and can '
                'include "-" or "_" after the first character'
            )
        try:
            st = path.stat()
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise KeyStoreError(f"private key file {path} must not be readable or writable by others")
            data = path.read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"refusing to load key from {path}: {exc.strerror}") from exc
        try:
            info: KeyFileInfo = key_file_info(data)
        except FormatError as exc:
            raise KeyStoreError(
                f"provided file {path} is not a supported private key - to add a signer's public key "
                "use docker trust signer add"
            ) from exc
        if info.encrypted and info.path is None:
            try:
                key = self._decrypt(data, "", "encrypted", f"key file {path}")
            except FormatError as exc:
                raise KeyStoreError(f"cannot load key from provided file {path}: {exc.message}") from exc
            role = info.role or name
            if role in _GUN_BOUND_ROLES and not info.gun:
                raise KeyStoreError(f"cannot import a {role} key without a gun")
            return self.add_key(key, role, info.gun)
        try:
            infos = self.import_keys(data, role=name)
        except FormatError as exc:
            raise KeyStoreError(f"error importing key from {path}: {exc.message}") from exc
        return infos[0]


def read_key_file(
    path: str | os.PathLike[str], passphrase: str | None = None
) -> tuple[PrivateKey, dict[str, str]]:
    """Read and decode one key file from disk."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read private key file {path}: {exc.strerror}") from exc
    return decode_key_file(data, passphrase)


__all__ = [
    "BASE_ROLES",
    "ROOT",
    "KeyInfo",
    "KeyStore",
    "atomic_write",
    "read_key_file",
]

"""Keys on PKCS#11 tokens (hardware security modules, smart cards, SoftHSM2), named by RFC 7512 URIs.

``pkcs11:token=<label>;object=<label>`` (``id=`` may stand for ``object=``; ``module-path`` and
``pin-value`` query attributes are honoured). A :class:`TokenKey` is a :class:`trustbox.tuf.keys.Signer`
like a key file's :class:`~trustbox.tuf.keys.PrivateKey`: ECDSA P-256, signatures as notary encodes
them (raw ``r || s`` over SHA-256). The private key never leaves the token.

The module is ``module-path`` from the URI, else ``$TRUSTBOX_PKCS11_MODULE``, else
:data:`DEFAULT_MODULE` (SoftHSM2 on Debian). The user PIN is ``pin-value`` from the URI, else
``$TRUSTBOX_PKCS11_PIN``, else a prompt on the terminal (as notary asked for a YubiKey's PIN); a
wrong PIN is one attempt, never retried (tokens lock after a few).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import getpass
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11err

from trustbox.errors import ConfigError, FormatError, KeyStoreError, PassphraseError
from trustbox.tuf.keys import METHOD_ECDSA, PublicKey

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "TRUSTBOX_PKCS11_MODULE"
PIN_ENV = "TRUSTBOX_PKCS11_PIN"
SCHEME = "pkcs11:"

#: DER of the named curve prime256v1 (secp256r1), the EC_PARAMS of the keys made here
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")

_PATH_ATTRS = ("token", "object", "id", "serial", "manufacturer", "model", "type", "library-manufacturer",
               "library-description", "library-version", "slot-description", "slot-manufacturer", "slot-id")
_QUERY_ATTRS = ("module-path", "module-name", "pin-value", "pin-source")

PinSource = Callable[[str], str]


class NoTokenKeyError(KeyStoreError):
    """The token holds no key the URI names."""


def is_pkcs11_uri(text: str) -> bool:
    """Whether ``text`` names a token object (``pkcs11:...``)."""
    return text.lower().startswith(SCHEME)


@dataclass(frozen=True)
class Pkcs11URI:
    """The parts of an RFC 7512 URI this store uses."""

    token: str
    object: str | None = None
    id: bytes | None = None
    module_path: str | None = None
    pin_value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11URI:
        """Parse a URI; FormatError when it is not one or names no token or object."""
        if not is_pkcs11_uri(text):
            raise FormatError(f"not a PKCS#11 URI (pkcs11:token=...;object=...): {text!r}")
        body = text[len(SCHEME):]
        path, _, query = body.partition("?")
        attrs: dict[str, str] = {}
        key_id = None
        for part in (p for p in path.split(";") if p):
            name, eq, value = part.partition("=")
            if not eq or name not in _PATH_ATTRS:
                raise FormatError(f"PKCS#11 URI {text!r}: unknown or malformed attribute {part!r}")
            attrs[name] = unquote(value)
            if name == "id":
                key_id = unquote_to_bytes(value)
        for part in (p for p in query.split("&") if p):
            name, eq, value = part.partition("=")
            if not eq or name not in _QUERY_ATTRS:
                raise FormatError(f"PKCS#11 URI {text!r}: unknown or malformed query attribute {part!r}")
            attrs[name] = unquote(value)
        if not attrs.get("token"):
            raise FormatError(f"PKCS#11 URI {text!r} names no token (token=...)")
        if not attrs.get("object") and key_id is None:
            raise FormatError(f"PKCS#11 URI {text!r} names no key (object=... or id=...)")
        return cls(attrs["token"], attrs.get("object") or None, key_id, attrs.get("module-path"), attrs.get("pin-value"))

    def __str__(self) -> str:
        """The URI without its PIN (what is recorded and printed)."""
        parts = [f"token={_quote(self.token)}"]
        if self.object is not None:
            parts.append(f"object={_quote(self.object)}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        text = SCHEME + ";".join(parts)
        if self.module_path:
            text += "?module-path=" + _quote(self.module_path, "/")
        return text


def _quote(value: str, safe: str = "") -> str:
    out = []
    for ch in value:
        if ch.isalnum() or ch in "-._~" + safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()


def _openssl_clear_errors() -> None:
    """Empty this thread's OpenSSL error queue. Modules built on OpenSSL (SoftHSM2 looks for an
    ``rdrand`` engine OpenSSL 3 lacks) leave errors there; Python's ``ssl`` shares the library and
    would report such a stale error as the failure of the next TLS handshake."""
    if not _CRYPTO:
        name = ctypes.util.find_library("crypto")
        try:
            _CRYPTO.append(ctypes.CDLL(name) if name else None)
        except OSError:
            _CRYPTO.append(None)
    lib = _CRYPTO[0]
    clear = getattr(lib, "ERR_clear_error", None) if lib is not None else None
    if clear is not None:
        clear()


_CRYPTO: list[Any] = []


def module_path(uri: Pkcs11URI, environ: Mapping[str, str] | None = None) -> str:
    """The PKCS#11 module for ``uri``: its ``module-path``, ``$TRUSTBOX_PKCS11_MODULE``, or SoftHSM2's."""
    env = os.environ if environ is None else environ
    return uri.module_path or env.get(MODULE_ENV) or DEFAULT_MODULE


def _lib(path: str) -> Any:
    """The loaded module (once per process). Raises ConfigError when it cannot be loaded."""
    with _LIBS_LOCK:
        lib = _LIBS.get(path)
        if lib is None:
            if not os.path.exists(path):
                raise ConfigError(f"PKCS#11 module {path} not found (set {MODULE_ENV} or module-path in the URI)")
            try:
                lib = pkcs11.lib(path)
            except (RuntimeError, OSError, p11err.PKCS11Error) as exc:
                raise ConfigError(f"cannot load PKCS#11 module {path}: {exc or type(exc).__name__}") from exc
            finally:
                _openssl_clear_errors()
            _LIBS[path] = lib
        return lib


def env_pin(environ: Mapping[str, str] | None = None) -> PinSource:
    """The PIN from ``$TRUSTBOX_PKCS11_PIN``, else a terminal prompt; PassphraseError without either."""
    env = os.environ if environ is None else environ

    def source(token: str) -> str:
        pin = env.get(PIN_ENV)
        if pin is not None:
            return pin
        if sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(f"Enter the user PIN for PKCS#11 token {token!r}: ")
        raise PassphraseError(f"no PIN for PKCS#11 token {token!r}: set {PIN_ENV} or run on a terminal")

    return source


def _error(uri: Pkcs11URI, exc: Exception) -> Exception:
    """A trustbox error for a PKCS#11 failure."""
    name = type(exc).__name__
    if isinstance(exc, (p11err.PinIncorrect, p11err.PinInvalid, p11err.PinLenRange)):
        return PassphraseError(f"incorrect PIN for PKCS#11 token {uri.token!r}")
    if isinstance(exc, p11err.PinLocked):
        return PassphraseError(f"the PIN of PKCS#11 token {uri.token!r} is locked")
    if isinstance(exc, (p11err.NoSuchToken, p11err.TokenNotPresent)):
        return KeyStoreError(f"no PKCS#11 token labelled {uri.token!r} is present")
    if isinstance(exc, p11err.NoSuchKey):
        return NoTokenKeyError(f"no key {_label(uri)} on PKCS#11 token {uri.token!r}")
    if isinstance(exc, p11err.MultipleObjectsReturned):
        return KeyStoreError(f"more than one key {_label(uri)} on PKCS#11 token {uri.token!r}")
    return KeyStoreError(f"PKCS#11 token {uri.token!r}: {name} {exc}".rstrip())


def _label(uri: Pkcs11URI) -> str:
    return repr(uri.object) if uri.object is not None else "id " + (uri.id or b"").hex()


def _find(session: Any, uri: Pkcs11URI, object_class: ObjectClass) -> Any:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    found = list(session.get_objects(attrs))
    if not found:
        raise p11err.NoSuchKey()
    if len(found) > 1:
        raise p11err.MultipleObjectsReturned()
    return found[0]


def _public_key(obj: Any) -> PublicKey:
    """The public key of an EC public key object (EC_POINT, DER OCTET STRING or raw)."""
    point = bytes(obj[Attribute.EC_POINT])
    if point[:1] == b"\x04" and len(point) > 2 and point[1] == len(point) - 2:
        point = point[2:]
    try:
        crypto = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise KeyStoreError(f"PKCS#11 key is not an ECDSA P-256 key: {exc}") from exc
    return PublicKey.from_crypto(crypto)


class TokenKey:
    """An ECDSA P-256 key on a PKCS#11 token: a :class:`trustbox.tuf.keys.Signer`.

    The public key is read when the key is opened (no login needed for public objects); each
    signature opens a session and logs in with the PIN (asked once per object)."""

    def __init__(self, uri: Pkcs11URI, pin: PinSource | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.uri = uri
        self.module = module_path(uri, environ)
        self._pin_source = pin or env_pin(environ)
        self._pin: str | None = uri.pin_value
        self._public = self._read_public()

    def _token(self) -> Any:
        lib = _lib(self.module)
        try:
            return lib.get_token(token_label=self.uri.token)
        except p11err.PKCS11Error as exc:
            raise _error(self.uri, exc) from exc

    def _user_pin(self) -> str:
        if self._pin is None:
            self._pin = self._pin_source(self.uri.token)
        return self._pin

    def _read_public(self) -> PublicKey:
        try:
            return self._find_public()
        finally:
            _openssl_clear_errors()

    def _find_public(self) -> PublicKey:
        token = self._token()
        try:
            with token.open() as session:
                return _public_key(_find(session, self.uri, ObjectClass.PUBLIC_KEY))
        except p11err.PKCS11Error as exc:
            if not isinstance(exc, p11err.NoSuchKey):
                raise _error(self.uri, exc) from exc
        try:  # tokens that keep public objects private
            with token.open(user_pin=self._user_pin()) as session:
                return _public_key(_find(session, self.uri, ObjectClass.PUBLIC_KEY))
        except p11err.PKCS11Error as exc:
            raise _error(self.uri, exc) from exc

    @property
    def keyid(self) -> str:
        """The canonical key ID (as the key file of the same key would be named)."""
        return self._public.keyid

    @property
    def method(self) -> str:
        """``ecdsa``."""
        return METHOD_ECDSA

    @property
    def keytype(self) -> str:
        """``ecdsa``."""
        return self._public.keytype

    def public_key(self) -> PublicKey:
        """The bare public key."""
        return self._public

    def sign(self, message: bytes) -> bytes:
        """ECDSA over SHA-256(message) on the token: raw ``r || s``. Raises PassphraseError (PIN),
        KeyStoreError (token or key missing, token failure)."""
        digest = hashlib.sha256(message).digest()
        token = self._token()
        try:
            with token.open(user_pin=self._user_pin()) as session:
                key = _find(session, self.uri, ObjectClass.PRIVATE_KEY)
                return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
        except p11err.PKCS11Error as exc:
            if isinstance(exc, (p11err.PinIncorrect, p11err.PinInvalid, p11err.PinLenRange)):
                self._pin = None
            raise _error(self.uri, exc) from exc
        finally:
            _openssl_clear_errors()


def generate_token_key(uri: Pkcs11URI, pin: PinSource | None = None, environ: Mapping[str, str] | None = None) -> TokenKey:
    """Make an ECDSA P-256 key pair on the token, labelled (and with the ID) the URI names; the
    private key is sensitive and never extractable. Raises KeyStoreError when the object exists."""
    source = pin or env_pin(environ)
    lib = _lib(module_path(uri, environ))
    try:
        token = lib.get_token(token_label=uri.token)
        user_pin = uri.pin_value if uri.pin_value is not None else source(uri.token)
        with token.open(rw=True, user_pin=user_pin) as session:
            try:
                _find(session, uri, ObjectClass.PRIVATE_KEY)
            except p11err.NoSuchKey:
                pass
            else:
                raise KeyStoreError(f"PKCS#11 token {uri.token!r} already holds a key {_label(uri)}")
            params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True)
            label = uri.object or ""
            key_id = uri.id if uri.id is not None else label.encode("utf-8")
            params.generate_keypair(
                store=True,
                label=label,
                id=key_id,
                public_template={Attribute.VERIFY: True, Attribute.PRIVATE: False},
                private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
    except p11err.PKCS11Error as exc:
        raise _error(uri, exc) from exc
    finally:
        _openssl_clear_errors()
    return TokenKey(Pkcs11URI(uri.token, uri.object, uri.id, uri.module_path, user_pin), source, environ)


def open_token_key(text: str, pin: PinSource | None = None, environ: Mapping[str, str] | None = None,
                   *, create: bool = False) -> TokenKey:
    """The key a URI names (made on the token first when ``create`` and absent). Raises
    FormatError (bad URI), ConfigError (module), KeyStoreError (token/key), PassphraseError (PIN)."""
    uri = Pkcs11URI.parse(text)
    if create:
        try:
            return TokenKey(uri, pin, environ)
        except NoTokenKeyError:
            return generate_token_key(uri, pin, environ)
    return TokenKey(uri, pin, environ)


__all__ = [
    "DEFAULT_MODULE",
    "MODULE_ENV",
    "NoTokenKeyError",
    "PIN_ENV",
    "Pkcs11URI",
    "TokenKey",
    "env_pin",
    "generate_token_key",
    "is_pkcs11_uri",
    "module_path",
    "open_token_key",
]

"""Public and private keys as notary uses them: key JSON, key IDs, signing and verification.

Key types: ``ecdsa``, ``ecdsa-x509``, ``rsa``, ``rsa-x509``, ``ed25519``. Signature methods:
``ecdsa`` (SHA-256, raw ``r||s``), ``rsapss`` (SHA-256, MGF1-SHA-256, salt 32), ``eddsa``
(Ed25519), and ``rsapkcs1v15`` / ``pycrypto-pkcs#1 pss`` for verification only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from trustbox.errors import FormatError, SignatureError, UnsupportedKeyError
from trustbox.tuf.canonical import encode_canonical

ECDSA = "ecdsa"
ECDSA_X509 = "ecdsa-x509"
RSA = "rsa"
RSA_X509 = "rsa-x509"
ED25519 = "ed25519"
KEY_TYPES = (ECDSA, ECDSA_X509, RSA, RSA_X509, ED25519)
X509_TYPES = (ECDSA_X509, RSA_X509)

METHOD_ECDSA = "ecdsa"
METHOD_EDDSA = "eddsa"
METHOD_RSAPSS = "rsapss"
METHOD_RSAPKCS1 = "rsapkcs1v15"
METHOD_PYCRYPTO_PSS = "pycrypto-pkcs#1 pss"

MIN_RSA_BITS = 2048

CryptoPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
CryptoPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64encode(data: bytes) -> str:
    """Standard padded base64, as notary writes every byte string."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "value") -> bytes:
    """Decode standard padded base64, raising FormatError on garbage."""
    if not isinstance(text, str):
        raise FormatError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise FormatError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        # Strict: unused bits must be zero and padding exact, so one encoding per value.
        raise FormatError(f"{what} is not canonical base64")
    return raw


@functools.lru_cache(maxsize=4096)
def key_id_of(keytype: str, public: bytes) -> str:
    """Key ID as notary computes it: sha256 of the canonical public key JSON (remembered: every
    signature check compares a listed ID with its key's)."""
    doc = {"keytype": keytype, "keyval": {"private": None, "public": b64encode(public)}}
    return hashlib.sha256(encode_canonical(doc)).hexdigest()


def certificate_key(cert: x509.Certificate) -> Any:
    """The public key of ``cert`` (untrusted bytes: cryptography refuses unknown algorithms and
    curves, and malformed points, with exceptions that are not all ValueErrors).

    Raises:
        FormatError: the key is malformed or of an algorithm cryptography does not know.
    """
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(f"invalid certificate key: {exc}") from exc


# what cryptography raises for malformed or unknown parts of a certificate: it parses fields lazily,
# so a broken name, validity, key or extension surfaces only when that field is read
_CERT_ERRORS = (ValueError, KeyError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)


def load_certificate(der: bytes | None = None, pem: bytes | None = None) -> x509.Certificate:
    """An untrusted certificate (DER or PEM), with every field trustbox reads parsed now.

    Raises:
        FormatError: the bytes are no certificate, or a field (version, names, validity, key,
            signature algorithm, extensions) is malformed or of a kind cryptography does not know.
    """
    try:
        cert = x509.load_der_x509_certificate(der) if der is not None else x509.load_pem_x509_certificate(pem or b"")
        _ = (cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc,
             cert.signature_hash_algorithm, cert.public_key(), cert.extensions)
    except _CERT_ERRORS as exc:
        raise FormatError(f"invalid certificate: {exc}") from exc
    return cert


@functools.lru_cache(maxsize=256)
def _load_certificate(pem: bytes) -> x509.Certificate:
    return load_certificate(pem=pem)


def _spki_der(key: CryptoPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class PublicKey:
    """A public key in notary's JSON form: a key type and the raw ``public`` bytes."""

    keytype: str
    public: bytes

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> PublicKey:
        """Parse ``{"keytype":..,"keyval":{"public":..}}`` and check the key material."""
        if not isinstance(data, dict):
            raise FormatError("key must be a JSON object")
        keytype = data.get("keytype")
        keyval = data.get("keyval")
        if not isinstance(keytype, str) or not isinstance(keyval, dict):
            raise FormatError("key needs 'keytype' and 'keyval'")
        keytype = keytype.lower()
        if keytype not in KEY_TYPES:
            raise UnsupportedKeyError(f"unsupported key type {keytype!r}")
        key = cls(keytype, b64decode(str(keyval.get("public")), "key public value"))
        key.crypto_key()  # validates
        return key

    @classmethod
    def from_crypto(cls, key: CryptoPublicKey) -> PublicKey:
        """The notary public key for a ``cryptography`` public key (non-x509 form)."""
        if isinstance(key, ec.EllipticCurvePublicKey):
            return cls(ECDSA, _spki_der(key))
        if isinstance(key, rsa.RSAPublicKey):
            return cls(RSA, _spki_der(key))
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(ED25519, key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        raise UnsupportedKeyError(f"unsupported key class {type(key).__name__}")

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> PublicKey:
        """An ``ecdsa-x509``/``rsa-x509`` key holding the certificate's PEM text."""
        pem = cert.public_bytes(serialization.Encoding.PEM)
        pub = certificate_key(cert)
        if isinstance(pub, ec.EllipticCurvePublicKey):
            return cls(ECDSA_X509, pem)
        if isinstance(pub, rsa.RSAPublicKey):
            return cls(RSA_X509, pem)
        raise UnsupportedKeyError("certificate key must be ECDSA or RSA")

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        """Parse a PEM public key (``PUBLIC KEY``, with optional headers) or certificate."""
        from trustbox.tuf.pem import parse_pem_blocks

        blocks = parse_pem_blocks(pem)
        if not blocks:
            raise FormatError("no PEM block found")
        block = blocks[0]
        if block.type == "CERTIFICATE":
            return cls.from_certificate(load_certificate(der=block.der))
        if block.type == "PUBLIC KEY":
            try:
                pub = serialization.load_der_public_key(block.der)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise FormatError(f"invalid public key: {exc}") from exc
            if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
                raise UnsupportedKeyError("public key must be ECDSA, RSA or Ed25519")
            return cls.from_crypto(pub)
        raise FormatError(f"unexpected PEM block {block.type!r}; expected a public key or certificate")

    # -- views ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object notary writes (``private`` is always null)."""
        return {"keytype": self.keytype, "keyval": {"private": None, "public": b64encode(self.public)}}

    @property
    def keyid(self) -> str:
        """The key ID (for x509 keys: the certificate key ID used in root.json)."""
        return key_id_of(self.keytype, self.public)

    @property
    def is_x509(self) -> bool:
        """Whether the key is a certificate."""
        return self.keytype in X509_TYPES

    def certificate(self) -> x509.Certificate:
        """The certificate of an x509 key."""
        if not self.is_x509:
            raise UnsupportedKeyError(f"{self.keytype} key has no certificate")
        try:
            return _load_certificate(self.public)
        except FormatError as exc:
            raise FormatError(f"invalid certificate in {self.keytype} key: {exc.message}") from exc

    def canonical(self) -> PublicKey:
        """The bare key (x509 certificate stripped); identity for other key types."""
        if self.is_x509:
            pub = certificate_key(self.certificate())
            if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
                raise UnsupportedKeyError("certificate key must be ECDSA or RSA")
            return PublicKey.from_crypto(pub)
        return self

    @property
    def canonical_keyid(self) -> str:
        """The ID private key files are named by (bare-key ID for x509 keys)."""
        return self.canonical().keyid

    def crypto_key(self) -> CryptoPublicKey:
        """The ``cryptography`` public key object (validates the key material)."""
        try:
            if self.keytype == ED25519:
                if len(self.public) != 32:
                    raise FormatError("ed25519 public key must be 32 bytes")
                return ed25519.Ed25519PublicKey.from_public_bytes(self.public)
            pub: Any
            if self.is_x509:
                pub = self.certificate().public_key()
            else:
                pub = serialization.load_der_public_key(self.public)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise FormatError(f"invalid {self.keytype} public key: {exc}") from exc
        if self.keytype in (ECDSA, ECDSA_X509):
            if not isinstance(pub, ec.EllipticCurvePublicKey):
                raise FormatError(f"{self.keytype} key does not hold an ECDSA key")
            return pub
        if not isinstance(pub, rsa.RSAPublicKey):
            raise FormatError(f"{self.keytype} key does not hold an RSA key")
        if pub.key_size < MIN_RSA_BITS:
            raise FormatError(f"RSA key of {pub.key_size} bits is too short (minimum {MIN_RSA_BITS})")
        return pub

    # -- verification -----------------------------------------------------------------

    def verify(self, method: str, signature: bytes, message: bytes) -> None:
        """Raise SignatureError unless ``signature`` over ``message`` verifies with ``method``."""
        method = method.lower()
        pub = self.crypto_key()
        try:
            if method == METHOD_ECDSA:
                if not isinstance(pub, ec.EllipticCurvePublicKey):
                    raise SignatureError(f"method ecdsa does not fit a {self.keytype} key")
                size = (pub.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    raise SignatureError(f"ecdsa signature must be {2 * size} bytes, got {len(signature)}")
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                pub.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
            elif method == METHOD_EDDSA:
                if not isinstance(pub, ed25519.Ed25519PublicKey):
                    raise SignatureError(f"method eddsa does not fit a {self.keytype} key")
                pub.verify(signature, message)
            elif method in (METHOD_RSAPSS, METHOD_PYCRYPTO_PSS):
                if not isinstance(pub, rsa.RSAPublicKey):
                    raise SignatureError(f"method {method} does not fit a {self.keytype} key")
                pub.verify(
                    signature,
                    message,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256(),
                )
            elif method == METHOD_RSAPKCS1:
                if not isinstance(pub, rsa.RSAPublicKey):
                    raise SignatureError(f"method {method} does not fit a {self.keytype} key")
                pub.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                raise UnsupportedKeyError(f"unsupported signature method {method!r}")
        except InvalidSignature as exc:
            raise SignatureError("signature does not verify") from exc


@runtime_checkable
class Signer(Protocol):
    """What signing needs of a key: its public key and ID, notary's method name, and signatures
    in notary's encoding (ECDSA: raw ``r || s``). :class:`PrivateKey` (keys in files) is one; keys
    on hardware tokens (``trustbox.keystore.pkcs11``) are another."""

    @property
    def keyid(self) -> str:
        """The canonical key ID."""
        ...

    @property
    def method(self) -> str:
        """The signature method notary names for this key (``ecdsa``, ``rsapss``, ``eddsa``)."""
        ...

    def public_key(self) -> PublicKey:
        """The bare public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (SHA-256 for ECDSA/RSA) in notary's encoding."""
        ...


class PrivateKey:
    """A private key with the operations notary needs: its public key, ID and signatures."""

    def __init__(self, key: CryptoPrivateKey) -> None:
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise UnsupportedKeyError(f"unsupported private key class {type(key).__name__}")
        self.key: CryptoPrivateKey = key

    @classmethod
    def generate(cls, keytype: str = ECDSA) -> PrivateKey:
        """A new key: ``ecdsa`` (P-256, notary's default), ``rsa`` (4096) or ``ed25519``."""
        if keytype == ECDSA:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if keytype == RSA:
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=4096))
        if keytype == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        raise UnsupportedKeyError(f"cannot generate keys of type {keytype!r}")

    @property
    def keytype(self) -> str:
        """``ecdsa``, ``rsa`` or ``ed25519``."""
        return self.public_key().keytype

    def public_key(self) -> PublicKey:
        """The bare public key."""
        return PublicKey.from_crypto(self.key.public_key())

    @property
    def keyid(self) -> str:
        """The canonical key ID (private key files are named by it)."""
        return self.public_key().keyid

    @property
    def method(self) -> str:
        """The signature method notary uses for this key."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return METHOD_ECDSA
        if isinstance(self.key, rsa.RSAPrivateKey):
            return METHOD_RSAPSS
        return METHOD_EDDSA

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` in notary's encoding for this key type."""
        k = self.key
        if isinstance(k, ec.EllipticCurvePrivateKey):
            der = k.sign(message, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            size = (k.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if isinstance(k, rsa.RSAPrivateKey):
            return k.sign(
                message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
            )
        return k.sign(message)


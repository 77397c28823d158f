"""Notary/docker private key files: PKCS#8 (optionally PBES2-encrypted) PEM with headers.

Pure functions, no I/O. Writing reproduces notary's ``tuf/utils/pkcs8.go`` byte layout:

* ``EncryptedPrivateKeyInfo`` with PBES2 = PBKDF2 (8-byte salt, 2048 iterations, HMAC-SHA1 as the
  omitted default PRF, 32-byte derived key) + AES-256-CBC (16-byte IV, PKCS#7 padding);
* inner ``PrivateKeyInfo``: ECDSA with version 1 and a full SEC1 ``ECPrivateKey`` ([0] curve and
  [1] public key), RSA with version 0 and PKCS#1 (algorithm without NULL parameters, as Go writes
  it), Ed25519 with OID 1.3.6.1.4.1.11591.15.1 and the 96-byte ``public || seed || public`` private
  key (notary's TUF serialisation: public key, then Go's 64-byte private key).

Reading also accepts openssl's forms: standard PKCS#8 (incl. Ed25519 1.3.101.112), PBES2 with
HMAC-SHA2 PRFs and AES-128/192/256-CBC, ``EC PRIVATE KEY`` (SEC1), ``RSA PRIVATE KEY`` (PKCS#1),
legacy ``ED25519 PRIVATE KEY`` and traditional ``Proc-Type``/``DEK-Info`` encrypted PEM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from trustbox.errors import FormatError, PassphraseError, UnsupportedKeyError
from trustbox.keystore import der
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.pem import PEMBlock, encode_pem_block, parse_pem_blocks

# -- object identifiers ------------------------------------------------------------------

OID_RSA = "1.2.840.113549.1.1.1"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_ED25519_NOTARY = "1.3.6.1.4.1.11591.15.1"
OID_ED25519 = "1.3.101.112"
OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_HMAC_SHA1 = "1.2.840.113549.2.7"

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "1.3.132.0.33": ec.SECP224R1,
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}
_CURVE_OIDS = {
    "secp224r1": "1.3.132.0.33",
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
}

_PRFS: dict[str, type[hashes.HashAlgorithm]] = {
    OID_HMAC_SHA1: hashes.SHA1,
    "1.2.840.113549.2.8": hashes.SHA224,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
}
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_AES_CBC = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24, OID_AES256_CBC: 32}

NOTARY_SALT_SIZE = 8
NOTARY_IV_SIZE = 16
NOTARY_ITERATIONS = 2048
MAX_ITERATIONS = 10_000_000

ENCRYPTED_PRIVATE_KEY = "ENCRYPTED PRIVATE KEY"
PRIVATE_KEY = "PRIVATE KEY"
LEGACY_TYPES = ("EC PRIVATE KEY", "RSA PRIVATE KEY", "ED25519 PRIVATE KEY")
KEY_PEM_TYPES = (ENCRYPTED_PRIVATE_KEY, PRIVATE_KEY, *LEGACY_TYPES)

_WRONG_PASSPHRASE = "could not decrypt private key: incorrect passphrase (or corrupted key file)"


# -- inner PrivateKeyInfo ------------------------------------------------------------------


def _ec_private_sec1(key: ec.EllipticCurvePrivateKey) -> bytes:
    curve_oid = _CURVE_OIDS.get(key.curve.name)
    if curve_oid is None:
        raise UnsupportedKeyError(f"unsupported elliptic curve {key.curve.name}")
    size = (key.curve.key_size + 7) // 8
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return der.seq(
        der.integer(1),
        der.octets(key.private_numbers().private_value.to_bytes(size, "big")),
        der.explicit(0, der.oid(curve_oid)),
        der.explicit(1, der.bits(point)),
    )


def encode_pkcs8(key: PrivateKey) -> bytes:
    """The unencrypted ``PrivateKeyInfo`` DER exactly as notary writes it for ``key``."""
    k = key.key
    if isinstance(k, ec.EllipticCurvePrivateKey):
        sec1 = _ec_private_sec1(k)
        return der.seq(
            der.integer(1),
            der.seq(der.oid(OID_EC_PUBLIC_KEY), der.oid(_CURVE_OIDS[k.curve.name])),
            der.octets(sec1),
        )
    if isinstance(k, rsa.RSAPrivateKey):
        pkcs1 = k.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return der.seq(der.integer(0), der.seq(der.oid(OID_RSA)), der.octets(pkcs1))
    seed = k.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # notary serialises ed25519 as public || Go private key (seed || public): 96 bytes.
    return der.seq(der.integer(0), der.seq(der.oid(OID_ED25519_NOTARY)), der.octets(public + seed + public))


def _ec_from_sec1(sec1: bytes, curve_oid: str | None) -> PrivateKey:
    fields = der.parse_one(sec1, allow_trailing=True).children()
    if len(fields) < 2 or fields[0].as_int() != 1:
        raise FormatError("invalid SEC1 EC private key")
    scalar = fields[1].as_octets()
    public: bytes | None = None
    for extra in fields[2:]:
        if extra.tag == der.context(0):
            inner_oid = der.parse_one(extra.content).as_oid()
            if curve_oid is not None and inner_oid != curve_oid:
                raise FormatError("EC private key names two different curves")
            curve_oid = inner_oid
        elif extra.tag == der.context(1):
            public = der.parse_one(extra.content).as_bits()
    if curve_oid is None:
        raise FormatError("EC private key does not name its curve")
    curve = _CURVES.get(curve_oid)
    if curve is None:
        raise UnsupportedKeyError(f"unsupported elliptic curve {curve_oid}")
    try:
        key = ec.derive_private_key(int.from_bytes(scalar, "big"), curve())
    except ValueError as exc:
        raise FormatError(f"invalid EC private key: {exc}") from exc
    if public is not None:
        mine = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        if public != mine:
            raise FormatError("EC private key does not match its embedded public key")
    return PrivateKey(key)


def _rsa_from_pkcs1(pkcs1: bytes) -> PrivateKey:
    try:
        key = serialization.load_der_private_key(pkcs1, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise FormatError(f"invalid RSA private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise FormatError("invalid RSA private key")
    return PrivateKey(key)


def _ed25519_from_notary(raw: bytes) -> PrivateKey:
    """notary's ed25519 private bytes: ``public || seed || public`` (96 bytes, see
    ``tuf/utils/x509.go`` GenerateED25519Key); Go's 64-byte ``seed || public`` and a bare
    32-byte seed are accepted too."""
    publics: tuple[bytes, ...]
    if len(raw) == 96:
        seed, publics = raw[32:64], (raw[:32], raw[64:])
    elif len(raw) == 64:
        seed, publics = raw[:32], (raw[32:],)
    elif len(raw) == 32:
        seed, publics = raw, ()
    else:
        raise FormatError(f"ed25519 private key must be 96 bytes, got {len(raw)}")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if any(p != public for p in publics):
        raise FormatError("ed25519 private key does not match its public half")
    return PrivateKey(key)


def decode_pkcs8(data: bytes) -> PrivateKey:
    """Parse an unencrypted ``PrivateKeyInfo`` (notary's quirky forms or standard PKCS#8)."""
    fields = der.parse_one(data, allow_trailing=False).children()
    if len(fields) < 3:
        raise FormatError("invalid PKCS#8 private key")
    if fields[0].as_int() not in (0, 1):
        raise FormatError("unsupported PKCS#8 version")
    alg = fields[1].children()
    if not alg:
        raise FormatError("PKCS#8 private key without algorithm")
    alg_oid = alg[0].as_oid()
    private = fields[2].as_octets()
    if alg_oid == OID_EC_PUBLIC_KEY:
        curve_oid = alg[1].as_oid() if len(alg) > 1 and alg[1].tag == der.OID else None
        return _ec_from_sec1(private, curve_oid)
    if alg_oid == OID_RSA:
        return _rsa_from_pkcs1(private)
    if alg_oid == OID_ED25519_NOTARY:
        return _ed25519_from_notary(private)
    if alg_oid == OID_ED25519:
        seed = der.parse_one(private).as_octets()
        if len(seed) != 32:
            raise FormatError("ed25519 private key must hold a 32-byte seed")
        return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    raise UnsupportedKeyError(f"unsupported private key algorithm {alg_oid}")


# -- PBES2 envelope ------------------------------------------------------------------------


def encrypt_pkcs8(
    inner: bytes,
    passphrase: str,
    *,
    salt: bytes | None = None,
    iv: bytes | None = None,
    iterations: int = NOTARY_ITERATIONS,
) -> bytes:
    """Wrap ``PrivateKeyInfo`` DER in notary's PBES2 ``EncryptedPrivateKeyInfo``."""
    salt = os.urandom(NOTARY_SALT_SIZE) if salt is None else salt
    iv = os.urandom(NOTARY_IV_SIZE) if iv is None else iv
    if len(iv) != 16:
        raise ValueError("AES-CBC needs a 16-byte IV")
    kek = PBKDF2HMAC(hashes.SHA1(), 32, salt, iterations).derive(passphrase.encode("utf-8"))
    padder = padding.PKCS7(128).padder()
    plain = padder.update(inner) + padder.finalize()
    enc = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(plain) + enc.finalize()
    params = der.seq(
        der.seq(der.oid(OID_PBKDF2), der.seq(der.octets(salt), der.integer(iterations))),
        der.seq(der.oid(OID_AES256_CBC), der.octets(iv)),
    )
    return der.seq(der.seq(der.oid(OID_PBES2), params), der.octets(ciphertext))


@dataclass(frozen=True)
class PBES2Params:
    """The parameters of a PBES2 envelope (for inspection and tests)."""

    salt: bytes
    iterations: int
    prf: str
    key_length: int
    cipher: str
    iv: bytes
    ciphertext: bytes


def parse_pbes2(data: bytes) -> PBES2Params:
    """Parse an ``EncryptedPrivateKeyInfo`` that uses PBES2/PBKDF2/AES-CBC."""
    top = der.parse_one(data).children()
    if len(top) != 2:
        raise FormatError("invalid encrypted PKCS#8 private key")
    alg = top[0].children()
    if not alg or alg[0].as_oid() != OID_PBES2 or len(alg) != 2:
        raise FormatError("encrypted private key: only PKCS#5 v2.0 (PBES2) is supported")
    kdf, scheme = (e.children() for e in alg[1].children()[:2])
    if not kdf or kdf[0].as_oid() != OID_PBKDF2 or len(kdf) != 2:
        raise FormatError("encrypted private key: only PBKDF2 is supported")
    kdf_fields = kdf[1].children()
    if len(kdf_fields) < 2:
        raise FormatError("encrypted private key: bad PBKDF2 parameters")
    salt = kdf_fields[0].as_octets()
    iterations = kdf_fields[1].as_int()
    key_length: int | None = None
    prf = OID_HMAC_SHA1
    for extra in kdf_fields[2:]:
        if extra.tag == der.INTEGER:
            key_length = extra.as_int()
        else:
            prf = extra.children()[0].as_oid()
    if prf not in _PRFS:
        raise FormatError(f"encrypted private key: unsupported PBKDF2 PRF {prf}")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise FormatError(f"encrypted private key: unreasonable PBKDF2 iteration count {iterations}")
    if len(scheme) != 2:
        raise FormatError("encrypted private key: bad encryption scheme")
    cipher = scheme[0].as_oid()
    if cipher not in _AES_CBC:
        raise FormatError(f"encrypted private key: unsupported cipher {cipher} (AES-CBC only)")
    if key_length is not None and key_length != _AES_CBC[cipher]:
        raise FormatError("encrypted private key: key length does not fit the cipher")
    iv = scheme[1].as_octets()
    if len(iv) != 16:
        raise FormatError("encrypted private key: AES-CBC IV must be 16 bytes")
    ciphertext = top[1].as_octets()
    if not ciphertext or len(ciphertext) % 16:
        raise FormatError("encrypted private key: ciphertext is not a whole number of AES blocks")
    return PBES2Params(salt, iterations, prf, _AES_CBC[cipher], cipher, iv, ciphertext)


def decrypt_pkcs8(data: bytes, passphrase: str) -> bytes:
    """Decrypt a PBES2 ``EncryptedPrivateKeyInfo``; the inner DER (checked only for padding)."""
    p = parse_pbes2(data)
    kek = PBKDF2HMAC(_PRFS[p.prf](), p.key_length, p.salt, p.iterations).derive(passphrase.encode("utf-8"))
    dec = Cipher(algorithms.AES(kek), modes.CBC(p.iv)).decryptor()
    plain = dec.update(p.ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(plain) + unpadder.finalize()
    except ValueError as exc:
        raise PassphraseError(_WRONG_PASSPHRASE) from exc


# -- PEM key files -------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFileInfo:
    """What a key file says about itself without decrypting: PEM type and headers."""

    pem_type: str
    headers: dict[str, str]

    @property
    def encrypted(self) -> bool:
        """Whether a passphrase is needed to read the key."""
        return self.pem_type == ENCRYPTED_PRIVATE_KEY or "DEK-Info" in self.headers

    @property
    def role(self) -> str:
        """The ``role:`` header ("" when absent)."""
        return self.headers.get("role", "")

    @property
    def gun(self) -> str | None:
        """The ``gun:`` header, or None."""
        return self.headers.get("gun") or None

    @property
    def path(self) -> str | None:
        """The ``path:`` header (import/export: the key ID), or None."""
        return self.headers.get("path") or None


def _first_block(data: bytes) -> PEMBlock:
    if not isinstance(data, bytes | bytearray):
        raise FormatError("key file contents must be bytes")
    blocks = parse_pem_blocks(bytes(data))
    if not blocks:
        raise FormatError("no PEM private key block found (not a key file, or truncated)")
    block = blocks[0]
    if block.type not in KEY_PEM_TYPES:
        raise FormatError(f"unsupported PEM block {block.type!r}; expected a private key")
    return block


def key_file_info(data: bytes) -> KeyFileInfo:
    """PEM type and headers of a key file (no decryption, no key parsing)."""
    block = _first_block(data)
    return KeyFileInfo(block.type, dict(block.headers))


def _legacy_encrypted(block: PEMBlock, passphrase: str) -> PrivateKey:
    headers = {k: v for k, v in block.headers.items() if k in ("Proc-Type", "DEK-Info")}
    pem = encode_pem_block(PEMBlock(block.type, block.der, headers))
    # encode_pem_block sorts headers; OpenSSL wants Proc-Type first.
    lines = pem.split(b"\n")
    if len(lines) > 3 and lines[1].startswith(b"DEK-Info") and lines[2].startswith(b"Proc-Type"):
        lines[1], lines[2] = lines[2], lines[1]
    try:
        key = serialization.load_pem_private_key(b"\n".join(lines), passphrase.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise PassphraseError(_WRONG_PASSPHRASE) from exc
    except UnsupportedAlgorithm as exc:
        raise FormatError(f"unsupported encrypted PEM: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise UnsupportedKeyError("unsupported private key type")
    return PrivateKey(key)


def decode_block(block: PEMBlock, passphrase: str | None = None) -> PrivateKey:
    """The private key held in one PEM block (decrypting with ``passphrase`` if needed)."""
    encrypted = block.type == ENCRYPTED_PRIVATE_KEY or "DEK-Info" in block.headers
    if encrypted and passphrase is None:
        raise PassphraseError("private key is encrypted; a passphrase is required")
    if encrypted and block.type != ENCRYPTED_PRIVATE_KEY:
        assert passphrase is not None
        return _legacy_encrypted(block, passphrase)
    if block.type == ENCRYPTED_PRIVATE_KEY:
        assert passphrase is not None
        inner = decrypt_pkcs8(block.der, passphrase)
        try:
            return decode_pkcs8(inner)
        except FormatError as exc:
            raise PassphraseError(_WRONG_PASSPHRASE) from exc
    if block.type == PRIVATE_KEY:
        return decode_pkcs8(block.der)
    if block.type == "EC PRIVATE KEY":
        return _ec_from_sec1(block.der, None)
    if block.type == "RSA PRIVATE KEY":
        return _rsa_from_pkcs1(block.der)
    return _ed25519_from_notary(block.der)


def decode_key_file(data: bytes, passphrase: str | None = None) -> tuple[PrivateKey, dict[str, str]]:
    """Decode a notary/docker/openssl key file into ``(PrivateKey, PEM headers)``.

    Raises PassphraseError for a missing or wrong passphrase, FormatError for anything that is
    not a readable private key file.
    """
    block = _first_block(data)
    return decode_block(block, passphrase), dict(block.headers)


def encode_key_file(
    key: PrivateKey,
    passphrase: str | None,
    role: str,
    gun: str | None = None,
    path: str | None = None,
    *,
    salt: bytes | None = None,
    iv: bytes | None = None,
) -> bytes:
    """A key file as notary writes it: PEM with ``gun:``/``path:``/``role:`` headers (sorted).

    An empty or missing passphrase writes an unencrypted ``PRIVATE KEY`` block, as notary does.
    """
    headers = {}
    if role:
        headers["role"] = role
    if gun:
        headers["gun"] = gun
    if path:
        headers["path"] = path
    for name, value in headers.items():
        if "\n" in value or "\r" in value:
            raise FormatError(f"PEM header {name!r} must be a single line")
    inner = encode_pkcs8(key)
    if not passphrase:
        return encode_pem_block(PEMBlock(PRIVATE_KEY, inner, headers))
    envelope = encrypt_pkcs8(inner, passphrase, salt=salt, iv=iv)
    return encode_pem_block(PEMBlock(ENCRYPTED_PRIVATE_KEY, envelope, headers))

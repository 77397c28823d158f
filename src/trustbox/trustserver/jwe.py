"""JWE compact serialisation with PBES2-HS256+A128KW key wrapping and A256GCM content encryption.

notary-signer keeps each private key in its database as such a JWE, encrypted under the
passphrase of a named alias (RFC 7516 and RFC 7518 section 4.8: the content key is wrapped with AES
key wrap under PBKDF2-HMAC-SHA256(passphrase, UTF8(alg) || 0x00 || p2s, p2c); the content is
AES-256-GCM with the protected header as associated data). trustbox reads those keys and writes
new ones in the same form, so notary-signer reads what trustbox created.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from trustbox.errors import FormatError, PassphraseError

ALG = "PBES2-HS256+A128KW"
ENC = "A256GCM"
#: PBKDF2 iterations of new keys; what is read follows its own header (bounded by MAX_P2C)
P2C = 8192
MAX_P2C = 10_000_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"JWE {what} is not base64url") from exc


def _kek(passphrase: str, salt_input: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(hashes.SHA256(), 16, ALG.encode() + b"\x00" + salt_input, iterations)
    return kdf.derive(passphrase.encode("utf-8"))


def encrypt(plain: bytes, passphrase: str) -> str:
    """``plain`` as a compact JWE under ``passphrase`` (random 16-byte salt, P2C iterations)."""
    salt = secrets.token_bytes(16)
    header = _b64(json.dumps({"alg": ALG, "enc": ENC, "p2c": P2C, "p2s": _b64(salt)}, separators=(",", ":")).encode())
    cek = secrets.token_bytes(32)
    wrapped = aes_key_wrap(_kek(passphrase, salt, P2C), cek)
    iv = secrets.token_bytes(12)
    sealed = AESGCM(cek).encrypt(iv, plain, header.encode("ascii"))
    return ".".join((header, _b64(wrapped), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])))


def decrypt(token: str, passphrase: str) -> bytes:
    """The plaintext of a compact JWE made with :data:`ALG` and :data:`ENC`.

    Raises FormatError for anything else (other algorithms, broken encoding) and PassphraseError
    when the passphrase does not unwrap the content key or the content does not authenticate.
    """
    parts = token.strip().split(".")
    if len(parts) != 5:
        raise FormatError("stored key is not a compact JWE (five dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0], "header"))
    except ValueError as exc:
        raise FormatError("JWE header is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != ALG or header.get("enc") != ENC:
        alg = header.get("alg") if isinstance(header, dict) else None
        enc = header.get("enc") if isinstance(header, dict) else None
        raise FormatError(f"JWE algorithm {alg}/{enc} is not supported (only {ALG}/{ENC})")
    p2c = header.get("p2c")
    p2s = header.get("p2s")
    if isinstance(p2c, bool) or not isinstance(p2c, int) or not 1 <= p2c <= MAX_P2C or not isinstance(p2s, str):
        raise FormatError("JWE header needs p2c (1 to 10,000,000) and p2s")
    salt = _unb64(p2s, "p2s")
    wrapped, iv, ciphertext, tag = (_unb64(p, "part") for p in parts[1:])
    try:
        cek = aes_key_unwrap(_kek(passphrase, salt, p2c), wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise PassphraseError("stored key does not decrypt (wrong passphrase for its alias?)") from exc
    if len(cek) != 32 or len(iv) != 12:
        raise FormatError("JWE content key or IV has the wrong size")
    try:
        return AESGCM(cek).decrypt(iv, ciphertext + tag, parts[0].encode("ascii"))
    except InvalidTag as exc:
        raise PassphraseError("stored key does not authenticate") from exc

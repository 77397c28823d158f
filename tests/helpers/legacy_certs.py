"""Certificates notary refuses as keys (SHA-1 signed), for tests of that refusal.

The OpenSSL build under ``cryptography`` no longer signs certificates with SHA-1, so the
certificate is made as notary makes root certificates and then re-signed by hand: the
signature algorithm (in the to-be-signed part and outside it) becomes ecdsa-with-SHA1 and the
to-be-signed bytes are signed with ECDSA over SHA-1.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from trustbox.tuf.certs import make_root_certificate
from trustbox.tuf.keys import PrivateKey, PublicKey

_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier ecdsa-with-SHA256
_ECDSA_SHA1 = bytes.fromhex("300906072a8648ce3d0401")  # AlgorithmIdentifier ecdsa-with-SHA1


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _body(der: bytes) -> bytes:
    """The contents of a DER element (after tag and length)."""
    first = der[1]
    return der[2:] if first < 0x80 else der[2 + (first & 0x7F) :]


def sha1_certificate_key(key: PrivateKey, cn: str, now: datetime) -> PublicKey:
    """An ``ecdsa-x509`` key: a certificate for ``cn`` like notary's root certificates, but
    signed with ECDSA over SHA-1 (``key`` must be an ECDSA key)."""
    assert isinstance(key.key, ec.EllipticCurvePrivateKey)
    tbs = make_root_certificate(key, cn, now).tbs_certificate_bytes
    assert tbs.count(_ECDSA_SHA256) == 1
    tbs = _der(0x30, _body(tbs).replace(_ECDSA_SHA256, _ECDSA_SHA1))
    signature = key.key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    cert = x509.load_der_x509_certificate(_der(0x30, tbs + _ECDSA_SHA1 + _der(0x03, b"\x00" + signature)))
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    return PublicKey.from_certificate(cert)

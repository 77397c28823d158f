"""Root certificates as notary makes and checks them (CN = GUN, self-signed, 10 years)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustbox.errors import RootError, UnsupportedKeyError, VerificationError
from trustbox.tuf.keys import METHOD_ECDSA, MIN_RSA_BITS, PrivateKey, PublicKey, Signer, certificate_key

ROOT_CERT_VALIDITY = timedelta(days=3650)

_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def _cn_attribute(gun: str) -> x509.NameAttribute[str]:
    # Go's asn1 writes a PrintableString when every character allows it, else UTF8String.
    if gun and all(c in _PRINTABLE for c in gun):
        return x509.NameAttribute(NameOID.COMMON_NAME, gun, _type=x509.name._ASN1Type.PrintableString)
    return x509.NameAttribute(NameOID.COMMON_NAME, gun)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_element(data: bytes, pos: int) -> tuple[int, int]:
    """(start of content, end) of the DER element at ``pos`` (certificates cryptography wrote)."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + n], "big")
    return pos + 2 + n, pos + 2 + n + length


def _resign(cert: x509.Certificate, signer: Signer) -> x509.Certificate:
    """``cert`` (signed by a throw-away key) with its signature replaced by ``signer``'s over the same
    to-be-signed bytes: certificates for keys that never leave a token."""
    der = cert.public_bytes(serialization.Encoding.DER)
    body, _ = _der_element(der, 0)
    _, tbs_end = _der_element(der, body)
    _, alg_end = _der_element(der, tbs_end)
    raw = signer.sign(cert.tbs_certificate_bytes)
    size = len(raw) // 2
    sig = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    bit_string = b"\x03" + _der_length(len(sig) + 1) + b"\x00" + sig
    content = der[body:alg_end] + bit_string
    return x509.load_der_x509_certificate(b"\x30" + _der_length(len(content)) + content)


def make_root_certificate(
    key: Signer, gun: str, now: datetime, validity: timedelta = ROOT_CERT_VALIDITY
) -> x509.Certificate:
    """A self-signed root certificate for ``gun`` as ``notary init`` makes it. ``key`` is a file key
    or (ECDSA only) any other signer, e.g. a key on a PKCS#11 token. Raises UnsupportedKeyError."""
    if isinstance(key, PrivateKey):
        k = key.key
        if not isinstance(k, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise UnsupportedKeyError("root keys must be ECDSA or RSA (notary puts them in x509 certificates)")
        public = k.public_key()
    else:
        if key.method != METHOD_ECDSA:
            raise UnsupportedKeyError("root keys held outside files must be ECDSA")
        crypto_public = key.public_key().crypto_key()
        if not isinstance(crypto_public, ec.EllipticCurvePublicKey):
            raise UnsupportedKeyError("root keys held outside files must be ECDSA")
        public = crypto_public
    name = x509.Name([_cn_attribute(gun)])
    start = now.replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if isinstance(key, PrivateKey):
        assert isinstance(key.key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
        return builder.sign(key.key, hashes.SHA256())
    return _resign(builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()), key)


def make_root_public_key(key: Signer, gun: str, now: datetime) -> PublicKey:
    """The ``ecdsa-x509``/``rsa-x509`` public key that goes into root.json for ``key``."""
    return PublicKey.from_certificate(make_root_certificate(key, gun, now))


def certificate_cn(cert: x509.Certificate) -> str | None:
    """The subject common name of a certificate, if exactly one is present."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        return None
    value = cns[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


#: what :class:`CertificateError` found (``problem``)
SHA1_SIGNED = "sha1"
SHORT_RSA = "short-rsa"
EMPTY_WINDOW = "empty-window"


class CertificateError(VerificationError):
    """A certificate notary refuses to use as a key; ``problem`` says why, ``cn`` names it."""

    def __init__(self, message: str, cn: str, problem: str) -> None:
        super().__init__(message)
        self.cn = cn
        self.problem = problem


def check_certificate(key: PublicKey) -> None:
    """Raise CertificateError if ``key`` is a certificate notary refuses as a root or delegation
    key whatever the time: its validity ends before it starts, it is signed with SHA-1, or it holds
    an RSA key shorter than 2048 bits. Keys that are no certificates pass."""
    if not key.is_x509:
        return
    cert = key.certificate()
    cn = certificate_cn(cert) or ""
    name = f"certificate {key.keyid[:12]} ({cn!r})"
    if cert.not_valid_before_utc > cert.not_valid_after_utc:
        raise CertificateError(f"{name} has a validity window that ends before it starts", cn, EMPTY_WINDOW)
    algo = cert.signature_hash_algorithm
    if algo is not None and isinstance(algo, hashes.SHA1):
        raise CertificateError(f"{name} is signed with SHA-1", cn, SHA1_SIGNED)
    pub = certificate_key(cert)
    if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < MIN_RSA_BITS:
        raise CertificateError(f"{name} has an RSA key shorter than {MIN_RSA_BITS} bits", cn, SHORT_RSA)


def check_root_certificate(key: PublicKey, gun: str, now: datetime | None) -> None:
    """Raise RootError unless ``key`` is a usable root certificate for ``gun``.

    Checks what notary's trust pinning checks for a leaf: CN equals the GUN, what
    :func:`check_certificate` checks, and (when ``now`` is given) that it is inside its validity
    window.
    """
    if not key.is_x509:
        raise RootError(f"root key {key.keyid} is a bare {key.keytype} key, not a certificate")
    cert = key.certificate()
    cn = certificate_cn(cert)
    if cn != gun:
        raise RootError(f"root certificate {key.keyid[:12]} is for {cn!r}, not for {gun!r}")
    try:
        check_certificate(key)
    except CertificateError as exc:
        raise RootError(f"root {exc}") from exc
    if now is not None:
        if now < cert.not_valid_before_utc:
            raise RootError(f"root certificate {key.keyid[:12]} is not valid before {cert.not_valid_before_utc}")
        if now > cert.not_valid_after_utc:
            raise RootError(f"root certificate {key.keyid[:12]} expired at {cert.not_valid_after_utc}")

"""Shared helpers for the auth tests: signing material and issuers."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trustbox.auth.tokens import TokenIssuer, TokenVerifier, generate_signing_material


def issuer_and_verifier(
    issuer: str = "trustbox", service: str = "svc"
) -> tuple[TokenIssuer, TokenVerifier, bytes, bytes]:
    """A fresh self-signed signing key, an issuer using it and a verifier trusting its cert."""
    key_pem, cert_pem = generate_signing_material()
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(cert_pem)
    return TokenIssuer(issuer, key, [cert]), TokenVerifier([cert], issuer, service), key_pem, cert_pem


def ca_issued_signer(days_valid: int = 30) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate], x509.Certificate]:
    """A CA and a signing certificate issued by it: (signing key, [leaf], ca cert)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days_valid))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, [leaf], ca

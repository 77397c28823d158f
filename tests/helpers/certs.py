"""Throw-away X.509 material for TLS tests: a CA and server certificates signed by it.

The certificates are made by :mod:`trustbox.sandbox.pki` (P-256, the CA and server extensions
``trustbox sandbox`` uses); this module writes them where the tests want them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from trustbox.atomicfile import atomic_write
from trustbox.sandbox import pki


@dataclass(frozen=True)
class CertFiles:
    """PEM files written by :func:`write_ca_and_server_cert`."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_ca(common_name: str = "trustbox test CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate and its key (P-256, valid for 1 year)."""
    _pair, cert, key = pki.make_ca(datetime.datetime.now(datetime.UTC), common_name)
    return cert, key


def write_ca_and_server_cert(
    directory: Path,
    hostnames: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
    ca_name: str = "trustbox test CA",
) -> CertFiles:
    """Write ``ca.crt``, ``ca.key``, ``server.crt``, ``server.key`` (keys 0600) into ``directory``:
    a new CA named ``ca_name`` and a server certificate for ``hostnames`` and ``ips`` (the first
    one is its common name) signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_pair, ca_cert, ca_key = pki.make_ca(now, ca_name)
    server = pki.make_server_cert(ca_cert, ca_key, [*hostnames, *ips], now)
    files = CertFiles(
        directory / "ca.crt", directory / "ca.key", directory / "server.crt", directory / "server.key"
    )
    files.ca_cert.write_bytes(ca_pair.cert_pem)
    atomic_write(files.ca_key, ca_pair.key_pem)
    files.server_cert.write_bytes(server.cert_pem)
    atomic_write(files.server_key, server.key_pem)
    return files

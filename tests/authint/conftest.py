"""Fixtures for the auth integration tests: token signing material, tokens minted in-process,
and the token server / processes of tests/auth reused (users alice, bob, root)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.auth.conftest import TokenServer, tls, token_server  # noqa: F401  (fixtures reused)
from trustbox.auth.scopes import Scope
from trustbox.auth.tokens import TokenIssuer, generate_signing_material

REALM = "https://auth.example.test/token"
ISSUER = "trustbox-test"


@dataclass
class Minter:
    """Signs tokens like ``trustbox serve auth`` would, for a given service."""

    issuer: TokenIssuer
    bundle: Path

    def token(self, service: str, *access: Scope, subject: str = "alice", issuer: TokenIssuer | None = None) -> str:
        """A bearer token for ``service`` granting ``access``."""
        return (issuer or self.issuer).issue(subject, service, list(access)).token


@pytest.fixture(scope="session")
def minter(tmp_path_factory: pytest.TempPathFactory) -> Minter:
    """A token signing key and its certificate (the servers' rootcertbundle)."""
    d = tmp_path_factory.mktemp("token-keys")
    key_pem, cert_pem = generate_signing_material("authint issuer")
    (d / "signing-key.pem").write_bytes(key_pem)
    (d / "cert.pem").write_bytes(cert_pem)
    return Minter(TokenIssuer.from_files(ISSUER, d / "signing-key.pem", d / "cert.pem"), d / "cert.pem")


def other_issuer(tmp: Path) -> TokenIssuer:
    """An issuer with a key the servers do not trust."""
    key_pem, cert_pem = generate_signing_material("rogue", now=datetime.datetime.now(datetime.UTC))
    (tmp / "k.pem").write_bytes(key_pem)
    (tmp / "c.pem").write_bytes(cert_pem)
    return TokenIssuer.from_files(ISSUER, tmp / "k.pem", tmp / "c.pem")

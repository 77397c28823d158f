"""Fixture key files, their passphrases and the public keys found in the fixture metadata."""

from __future__ import annotations

import json
from pathlib import Path

from tests.testdata import FIXTURES
from trustbox.tuf.keys import PublicKey

NOTARY_PASS = {
    "root": "root-pass-123",
    "targets": "targets-pass-123",
    "snapshot": "snapshot-pass-123",
    "targets/releases": "delegation-pass-123",
}
DOCKER_ROOT_PASS = "docker-root-pass-123"
DOCKER_REPO_PASS = "docker-repo-pass-123"

NOTARY_TRUST = FIXTURES / "notary-demo/client-trust-dir"
DOCKER_TRUST = FIXTURES / "docker-demo/docker-config-trust"


def fixture_key_files() -> list[Path]:
    """Every private key file among the fixtures (``*.key`` and ``*-key*.pem``)."""
    out = sorted(FIXTURES.rglob("*.key")) + sorted(FIXTURES.rglob("*-key*.pem"))
    return [p for p in out if p.is_file()]


def passphrase_for(path: Path, role: str) -> str | None:
    """The passphrase the fixtures README gives for a key file."""
    if path.name == "bob.key":
        return None
    if "docker-demo" in path.parts:
        return DOCKER_ROOT_PASS if role == "root" else DOCKER_REPO_PASS
    return NOTARY_PASS[role]


def metadata_public_keys() -> dict[str, list[PublicKey]]:
    """canonical key ID -> public keys (bare and x509 forms) listed in any fixture metadata."""
    found: dict[str, list[PublicKey]] = {}
    for server in (FIXTURES / "notary-demo/server", FIXTURES / "docker-demo/server"):
        for f in server.rglob("*.json"):
            signed = json.loads(f.read_bytes()).get("signed", {})
            keys = dict(signed.get("keys") or {})
            keys.update((signed.get("delegations") or {}).get("keys") or {})
            for kid, kd in keys.items():
                pub = PublicKey.from_dict(kd)
                assert pub.keyid == kid
                bucket = found.setdefault(pub.canonical_keyid, [])
                if pub not in bucket:
                    bucket.append(pub)
    return found

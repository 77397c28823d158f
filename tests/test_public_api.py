"""The declared public API of trustbox's libraries (``__all__``), pinned: a change to it is deliberate."""

from __future__ import annotations

import importlib

import pytest

API = {
    "trustbox.tuf": {
        "BASE_ROLES", "ROOT", "SNAPSHOT", "TARGETS", "TIMESTAMP", "DelegatedRole", "Delegations", "FileMeta",
        "Metadata", "PrivateKey", "PublicKey", "RepoLoader", "RoleKeys", "Root", "Snapshot", "Targets", "Timestamp",
        "TrustedCollection", "audit", "encode_canonical", "loads", "loads_document", "valid_signers",
        "verify_threshold",
    },
    "trustbox.client": {
        "RegistryClient", "RegistryOptions", "SignedTarget", "TrustClient", "TrustPinning", "trust_client_for",
    },
    "trustbox.keystore": {
        "KeyFileInfo", "KeyInfo", "KeyStore", "PassphraseRetriever", "PassphraseUnavailable", "PromptRetriever",
        "atomic_write", "chain_retriever", "constant_retriever", "decode_key_file", "decode_pkcs8", "decrypt_pkcs8",
        "docker_env_retriever", "docker_retriever", "encode_key_file", "encode_pkcs8", "encrypt_pkcs8",
        "fixed_retriever", "key_file_info", "notary_env_retriever", "notary_retriever", "read_key_file", "short_id",
    },
}


@pytest.mark.parametrize("package", sorted(API))
def test_declared_api_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == API[package]
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize("package", sorted(API))
def test_every_declared_name_is_importable(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)  # noqa: S102 - the star import is what __all__ governs
    assert set(API[package]) <= set(namespace)

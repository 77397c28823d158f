"""Private keys at rest in a Docker/notary trust directory.

* :mod:`trustbox.keystore.pkcs8` — pure encode/decode of key files (notary's PBES2 PKCS#8 quirks);
* :mod:`trustbox.keystore.passphrase` — passphrase retrievers (docker/notary env vars, prompt...);
* :mod:`trustbox.keystore.store` — :class:`KeyStore` over ``<trust dir>/private``.
"""

from trustbox.keystore.passphrase import (
    PassphraseRetriever,
    PassphraseUnavailable,
    PromptRetriever,
    chain_retriever,
    constant_retriever,
    docker_env_retriever,
    docker_retriever,
    fixed_retriever,
    notary_env_retriever,
    notary_retriever,
    short_id,
)
from trustbox.keystore.pkcs8 import (
    KeyFileInfo,
    decode_key_file,
    decode_pkcs8,
    decrypt_pkcs8,
    encode_key_file,
    encode_pkcs8,
    encrypt_pkcs8,
    key_file_info,
)
from trustbox.keystore.store import KeyInfo, KeyStore, atomic_write, read_key_file

__all__ = [
    "KeyFileInfo",
    "KeyInfo",
    "KeyStore",
    "PassphraseRetriever",
    "PassphraseUnavailable",
    "PromptRetriever",
    "atomic_write",
    "chain_retriever",
    "constant_retriever",
    "decode_key_file",
    "decode_pkcs8",
    "decrypt_pkcs8",
    "docker_env_retriever",
    "docker_retriever",
    "encode_key_file",
    "encode_pkcs8",
    "encrypt_pkcs8",
    "fixed_retriever",
    "key_file_info",
    "notary_env_retriever",
    "notary_retriever",
    "read_key_file",
    "short_id",
]

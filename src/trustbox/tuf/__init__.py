"""The pure TUF core (no I/O, no clock): notary's metadata, keys, canonical JSON and every TUF rule.

Declared API (``__all__``): the documents (:class:`Metadata` over :class:`Root`, :class:`Targets`,
:class:`Snapshot`, :class:`Timestamp`), keys, canonical JSON, the client's state machine
(:class:`TrustedCollection`), the server's loader (:class:`RepoLoader`) and the offline
:func:`audit`. The modules stay importable on their own for everything else.
"""

from trustbox.tuf.audit import audit
from trustbox.tuf.canonical import encode_canonical, loads, loads_document
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.loader import RepoLoader
from trustbox.tuf.metadata import (
    BASE_ROLES,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    DelegatedRole,
    Delegations,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)
from trustbox.tuf.verify import TrustedCollection, valid_signers, verify_threshold

__all__ = [
    "BASE_ROLES",
    "ROOT",
    "SNAPSHOT",
    "TARGETS",
    "TIMESTAMP",
    "DelegatedRole",
    "Delegations",
    "FileMeta",
    "Metadata",
    "PrivateKey",
    "PublicKey",
    "RepoLoader",
    "RoleKeys",
    "Root",
    "Snapshot",
    "Targets",
    "Timestamp",
    "TrustedCollection",
    "audit",
    "encode_canonical",
    "loads",
    "loads_document",
    "valid_signers",
    "verify_threshold",
]

"""Server-made documents: snapshot (when the server holds the snapshot key) and timestamp.

Both are built from the previous version (if any), get version + 1 and the notary default
lifetime (snapshot 3 years, timestamp 14 days), and are signed with every key of the role
(as listed in root) that the signer holds. Hashes always cover the exact stored bytes.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from trustbox.errors import TrustboxError
from trustbox.trustserver.signer import Signer
from trustbox.tuf.keys import PublicKey, key_id_of
from trustbox.tuf.metadata import (
    SNAPSHOT,
    TIMESTAMP,
    FileMeta,
    Metadata,
    Root,
    Signature,
    Snapshot,
    Timestamp,
)

SNAPSHOT_LIFETIME = timedelta(days=3 * 365)
TIMESTAMP_LIFETIME = timedelta(days=14)


class CannotSign(TrustboxError):
    """The signer does not hold enough keys of the role to meet its threshold."""


@functools.lru_cache(maxsize=4096)
def _key_id(keytype: str, public: bytes) -> str:
    return key_id_of(keytype, public)


def key_id(key: PublicKey) -> str:
    """``key.keyid``, remembered (it canonicalises and hashes the key on every call)."""
    return _key_id(key.keytype, key.public)


def held_keys(signer: Signer, gun: str, keys: dict[str, PublicKey]) -> list[str]:
    """IDs among ``keys`` whose private part the signer holds for ``gun``."""
    out = []
    for kid, listed in sorted(keys.items()):
        held = signer.public_key(gun, kid)
        if held is not None and key_id(held) == kid and key_id(listed) == kid:
            out.append(kid)
    return out


def sign_role(md: Metadata[Snapshot] | Metadata[Timestamp], root: Root, role: str, signer: Signer, gun: str) -> None:
    """Sign ``md`` with the held keys of ``role``; raise CannotSign below threshold."""
    keys, threshold = root.role_keys(role)
    usable = held_keys(signer, gun, keys)
    if len(usable) < threshold:
        raise CannotSign(f"the server holds {len(usable)} of the {threshold} {role} keys needed")
    message = md.signed_bytes()
    md.signatures = []
    for kid in usable:
        method, sig = signer.sign(gun, kid, message)
        md.signatures.append(Signature(kid, method, sig))


def can_sign(signer: Signer, gun: str, root: Root, role: str) -> bool:
    """Whether the signer holds enough keys of ``role`` (as listed in ``root``)."""
    keys, threshold = root.role_keys(role)
    return len(held_keys(signer, gun, keys)) >= threshold


def make_snapshot(
    gun: str,
    root: Root,
    prev: Snapshot | None,
    changed: dict[str, bytes],
    signer: Signer,
    now: datetime,
) -> tuple[int, bytes]:
    """A new snapshot: ``prev``'s meta with every role in ``changed`` re-hashed; (version, bytes)."""
    meta = dict(prev.meta) if prev is not None else {}
    for role, data in changed.items():
        meta[role] = FileMeta.from_bytes(data)
    version = prev.version + 1 if prev is not None else 1
    md: Metadata[Snapshot] = Metadata(Snapshot(version=version, expires=now + SNAPSHOT_LIFETIME, meta=meta))
    sign_role(md, root, SNAPSHOT, signer, gun)
    return version, md.to_bytes()


def make_timestamp(
    gun: str, root: Root, prev: Timestamp | None, snapshot_bytes: bytes, signer: Signer, now: datetime
) -> tuple[int, bytes]:
    """A new timestamp over ``snapshot_bytes``; (version, bytes)."""
    version = prev.version + 1 if prev is not None else 1
    meta = {SNAPSHOT: FileMeta.from_bytes(snapshot_bytes)}
    md: Metadata[Timestamp] = Metadata(Timestamp(version=version, expires=now + TIMESTAMP_LIFETIME, meta=meta))
    sign_role(md, root, TIMESTAMP, signer, gun)
    return version, md.to_bytes()

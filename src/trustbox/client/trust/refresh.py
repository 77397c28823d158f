"""``trustbox trust refresh``: re-sign, before they expire, the roles the local keys can sign.

Every role of a repository (root, targets, each delegation, snapshot) that expires within the
window and whose keys the local key store holds (files or PKCS#11 tokens, to the role's threshold)
is signed again with the same content, version + 1 and a new expiry (root 10 years, targets,
delegations and a client-held snapshot 3 years), all in one update. The trust server then signs a
new timestamp (and a new snapshot, when it holds that key). Roles the local keys cannot sign are
reported, not touched; server-held snapshot and timestamp keys are re-signed by the server (the
timestamp, 14 days long, is not reported at all).

The data must still verify: an expired repository is refused by the update, like any read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from trustbox.client.trust.publish import RepoDraft
from trustbox.client.trust.repository import TrustClient
from trustbox.errors import TrustboxError
from trustbox.keystore.store import KeyStore
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, Metadata, Root
from trustbox.tuf.verify import TrustedCollection

DEFAULT_WITHIN_DAYS = 30


@dataclass
class RefreshResult:
    """What a refresh did for one repository."""

    gun: str
    #: every role re-signed
    refreshed: list[str] = field(default_factory=list)
    #: role -> why it expires within the window but was not re-signed
    not_refreshed: dict[str, str] = field(default_factory=dict)
    published: bool = False


def _local_count(keystore: KeyStore, draft: RepoDraft, role: str) -> tuple[int, int]:
    keys, threshold = draft.role_keys(role)
    held = sum(1 for k in keys.values() if keystore.canonical_id_for(k) is not None)
    return held, threshold


def due_roles(tc: TrustedCollection, within: timedelta) -> list[str]:
    """Roles whose current document expires before ``tc.now + within`` (root, targets,
    delegations by depth, snapshot, timestamp)."""
    deadline = tc.now + within
    docs: list[tuple[str, Metadata[Any] | None]] = [(ROOT, tc.root), (TARGETS, tc.targets)]
    for name in sorted(tc.delegations, key=lambda n: (n.count("/"), n)):
        docs.append((name, tc.delegations[name].metadata))
    docs.extend([(SNAPSHOT, tc.snapshot), (TIMESTAMP, tc.timestamp)])
    return [role for role, md in docs if md is not None and md.signed.expires <= deadline]


def refresh_repository(client: TrustClient, within_days: float = DEFAULT_WITHIN_DAYS) -> RefreshResult:
    """Re-sign what expires within ``within_days`` and the local keys can sign, in one update.

    Raises what the update and the publish raise (trustbox errors); roles that cannot be
    re-signed are listed in the result instead."""
    client.update_for_write()
    tc = client.collection
    result = RefreshResult(client.gun)
    # the timestamp is the server's (notary-server signs a new one when it lapses)
    due = [r for r in due_roles(tc, timedelta(days=within_days)) if r != TIMESTAMP]
    if not due:
        return result
    draft = client.draft()
    keystore = client.keystore
    for role in due:
        held, threshold = _local_count(keystore, draft, role)
        if role == SNAPSHOT and held == 0:
            result.not_refreshed[role] = "the trust server holds the snapshot key and re-signs it with any update"
            continue
        if held < threshold:
            result.not_refreshed[role] = (
                f"the key store holds {held} of the {threshold} keys needed" if held else "no key of it in the key store"
            )
            continue
        if role == ROOT:
            draft.touch_root()
        elif role != SNAPSHOT:  # a client-held snapshot is signed with every update
            draft.touch(role)
        result.refreshed.append(role)
    if result.refreshed:
        client.publish(draft)
        result.published = True
    return result


def administered_guns(keystore: KeyStore, trust_dir: Path) -> list[str]:
    """Repositories the local keys administer: GUNs named by stored keys (targets, snapshot),
    and cached repositories whose root lists a stored root key."""
    guns = {k.gun for k in keystore.list_keys() if k.gun}
    tuf = trust_dir / "tuf"
    if tuf.is_dir():
        for root_file in tuf.rglob("metadata/root.json"):
            gun = root_file.parent.parent.relative_to(tuf).as_posix()
            if gun in guns:
                continue
            try:
                root = Metadata.parse(root_file.read_bytes(), ROOT, expect=Root)
            except (OSError, TrustboxError):
                continue  # an unreadable cache is not a repository these keys administer
            keys, _ = root.signed.role_keys(ROOT)
            if _any_held(keystore, keys.values()):
                guns.add(gun)
    return sorted(guns)


def _any_held(keystore: KeyStore, keys: Iterable[PublicKey]) -> bool:
    for k in keys:
        try:
            if keystore.canonical_id_for(k) is not None:
                return True
        except TrustboxError:
            continue
    return False


__all__ = ["DEFAULT_WITHIN_DAYS", "RefreshResult", "administered_guns", "due_roles", "refresh_repository"]

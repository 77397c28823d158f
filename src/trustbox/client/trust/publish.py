"""Changing a notary repository the way the notary client does, then one multipart POST.

A :class:`RepoDraft` starts from verified metadata (or a brand-new repository initialised like
docker does: local root key, new targets key, server-managed timestamp and snapshot keys),
takes target and delegation changes, and :meth:`RepoDraft.sign` produces the documents to
upload: every changed role with its version bumped and a fresh expiry (targets and
delegations 3 years, root 10 years), plus a snapshot only when its key is held locally.

A draft over a cached repository the server does not hold (``initial_publish``, notary's
``initialPublish``) also uploads everything the server lacks: the cached root and every
unchanged targets role as cached, so the server either takes the whole repository or refuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from trustbox.client.errors import InsufficientSignaturesError, NoSigningKeysError
from trustbox.client.trust.remote import RemoteStore
from trustbox.errors import RoleError
from trustbox.keystore.store import KeyStore
from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    DelegatedRole,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    is_delegation,
    parent_role,
)
from trustbox.tuf.verify import TrustedCollection

log = logging.getLogger(__name__)

YEAR = timedelta(days=365)
ROOT_EXPIRY = 10 * YEAR
TARGETS_EXPIRY = 3 * YEAR
SNAPSHOT_EXPIRY = 3 * YEAR


def _copy_targets(md: Metadata[Targets]) -> Targets:
    """An editable copy of a targets body (unknown fields are dropped, as a Go re-sign does)."""
    body = Metadata.parse(md.to_bytes(), "targets", expect=Targets).signed
    assert isinstance(body, Targets)
    return body


def _sign_with(md: Metadata[Any], keys: Sequence[tuple[str, PrivateKey]], threshold: int, role: str) -> None:
    if not keys:
        raise NoSigningKeysError(f"could not find necessary signing keys, at least one of these keys must be available for {role}")
    for keyid, key in keys:
        md.sign(key, keyid)
    if len(keys) < threshold:
        raise InsufficientSignaturesError(
            f"tried to sign {role} with {len(keys)} keys but its threshold is {threshold}"
        )


def _role_order(role: str) -> tuple[int, str]:
    """``targets`` first, then delegations by depth and name (parents before children)."""
    return (role.count("/") if role != TARGETS else -1, role)


class RepoDraft:
    """Staged changes to one repository, turned into signed documents by :meth:`sign`."""

    def __init__(
        self,
        gun: str,
        keystore: KeyStore,
        now: datetime,
        root: Metadata[Root],
        targets: dict[str, Metadata[Targets]],
        snapshot: Metadata[Snapshot] | None,
        *,
        new_repo: bool = False,
        initial_publish: bool = False,
        root_signers: Sequence[tuple[str, PrivateKey]] = (),
    ) -> None:
        self.gun = gun
        self.keystore = keystore
        self.now = now
        self.root = root
        self.trusted = dict(targets)
        self.bodies: dict[str, Targets] = {role: _copy_targets(md) for role, md in targets.items()}
        self.snapshot = snapshot
        self.new_repo = new_repo
        #: the server has none of this (cached) repository: upload all of it with the changes
        self.initial_publish = initial_publish
        self.root_signers = list(root_signers)
        self.dirty: set[str] = set()
        if new_repo:
            self.dirty.add(TARGETS)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_collection(
        cls, tc: TrustedCollection, keystore: KeyStore, now: datetime, *, initial_publish: bool = False
    ) -> RepoDraft:
        """A draft over verified metadata (``initial_publish``: the server holds none of it).
        Raises RoleError when targets is not loaded."""
        if tc.targets is None:
            raise RoleError("targets metadata is not loaded")
        targets = {TARGETS: tc.targets}
        targets.update({name: loaded.metadata for name, loaded in tc.delegations.items()})
        return cls(tc.gun, keystore, now, tc.root, targets, tc.snapshot, initial_publish=initial_publish)

    @classmethod
    def new_repository(cls, gun: str, keystore: KeyStore, now: datetime, remote: RemoteStore) -> RepoDraft:
        """Initialise like docker: lexically first local root key (or a new one), a new targets key,
        the server's timestamp and snapshot keys (server-managed snapshot)."""
        root_infos = sorted(keystore.find_keys(role=ROOT), key=lambda k: k.keyid)
        if root_infos:
            root_key = keystore.get_key(root_infos[0].keyid)[0]
        else:
            root_key = keystore.generate_key(ROOT)
        cert = make_root_public_key(root_key, gun, now)
        targets_key = keystore.generate_key(TARGETS, gun)
        ts_key = remote.get_key(TIMESTAMP)
        snap_key = remote.get_key(SNAPSHOT)
        tpub = targets_key.public_key()
        keys: dict[str, PublicKey] = {k.keyid: k for k in (cert, tpub, ts_key, snap_key)}
        roles = {
            ROOT: RoleKeys([cert.keyid]),
            SNAPSHOT: RoleKeys([snap_key.keyid]),
            TARGETS: RoleKeys([tpub.keyid]),
            TIMESTAMP: RoleKeys([ts_key.keyid]),
        }
        root_body = Root(1, now + ROOT_EXPIRY, keys=keys, roles=roles, consistent_snapshot=False)
        root = Metadata(root_body)
        # notary creates targets v1 at init and bumps it when signing: the first upload is v2
        targets = Metadata(Targets(1, now + TARGETS_EXPIRY))
        draft = cls(gun, keystore, now, root, {TARGETS: targets}, None, new_repo=True,
                    root_signers=[(cert.keyid, root_key)])
        return draft

    # -- views ---------------------------------------------------------------------------------

    def body(self, role: str, create: bool = False) -> Targets:
        """The editable body of a targets role (a new empty one for an unpublished delegation)."""
        body = self.bodies.get(role)
        if body is None:
            if not create or not is_delegation(role):
                raise RoleError(f"{role} is not loaded")
            body = Targets(0, self.now + TARGETS_EXPIRY)
            self.bodies[role] = body
        return body

    def delegation(self, role: str) -> DelegatedRole | None:
        """The entry of a delegated role in its parent (None if not delegated)."""
        parent = self.bodies.get(parent_role(role))
        return parent.delegations.get(role) if parent else None

    def delegation_roles(self) -> list[DelegatedRole]:
        """Every delegation, breadth first from targets."""
        out: list[DelegatedRole] = []
        queue = [TARGETS]
        while queue:
            body = self.bodies.get(queue.pop(0))
            if body is None:
                continue
            for r in body.delegations.roles:
                out.append(r)
                queue.append(r.name)
        return out

    def role_keys(self, role: str) -> tuple[dict[str, PublicKey], int]:
        """Keys and threshold of a role according to the draft."""
        if role in (ROOT, TARGETS, SNAPSHOT, TIMESTAMP):
            return self.root.signed.role_keys(role)
        parent = self.bodies.get(parent_role(role))
        if parent is None:
            raise RoleError(f"parent of {role} is not loaded")
        return parent.delegations.role_keys(role)

    def can_sign(self, role: str) -> bool:
        """Whether a private key of ``role`` is in the key store."""
        try:
            keys, _ = self.role_keys(role)
        except RoleError:
            return False
        return any(self.keystore.canonical_id_for(k) is not None for k in keys.values())

    def held_keys(self, roles: Sequence[str]) -> list[PrivateKey]:
        """The private keys of ``roles`` in the key store (the keys that sign them), one per key
        ID, in role order; roles the draft does not know are skipped.

        Raises:
            KeyStoreError, PassphraseError: a held key cannot be decrypted.
        """
        out: dict[str, PrivateKey] = {}
        for role in roles:
            try:
                keys, _ = self.role_keys(role)
            except RoleError:
                continue
            for _kid, key in self.keystore.signing_keys(keys, keys.keys()):
                out.setdefault(key.keyid, key)
        return list(out.values())

    # -- changes ---------------------------------------------------------------------------------

    def add_target(self, role: str, name: str, meta: FileMeta) -> None:
        """Sign ``name`` into ``role`` (a no-op if the role already has exactly this target)."""
        if role != TARGETS:
            entry = self.delegation(role)
            if entry is None:
                raise RoleError(f"{role} is not delegated")
            if not entry.covers(name):
                raise RoleError(f"{role} may not sign {name!r}: outside its paths")
        body = self.body(role, create=True)
        old = body.targets.get(name)
        if old is not None and old.to_dict() == meta.to_dict():
            return
        body.targets[name] = meta
        self.dirty.add(role)

    def remove_target(self, role: str, name: str) -> bool:
        """Remove ``name`` from ``role``; True if it was there."""
        body = self.bodies.get(role)
        if body is None or name not in body.targets:
            return False
        del body.targets[name]
        self.dirty.add(role)
        return True

    def add_delegation(self, role: str, keys: Iterable[PublicKey], paths: Sequence[str] | None = None) -> None:
        """Create ``role`` (threshold 1) or add keys (and paths) to it, in its parent."""
        if not is_delegation(role):
            raise RoleError(f"{role!r} is not a valid delegation role name")
        parent_name = parent_role(role)
        parent = self.body(parent_name)
        entry = parent.delegations.get(role)
        if entry is None:
            entry = DelegatedRole(role, [], 1, [])
            parent.delegations.roles.append(entry)
        for key in keys:
            parent.delegations.keys[key.keyid] = key
            if key.keyid not in entry.keyids:
                entry.keyids.append(key.keyid)
        for p in paths or ():
            if p not in entry.paths:
                entry.paths.append(p)
        self.dirty.add(parent_name)

    def _prune_keys(self, parent: Targets) -> None:
        used = {k for r in parent.delegations.roles for k in r.keyids}
        for kid in list(parent.delegations.keys):
            if kid not in used:
                del parent.delegations.keys[kid]

    def remove_delegation_keys(self, role: str, keyids: Iterable[str]) -> None:
        """Remove keys from a delegation (keys no other role uses leave the parent too)."""
        parent_name = parent_role(role)
        parent = self.body(parent_name)
        entry = parent.delegations.get(role)
        if entry is None:
            return
        drop = set(keyids)
        entry.keyids = [k for k in entry.keyids if k not in drop]
        self._prune_keys(parent)
        self.dirty.add(parent_name)

    def remove_delegation(self, role: str) -> None:
        """Delete a delegation role from its parent."""
        parent_name = parent_role(role)
        parent = self.body(parent_name)
        before = len(parent.delegations.roles)
        parent.delegations.roles = [r for r in parent.delegations.roles if r.name != role]
        if len(parent.delegations.roles) != before:
            self._prune_keys(parent)
            self.dirty.add(parent_name)
        self.bodies.pop(role, None)
        self.dirty.discard(role)

    # -- signing -----------------------------------------------------------------------------------

    def _signing_keys(self, role: str) -> tuple[list[tuple[str, PrivateKey]], int]:
        keys, threshold = self.role_keys(role)
        return self.keystore.signing_keys(keys, keys.keys()), threshold

    def sign(self) -> list[tuple[str, bytes]]:
        """Sign every changed role (and the snapshot if its key is held); the parts to upload.
        An initial publish adds the cached root and unchanged targets roles. Raises
        NoSigningKeysError / InsufficientSignaturesError when keys are missing."""
        parts: list[tuple[str, bytes]] = []
        signed: dict[str, bytes] = {}
        if self.new_repo:
            root_keys, threshold = self.root.signed.role_keys(ROOT)
            self.root.refresh()
            _sign_with(self.root, self.root_signers, threshold, ROOT)
            signed[ROOT] = self.root.to_bytes()
            parts.append((ROOT, signed[ROOT]))
        elif self.initial_publish:
            signed[ROOT] = self.root.to_bytes()
            parts.append((ROOT, signed[ROOT]))
        order = sorted(self.dirty, key=_role_order)
        for role in order:
            body = self.bodies[role]
            body.version += 1
            body.set_expires(self.now + TARGETS_EXPIRY)
            md: Metadata[Targets] = Metadata(body)
            keys, threshold = self._signing_keys(role)
            _sign_with(md, keys, threshold, role)
            signed[role] = md.to_bytes()
            parts.append((role, signed[role]))
        if self.initial_publish:
            for role in sorted(set(self.trusted) - set(signed), key=_role_order):
                if role in self.bodies:  # not deleted by this draft
                    signed[role] = self.trusted[role].to_bytes()
                    parts.append((role, signed[role]))
        if self._holds_snapshot_key():
            parts.append((SNAPSHOT, self._sign_snapshot(signed)))
        return parts

    def _holds_snapshot_key(self) -> bool:
        keys, _ = self.root.signed.role_keys(SNAPSHOT)
        return any(self.keystore.canonical_id_for(k) is not None for k in keys.values())

    def _sign_snapshot(self, changed: dict[str, bytes]) -> bytes:
        if self.snapshot is not None:
            old = self.snapshot.signed
            meta = dict(old.meta)
            version = old.version + 1
        else:
            meta = {ROOT: FileMeta.from_bytes(self.root.to_bytes())}
            version = 1
        for role, data in changed.items():
            meta[role] = FileMeta.from_bytes(data)
        md: Metadata[Snapshot] = Metadata(Snapshot(version, self.now + SNAPSHOT_EXPIRY, meta=meta))
        keys, threshold = self._signing_keys(SNAPSHOT)
        _sign_with(md, keys, threshold, SNAPSHOT)
        return md.to_bytes()

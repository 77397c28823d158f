"""Signature, threshold, expiry and hash checks, and the client's trusted-metadata state machine.

Everything here is pure: documents come in as bytes, the time comes in as a parameter.
:class:`TrustedCollection` is fed the documents of one GUN in TUF order (root, timestamp,
snapshot, targets, delegations) and refuses anything an attacker could have produced:
bad or too few signatures, rollback, freeze (expiry), mix-and-match (hash mismatch), endless
data (length limits) and roots that do not chain from the trusted one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trustbox.errors import (
    ExpiredError,
    FormatError,
    HashMismatchError,
    LengthError,
    RoleError,
    RollbackError,
    RootError,
    SignatureError,
    ThresholdError,
    TrustboxError,
)
from trustbox.tuf.certs import check_root_certificate
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    DelegatedRole,
    FileMeta,
    Metadata,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation,
    parent_role,
)

MAX_ROOT_SIZE = 100 * 1024 * 1024
MAX_TIMESTAMP_SIZE = 1024 * 1024


def valid_signers(md: Metadata[Any], keys: dict[str, PublicKey]) -> list[str]:
    """Key IDs among ``keys`` that produced a valid signature on ``md`` (each counted once)."""
    message = md.signed_bytes()
    good: list[str] = []
    for sig in md.signatures:
        key = keys.get(sig.keyid)
        if key is None or sig.keyid in good:
            continue
        if key.keyid != sig.keyid:
            continue  # a key listed under an ID that is not its own never counts
        try:
            key.verify(sig.method, sig.sig, message)
        except (SignatureError, FormatError, TrustboxError):
            continue
        good.append(sig.keyid)
    return good


def verify_threshold(md: Metadata[Any], keys: dict[str, PublicKey], threshold: int, role: str) -> list[str]:
    """Raise ThresholdError unless ``threshold`` distinct ``keys`` signed ``md``; return the signers."""
    good = valid_signers(md, keys)
    if len(good) < threshold:
        raise ThresholdError(f"valid signatures did not meet threshold for {role}")
    return good


def check_expiry(md: Metadata[Any], now: datetime, role: str) -> None:
    """Raise ExpiredError if ``md`` has expired at ``now``."""
    if md.signed.is_expired(now):
        raise ExpiredError(f"{role} expired at {md.signed.expires_text}")


def check_file(data: bytes, meta: FileMeta, role: str) -> None:
    """Raise LengthError / HashMismatchError unless ``data`` is what ``meta`` describes."""
    if len(data) > meta.length:
        raise LengthError(f"{role}: {len(data)} bytes, more than the {meta.length} the referencing metadata allows")
    if not meta.known_hashes():
        raise HashMismatchError(f"{role}: the referencing metadata lists no sha256 or sha512 hash")
    if not meta.matches(data):
        raise HashMismatchError(f"{role}: checksum mismatch with the referencing metadata")


def verify_root_self(root: Metadata[Root], gun: str, now: datetime | None) -> list[str]:
    """Check a root on its own (trust on first use): certificates for ``gun`` and self-signatures.

    Returns the signing root key IDs. ``now`` = None skips certificate validity (for an old,
    already trusted root).
    """
    keys, threshold = root.signed.role_keys(ROOT)
    usable: dict[str, PublicKey] = {}
    errors: list[str] = []
    for kid, key in keys.items():
        try:
            check_root_certificate(key, gun, now)
        except TrustboxError as exc:
            errors.append(str(exc))
            continue
        usable[kid] = key
    if not usable:
        raise RootError("no valid root certificate for " + gun + (": " + "; ".join(errors) if errors else ""))
    return verify_threshold(root, usable, threshold, ROOT)


def verify_root_rotation(old: Metadata[Root], new: Metadata[Root], gun: str, now: datetime) -> None:
    """A new root must be signed by the old root's threshold of old keys and by its own."""
    old_keys, old_threshold = old.signed.role_keys(ROOT)
    # only the old root's certificates for this GUN count (expiry is not checked for the old root)
    usable: dict[str, PublicKey] = {}
    for kid, key in old_keys.items():
        try:
            check_root_certificate(key, gun, None)
        except TrustboxError:
            continue
        usable[kid] = key
    try:
        verify_threshold(new, usable, old_threshold, ROOT)
    except ThresholdError as exc:
        raise RootError(f"root version {new.signed.version} is not signed by the previously trusted root keys") from exc
    verify_root_self(new, gun, now)


@dataclass
class LoadedRole:
    """A verified delegation with the effective paths (intersection with its ancestors)."""

    name: str
    metadata: Metadata[Targets]
    role: DelegatedRole


class TrustedCollection:
    """The trusted metadata of one GUN, grown document by document in TUF order.

    ``root_data`` is the trusted root (from the cache, or the first download when
    ``tofu`` is set, which additionally checks its certificates and expiry).
    ``floor_versions`` holds versions trusted earlier (from the cache) for rollback checks.
    """

    def __init__(
        self,
        gun: str,
        root_data: bytes,
        now: datetime,
        *,
        tofu: bool = False,
        floor_versions: dict[str, int] | None = None,
    ) -> None:
        self.gun = gun
        self.now = now
        self.floor = dict(floor_versions or {})
        root = Metadata.parse(root_data, "root", expect=Root)
        verify_root_self(root, gun, now if tofu else None)
        if tofu:
            check_expiry(root, now, ROOT)
        self.root: Metadata[Root] = root
        self.timestamp: Metadata[Timestamp] | None = None
        self.snapshot: Metadata[Snapshot] | None = None
        self.targets: Metadata[Targets] | None = None
        self.delegations: dict[str, LoadedRole] = {}

    # -- root --------------------------------------------------------------------------------

    def update_root(self, data: bytes) -> Metadata[Root]:
        """Accept the next root version: signed by the trusted root and by itself, version + 1."""
        if len(data) > MAX_ROOT_SIZE:
            raise LengthError(f"root is larger than {MAX_ROOT_SIZE} bytes")
        new = Metadata.parse(data, "root", expect=Root)
        old = self.root
        if new.signed.version != old.signed.version + 1:
            raise RollbackError(
                f"root version {new.signed.version} does not follow the trusted version {old.signed.version}"
            )
        verify_root_rotation(old, new, self.gun, self.now)
        self.root = new
        # a new root invalidates everything verified with the old keys
        self.timestamp = self.snapshot = self.targets = None
        self.delegations = {}
        return new

    def check_root_current(self) -> None:
        """Raise ExpiredError if the trusted root has expired (after any rotation)."""
        check_expiry(self.root, self.now, ROOT)

    # -- timestamp / snapshot / targets --------------------------------------------------------

    def _check_version(self, role: str, version: int, previous: Metadata[Any] | None) -> None:
        floor = self.floor.get(role, 0)
        if previous is not None:
            floor = max(floor, previous.signed.version)
        if version < floor:
            raise RollbackError(f"{role} version {version} is lower than the trusted version {floor}")

    def update_timestamp(self, data: bytes) -> Metadata[Timestamp]:
        """Verify timestamp.json: size, signatures, version not lower, not expired."""
        if len(data) > MAX_TIMESTAMP_SIZE:
            raise LengthError(f"timestamp is larger than {MAX_TIMESTAMP_SIZE} bytes")
        md = Metadata.parse(data, TIMESTAMP, expect=Timestamp)
        keys, threshold = self.root.signed.role_keys(TIMESTAMP)
        verify_threshold(md, keys, threshold, TIMESTAMP)
        self._check_version(TIMESTAMP, md.signed.version, self.timestamp)
        check_expiry(md, self.now, TIMESTAMP)
        self.timestamp = md
        return md

    def update_snapshot(self, data: bytes) -> Metadata[Snapshot]:
        """Verify snapshot.json against the timestamp's hashes, then signatures, version, expiry."""
        if self.timestamp is None:
            raise TrustboxError("timestamp must be loaded before snapshot")
        check_file(data, self.timestamp.signed.snapshot_meta, SNAPSHOT)
        md = Metadata.parse(data, SNAPSHOT, expect=Snapshot)
        keys, threshold = self.root.signed.role_keys(SNAPSHOT)
        verify_threshold(md, keys, threshold, SNAPSHOT)
        self._check_version(SNAPSHOT, md.signed.version, self.snapshot)
        check_expiry(md, self.now, SNAPSHOT)
        self.snapshot = md
        return md

    def snapshot_meta(self, role: str) -> FileMeta | None:
        """The snapshot entry of ``role`` (None if not listed)."""
        if self.snapshot is None:
            raise TrustboxError("snapshot must be loaded first")
        return self.snapshot.signed.meta.get(role)

    def update_targets(self, data: bytes) -> Metadata[Targets]:
        """Verify targets.json against the snapshot's hashes and the root's targets keys."""
        meta = self.snapshot_meta(TARGETS)
        if meta is None:
            raise HashMismatchError("snapshot does not list targets")
        check_file(data, meta, TARGETS)
        md = Metadata.parse(data, TARGETS, expect=Targets)
        keys, threshold = self.root.signed.role_keys(TARGETS)
        verify_threshold(md, keys, threshold, TARGETS)
        self._check_version(TARGETS, md.signed.version, self.targets)
        check_expiry(md, self.now, TARGETS)
        self.targets = md
        return md

    def parent_of(self, role: str) -> tuple[Metadata[Targets], DelegatedRole, list[str]]:
        """The verified parent document of ``role``, its entry there, and the effective paths."""
        if not is_delegation(role):
            raise RoleError(f"{role!r} is not a delegated role")
        parent = parent_role(role)
        if parent == TARGETS:
            if self.targets is None:
                raise TrustboxError("targets must be loaded before its delegations")
            parent_md, parent_paths = self.targets, [""]
        else:
            loaded = self.delegations.get(parent)
            if loaded is None:
                raise RoleError(f"parent role {parent} of {role} is not loaded")
            parent_md, parent_paths = loaded.metadata, loaded.role.paths
        entry = parent_md.signed.delegations.get(role)
        if entry is None:
            raise RoleError(f"{role} is not delegated by {parent}")
        paths = [p for p in entry.paths if any(p.startswith(pp) for pp in parent_paths)]
        return parent_md, entry, paths

    def update_delegation(self, role: str, data: bytes) -> Metadata[Targets]:
        """Verify a delegated targets document with the keys its parent lists for it."""
        parent_md, entry, paths = self.parent_of(role)
        meta = self.snapshot_meta(role)
        if meta is None:
            raise HashMismatchError(f"snapshot does not list {role}")
        check_file(data, meta, role)
        md = Metadata.parse(data, role, expect=Targets)
        keys, threshold = parent_md.signed.delegations.role_keys(role)
        verify_threshold(md, keys, threshold, role)
        previous = self.delegations.get(role)
        self._check_version(role, md.signed.version, previous.metadata if previous else None)
        check_expiry(md, self.now, role)
        self.delegations[role] = LoadedRole(role, md, DelegatedRole(role, entry.keyids, entry.threshold, paths))
        return md

    # -- lookups -----------------------------------------------------------------------------

    def delegated_roles(self, parent: str = TARGETS) -> list[str]:
        """Names of roles ``parent`` delegates to (in listing order)."""
        md = self.targets if parent == TARGETS else (self.delegations[parent].metadata if parent in self.delegations else None)
        if md is None:
            return []
        return [r.name for r in md.signed.delegations.roles]

    def role_targets(self, role: str) -> dict[str, FileMeta]:
        """Targets of a loaded role that the role may sign (paths enforced for delegations)."""
        if role == TARGETS:
            return dict(self.targets.signed.targets) if self.targets else {}
        loaded = self.delegations.get(role)
        if loaded is None:
            return {}
        return {n: fm for n, fm in loaded.metadata.signed.targets.items() if loaded.role.covers(n)}

    def find_target(self, name: str, roles: Iterable[str]) -> tuple[str, FileMeta] | None:
        """The first of ``roles`` (loaded, verified) that signs ``name``, with the target's meta."""
        for role in roles:
            fm = self.role_targets(role).get(name)
            if fm is not None:
                return role, fm
        return None

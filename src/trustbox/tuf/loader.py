"""Loading the documents of one GUN role by role, as notary's ``RepoBuilder`` does.

:meth:`RepoLoader.load` takes a role, its bytes, the lowest acceptable version and whether an
expired document is acceptable (``Load(role, bytes, minVersion, allowExpired)``) and applies the
rules of :mod:`trustbox.tuf.verify` against what is already loaded: a root must chain from the
trusted root, every other role needs the root (a delegation also its parent), each document is
checked against the checksum of the referencing metadata if that is loaded, and otherwise kept
until it is (a snapshot checks everything loaded before it, a timestamp the snapshot).

The trust server validates an update with it (``trustserver/validation.py``: the order of loads
and the wording of errors as notary-server's), and the offline audit (:mod:`trustbox.tuf.audit`)
walks a folder of metadata with it. Errors are the typed errors of :mod:`trustbox.tuf.verify`,
plus :class:`LoaderInputError` for a role loaded out of order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from trustbox.errors import RoleError
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    FileMeta,
    Metadata,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation,
    is_valid_role,
    parent_role,
    signed_class,
)
from trustbox.tuf.verify import (
    InvalidDelegationError,
    check_document,
    check_expiry,
    check_file,
    check_paths,
    check_version,
    delegated_role,
    verify_root,
)

#: a document parsed already: its JSON value and, when known, the canonical bytes of ``signed``
Parsed = tuple[Any, bytes | None]


class LoaderInputError(RoleError):
    """A role loaded twice, before what it needs, or not a role at all (notary's
    ``ErrInvalidBuilderInput``)."""


class RepoLoader:
    """The verified documents of one GUN, loaded role by role (see the module docstring).

    ``trusted_root`` is the root a newly loaded root must chain from (None: trust on first use).
    """

    def __init__(self, gun: str, now: datetime, *, trusted_root: Metadata[Root] | None = None) -> None:
        self.gun = gun
        self.now = now
        self.trusted_root = trusted_root
        self.root: Metadata[Root] | None = None
        self.timestamp: Metadata[Timestamp] | None = None
        self.snapshot: Metadata[Snapshot] | None = None
        #: targets and delegations by role
        self.targets: dict[str, Metadata[Targets]] = {}
        #: the keys each loaded role was verified with
        self.keys: dict[str, dict[str, PublicKey]] = {}
        #: effective paths of targets and each delegation (narrowed by every ancestor)
        self.paths: dict[str, list[str]] = {}
        #: bytes loaded before the document holding their checksum (notary's loadedNotChecksummed)
        self.unchecked: dict[str, bytes] = {}

    @classmethod
    def with_root(cls, gun: str, now: datetime, root: Metadata[Root]) -> RepoLoader:
        """A loader starting from a root the caller already trusts, which is not checked again
        (the trust server's stored root was checked when it was stored)."""
        loader = cls(gun, now)
        loader.root = root
        loader.keys[ROOT] = root.signed.role_keys(ROOT)[0]
        loader.unchecked[ROOT] = root.to_bytes()
        return loader

    def bootstrap(self) -> RepoLoader:
        """A fresh loader whose new root must chain from this loader's root (notary's
        ``BootstrapNewBuilder``)."""
        return RepoLoader(self.gun, self.now, trusted_root=self.root)

    # -- state -------------------------------------------------------------------------------

    def document(self, role: str) -> Metadata[Any] | None:
        """The loaded document of ``role``, if any."""
        if role == ROOT:
            return self.root
        if role == TIMESTAMP:
            return self.timestamp
        if role == SNAPSHOT:
            return self.snapshot
        return self.targets.get(role)

    def is_loaded(self, role: str) -> bool:
        """Whether ``role`` has been loaded."""
        return self.document(role) is not None

    def loaded_version(self, role: str) -> int:
        """The version of the loaded ``role``, or 1 (the lowest valid version) when not loaded."""
        md = self.document(role)
        return int(md.signed.version) if md is not None else 1

    # -- loading -----------------------------------------------------------------------------

    def load(
        self, role: str, data: bytes, min_version: int = 1, allow_expired: bool = False, *, parsed: Parsed | None = None
    ) -> Metadata[Any]:
        """Verify ``data`` as the document of ``role`` against what is loaded, and keep it.

        ``parsed`` may carry the document already parsed from ``data``. Raises LoaderInputError,
        FormatError (bytes that are no such document) and the typed errors of the rules (see
        :mod:`trustbox.tuf.verify`).
        """
        self._check_input(role)
        if role == ROOT:
            return self._load_root(data, min_version, allow_expired, parsed)
        paths = [""]
        if is_delegation(role):
            parent = parent_role(role)
            if parent not in self.targets:  # notary walks the loaded targets and does not find it
                raise InvalidDelegationError(role, "delegation does not exist")
            entry, keys = delegated_role(self.targets[parent], self.paths[parent], role)
            threshold, paths = entry.threshold, entry.paths
        else:
            assert self.root is not None
            keys, threshold = self.root.signed.role_keys(role)
        self._checksum(role, data)
        md = self._parse(role, data, parsed)
        check_document(md, role, keys, threshold, self.now, minimum=min_version, allow_expired=allow_expired)
        if role == TIMESTAMP:
            self._check_unchecked(md.signed.meta, [SNAPSHOT])
            self.timestamp = md
        elif role == SNAPSHOT:
            self._check_unchecked(md.signed.meta, [r for r in self.unchecked if r not in (SNAPSHOT, TIMESTAMP)])
            self.snapshot = md
        else:
            self.targets[role] = md
            self.paths[role] = paths
        self.keys[role] = keys
        return md

    def check_paths(self, role: str) -> None:
        """Raise InvalidMetadataError if the loaded targets document of ``role`` delegates paths or
        (a delegation) lists targets outside its effective paths (what the trust server refuses to
        publish; clients ignore such entries)."""
        check_paths(role, self.targets[role], self.paths[role])

    def _check_input(self, role: str) -> None:
        if not is_valid_role(role):
            raise LoaderInputError(f"{role} is an invalid role")
        if self.is_loaded(role):
            raise LoaderInputError(f"{role} has already been loaded")
        needs = () if role == ROOT else (ROOT,) if not is_delegation(role) else (ROOT, TARGETS)
        for need in needs:
            if not self.is_loaded(need):
                raise LoaderInputError(f"{need} must be loaded first")

    def _load_root(self, data: bytes, min_version: int, allow_expired: bool, parsed: Parsed | None) -> Metadata[Root]:
        self._checksum(ROOT, data)
        md: Metadata[Root] = self._parse(ROOT, data, parsed)
        verify_root(md, self.gun, self.now, self.trusted_root)
        check_version(ROOT, md.signed.version, min_version)
        if not allow_expired:
            check_expiry(md, self.now, ROOT)
        self.root = md
        self.keys[ROOT] = md.signed.role_keys(ROOT)[0]
        return md

    @staticmethod
    def _parse(role: str, data: bytes, parsed: Parsed | None) -> Metadata[Any]:
        if parsed is None:
            return Metadata.parse(data, role, expect=signed_class(role))
        value, signed_bytes = parsed
        return Metadata.from_value(value, data, role, signed_class(role), signed_bytes)

    def _reference(self, role: str) -> dict[str, FileMeta] | None:
        """The loaded ``meta`` holding the checksum of ``role`` (None: not loaded yet)."""
        if role == TIMESTAMP:
            return None
        if role == SNAPSHOT:
            return self.timestamp.signed.meta if self.timestamp is not None else None
        return self.snapshot.signed.meta if self.snapshot is not None else None

    def _checksum(self, role: str, data: bytes) -> None:
        meta = self._reference(role)
        if meta is not None:
            check_file(data, meta.get(role), role)
        elif role != TIMESTAMP:
            self.unchecked[role] = data

    def _check_unchecked(self, meta: dict[str, FileMeta], roles: list[str]) -> None:
        for role in roles:
            data = self.unchecked.get(role)
            if data is not None:
                check_file(data, meta.get(role), role)
                del self.unchecked[role]

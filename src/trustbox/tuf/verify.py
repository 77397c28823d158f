"""The TUF rules, each written once, and the client's trusted-metadata state machine.

Everything here is pure: documents come in as bytes, the time comes in as a parameter.
The rules (signatures and thresholds, expiry, versions, hashes and lengths, document structure,
root certificates and rotation, delegations and their paths) raise typed errors that carry what
they found, so a server can word them as notary-server does (``trustserver/validation.py``).
Two sequencers apply them: :class:`TrustedCollection` here (the client, fed the documents of one
GUN in TUF order: root, timestamp, snapshot, targets, delegations) and
:class:`~trustbox.tuf.loader.RepoLoader` (notary's ``RepoBuilder``: the trust server and the
offline audit). Together they refuse bad or too few signatures, rollback, freeze (expiry),
mix-and-match (hash mismatch), endless data (length limits) and roots that do not chain from the
trusted one.
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
from trustbox.tuf.certs import check_certificate, check_root_certificate
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
    Signed,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation,
    parent_role,
    signed_class,
    within_paths,
)

MAX_ROOT_SIZE = 100 * 1024 * 1024
MAX_TIMESTAMP_SIZE = 1024 * 1024


# --- typed errors -------------------------------------------------------------------------------


class NoSignaturesError(ThresholdError):
    """A document without a single signature (notary's ``ErrNoSignatures``)."""

    def __init__(self, role: str) -> None:
        super().__init__(f"{role} has no signatures")
        self.role = role


class KeyIDMismatchError(SignatureError):
    """A signature by a key listed under an ID that is not the key's own (``ErrInvalidKeyID``)."""

    def __init__(self, role: str, keyid: str) -> None:
        super().__init__(f"{role} is signed by key ID {keyid}, which is not the ID of the key listed under it")
        self.role = role
        self.keyid = keyid


class RoleExpiredError(ExpiredError):
    """A document past its expiry (``ErrExpired``)."""

    def __init__(self, role: str, signed: Signed) -> None:
        super().__init__(f"{role} expired at {signed.expires_text}")
        self.role = role
        self.expires = signed.expires


class VersionTooLowError(RollbackError):
    """A version below the lowest acceptable one (``ErrLowVersion``)."""

    def __init__(self, role: str, version: int, minimum: int) -> None:
        super().__init__(f"{role} version {version} is lower than the trusted version {minimum}")
        self.role = role
        self.version = version
        self.minimum = minimum


class MissingChecksumsError(HashMismatchError):
    """The referencing metadata has no sha256/sha512 checksum for a document (``ErrMissingMeta``)."""

    def __init__(self, role: str) -> None:
        super().__init__(f"{role}: the referencing metadata lists no sha256 or sha512 checksum for it")
        self.role = role


class ChecksumMismatchError(HashMismatchError):
    """Bytes whose checksum differs from the referencing metadata's (``ErrMismatchedChecksum``)."""

    def __init__(self, role: str, algorithm: str, expected: bytes) -> None:
        super().__init__(f"{role}: {algorithm} checksum mismatch with the referencing metadata")
        self.role = role
        self.algorithm = algorithm
        self.expected = expected


class InvalidMetadataError(FormatError):
    """A document that parses but breaks a structure rule (``ErrInvalidMetadata``)."""

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"{role} type metadata invalid: {reason}")
        self.role = role


class InvalidDelegationError(RoleError):
    """A delegated role its parent does not delegate, or delegates with unknown keys (``ErrInvalidRole``)."""

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"tuf: invalid role {role}. {reason}")
        self.role = role


class RootCertificatesError(RootError):
    """A root without a usable root certificate for the GUN (``ErrValidationFail``)."""


class RootRotationError(RootError):
    """A new root not signed to threshold by the trusted root's certificates (``ErrRootRotationFail``)."""

    def __init__(self, version: int, detail: str = "") -> None:
        super().__init__(f"root version {version} is not signed by the previously trusted root keys{detail}")


class PreviousRootCertificatesError(RootRotationError):
    """The trusted root has no usable certificate for the GUN, so nothing can chain from it."""


class RootSignaturesError(RootError, ThresholdError):
    """A root not signed to its own threshold by its own usable certificates."""


# --- signatures, expiry, versions, hashes ------------------------------------------------------


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
    """Return the IDs of ``keys`` that signed ``md``, at least ``threshold`` of them (notary's
    ``VerifySignatures``). Raises NoSignaturesError, KeyIDMismatchError (a signature names a key
    listed under another key's ID) or ThresholdError."""
    if not md.signatures:
        raise NoSignaturesError(role)
    for sig in md.signatures:
        key = keys.get(sig.keyid)
        if key is not None and key.keyid != sig.keyid:
            raise KeyIDMismatchError(role, sig.keyid)
    good = valid_signers(md, keys)
    if len(good) < threshold:
        raise ThresholdError(f"valid signatures did not meet threshold for {role}")
    return good


def check_expiry(md: Metadata[Any], now: datetime, role: str) -> None:
    """Raise RoleExpiredError if ``md`` has expired at ``now``."""
    if md.signed.is_expired(now):
        raise RoleExpiredError(role, md.signed)


def check_version(role: str, version: int, minimum: int) -> None:
    """Raise VersionTooLowError if ``version`` is below ``minimum`` (rollback)."""
    if version < minimum:
        raise VersionTooLowError(role, version, minimum)


def check_size(data: bytes, limit: int, role: str) -> None:
    """Raise LengthError if ``data`` is longer than ``limit`` (endless data)."""
    if len(data) > limit:
        raise LengthError(f"{role}: {len(data)} bytes, more than the {limit} the referencing metadata allows")


def check_file(data: bytes, meta: FileMeta | None, role: str) -> None:
    """Raise unless ``data`` is what ``meta`` (its entry in the referencing metadata) describes
    (:meth:`FileMeta.difference`): MissingChecksumsError (no sha256/sha512 checksum),
    ChecksumMismatchError, then LengthError; checksums first, as notary's ``CheckHashes``."""
    difference = meta.difference(data) if meta is not None else "checksums"
    if difference is None:
        return
    if meta is None or difference == "checksums":
        raise MissingChecksumsError(role)
    if difference == "length":
        raise LengthError(f"{role}: {len(data)} bytes, but the referencing metadata says {meta.length}")
    raise ChecksumMismatchError(role, difference, meta.hashes[difference])


# --- structure and delegations -----------------------------------------------------------------


def _require_sha256(meta: dict[str, FileMeta], listed: str, role: str) -> None:
    entry = meta.get(listed)
    if entry is None or "sha256" not in entry.hashes:
        raise InvalidMetadataError(role, f"missing {listed} sha256 checksum information")


def _check_delegations(role: str, targets: Targets) -> None:
    keys = targets.delegations.keys
    for d in targets.delegations.roles:
        if not is_delegation(d.name) or parent_role(d.name) != role:
            raise InvalidMetadataError(role, f"delegation role {d.name} invalid")
        for kid in d.keyids:
            if kid not in keys:
                raise InvalidMetadataError(role, f"key ID {kid} specified in {d.name} without corresponding key")
            if keys[kid].keyid != kid:
                raise InvalidMetadataError(role, f"key ID {kid} does not match its key")


def check_structure(role: str, signed: Signed) -> None:
    """Raise InvalidMetadataError where a parsed body breaks notary's structure rules: a snapshot
    lists sha256 checksums of root and targets, a timestamp one of the snapshot; a targets
    document delegates only to its direct children, with keys it lists under their own IDs."""
    if isinstance(signed, Snapshot):
        for listed in (ROOT, TARGETS):
            _require_sha256(signed.meta, listed, role)
    elif isinstance(signed, Timestamp):
        _require_sha256(signed.meta, SNAPSHOT, role)
    elif isinstance(signed, Targets):
        _check_delegations(role, signed)


def restrict_paths(parent_paths: list[str], paths: list[str]) -> list[str]:
    """The delegated ``paths`` that lie within one of ``parent_paths`` (prefixes)."""
    return [p for p in paths if within_paths(p, parent_paths)]


def delegated_role(parent: Metadata[Targets], parent_paths: list[str], role: str) -> tuple[DelegatedRole, dict[str, PublicKey]]:
    """The entry of ``role`` in its parent's delegations, with its paths narrowed to the parent's
    effective ``parent_paths``, and its keys (notary's ``GetDelegationRole``).

    Raises InvalidDelegationError (not delegated there, or a key the parent does not list) and
    CertificateError (a key certificate notary refuses: SHA-1, short RSA, empty validity).
    """
    entry = parent.signed.delegations.get(role)
    if entry is None:
        raise InvalidDelegationError(role, "delegation does not exist")
    listed = parent.signed.delegations.keys
    for kid in entry.keyids:
        if kid not in listed:
            raise InvalidDelegationError(role, f"role lists unknown key {kid} as a signing key")
    keys = {kid: listed[kid] for kid in entry.keyids}
    for key in keys.values():
        check_certificate(key)
    narrowed = DelegatedRole(role, entry.keyids, entry.threshold, restrict_paths(parent_paths, entry.paths))
    return narrowed, keys


def check_paths(role: str, md: Metadata[Targets], paths: list[str]) -> None:
    """Raise InvalidMetadataError if a targets document whose effective paths are ``paths``
    delegates a path outside them or (a delegation) lists a target outside them. Clients ignore
    such entries; the trust server refuses to publish them."""
    for d in md.signed.delegations.roles:
        for p in d.paths:
            if not within_paths(p, paths):
                raise InvalidMetadataError(
                    role, f"delegation role {d.name} path {p!r} is not within the paths delegated to its parent"
                )
    if role != TARGETS:
        for name in md.signed.targets:
            if not within_paths(name, paths):
                raise InvalidMetadataError(role, f"target {name!r} is outside the role's paths")


def check_document(
    md: Metadata[Any],
    role: str,
    keys: dict[str, PublicKey],
    threshold: int,
    now: datetime,
    *,
    minimum: int = 1,
    allow_expired: bool = False,
) -> list[str]:
    """Every check a timestamp, snapshot, targets or delegation document gets once its bytes
    passed the checksum of the referencing metadata, in notary's order: signatures, structure,
    version, expiry (a delegation's structure and version before its signatures). Returns the
    signers; raises what :func:`verify_threshold`, :func:`check_structure`, :func:`check_version`
    and :func:`check_expiry` raise."""
    if is_delegation(role):
        check_structure(role, md.signed)
        check_version(role, md.signed.version, minimum)
        signers = verify_threshold(md, keys, threshold, role)
    else:
        signers = verify_threshold(md, keys, threshold, role)
        check_structure(role, md.signed)
        check_version(role, md.signed.version, minimum)
    if not allow_expired:
        check_expiry(md, now, role)
    return signers


# --- roots ---------------------------------------------------------------------------------------


def root_certificates(root: Root, gun: str, now: datetime | None) -> tuple[dict[str, PublicKey], list[str]]:
    """The root role's certificates usable for ``gun`` (CN, no SHA-1, no short RSA, and valid at
    ``now`` unless None), by their own key IDs, and why the others are not."""
    keys, _ = root.role_keys(ROOT)
    usable: dict[str, PublicKey] = {}
    reasons: list[str] = []
    for key in keys.values():
        try:
            check_root_certificate(key, gun, now)
        except TrustboxError as exc:
            reasons.append(str(exc))
            continue
        usable[key.keyid] = key
    return usable, reasons


def verify_root(md: Metadata[Root], gun: str, now: datetime | None, trusted: Metadata[Root] | None = None) -> list[str]:
    """Check a root as notary's ``ValidateRoot`` does; return the IDs of its own certificates that signed it.

    The root needs certificates for ``gun`` (valid at ``now``; None skips validity, for a root
    trusted earlier), else RootCertificatesError. A root replacing the ``trusted`` one must be
    signed to the trusted root's threshold by the trusted root's certificates for ``gun`` (their
    validity is not checked): PreviousRootCertificatesError when it has none, else
    RootRotationError. Last, the root must be signed to its own threshold by its own usable
    certificates: RootSignaturesError.
    """
    certs, reasons = root_certificates(md.signed, gun, now)
    if not certs:
        raise RootCertificatesError(f"no valid root certificate for {gun}" + (": " + "; ".join(reasons) if reasons else ""))
    version = md.signed.version
    if trusted is not None:
        old, _ = root_certificates(trusted.signed, gun, None)
        if not old:
            raise PreviousRootCertificatesError(version, f": the trusted root has no usable certificate for {gun}")
        try:
            verify_threshold(md, old, trusted.signed.roles[ROOT].threshold, ROOT)
        except (ThresholdError, SignatureError) as exc:
            raise RootRotationError(version) from exc
    try:
        return verify_threshold(md, certs, md.signed.roles[ROOT].threshold, ROOT)
    except (ThresholdError, SignatureError) as exc:
        raise RootSignaturesError(f"valid signatures did not meet threshold for {ROOT}") from exc


# --- the client's state machine ----------------------------------------------------------------


def check_pinned_root(
    root: Metadata[Root], usable: dict[str, PublicKey], none_usable: str, below_threshold: str
) -> None:
    """Trust pinning of a first-contact root: the pinned keys among the root role's (``usable``)
    must sign ``root`` to its threshold (notary's ``trustpinning`` check).

    Raises:
        RootError: ``none_usable`` when no pinned key is listed, ``below_threshold`` when the pinned
            keys do not meet the root threshold.
    """
    if not usable:
        raise RootError(none_usable)
    try:
        verify_threshold(root, usable, root.signed.role_keys(ROOT)[1], ROOT)
    except ThresholdError as exc:
        raise RootError(below_threshold) from exc


def check_pinned_ids(root: Metadata[Root], gun: str, pinned_ids: Iterable[str]) -> None:
    """:func:`check_pinned_root` for pinned certificate/key IDs (notary's ``trust_pinning.certs``).

    Raises:
        RootError: none of the IDs is a root key of ``root``, or they do not sign it to threshold.
    """
    ids = list(pinned_ids)
    keys, _threshold = root.signed.role_keys(ROOT)
    check_pinned_root(
        root, {k: v for k, v in keys.items() if k in ids},
        f"root of {gun} has none of the pinned certificates {', '.join(ids)}",
        f"root of {gun} is not signed by its pinned certificates",
    )


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
    ``allow_expired`` (reports only, e.g. ``trustbox trust status``): every rule but expiry
    still decides; callers then read each document's expiry themselves.
    """

    def __init__(
        self,
        gun: str,
        root_data: bytes,
        now: datetime,
        *,
        tofu: bool = False,
        floor_versions: dict[str, int] | None = None,
        allow_expired: bool = False,
    ) -> None:
        self.gun = gun
        self.now = now
        self.floor = dict(floor_versions or {})
        self.allow_expired = allow_expired
        root = Metadata.parse(root_data, ROOT, expect=Root)
        verify_root(root, gun, now if tofu else None)
        if tofu and not allow_expired:
            check_expiry(root, now, ROOT)
        self.root: Metadata[Root] = root
        self.timestamp: Metadata[Timestamp] | None = None
        self.snapshot: Metadata[Snapshot] | None = None
        self.targets: Metadata[Targets] | None = None
        self.delegations: dict[str, LoadedRole] = {}

    # -- root --------------------------------------------------------------------------------

    def update_root(self, data: bytes) -> Metadata[Root]:
        """Accept the next root version: version + 1, chaining from the trusted root (:func:`verify_root`)."""
        check_size(data, MAX_ROOT_SIZE, ROOT)
        new = Metadata.parse(data, ROOT, expect=Root)
        old = self.root
        if new.signed.version != old.signed.version + 1:
            raise RollbackError(
                f"root version {new.signed.version} does not follow the trusted version {old.signed.version}"
            )
        verify_root(new, self.gun, self.now, old)
        self.root = new
        # a new root invalidates everything verified with the old keys
        self.timestamp = self.snapshot = self.targets = None
        self.delegations = {}
        return new

    def check_root_current(self) -> None:
        """Raise ExpiredError if the trusted root has expired (after any rotation; never with
        ``allow_expired``)."""
        if self.allow_expired:
            return
        check_expiry(self.root, self.now, ROOT)

    # -- timestamp / snapshot / targets --------------------------------------------------------

    def _minimum(self, role: str, previous: Metadata[Any] | None) -> int:
        floor = self.floor.get(role, 0)
        return max(floor, previous.signed.version) if previous is not None else floor

    def _load(
        self, role: str, data: bytes, keys: tuple[dict[str, PublicKey], int], previous: Metadata[Any] | None
    ) -> Metadata[Any]:
        md = Metadata.parse(data, role, expect=signed_class(role))
        check_document(
            md, role, keys[0], keys[1], self.now, minimum=self._minimum(role, previous), allow_expired=self.allow_expired
        )
        return md

    def update_timestamp(self, data: bytes) -> Metadata[Timestamp]:
        """Verify timestamp.json: size, signatures, structure, version not lower, not expired."""
        check_size(data, MAX_TIMESTAMP_SIZE, TIMESTAMP)
        self.timestamp = self._load(TIMESTAMP, data, self.root.signed.role_keys(TIMESTAMP), self.timestamp)
        return self.timestamp

    def update_snapshot(self, data: bytes) -> Metadata[Snapshot]:
        """Verify snapshot.json against the timestamp's checksums, then signatures, structure, version, expiry."""
        if self.timestamp is None:
            raise TrustboxError("timestamp must be loaded before snapshot")
        meta = self.timestamp.signed.snapshot_meta
        check_size(data, meta.length, SNAPSHOT)
        check_file(data, meta, SNAPSHOT)
        self.snapshot = self._load(SNAPSHOT, data, self.root.signed.role_keys(SNAPSHOT), self.snapshot)
        return self.snapshot

    def snapshot_meta(self, role: str) -> FileMeta | None:
        """The snapshot entry of ``role`` (None if not listed)."""
        if self.snapshot is None:
            raise TrustboxError("snapshot must be loaded first")
        return self.snapshot.signed.meta.get(role)

    def _listed(self, role: str, data: bytes) -> None:
        meta = self.snapshot_meta(role)
        if meta is not None:
            check_size(data, meta.length, role)
        check_file(data, meta, role)

    def update_targets(self, data: bytes) -> Metadata[Targets]:
        """Verify targets.json against the snapshot's checksums and the root's targets keys."""
        self._listed(TARGETS, data)
        self.targets = self._load(TARGETS, data, self.root.signed.role_keys(TARGETS), self.targets)
        return self.targets

    def _parent(self, role: str) -> tuple[Metadata[Targets], list[str]]:
        if not is_delegation(role):
            raise RoleError(f"{role!r} is not a delegated role")
        parent = parent_role(role)
        if parent == TARGETS:
            if self.targets is None:
                raise TrustboxError("targets must be loaded before its delegations")
            return self.targets, [""]
        loaded = self.delegations.get(parent)
        if loaded is None:
            raise RoleError(f"parent role {parent} of {role} is not loaded")
        return loaded.metadata, loaded.role.paths

    def update_delegation(self, role: str, data: bytes) -> Metadata[Targets]:
        """Verify a delegated targets document with the keys its parent lists for it."""
        parent_md, parent_paths = self._parent(role)
        entry, keys = delegated_role(parent_md, parent_paths, role)
        self._listed(role, data)
        previous = self.delegations.get(role)
        md = self._load(role, data, (keys, entry.threshold), previous.metadata if previous else None)
        self.delegations[role] = LoadedRole(role, md, entry)
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

"""The notary client update workflow (notary ``client/tufclient.go``), on top of :class:`TrustedCollection`.

1. root: the cached root (pinned on first use) or, on first contact, ``root.json`` checked
   against the trust pinning configuration (TOFU by default);
2. ``timestamp.json`` (1 MiB cap); like notary, the cached copy (within its expiry) when the
   download fails for any reason but a 400 or an oversized answer: 404, other statuses, network
   errors. Notary's warning is printed and :attr:`UpdateResult.stale` says why;
3. ``snapshot.<sha256>.json`` and 4. ``targets.<sha256>.json``, each capped at and checked
   against the length and hashes of the referencing document (cached copies used when they match);
5. delegations breadth first (expired or under-signed ones are skipped, like notary; anything
   else is fatal);
6. if anything fails (or the snapshot lists another root) the newest root is fetched and the
   chain ``<v>.root.json`` is walked from the trusted version, then 2-5 are retried once;
7. everything verified goes to the cache.

A writer (``check_initialized``, notary's ``Update(forWrite=true)``) also asks the server for
``root.json`` even with a cached root: a 404 means the server has no trust data for the GUN (a
new or wiped server) and the result is the cached repository, flagged ``remote_missing``, for an
initial publish of everything the server lacks.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trustbox.client.errors import (
    MetaNotFoundError,
    RemoteTrustDataMissingError,
    RepositoryNotExistError,
    ServerRejectedError,
)
from trustbox.client.pinning import TrustPinning
from trustbox.client.trust.cache import MetadataCache
from trustbox.client.trust.remote import RemoteStore
from trustbox.errors import (
    ExpiredError,
    FormatError,
    HashMismatchError,
    NetworkError,
    NotFoundError,
    RollbackError,
    RootError,
    ThresholdError,
    TrustboxError,
    VerificationError,
)
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, FileMeta, Metadata, Root
from trustbox.tuf.verify import MAX_ROOT_SIZE, MAX_TIMESTAMP_SIZE, TrustedCollection

log = logging.getLogger(__name__)

#: notary's (and docker's) warning, word for word, when the cached timestamp stands in for the server's
CACHED_TIMESTAMP_WARNING = (
    "Error while downloading remote metadata, using cached timestamp - this might not be the latest version "
    "available remotely"
)


class _RootChanged(Exception):
    """The snapshot lists a root other than the trusted one."""


def consistent_name(role: str, meta: FileMeta) -> str:
    """``<role>.<sha256 hex>`` (or sha512) as notary requests checksummed metadata."""
    for algo in ("sha256", "sha512"):
        digest = meta.hashes.get(algo)
        if digest is not None:
            return f"{role}.{digest.hex()}"
    return role


def _cached_version(data: bytes | None, role: str) -> int:
    if data is None:
        return 0
    try:
        return int(Metadata.parse(data, role).signed.version)
    except TrustboxError:
        return 0


@dataclass
class UpdateResult:
    """What an update verified and where it came from."""

    collection: TrustedCollection
    #: delegations that were skipped (expired / below threshold), with the reason
    skipped: dict[str, TrustboxError] = field(default_factory=dict)
    #: why the cached timestamp was used instead of the server's (None: the server's own, verified now)
    stale: TrustboxError | None = None
    #: the server has no root for the GUN: everything came from the cache (writers only)
    remote_missing: bool = False


class Updater:
    """One run of the update workflow for a GUN.

    ``check_initialized`` (writers): ask the server for ``root.json`` even when a root is cached,
    like notary's ``bootstrapClient(checkInitialized)``. ``warn`` receives user-facing warnings
    (default: this module's logger).
    """

    def __init__(
        self,
        gun: str,
        remote: RemoteStore,
        cache: MetadataCache,
        now: datetime,
        pinning: TrustPinning | None = None,
        *,
        check_initialized: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.gun = gun
        self.remote = remote
        self.cache = cache
        self.now = now
        self.pinning = pinning or TrustPinning()
        self.check_initialized = check_initialized
        self.warn: Callable[[str], None] = warn or log.warning
        #: delegations that were skipped (expired / below threshold), with the reason
        self.skipped: dict[str, TrustboxError] = {}
        #: why the cached timestamp stood in for the server's (None: the server's own)
        self.stale: TrustboxError | None = None
        #: the server answered 404 for root.json although a root is cached (writers only)
        self.remote_missing = False

    # -- entry point -----------------------------------------------------------------------------

    def run(self) -> TrustedCollection:
        """Fetch and verify everything; raise a trustbox error when the repository cannot be trusted
        (RemoteTrustDataMissingError when the server has no trust data and the cache cannot stand in)."""
        tc = self._bootstrap()
        if self.remote_missing:
            return self._cached_only(tc)
        if tc.root.signed.is_expired(self.now):
            self._rotate_root(tc)
        try:
            self._update(tc)
        except (VerificationError, FormatError, NotFoundError, _RootChanged) as first:
            log.debug("update failed (%s); fetching the newest root and retrying", first)
            self._reset(tc)
            self._rotate_root(tc)
            try:
                self._update(tc)
            except _RootChanged as exc:
                raise HashMismatchError("root: checksum mismatch with the snapshot's root entry") from exc
        tc.check_root_current()
        self._save(tc)
        return tc

    # -- steps ---------------------------------------------------------------------------------

    def _bootstrap(self) -> TrustedCollection:
        floors = {
            role: _cached_version(self.cache.get(role), role) for role in (TIMESTAMP, SNAPSHOT, TARGETS)
        }
        cached_root = self.cache.get(ROOT)
        if cached_root is not None:
            try:
                tc = TrustedCollection(self.gun, cached_root, self.now, floor_versions=floors)
            except TrustboxError as exc:
                raise RootError(f"the cached root of {self.gun} is invalid: {exc.message}") from exc
            if self.check_initialized:
                self.remote_missing = not self._server_has_root()
            return tc
        try:
            data = self.remote.get_sized(ROOT, MAX_ROOT_SIZE)
        except MetaNotFoundError as exc:
            raise RepositoryNotExistError(self.remote.host, self.gun) from exc
        root = Metadata.parse(data, ROOT, expect=Root)
        self.pinning.check(root, self.gun, self.now)
        return TrustedCollection(self.gun, data, self.now, tofu=True, floor_versions=floors)

    def _server_has_root(self) -> bool:
        """Whether the server holds a root for the GUN (False on 404; other failures raise, since a
        writer cannot publish without knowing)."""
        try:
            self.remote.get_sized(ROOT, MAX_ROOT_SIZE)
        except MetaNotFoundError:
            return False
        return True

    def _cached_only(self, tc: TrustedCollection) -> TrustedCollection:
        """The cached repository of a GUN the server has no trust data for, verified like a read
        (expiry included) without asking the server again; raises RemoteTrustDataMissingError
        when the cache cannot stand in."""
        try:
            tc.check_root_current()
            self._update(tc)
        except TrustboxError as exc:
            detail = f"no cached {exc.resource.split('.')[0]}" if isinstance(exc, MetaNotFoundError) else exc.message
            raise RemoteTrustDataMissingError(
                self.remote.host, self.gun, self.cache.root_dir, f"the cached copy cannot be published again: {detail}"
            ) from exc
        return tc

    @staticmethod
    def _reset(tc: TrustedCollection) -> None:
        tc.timestamp = tc.snapshot = tc.targets = None
        tc.delegations = {}

    def _fetch(self, role: str, meta: FileMeta) -> bytes:
        cached = self.cache.get(role)
        if cached is not None and meta.matches(cached):
            return cached
        return self.remote.get_sized(consistent_name(role, meta), meta.length)

    def _timestamp(self) -> bytes:
        """The server's timestamp, or (notary's ``downloadTimestamp``) the cached one when the
        download fails with a 404, another non-400 status or a network error; sets ``stale``."""
        cached = self.cache.get(TIMESTAMP)
        if self.remote_missing:
            if cached is None:
                raise MetaNotFoundError(TIMESTAMP)
            self.stale = RepositoryNotExistError(self.remote.host, self.gun)
            return cached
        try:
            return self.remote.get_sized(TIMESTAMP, MAX_TIMESTAMP_SIZE)
        except ServerRejectedError:
            raise
        except (NetworkError, MetaNotFoundError) as exc:
            if cached is None:
                raise
            log.debug("timestamp download failed: %s", exc)
            self.warn(CACHED_TIMESTAMP_WARNING)
            self.stale = exc
            return cached

    def _update(self, tc: TrustedCollection) -> None:
        self.skipped = {}
        self.stale = None
        tc.update_timestamp(self._timestamp())
        assert tc.timestamp is not None
        tc.update_snapshot(self._fetch(SNAPSHOT, tc.timestamp.signed.snapshot_meta))
        root_meta = tc.snapshot_meta(ROOT)
        if root_meta is not None and not root_meta.matches(tc.root.to_bytes()):
            raise _RootChanged()
        targets_meta = tc.snapshot_meta(TARGETS)
        if targets_meta is None:
            raise MetaNotFoundError(TARGETS)
        tc.update_targets(self._fetch(TARGETS, targets_meta))
        assert tc.targets is not None
        queue = deque(r.name for r in tc.targets.signed.delegations.roles)
        while queue:
            role = queue.popleft()
            meta = tc.snapshot_meta(role)
            if meta is None:
                continue  # delegated but never published
            try:
                data = self._fetch(role, meta)
            except MetaNotFoundError:
                continue
            tc.floor[role] = max(tc.floor.get(role, 0), _cached_version(self.cache.get(role), role))
            try:
                md = tc.update_delegation(role, data)
            except (ExpiredError, ThresholdError) as exc:
                log.warning("skipping delegation %s: %s", role, exc)
                self.skipped[role] = exc
                continue
            queue.extend(r.name for r in md.signed.delegations.roles if r.name.rsplit("/", 1)[0] == role)

    def _rotate_root(self, tc: TrustedCollection) -> None:
        """Follow the root chain from the trusted version to the newest one, version by version."""
        try:
            data = self.remote.get_sized(ROOT, MAX_ROOT_SIZE)
        except MetaNotFoundError as exc:
            raise RepositoryNotExistError(self.remote.host, self.gun) from exc
        newest = Metadata.parse(data, ROOT, expect=Root)
        current = tc.root.signed.version
        version = newest.signed.version
        if version < current:
            raise RollbackError(f"root version {version} is lower than the trusted version {current}")
        if version == current:
            if data != tc.root.to_bytes() and Metadata.parse(data, ROOT).signed_bytes() != tc.root.signed_bytes():
                raise RootError(
                    f"the server's root version {version} differs from the trusted root of the same version"
                )
            return
        for v in range(current + 1, version):
            try:
                step = self.remote.get_sized(f"{v}.{ROOT}", MAX_ROOT_SIZE)
            except MetaNotFoundError as exc:
                raise RootError(f"root version {v} is missing from the server; cannot follow the root rotation") from exc
            tc.update_root(step)
        tc.update_root(data)
        tc.check_root_current()
        self.cache.set(ROOT, tc.root.to_bytes())

    def _save(self, tc: TrustedCollection) -> None:
        docs: list[tuple[str, Metadata[Any] | None]] = [
            (ROOT, tc.root),
            (TIMESTAMP, tc.timestamp),
            (SNAPSHOT, tc.snapshot),
            (TARGETS, tc.targets),
        ]
        docs.extend((name, loaded.metadata) for name, loaded in tc.delegations.items())
        for role, md in docs:
            if md is None:
                continue
            data = md.to_bytes()
            if self.cache.get(role) != data:
                self.cache.set(role, data)


def update_repository(
    gun: str,
    remote: RemoteStore,
    cache: MetadataCache,
    now: datetime,
    pinning: TrustPinning | None = None,
    *,
    check_initialized: bool = False,
    warn: Callable[[str], None] | None = None,
) -> UpdateResult:
    """Run the update workflow (see :class:`Updater`); raises trustbox errors when the repository
    cannot be trusted."""
    updater = Updater(gun, remote, cache, now, pinning, check_initialized=check_initialized, warn=warn)
    tc = updater.run()
    return UpdateResult(tc, updater.skipped, updater.stale, updater.remote_missing)

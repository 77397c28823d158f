"""The registry's own content-trust reader: fetch a GUN's trust data from a Notary v1 server and
verify it with the core's :class:`~trustbox.tuf.verify.TrustedCollection`, as a client would.

The registry never imports the client (the client sits above the servers); this is the small
server-side fetch loop over the core state machine:

1. root: the root this registry trusted before (kept durably in its storage, with the highest
   versions seen for rollback protection) or, on first contact, ``root.json`` checked against the
   configured root key IDs (trust on first use when none are configured);
2. ``timestamp.json``, ``snapshot.<sha256>.json``, ``targets.<sha256>.json``, each capped at and
   checked against the referencing document; delegations breadth first (expired or under-signed
   ones skipped, as notary does; every other failure is fatal);
3. on a failure, or when the snapshot lists another root, the newest root is fetched and the chain
   ``<v>.root.json`` walked from the trusted version (each step through ``update_root``), then step
   2 is retried once;
4. only when everything verified are the root and the versions written back.

Every rule (signatures, thresholds, expiry, versions, checksums, rotation, delegations) is the
core's. Blocking: call it from a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from trustbox.errors import (
    ExpiredError,
    FormatError,
    LengthError,
    NetworkError,
    NotFoundError,
    RootError,
    ThresholdError,
    TrustboxError,
    VerificationError,
)
from trustbox.registry.storage.base import StorageDriver
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, FileMeta, Metadata, Root
from trustbox.tuf.verify import MAX_ROOT_SIZE, MAX_TIMESTAMP_SIZE, TrustedCollection, check_pinned_ids

log = logging.getLogger("trustbox.registry.trust")

#: where the registry keeps what it trusts of each GUN (root and version floors)
STATE_PREFIX = "trustpolicy"
#: the largest documents fetched without a referencing length: root.json, timestamp.json (the core's caps)
_UNREFERENCED_CAPS = {ROOT: MAX_ROOT_SIZE, TIMESTAMP: MAX_TIMESTAMP_SIZE}
#: the most delegation roles walked per GUN
MAX_DELEGATIONS = 1000


class TrustServerUnreachable(NetworkError):
    """The trust server could not be reached or answered with an unexpected status (not a lie:
    nothing it sent failed verification)."""


class _RootChanged(Exception):
    """The snapshot lists a root other than the trusted one."""


@dataclass(frozen=True)
class VerifiedTrust:
    """What one verified update of a GUN yields: each role's targets (only those the role may
    sign) and the earliest expiry of the documents used."""

    gun: str
    roles: dict[str, dict[str, FileMeta]]
    expires: datetime
    root_version: int
    #: decisions taken on this data (by whoever reads it), dropped with it
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def signed_digest(self, tag: str, role: str) -> str | None:
        """``sha256:<hex>`` that ``role`` signs for ``tag`` (None if it does not sign it)."""
        meta = self.roles.get(role, {}).get(tag)
        if meta is None:
            return None
        h = meta.hashes.get("sha256")
        return f"sha256:{h.hex()}" if h is not None else None


def _state_key(server: str, gun: str) -> str:
    name = hashlib.sha256((server + "\n" + gun).encode()).hexdigest()
    return f"{STATE_PREFIX}/{name}.json"


class RootStore:
    """The trusted root and version floors per (trust server, GUN), durably in the registry's storage."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def load(self, server: str, gun: str) -> tuple[bytes, dict[str, int]] | None:
        """The stored root bytes and version floors, None on first contact.

        Raises:
            RootError: the stored state is unreadable (never silently replaced by a new TOFU).
        """
        raw = self.driver.read(_state_key(server, gun))
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            root = base64.b64decode(doc["root"], validate=True)
            floors = {str(k): int(v) for k, v in doc["versions"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RootError(f"the registry's stored trust state for {gun} is unreadable: {exc}") from exc
        return root, floors

    def save(self, server: str, gun: str, root: bytes, floors: dict[str, int], root_version: int) -> None:
        """Store the trusted root and the version floors (after a fully verified update), merged
        with what another worker or replica may have stored meanwhile: the higher root version and
        the higher version of each role win, so a slower update never lowers a floor."""
        try:
            stored = self.load(server, gun)
        except RootError:
            stored = None
        if stored is not None:
            old_root, old_floors = stored
            floors = {r: max(v, old_floors.get(r, 0)) for r, v in {**old_floors, **floors}.items()}
            if old_floors.get("root", 0) > root_version:
                root, root_version = old_root, old_floors["root"]
        floors["root"] = root_version
        doc = {"gun": gun, "server": server, "root": base64.b64encode(root).decode(), "versions": floors}
        self.driver.write(_state_key(server, gun), json.dumps(doc, sort_keys=True).encode())


def _consistent_name(role: str, meta: FileMeta) -> str:
    digest = meta.hashes.get("sha256") or meta.hashes.get("sha512")
    return f"{role}.{digest.hex()}" if digest is not None else role


class TrustFetcher:
    """Reads the trust data of GUNs from one trust server (``url``), verifying everything."""

    def __init__(
        self,
        url: str,
        store: RootStore,
        *,
        ca: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.store = store
        self.timeout = timeout
        verify: Any = ca if ca else True
        self.http = httpx.Client(timeout=timeout, verify=verify, transport=transport, follow_redirects=False)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    # -- HTTP --------------------------------------------------------------------------------------

    def _get(self, gun: str, name: str, limit: int) -> bytes:
        """``name``.json of ``gun``, at most ``limit`` bytes.

        Raises:
            NotFoundError: 404.
            TrustServerUnreachable: a network error or a status other than 200/404.
            LengthError: more than ``limit`` bytes.
        """
        url = f"{self.url}/v2/{quote(gun, safe='/:')}/_trust/tuf/{name}.json"
        deadline = time.monotonic() + self.timeout  # whole answer, not only each read (a trickling server)
        try:
            with self.http.stream("GET", url) as resp:
                if resp.status_code == 404:
                    raise NotFoundError(f"{name}.json of {gun} not found on the trust server")
                if resp.status_code != 200:
                    raise TrustServerUnreachable(f"trust server answered {resp.status_code} for {name}.json of {gun}")
                buf = bytearray()
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        raise LengthError(f"{name}.json of {gun}: more than {limit} bytes")
                    if time.monotonic() > deadline:
                        raise TrustServerUnreachable(f"{name}.json of {gun}: not received within {self.timeout:g} s")
                return bytes(buf)
        except httpx.HTTPError as exc:
            raise TrustServerUnreachable(f"trust server {self.url} unreachable: {type(exc).__name__}: {exc}") from exc

    # -- the update ----------------------------------------------------------------------------------

    def fetch(self, gun: str, now: datetime, pinned_ids: list[str] | None = None) -> VerifiedTrust:
        """Fetch and verify ``gun``'s trust data at ``now``; store root and versions when all verified.

        Raises:
            TrustServerUnreachable: the server could not be reached (nothing failed verification).
            NotFoundError: the server has no trust data for ``gun``.
            VerificationError / FormatError / RootError: the data failed a check (a lying server).
        """
        stored = self.store.load(self.url, gun)
        if stored is not None:
            root_bytes, floors = stored
            try:
                tc = TrustedCollection(gun, root_bytes, now, floor_versions=floors)
            except TrustboxError as exc:
                raise RootError(f"the registry's trusted root of {gun} is invalid: {exc.message}") from exc
        else:
            floors = {}
            data = self._get(gun, ROOT, MAX_ROOT_SIZE)
            if pinned_ids:
                check_pinned_ids(Metadata.parse(data, ROOT, expect=Root), gun, pinned_ids)
            tc = TrustedCollection(gun, data, now, tofu=True)
        if tc.root.signed.is_expired(now):
            self._rotate_root(tc, gun)
        try:
            self._update(tc, gun)
        except (VerificationError, FormatError, NotFoundError, _RootChanged) as first:
            log.debug("trust update of %s failed (%s); walking the root chain and retrying", gun, first)
            _reset(tc)
            self._rotate_root(tc, gun)
            try:
                self._update(tc, gun)
            except _RootChanged as exc:
                raise RootError(f"{gun}: the snapshot lists a root other than the newest one") from exc
        tc.check_root_current()
        versions = {**floors, **_versions(tc)}
        self.store.save(self.url, gun, tc.root.to_bytes(), versions, int(tc.root.signed.version))
        return _summary(tc)

    def _update(self, tc: TrustedCollection, gun: str) -> None:
        tc.update_timestamp(self._get(gun, TIMESTAMP, MAX_TIMESTAMP_SIZE))
        assert tc.timestamp is not None
        snap_meta = tc.timestamp.signed.snapshot_meta
        tc.update_snapshot(self._get(gun, _consistent_name(SNAPSHOT, snap_meta), snap_meta.length))
        root_meta = tc.snapshot_meta(ROOT)
        if root_meta is not None and not root_meta.matches(tc.root.to_bytes()):
            raise _RootChanged()
        targets_meta = tc.snapshot_meta(TARGETS)
        if targets_meta is None:
            raise NotFoundError(f"the snapshot of {gun} lists no targets")
        tc.update_targets(self._get(gun, _consistent_name(TARGETS, targets_meta), targets_meta.length))
        assert tc.targets is not None
        queue = deque(r.name for r in tc.targets.signed.delegations.roles)
        walked = 0
        while queue and walked < MAX_DELEGATIONS:
            role = queue.popleft()
            walked += 1
            meta = tc.snapshot_meta(role)
            if meta is None:
                continue  # delegated but never published
            try:
                data = self._get(gun, _consistent_name(role, meta), meta.length)
            except NotFoundError:
                continue
            try:
                md = tc.update_delegation(role, data)
            except (ExpiredError, ThresholdError) as exc:
                log.info("trust policy: %s: skipping delegation %s: %s", gun, role, exc)
                continue
            queue.extend(r.name for r in md.signed.delegations.roles if r.name.rsplit("/", 1)[0] == role)

    def _rotate_root(self, tc: TrustedCollection, gun: str) -> None:
        """Follow the root chain from the trusted version to the server's newest, version by version."""
        data = self._get(gun, ROOT, MAX_ROOT_SIZE)
        newest = Metadata.parse(data, ROOT, expect=Root)
        current, version = tc.root.signed.version, newest.signed.version
        if version <= current:
            if version == current and newest.signed_bytes() == tc.root.signed_bytes():
                return
            raise RootError(f"{gun}: the server's root (version {version}) does not follow the trusted "
                            f"root (version {current})")
        for v in range(current + 1, version):
            tc.update_root(self._get(gun, f"{v}.{ROOT}", MAX_ROOT_SIZE))
        tc.update_root(data)
        tc.check_root_current()


def _reset(tc: TrustedCollection) -> None:
    tc.timestamp = tc.snapshot = tc.targets = None
    tc.delegations = {}


def _versions(tc: TrustedCollection) -> dict[str, int]:
    out: dict[str, int] = {}
    for role, md in ((TIMESTAMP, tc.timestamp), (SNAPSHOT, tc.snapshot), (TARGETS, tc.targets)):
        if md is not None:
            out[role] = int(md.signed.version)
    out.update({name: int(loaded.metadata.signed.version) for name, loaded in tc.delegations.items()})
    return out


def _summary(tc: TrustedCollection) -> VerifiedTrust:
    assert tc.timestamp is not None and tc.snapshot is not None and tc.targets is not None
    docs: list[Metadata[Any]] = [tc.root, tc.timestamp, tc.snapshot, tc.targets]
    docs.extend(loaded.metadata for loaded in tc.delegations.values())
    roles = {TARGETS: tc.role_targets(TARGETS)}
    roles.update({name: tc.role_targets(name) for name in tc.delegations})
    return VerifiedTrust(tc.gun, roles, min(md.signed.expires for md in docs), int(tc.root.signed.version))

"""What the trust server holds, summarised from stored metadata: repositories, each role's
version, expiry and keys, the signed tags. Used by the web page and the expiry metrics.

Everything is read from the newest stored version of each role (as stored: the server-managed
timestamp and snapshot are re-signed on read when stale, so their stored expiry can be past while
clients are served a fresh one). A scan costs one query plus a read and parse of each role of the
repositories whose versions changed since the previous scan; :class:`InventoryCache` keeps the
result for a while so scrapes stay cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trustbox.errors import TrustboxError
from trustbox.trustserver.storage import Storage
from trustbox.tuf.metadata import BASE_ROLES, Metadata, Root, Targets, is_delegation

#: role kinds the expiry gauge is labelled with
ROLE_KINDS = ("root", "targets", "delegation", "snapshot", "timestamp")


def role_kind(role: str) -> str:
    """``delegation`` for ``targets/...`` roles, else the role itself."""
    return "delegation" if is_delegation(role) else role


@dataclass(frozen=True)
class KeyRef:
    """A key authorised for a role: ID and type."""

    keyid: str
    keytype: str


@dataclass
class RoleInfo:
    """One role's newest stored document."""

    name: str
    version: int
    expires: datetime
    signed_by: list[str] = field(default_factory=list)
    keys: list[KeyRef] = field(default_factory=list)
    threshold: int = 1
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SignedTarget:
    """A target (a tag, for docker) listed by a targets role."""

    name: str
    digest: str
    size: int
    role: str


@dataclass
class RepoInfo:
    """One repository (GUN)."""

    gun: str
    roles: dict[str, RoleInfo] = field(default_factory=dict)
    targets: list[SignedTarget] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def earliest(self) -> RoleInfo | None:
        """The role that expires first."""
        return min(self.roles.values(), key=lambda r: r.expires, default=None)


def _signers(md: Metadata[Any]) -> list[str]:
    return sorted({s.keyid for s in md.signatures})


def summarise(gun: str, documents: dict[str, bytes]) -> RepoInfo:
    """A :class:`RepoInfo` from ``role -> newest stored bytes`` (pure: no I/O). A document that
    does not parse is listed under ``problems`` instead of raising."""
    repo = RepoInfo(gun)
    parsed: dict[str, Metadata[Any]] = {}
    for role in sorted(documents):
        try:
            parsed[role] = Metadata.parse(documents[role], role)
        except TrustboxError as exc:
            repo.problems.append(f"{role}: {exc}")
    root = parsed.get("root")
    for role, md in parsed.items():
        body = md.signed
        info = RoleInfo(role, body.version, body.expires, _signers(md))
        if isinstance(root, Metadata) and isinstance(root.signed, Root) and role in BASE_ROLES:
            rk = root.signed.roles.get(role)
            if rk is not None:
                info.threshold = rk.threshold
                info.keys = [KeyRef(k, root.signed.keys[k].keytype) for k in rk.keyids if k in root.signed.keys]
        repo.roles[role] = info
    # delegations: keys and paths come from the parent targets document
    for md in parsed.values():
        body = md.signed
        if not isinstance(body, Targets):
            continue
        for d in body.delegations.roles:
            info_or_none = repo.roles.get(d.name)
            if info_or_none is None:
                continue
            info_or_none.threshold = d.threshold
            info_or_none.paths = list(d.paths)
            info_or_none.keys = [
                KeyRef(k, body.delegations.keys[k].keytype) for k in d.keyids if k in body.delegations.keys
            ]
    for role, md in sorted(parsed.items()):
        body = md.signed
        if isinstance(body, Targets):
            for name, meta in sorted(body.targets.items()):
                sha = meta.hashes.get("sha256")
                digest = f"sha256:{sha.hex()}" if sha is not None else ""
                repo.targets.append(SignedTarget(name, digest, meta.length, role))
    return repo


def read_repo(storage: Storage, gun: str) -> RepoInfo | None:
    """The summary of ``gun`` read from ``storage``, or None when nothing is stored for it.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed.
    """
    documents: dict[str, bytes] = {}
    for _, role, _v in storage.current_roles(gun):
        stored = storage.get_current(gun, role)
        if stored is not None:
            documents[role] = stored.data
    if not documents:
        return None
    return summarise(gun, documents)


@dataclass(frozen=True)
class Inventory:
    """Every repository's summary at one moment (``taken``, monotonic seconds)."""

    repos: list[RepoInfo]
    taken: float
    truncated: bool = False

    def earliest_expiry(self) -> dict[str, datetime]:
        """Per role kind, the earliest expiry across all repositories."""
        out: dict[str, datetime] = {}
        for repo in self.repos:
            for role in repo.roles.values():
                kind = role_kind(role.name)
                if kind not in out or role.expires < out[kind]:
                    out[kind] = role.expires
        return out


#: a repository's role versions, the key under which its summary is reused between scans
Versions = tuple[tuple[str, int], ...]


def read_inventory(
    storage: Storage, max_roles: int = 200_000, previous: dict[str, tuple[Versions, RepoInfo]] | None = None
) -> tuple[Inventory, dict[str, tuple[Versions, RepoInfo]]]:
    """Every repository's summary (at most ``max_roles`` stored roles), and the summaries by GUN
    for the next call: a repository whose role versions did not change since ``previous`` is not
    read again, so a scan of an unchanged server is one query.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed.
    """
    rows = storage.current_roles(limit=max_roles + 1)
    truncated = len(rows) > max_roles
    versions: dict[str, list[tuple[str, int]]] = {}
    for gun, role, version in rows[:max_roles]:
        versions.setdefault(gun, []).append((role, version))
    known = previous or {}
    summaries: dict[str, tuple[Versions, RepoInfo]] = {}
    for gun, roles in versions.items():
        key = tuple(roles)
        old = known.get(gun)
        if old is not None and old[0] == key:
            summaries[gun] = old
            continue
        docs: dict[str, bytes] = {}
        for role, _v in roles:
            stored = storage.get_current(gun, role)
            if stored is not None:
                docs[role] = stored.data
        summaries[gun] = (key, summarise(gun, docs))
    repos = [summaries[gun][1] for gun in sorted(summaries)]
    return Inventory(repos, time.monotonic(), truncated), summaries


class InventoryCache:
    """The inventory, re-read at most every ``min_age`` seconds after a write and at least every
    ``max_age`` seconds (writes made by other processes are seen within ``max_age``)."""

    def __init__(
        self, storage: Storage, *, min_age: float = 5.0, max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.min_age = min_age
        self.max_age = max_age
        self.clock = clock
        self._current: Inventory | None = None
        self._summaries: dict[str, tuple[Versions, RepoInfo]] = {}
        self._dirty = False
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """A write happened: re-read at the next chance (no sooner than ``min_age``)."""
        self._dirty = True

    def get(self) -> Inventory:
        """The cached inventory, re-read when due (call from a worker thread: it may query).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed.
        """
        with self._lock:
            now = self.clock()
            cur = self._current
            if cur is not None:
                age = now - cur.taken
                if age < self.min_age or (age < self.max_age and not self._dirty):
                    return cur
            self._dirty = False
            inv, self._summaries = read_inventory(self.storage, previous=self._summaries)
            self._current = Inventory(inv.repos, now, inv.truncated)
            return self._current

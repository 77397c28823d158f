"""Offline audit of a folder of notary metadata (as served under ``_trust/tuf/``).

Pure: the caller passes the files as ``{relative path: bytes}`` and the time. The result is
one :class:`AuditEntry` per file, in a stable order, each saying what was checked and
whether it passed. The checks are the core's: the root chain and the current documents go
through :class:`~trustbox.tuf.loader.RepoLoader` (as the trust server validates an update), older
versions through the same signature rules. An audit is stricter than a client in one way: every
signature present must verify with a key trusted for the role, even when the threshold is met
without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trustbox.errors import RootError, TrustboxError
from trustbox.tuf.certs import certificate_cn
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.loader import RepoLoader
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    Metadata,
    Root,
    is_valid_role,
    signed_class,
)
from trustbox.tuf.verify import check_expiry, delegated_role, valid_signers, verify_root

_VERSIONED = re.compile(r"^(\d+)\.(.+)\.json$")
_CHECKSUMMED = re.compile(r"^(.+)\.([0-9a-f]{64}|[0-9a-f]{128})\.json$")
_CURRENT = ((TIMESTAMP + ".json", TIMESTAMP), (SNAPSHOT + ".json", SNAPSHOT), (TARGETS + ".json", TARGETS))


@dataclass
class AuditEntry:
    """The verdict on one file."""

    path: str
    role: str
    version: int | None = None
    expires: str = ""
    signers: list[str] = field(default_factory=list)
    ok: bool = True
    message: str = "ok"


@dataclass
class AuditReport:
    """All verdicts, and the GUN the root certificates name."""

    gun: str
    entries: list[AuditEntry]

    @property
    def ok(self) -> bool:
        """Whether every file passed."""
        return all(e.ok for e in self.entries)


def _classify(path: str) -> tuple[str, int | None] | None:
    m = _VERSIONED.match(path)
    if m and is_valid_role(m.group(2)):
        return m.group(2), int(m.group(1))
    m = _CHECKSUMMED.match(path)
    if m and is_valid_role(m.group(1)):
        return m.group(1), None
    if path.endswith(".json") and is_valid_role(path[:-5]):
        return path[:-5], None
    return None


def _gun_of(root: Metadata[Root]) -> str:
    keys, _ = root.signed.role_keys(ROOT)
    cns = {cn for key in keys.values() if key.is_x509 and (cn := certificate_cn(key.certificate()))}
    if len(cns) != 1:
        raise RootError("cannot tell the GUN: root certificates name " + (", ".join(sorted(cns)) or "nothing"))
    return cns.pop()


class _Audit:
    """The verdicts being collected over one folder."""

    def __init__(self, files: dict[str, bytes], now: datetime) -> None:
        self.files = files
        self.now = now
        self.entries: dict[str, AuditEntry] = {}
        self.parsed: dict[str, Metadata[Any]] = {}
        for path in sorted(files):
            kind = _classify(path)
            if kind is not None:
                self._parse(path, *kind)

    def _parse(self, path: str, role: str, version: int | None) -> None:
        entry = self.entries[path] = AuditEntry(path, role)
        try:
            md = Metadata.parse(self.files[path], f"{path} ({role})", expect=signed_class(role))
        except TrustboxError as exc:
            entry.ok, entry.message = False, str(exc)
            return
        entry.version, entry.expires = md.signed.version, md.signed.expires_text
        if version is not None and version != md.signed.version:
            entry.ok, entry.message = False, f"file name says version {version}, document says {md.signed.version}"
            return
        self.parsed[path] = md

    def fail(self, path: str, msg: str) -> None:
        """Record the first failure of ``path``."""
        e = self.entries[path]
        if e.ok:
            e.ok, e.message = False, msg

    def check(self, path: str, step: Callable[..., Any], *args: Any) -> bool:
        """Run ``step(*args)`` for ``path``; a failure is recorded on the file it concerns."""
        try:
            step(*args)
        except TrustboxError as exc:
            # a document loaded earlier can fail only now (root.json against the snapshot's checksum)
            role = getattr(exc, "role", self.entries[path].role)
            other = f"{role}.json"
            self.fail(other if role != self.entries[path].role and other in self.entries else path, str(exc))
            return False
        return True

    def record(self, path: str, md: Metadata[Any], keys: dict[str, PublicKey]) -> None:
        """Note the signers of ``path``; fail it for a signature that does not verify."""
        good = valid_signers(md, keys)
        self.entries[path].signers = [i[:12] for i in good]
        bad = next((s.keyid for s in md.signatures if s.keyid not in good), None)
        if bad is not None:
            known = "a key trusted for" if bad in keys else "an unknown key for"
            self.fail(path, f"signature by {bad[:12]} ({known} {self.entries[path].role}) does not verify")

    def of_role(self, role: str) -> list[str]:
        """Parsed files of ``role``."""
        return [p for p in self.parsed if self.entries[p].role == role]

    # -- the root chain ---------------------------------------------------------------------

    def root_chain(self, gun: str | None, trusted_root: bytes | None) -> tuple[str, list[Metadata[Root]]]:
        """The GUN and the roots that chain, version by version, from the trusted one."""
        roots = self.of_role(ROOT)
        try:
            anchor = (Metadata.parse(trusted_root, "trusted root (--root)", expect=Root) if trusted_root is not None
                      else min((self.parsed[p] for p in roots), key=lambda md: md.signed.version))
            gun = gun or _gun_of(anchor)
            verify_root(anchor, gun, None)
        except TrustboxError as exc:
            for p in roots:
                self.fail(p, f"trusted root: {exc}")
            return gun or "", []
        chain = [anchor]
        by_version: dict[int, list[str]] = {}
        for p in roots:
            by_version.setdefault(self.parsed[p].signed.version, []).append(p)
        for v in sorted(by_version):
            current = chain[-1]
            for p in by_version[v]:
                md = self.parsed[p]
                if self.check(p, self._root_step, md, self.files[p], current, gun):
                    # an older root than the anchor is judged on its own keys
                    self.record(p, md, md.signed.keys if v < current.signed.version else {**current.signed.keys, **md.signed.keys})
            good = [self.parsed[p] for p in by_version[v] if self.entries[p].ok]
            if good and v == current.signed.version + 1:
                chain.append(good[0])
        return gun, chain

    def _root_step(self, md: Metadata[Root], data: bytes, current: Metadata[Root], gun: str) -> None:
        v, cv = md.signed.version, current.signed.version
        if v == cv and md.signed_bytes() != current.signed_bytes():
            raise RootError(f"two different roots claim version {v}")
        if v <= cv:  # the anchor again, or older than it: it must at least be self-consistent
            verify_root(md, gun, None)
        elif v == cv + 1:
            RepoLoader(gun, self.now, trusted_root=current).load(ROOT, data, v, allow_expired=True)
        else:
            raise RootError(f"root version {v} does not follow version {cv}")

    # -- the current set, in TUF order ------------------------------------------------------

    def current_set(self, gun: str, newest: Metadata[Root]) -> None:
        """root.json (the newest chained root, valid now), then the current documents in TUF order."""
        path = ROOT + ".json"
        if path not in self.parsed:
            return
        if self.parsed[path].signed.version != newest.signed.version:
            self.fail(path, f"root.json is version {self.parsed[path].signed.version}, "
                            f"but version {newest.signed.version} chains from the trusted root")
        loader = RepoLoader(gun, self.now)
        if not self.entries[path].ok or not self.check(path, loader.load, ROOT, self.files[path]):
            return
        for path, role in _CURRENT:
            if path in self.files and not self._load(loader, path, role):
                return
        queue = [r.name for r in loader.targets[TARGETS].signed.delegations.roles] if TARGETS in loader.targets else []
        while queue:
            role = queue.pop(0)
            if f"{role}.json" in self.files and self._load(loader, f"{role}.json", role):
                queue.extend(r.name for r in loader.targets[role].signed.delegations.roles)

    def _load(self, loader: RepoLoader, path: str, role: str) -> bool:
        if not self.check(path, loader.load, role, self.files[path]):
            return False
        self.record(path, self.parsed[path], loader.keys[role])
        return True

    # -- older versions -----------------------------------------------------------------------

    def history(self, chain: list[Metadata[Root]]) -> None:
        """Every other file: signed to threshold under some trusted key set (the current file of
        a role, not verified in the current set, must also not have expired)."""
        for path, md in self.parsed.items():
            entry = self.entries[path]
            if entry.role == ROOT or not entry.ok or entry.signers:
                continue
            best: dict[str, PublicKey] | None = None
            best_count = -1
            for keys, threshold in self._key_sets(entry.role, chain):
                count = len(valid_signers(md, keys))
                if count >= threshold and count > best_count:
                    best, best_count = keys, count
            if best is None:
                self.fail(path, f"valid signatures did not meet threshold for {entry.role} under any trusted key set")
                continue
            self.record(path, md, best)
            if path == entry.role + ".json":
                self.check(path, check_expiry, md, self.now, entry.role)

    def _key_sets(self, role: str, chain: list[Metadata[Root]]) -> list[tuple[dict[str, PublicKey], int]]:
        if role in (TIMESTAMP, SNAPSHOT, TARGETS):
            return [r.signed.role_keys(role) for r in chain]
        out = []
        for p in self.of_role(role.rsplit("/", 1)[0]):
            try:
                entry, keys = delegated_role(self.parsed[p], [""], role)
            except TrustboxError:
                continue
            out.append((keys, entry.threshold))
        return out


def audit(files: dict[str, bytes], now: datetime, trusted_root: bytes | None = None, gun: str | None = None) -> AuditReport:
    """Verify every metadata file in ``files`` and return one verdict per file."""
    a = _Audit(files, now)
    if not a.of_role(ROOT):
        missing = AuditEntry("root.json", ROOT, ok=False, message="no root.json in the folder")
        return AuditReport(gun or "?", [missing, *a.entries.values()])
    resolved, chain = a.root_chain(gun, trusted_root)
    if chain:
        a.current_set(resolved, chain[-1])
    a.history(chain)
    return AuditReport(resolved or "?", list(a.entries.values()))

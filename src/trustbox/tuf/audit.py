"""Offline audit of a folder of notary metadata (as served under ``_trust/tuf/``).

Pure: the caller passes the files as ``{relative path: bytes}`` and the time. The result is
one :class:`AuditEntry` per file, in a stable order, each saying what was checked and
whether it passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trustbox.errors import RootError, TrustboxError
from trustbox.tuf.certs import certificate_cn
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    Metadata,
    Root,
    Targets,
    is_valid_role,
)
from trustbox.tuf.verify import (
    TrustedCollection,
    check_expiry,
    valid_signers,
    verify_root_rotation,
    verify_root_self,
)

_VERSIONED = re.compile(r"^(\d+)\.(.+)\.json$")
_CHECKSUMMED = re.compile(r"^(.+)\.([0-9a-f]{64}|[0-9a-f]{128})\.json$")


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
    cns = set()
    for key in keys.values():
        if key.is_x509:
            cn = certificate_cn(key.certificate())
            if cn:
                cns.add(cn)
    if len(cns) != 1:
        raise RootError("cannot tell the GUN: root certificates name " + (", ".join(sorted(cns)) or "nothing"))
    return cns.pop()


def _short(ids: list[str]) -> list[str]:
    return [i[:12] for i in ids]


def audit(files: dict[str, bytes], now: datetime, trusted_root: bytes | None = None, gun: str | None = None) -> AuditReport:
    """Verify every metadata file in ``files`` and return one verdict per file."""
    entries: dict[str, AuditEntry] = {}
    parsed: dict[str, Metadata[Any]] = {}
    ordered: list[tuple[str, str, int | None]] = []

    for path in sorted(files):
        kind = _classify(path)
        if kind is None:
            continue
        role, version = kind
        entry = AuditEntry(path, role)
        entries[path] = entry
        ordered.append((path, role, version))
        try:
            md = Metadata.parse(files[path], f"{path} ({role})")
        except TrustboxError as exc:
            entry.ok, entry.message = False, str(exc)
            continue
        expected = "Root" if role == ROOT else ("Targets" if role.startswith(TARGETS) else role.capitalize())
        if md.signed._type != expected:
            entry.ok, entry.message = False, f"_type {md.signed._type} in a {role} file"
            continue
        entry.version, entry.expires = md.signed.version, md.signed.expires_text
        if version is not None and version != md.signed.version:
            entry.ok, entry.message = False, f"file name says version {version}, document says {md.signed.version}"
            continue
        parsed[path] = md

    def fail(path: str, msg: str) -> None:
        e = entries[path]
        if e.ok:
            e.ok, e.message = False, msg

    def record(path: str, md: Metadata[Any], keys: dict[str, PublicKey]) -> None:
        # An audit is stricter than a client: every signature present must verify with a
        # key trusted for the role, even when the threshold is met without it.
        good = valid_signers(md, keys)
        entries[path].signers = _short(good)
        for sig in md.signatures:
            if sig.keyid not in good:
                known = "a key trusted for" if sig.keyid in keys else "an unknown key for"
                fail(path, f"signature by {sig.keyid[:12]} ({known} {entries[path].role}) does not verify")
                break

    # --- the root chain -------------------------------------------------------------------
    roots = {p: md for p, md in parsed.items() if entries[p].role == ROOT}
    by_version: dict[int, list[str]] = {}
    for p, md in roots.items():
        by_version.setdefault(md.signed.version, []).append(p)
    chain: list[Metadata[Root]] = []
    resolved_gun = gun or ""
    if not roots:
        return AuditReport(gun or "?", [AuditEntry("root.json", ROOT, ok=False, message="no root.json in the folder")]
                           + [entries[p] for p, _, _ in ordered])
    try:
        if trusted_root is not None:
            anchor = Metadata.parse(trusted_root, "trusted root (--root)", expect=Root)
        else:
            anchor = roots[by_version[min(by_version)][0]]
        resolved_gun = gun or _gun_of(anchor)
        verify_root_self(anchor, resolved_gun, None)
        chain = [anchor]
    except TrustboxError as exc:
        for p in roots:
            fail(p, f"trusted root: {exc}")
    if chain:
        current = chain[0]
        for v in sorted(by_version):
            paths = by_version[v]
            if v < current.signed.version:
                # older than the anchor: it must at least be self-consistent
                for p in paths:
                    try:
                        verify_root_self(roots[p], resolved_gun, None)
                        record(p, roots[p], roots[p].signed.keys)
                    except TrustboxError as exc:
                        fail(p, str(exc))
                continue
            for p in paths:
                md = roots[p]
                try:
                    if v == current.signed.version:
                        if md.signed_bytes() != current.signed_bytes():
                            raise RootError(f"two different roots claim version {v}")
                        verify_root_self(md, resolved_gun, None)
                    elif v == current.signed.version + 1:
                        verify_root_rotation(current, md, resolved_gun, now)
                    else:
                        raise RootError(f"root version {v} does not follow version {current.signed.version}")
                    record(p, md, {**current.signed.keys, **md.signed.keys})
                except TrustboxError as exc:
                    fail(p, str(exc))
            good = [roots[p] for p in paths if entries[p].ok]
            if good and good[0].signed.version == current.signed.version + 1:
                current = good[0]
                chain.append(current)

    # --- the current set, in TUF order ------------------------------------------------------
    current_root_path = "root.json"
    if chain and current_root_path in parsed:
        newest = chain[-1]
        if parsed[current_root_path].signed.version != newest.signed.version:
            fail(current_root_path, f"root.json is version {parsed[current_root_path].signed.version}, "
                                    f"but version {newest.signed.version} chains from the trusted root")
    if chain and entries.get(current_root_path, AuditEntry("", "")).ok and current_root_path in files:
        try:
            tc: TrustedCollection | None = TrustedCollection(resolved_gun, files[current_root_path], now, tofu=False)
            assert tc is not None
            tc.check_root_current()
            verify_root_self(tc.root, resolved_gun, now)
        except TrustboxError as exc:
            fail(current_root_path, str(exc))
            tc = None
        if tc is not None:
            steps: list[tuple[str, str]] = [("timestamp.json", TIMESTAMP), ("snapshot.json", SNAPSHOT), ("targets.json", TARGETS)]
            for path, role in steps:
                if path not in files:
                    continue
                try:
                    if role == TIMESTAMP:
                        md = tc.update_timestamp(files[path])
                        keys = tc.root.signed.role_keys(TIMESTAMP)[0]
                    elif role == SNAPSHOT:
                        md = tc.update_snapshot(files[path])
                        keys = tc.root.signed.role_keys(SNAPSHOT)[0]
                    else:
                        md = tc.update_targets(files[path])
                        keys = tc.root.signed.role_keys(TARGETS)[0]
                    record(path, md, keys)
                except TrustboxError as exc:
                    fail(path, str(exc))
                    break
            else:
                # snapshot must also cover the current root
                if tc.snapshot is not None:
                    rm = tc.snapshot.signed.meta.get(ROOT)
                    if rm is not None and not rm.matches(files[current_root_path]):
                        fail(current_root_path, "root.json does not match the hashes in snapshot.json")
                # delegations, breadth first
                queue = tc.delegated_roles(TARGETS) if tc.targets else []
                while queue:
                    role = queue.pop(0)
                    path = role + ".json"
                    if path not in files:
                        continue
                    try:
                        md = tc.update_delegation(role, files[path])
                        record(path, md, tc.parent_of(role)[0].signed.delegations.role_keys(role)[0])
                        queue.extend(tc.delegated_roles(role))
                    except TrustboxError as exc:
                        fail(path, str(exc))

    # --- historical versions ----------------------------------------------------------------
    targets_docs: list[Metadata[Targets]] = [md for p, md in parsed.items() if entries[p].role == TARGETS]
    delegation_docs = [(entries[p].role, md) for p, md in parsed.items() if entries[p].role.startswith("targets/")]
    for path, role, _version in ordered:
        if role == ROOT or path not in parsed or not entries[path].ok:
            continue
        if path in ("timestamp.json", "snapshot.json", "targets.json") or path == role + ".json":
            if entries[path].signers:  # verified as part of the current set
                continue
        md = parsed[path]
        candidates: list[tuple[dict[str, PublicKey], int]] = []
        if role in (TIMESTAMP, SNAPSHOT, TARGETS):
            candidates = [r.signed.role_keys(role) for r in chain]
        else:
            parent = role.rsplit("/", 1)[0]
            parents: list[Metadata[Any]] = (
                list(targets_docs) if parent == TARGETS else [d for r, d in delegation_docs if r == parent]
            )
            for pd in parents:
                if pd.signed.delegations.get(role) is not None:
                    candidates.append(pd.signed.delegations.role_keys(role))
        # the key set (of any trusted version) under which most signatures verify
        best: dict[str, PublicKey] | None = None
        best_count = -1
        for keys, threshold in candidates:
            count = len(valid_signers(md, keys))
            if count >= threshold and count > best_count:
                best, best_count = keys, count
        if best is not None:
            record(path, md, best)
            if path == role + ".json":
                try:
                    check_expiry(md, now, role)
                except TrustboxError as exc:
                    fail(path, str(exc))
        else:
            fail(path, f"valid signatures did not meet threshold for {role} under any trusted key set")

    return AuditReport(resolved_gun or "?", [entries[p] for p, _, _ in ordered])


"""The portable trust archive of one repository (``trustbox trust export`` / ``import``).

Layout (an uncompressed POSIX tar; see docs/migrate.md):

* ``manifest.json``: ``{"format": "trustbox-trust-archive", "version": 1, "gun": ..., "source": ...,
  "exported_at": RFC 3339}``;
* ``<gun>/root.json`` (the newest root) and ``<gun>/<v>.root.json`` for every root version the
  source still had (1..N as notary serves them; a cache export has only the newest);
* ``<gun>/targets.json``, ``<gun>/targets/<delegation>.json`` ..., ``<gun>/snapshot.json``,
  ``<gun>/timestamp.json``: the current documents, byte for byte as the source served them.

Reading is strict: regular files only (no links, devices or directories other than plain folder
entries), no absolute names, ``..``, backslashes or duplicates, at most :data:`MAX_MEMBERS` members
of at most :data:`MAX_MEMBER_SIZE` bytes and :data:`MAX_TOTAL_SIZE` bytes in all, every name a
metadata file of a valid role. Writing builds the tar in memory and publishes it atomically.

:meth:`TrustArchive.verify` checks the whole archive as a TUF client would (root chain version by
version, then timestamp, snapshot, targets and every delegation); a failure names the file and role.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from trustbox.atomicfile import atomic_write
from trustbox.errors import FormatError, TrustboxError, VerificationError
from trustbox.tuf.canonical import encode_canonical, loads
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, Metadata, Root, Timestamp, is_valid_role
from trustbox.tuf.timefmt import format_time, parse_time
from trustbox.tuf.verify import MAX_ROOT_SIZE, TrustedCollection, verify_root

FORMAT = "trustbox-trust-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MEMBERS = 10_000
MAX_MEMBER_SIZE = MAX_ROOT_SIZE
MAX_TOTAL_SIZE = 1024 * 1024 * 1024
MAX_MANIFEST_SIZE = 64 * 1024

_VERSIONED_ROOT = re.compile(r"^([1-9][0-9]{0,9})\.root\.json$")


class ArchiveError(FormatError):
    """An archive that is not a well-formed trust archive (layout, bounds, names)."""


class ArchiveVerificationError(VerificationError):
    """A document of the archive that does not verify; names the file and the role."""

    def __init__(self, path: str, role: str, message: str) -> None:
        super().__init__(f"{path} (role {role}): {message}")
        self.path = path
        self.role = role


def role_of(name: str) -> tuple[str, int | None]:
    """The role (and root version) a file name inside ``<gun>/`` holds.

    Raises ArchiveError for a name that is no metadata file of a valid role."""
    m = _VERSIONED_ROOT.match(name)
    if m:
        return ROOT, int(m.group(1))
    if name.endswith(".json"):
        role = name[: -len(".json")]
        if role in (ROOT, SNAPSHOT, TIMESTAMP) or (is_valid_role(role) and (role == TARGETS or role.startswith("targets/"))):
            return role, None
    raise ArchiveError(f"unexpected file {name!r} in the archive (not a metadata file of a valid role)")


def _check_member_name(name: str) -> None:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise ArchiveError(f"refusing archive member {name!r}: absolute or malformed name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ArchiveError(f"refusing archive member {name!r}: path traversal or empty path component")


@dataclass
class TrustArchive:
    """The trust data of one repository: ``files`` maps names inside ``<gun>/`` to exact bytes."""

    gun: str
    source: str
    exported_at: datetime
    files: dict[str, bytes] = field(default_factory=dict)

    # -- views -------------------------------------------------------------------------------

    @property
    def root_versions(self) -> dict[int, bytes]:
        """``<v>.root.json`` files by version."""
        out: dict[int, bytes] = {}
        for name, data in self.files.items():
            role, version = role_of(name)
            if version is not None:
                out[version] = data
        return dict(sorted(out.items()))

    @property
    def delegations(self) -> dict[str, bytes]:
        """Delegation documents by role name."""
        out = {}
        for name, data in self.files.items():
            role, _ = role_of(name)
            if role.startswith(TARGETS + "/"):
                out[role] = data
        return out

    def get(self, role: str) -> bytes:
        """The current document of ``role``. Raises ArchiveError when the archive lacks it."""
        data = self.files.get(role + ".json")
        if data is None:
            raise ArchiveError(f"the archive of {self.gun} has no {role}.json")
        return data

    def version(self, role: str) -> int:
        """The version ``role``'s current document declares. Raises ArchiveError when the archive
        lacks it, FormatError when it is not a TUF document of that role."""
        return int(Metadata.parse(self.get(role), role).signed.version)

    def path(self, name: str) -> str:
        """The member name of a file (``<gun>/<name>``)."""
        return f"{self.gun}/{name}"

    # -- serialisation -------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The ``manifest.json`` object."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "gun": self.gun,
            "source": self.source,
            "exported_at": format_time(self.exported_at),
        }

    def to_bytes(self) -> bytes:
        """The archive as tar bytes (members sorted, fixed owner and mtime, mode 0644). Raises
        ArchiveError for a file name that is no metadata file of a valid role."""
        for name in self.files:
            role_of(name)
        buf = io.BytesIO()
        mtime = int(self.exported_at.timestamp())
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            members = [(MANIFEST, encode_canonical(self.manifest()) + b"\n")]
            members += [(self.path(n), self.files[n]) for n in sorted(self.files, key=_file_order)]
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, mtime
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def write(self, path: Path) -> None:
        """Write the archive to ``path`` atomically (no partial file on failure). Raises ConfigError,
        ArchiveError (see :meth:`to_bytes`)."""
        atomic_write(Path(path), self.to_bytes(), mode=0o644)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "archive") -> TrustArchive:
        """Parse tar bytes strictly (see the module docstring). Raises ArchiveError."""
        return cls._parse(io.BytesIO(data), where)

    @classmethod
    def _parse(cls, fileobj: IO[bytes], where: str) -> TrustArchive:
        """Read a tar stream member by member within the bounds (nothing beyond them is read)."""
        try:
            tar = tarfile.open(fileobj=fileobj, mode="r|")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"{where}: not a tar archive ({exc})") from exc
        raw: dict[str, bytes] = {}
        total = 0
        try:
            with tar:
                for count, member in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise ArchiveError(f"{where}: more than {MAX_MEMBERS} members")
                    name = member.name
                    if member.isdir():
                        _check_member_name(name.rstrip("/"))
                        continue
                    _check_member_name(name)
                    if not member.isreg():
                        raise ArchiveError(f"{where}: refusing member {name!r}: not a regular file (link or device)")
                    if member.size > MAX_MEMBER_SIZE or (name == MANIFEST and member.size > MAX_MANIFEST_SIZE):
                        raise ArchiveError(f"{where}: member {name!r} is too large ({member.size} bytes)")
                    total += member.size
                    if total > MAX_TOTAL_SIZE:
                        raise ArchiveError(f"{where}: more than {MAX_TOTAL_SIZE} bytes of content")
                    if name in raw:
                        raise ArchiveError(f"{where}: duplicate member {name!r}")
                    fh = tar.extractfile(member)
                    if fh is None:
                        raise ArchiveError(f"{where}: cannot read member {name!r}")
                    content = fh.read(member.size + 1)
                    if len(content) != member.size:
                        raise ArchiveError(f"{where}: member {name!r} is truncated")
                    raw[name] = content
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"{where}: corrupt tar archive ({exc})") from exc
        manifest_bytes = raw.pop(MANIFEST, None)
        if manifest_bytes is None:
            raise ArchiveError(f"{where}: no {MANIFEST}")
        gun, source, exported_at = _parse_manifest(manifest_bytes, where)
        prefix = gun + "/"
        files: dict[str, bytes] = {}
        for name, content in raw.items():
            if not name.startswith(prefix):
                raise ArchiveError(f"{where}: member {name!r} is outside {prefix}")
            inner = name[len(prefix):]
            role_of(inner)
            files[inner] = content
        archive = cls(gun, source, exported_at, files)
        archive.get(ROOT)
        return archive

    @classmethod
    def read(cls, path: Path) -> TrustArchive:
        """Read and parse an archive file. Raises ArchiveError (also for an unreadable file)."""
        p = Path(path)
        try:
            with p.open("rb") as fh:
                return cls._parse(fh, str(p))
        except OSError as exc:
            raise ArchiveError(f"cannot read {p}: {exc.strerror or exc}") from exc

    # -- verification ------------------------------------------------------------------------------

    def verify(self, now: datetime, trusted_root: bytes | None = None, *, extra_ok: bool = False) -> TrustedCollection:
        """Verify the archive as a TUF client would and return the verified collection.

        The root chain is walked from ``trusted_root`` (or the oldest root in the archive) version
        by version to ``root.json``; then timestamp, snapshot, targets and every delegation the
        snapshot lists, each checked against its referencing document. A timestamp (and snapshot)
        that expired is checked as of the last moment it was valid, since an archive of a closed
        server is old by nature; targets and delegations must still be valid at ``now``.

        A delegation document no role delegates to is refused unless ``extra_ok`` (a cache keeps
        removed delegations).

        Raises ArchiveVerificationError naming the file and role, ArchiveError for a missing file.
        """
        newest = self.get(ROOT)
        when = now
        ts_data = self.get(TIMESTAMP)
        try:
            ts: Metadata[Timestamp] = Metadata.parse(ts_data, TIMESTAMP, expect=Timestamp)
        except TrustboxError as exc:
            raise ArchiveVerificationError(self.path("timestamp.json"), TIMESTAMP, exc.message) from exc
        if ts.signed.is_expired(now):
            when = ts.signed.expires - timedelta(seconds=1)
        tc = self._verify_roots(newest, when, trusted_root)
        self._step("timestamp.json", TIMESTAMP, tc.update_timestamp, ts_data)
        self._step("snapshot.json", SNAPSHOT, tc.update_snapshot, self.get(SNAPSHOT))
        self._step("targets.json", TARGETS, tc.update_targets, self.get(TARGETS))
        assert tc.snapshot is not None
        pending = dict(self.delegations)
        queue = [r.name for r in tc.targets.signed.delegations.roles] if tc.targets else []
        while queue:
            role = queue.pop(0)
            data = pending.pop(role, None)
            if data is None:
                if tc.snapshot_meta(role) is not None:
                    raise ArchiveError(f"the archive of {self.gun} lacks {role}.json, which its snapshot lists")
                continue
            md = self._step(f"{role}.json", role, tc.update_delegation, role, data)
            queue.extend(r.name for r in md.signed.delegations.roles)
        for role in sorted(pending) if not extra_ok else ():
            raise ArchiveVerificationError(self.path(f"{role}.json"), role, "not delegated by any role in the archive")
        for role in [TARGETS, *tc.delegations]:
            md = tc.targets if role == TARGETS else tc.delegations[role].metadata
            if md is not None and md.signed.is_expired(now):
                raise ArchiveVerificationError(self.path(f"{role}.json"), role, f"expired at {md.signed.expires_text}")
        return tc

    def _verify_roots(self, newest: bytes, when: datetime, trusted_root: bytes | None) -> TrustedCollection:
        versions = self.root_versions
        if trusted_root is None:
            anchor_version = min(versions) if versions else None
            anchor = versions[anchor_version] if anchor_version is not None else newest
            name = f"{anchor_version}.root.json" if anchor_version is not None else "root.json"
        else:
            anchor, name = trusted_root, "trusted root"
        try:
            tc = TrustedCollection(self.gun, anchor, when)
        except TrustboxError as exc:
            raise ArchiveVerificationError(self.path(name), ROOT, exc.message) from exc
        for v, data in versions.items():
            if v <= tc.root.signed.version:
                if v == tc.root.signed.version and data != tc.root.to_bytes():
                    self._same_root(f"{v}.root.json", data, tc.root)
                continue
            if v != tc.root.signed.version + 1:
                raise ArchiveVerificationError(self.path(f"{v}.root.json"), ROOT,
                                               f"root version {v} does not follow version {tc.root.signed.version}")
            self._step(f"{v}.root.json", ROOT, tc.update_root, data)
        try:
            md = Metadata.parse(newest, ROOT, expect=Root)
        except TrustboxError as exc:
            raise ArchiveVerificationError(self.path("root.json"), ROOT, exc.message) from exc
        if md.signed.version == tc.root.signed.version:
            self._same_root("root.json", newest, tc.root)
        elif md.signed.version == tc.root.signed.version + 1:
            self._step("root.json", ROOT, tc.update_root, newest)
        else:
            raise ArchiveVerificationError(self.path("root.json"), ROOT,
                                           f"root.json is version {md.signed.version}, but the chain ends at "
                                           f"version {tc.root.signed.version}")
        self._step("root.json", ROOT, verify_root, tc.root, self.gun, None)
        return tc

    def _same_root(self, name: str, data: bytes, trusted: Metadata[Root]) -> None:
        try:
            md = Metadata.parse(data, ROOT, expect=Root)
        except TrustboxError as exc:
            raise ArchiveVerificationError(self.path(name), ROOT, exc.message) from exc
        if md.signed_bytes() != trusted.signed_bytes() or md.to_bytes() != trusted.to_bytes():
            raise ArchiveVerificationError(self.path(name), ROOT,
                                           f"differs from the other root of version {md.signed.version}")

    def _step(self, name: str, role: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ArchiveVerificationError:
            raise
        except TrustboxError as exc:
            raise ArchiveVerificationError(self.path(name), role, exc.message) from exc


def _file_order(name: str) -> tuple[int, int, str]:
    role, version = role_of(name)
    rank = {ROOT: 0, TIMESTAMP: 3, SNAPSHOT: 2}.get(role, 1)
    return (rank, version or 0, name)


def _parse_manifest(data: bytes, where: str) -> tuple[str, str, datetime]:
    try:
        doc = loads(data)
    except FormatError as exc:
        raise ArchiveError(f"{where}: {MANIFEST} is not valid JSON: {exc.message}") from exc
    if not isinstance(doc, dict):
        raise ArchiveError(f"{where}: {MANIFEST} must be an object")
    if doc.get("format") != FORMAT:
        raise ArchiveError(f"{where}: not a trustbox trust archive ({MANIFEST} format is {doc.get('format')!r})")
    if doc.get("version") != FORMAT_VERSION:
        raise ArchiveError(f"{where}: unsupported archive version {doc.get('version')!r} (this trustbox reads {FORMAT_VERSION})")
    gun, source, when = doc.get("gun"), doc.get("source"), doc.get("exported_at")
    if not isinstance(gun, str) or not gun or len(gun) > 255:
        raise ArchiveError(f"{where}: {MANIFEST} has no valid gun")
    _check_member_name(gun)
    if not isinstance(source, str):
        raise ArchiveError(f"{where}: {MANIFEST} has no source")
    try:
        exported_at = parse_time(when, "exported_at")
    except FormatError as exc:
        raise ArchiveError(f"{where}: {MANIFEST}: {exc.message}") from exc
    return gun, source, exported_at

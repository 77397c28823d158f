"""``trustbox trust migrate``: move repositories (trust data and signed images) to a new trust
server and registry, resumably.

For each repository, in this order:

1. **export** its trust data from the source trust server (or the local trust cache) as a verified
   :class:`~trustbox.client.trust.archive.TrustArchive`, kept beside the state file so a later run
   does not need the source again;
2. **copy** every signed digest (every target of ``targets`` and of every delegation) from the
   source registry to the destination registry (:class:`~trustbox.client.images.copy.ImageCopier`:
   digests preserved, streaming, blobs present skipped, attachments along), tagged with the digest
   docker would pull for the tag (``targets/releases``, then ``targets``, then the first delegation
   that signs it); digests other signers signed for the same tag are copied by digest;
3. **import** the archive into the destination trust server
   (:func:`~trustbox.client.trust.importer.import_archive`), under the destination name when the
   registry host changes (``--to-registry``).

Images go first, so the destination's trust data never names an image its registry lacks. Each
step is idempotent (copies skip what is present, an import finishes an earlier partial one) and the
state file (written atomically after each step) records what is done: a second run skips
repositories finished before, after checking the destination still has them (the trust server
serves the archive's targets byte for byte and the registry every tag at its signed digest).
A run killed at any moment leaves the destination untouched or resumable to completion.

A repository done before is exported again (re-sync): when the source moved on (other targets,
delegations or root versions, higher snapshot/timestamp versions), the new images are copied and
the new export imported over the kept one, which tells the importer what the destination may
hold; targets signed at the destination since are never replaced
(:class:`~trustbox.client.trust.importer.DestinationChangedError`). A source that cannot be read
any more leaves the kept archive as the reference.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from trustbox.atomicfile import atomic_write
from trustbox.client import dockerenv
from trustbox.client.errors import MetaNotFoundError
from trustbox.client.images.copy import DEFAULT_JOBS, CopyRequest, CopyStats, ImageCopier
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.layout import Progress
from trustbox.client.images.transfer import Reporter
from trustbox.client.trust.archive import TrustArchive
from trustbox.client.trust.export import export_from_cache, export_repository
from trustbox.client.trust.importer import MAX_ROLE_BYTES, import_archive
from trustbox.client.trust.remote import RemoteStore
from trustbox.client.trust.repository import RELEASED_ROLES, walk_collection
from trustbox.errors import ConfigError, FormatError, TrustboxError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.reference import ImageRef, parse_reference
from trustbox.tuf.metadata import SNAPSHOT, TIMESTAMP
from trustbox.tuf.timefmt import utcnow
from trustbox.tuf.verify import TrustedCollection

STATE_FORMAT = "trustbox-migrate-state"
STATE_VERSION = 1
#: a target name that can be a registry tag (distribution's tag grammar)
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")

MOVED, SKIPPED, FAILED, PLANNED = "moved", "skipped", "failed", "would move"


# --- what a repository holds ---------------------------------------------------------------


@dataclass(frozen=True)
class SignedImages:
    """The images the trust data signs: copy requests (tagged ones first) and targets that are
    not images (no sha256, or a name that cannot be a tag and a digest already copied)."""

    requests: tuple[CopyRequest, ...]
    not_images: tuple[str, ...] = ()


def signed_images(tc: TrustedCollection) -> SignedImages:
    """Every signed digest of verified trust data as copy requests (see the module docstring for
    which digest a tag gets). Pure: reads only ``tc``."""
    by_tag: dict[str, list[tuple[int, str, int]]] = {}
    not_images: list[str] = []
    for order, entry in enumerate(walk_collection(tc)):
        sha = entry.sha256_hex
        if len(sha) != 64:
            not_images.append(f"{entry.name} ({entry.role}: no sha256)")
            continue
        rank = RELEASED_ROLES.index(entry.role) if entry.role in RELEASED_ROLES else len(RELEASED_ROLES)
        by_tag.setdefault(entry.name, []).append((rank * 1_000_000 + order, "sha256:" + sha, entry.meta.length))
    tagged: list[CopyRequest] = []
    extra: dict[str, CopyRequest] = {}
    for tag in sorted(by_tag):
        found = sorted(by_tag[tag])
        _, digest, length = found[0]
        if TAG_RE.match(tag):
            tagged.append(CopyRequest(digest, tag, Descriptor("", digest, length)))
        else:
            not_images.append(f"{tag} (not a valid tag: copied by digest)")
            extra.setdefault(digest, CopyRequest(digest, None, Descriptor("", digest, length)))
        for _, other, other_length in found[1:]:
            if other != digest:
                extra.setdefault(other, CopyRequest(other, None, Descriptor("", other, other_length)))
    tagged_digests = {r.reference for r in tagged}
    rest = [r for d, r in sorted(extra.items()) if d not in tagged_digests]
    return SignedImages(tuple(tagged + rest), tuple(not_images))


# --- state file -----------------------------------------------------------------------------


class MigrationState:
    """The state file: per source repository, how far it got (``exported``, ``copied``, ``done``),
    its destination name and the archive kept for it (in ``<state>.archives/``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archives = path.with_name(path.name + ".archives")
        self.repos: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, path: Path) -> MigrationState:
        """Read the state file (a missing file is an empty state).

        Raises:
            ConfigError: the file cannot be read or is not a state file.
        """
        state = cls(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise ConfigError(f"cannot read the migration state {path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{path} is not a migration state file (not JSON)") from None
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or not isinstance(doc.get("repositories"), dict):
            raise ConfigError(f"{path} is not a migration state file")
        state.repos = {str(k): v for k, v in doc["repositories"].items() if isinstance(v, dict)}
        return state

    def save(self) -> None:
        """Write the state atomically. Raises ConfigError."""
        doc = {"format": STATE_FORMAT, "version": STATE_VERSION, "repositories": self.repos}
        atomic_write(self.path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n", mode=0o600)

    def archive_path(self, gun: str) -> Path:
        """Where the archive of ``gun`` is kept."""
        return self.archives / (re.sub(r"[^A-Za-z0-9_.-]", "_", gun) + ".trust.tar")

    def mark(self, gun: str, **values: Any) -> None:
        """Update and save the entry of ``gun``."""
        self.repos.setdefault(gun, {}).update(values, updated=utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.save()


# --- the migration ----------------------------------------------------------------------------


@dataclass
class MigrateOptions:
    """Where to migrate from and to, and how."""

    to_server: str
    from_server: str | None = None
    from_registry: str | None = None
    to_registry: str | None = None
    from_cache: bool = False
    state_file: Path = Path("trustbox-migrate.json")
    dry_run: bool = False
    jobs: int = DEFAULT_JOBS
    attachments: bool = True
    source_registry: RegistryOptions = field(default_factory=RegistryOptions)
    destination_registry: RegistryOptions = field(default_factory=RegistryOptions)
    trust_dir: Path | None = None
    ca_files: tuple[Path, ...] = ()
    now: datetime | None = None
    #: the root key for every repository (None: the trust folder's); ``new_root``: make new roots
    root_key: Path | None = None
    new_root: bool = False


@dataclass
class RepoOutcome:
    """One row of the summary."""

    repo: str
    destination: str = ""
    status: str = FAILED
    reason: str = ""
    images: int = 0
    images_copied: int = 0
    images_present: int = 0
    bytes_copied: int = 0
    trust: str = ""
    #: wall time of the image copy (seconds)
    copy_seconds: float = 0.0


def _moved_on(fresh: TrustArchive, kept: TrustArchive) -> bool:
    """Whether a new export holds what the kept one does not: other targets, delegations or root
    versions, or higher snapshot/timestamp versions (which clients still pinned to the source
    cache, so the destination must serve higher ones). A timestamp re-signed at the same version
    is no change."""
    def signed_roles(a: TrustArchive) -> dict[str, bytes]:
        return {n: d for n, d in a.files.items() if n not in (f"{SNAPSHOT}.json", f"{TIMESTAMP}.json")}

    if signed_roles(fresh) != signed_roles(kept):
        return True
    return any(fresh.version(role) > kept.version(role) for role in (SNAPSHOT, TIMESTAMP))


def read_repo_list(path: Path) -> list[str]:
    """Repositories from a file: one per line, ``#`` comments and blank lines ignored.

    Raises:
        ConfigError: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the repository list {path}: {exc}") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


class _BarsOnly(Reporter):
    """The copier's reporter inside a migration: the progress bars of ``inner``, no per-blob lines."""

    def __init__(self, inner: Reporter) -> None:
        super().__init__(None, True)
        self.inner = inner

    @contextmanager
    def transfer(self, label: str, total: int) -> Iterator[Progress | None]:
        """``inner``'s progress bar for one blob."""
        with self.inner.transfer(label, total) as progress:
            yield progress


class Migrator:
    """Migrate repositories one after the other (see the module docstring)."""

    def __init__(self, options: MigrateOptions, reporter: Reporter | None = None) -> None:
        if not options.from_cache and not options.from_server:
            raise ConfigError("name the source trust server (--from-server URL) or use --from-cache")
        self.options = options
        self.reporter = reporter or Reporter()
        self.state = MigrationState.load(options.state_file)
        self._clients: dict[tuple[str, str], RegistryClient] = {}
        self.stats = CopyStats()

    def close(self) -> None:
        """Close the registry connections."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Migrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _client(self, side: str, host: str) -> RegistryClient:
        key = (side, host)
        if key not in self._clients:
            opts = self.options.source_registry if side == "source" else self.options.destination_registry
            self._clients[key] = RegistryClient(host, opts)
        return self._clients[key]

    def names(self, repo: str) -> tuple[ImageRef, ImageRef, str, str]:
        """Source and destination references (GUNs) and registry hosts of ``repo``.

        Raises:
            ConfigError: an invalid repository name (or one with a tag or digest).
        """
        src = parse_reference(repo)
        if src.tag or src.digest:
            raise ConfigError(f"{repo}: name a repository, not an image (no :tag or @digest)")
        to = self.options.to_registry
        dst = parse_reference(f"{to}/{src.path}") if to else src
        return src, dst, self.options.from_registry or src.api_host, to or dst.api_host

    # -- steps -------------------------------------------------------------------------

    def _archive(self, gun: str, entry: dict[str, Any]) -> tuple[TrustArchive, TrustArchive | None]:
        """The archive to import, and the one an earlier run imported when this is a re-sync.

        An unfinished repository continues with the archive kept by the run that started it. A
        repository done before is exported again: when the source's targets, delegations, root or
        versions moved on since, the new export is imported over the kept one (what was signed at
        the source since is brought across); when the source cannot be read (e.g. it is shut down),
        the kept archive is checked against the destination as before.
        """
        kept_path = self.state.archive_path(gun)
        kept: TrustArchive | None = None
        if entry.get("archive") and kept_path.exists():
            try:
                kept = TrustArchive.read(kept_path)
            except FormatError:
                pass  # a damaged copy: export again
        if kept is not None and entry.get("status") != "done":
            return kept, None
        if kept is not None:
            try:
                fresh = self._export(gun)
            except TrustboxError as exc:
                self.reporter.info(f"{gun}: the source cannot be read ({exc.message}); "
                                   "checking the destination against the archive of the earlier run")
                return kept, None
            return (kept, None) if not _moved_on(fresh, kept) else (fresh, kept)
        archive = self._export(gun)
        if not self.options.dry_run:
            archive.write(kept_path)
            self.state.mark(gun, status="exported", archive=kept_path.name)
        return archive, None

    def _export(self, gun: str) -> TrustArchive:
        """A verified export of ``gun`` from the source server or the trust cache (errors of
        :func:`export_repository` / :func:`export_from_cache`)."""
        opts = self.options
        when = opts.now or utcnow()
        if opts.from_cache:
            tdir = opts.trust_dir or dockerenv.trust_dir()
            return export_from_cache(gun, tdir, when, warn=self.reporter.info)
        return export_repository(gun, server_url=opts.from_server, trust_dir=opts.trust_dir, now=when,
                                 ca_files=opts.ca_files, warn=self.reporter.info)

    def _trust_present(self, archive: TrustArchive, dst_gun: str) -> bool:
        """Whether the destination trust server serves the archive's targets byte for byte."""
        tls = dockerenv.tls_files(self.options.to_server, None, list(self.options.ca_files))
        remote = RemoteStore(self.options.to_server, dst_gun, ca_files=tls.ca_files, client_pairs=tls.client_pairs,
                             credentials=dockerenv.registry_credentials(parse_reference(dst_gun)))
        try:
            return remote.get_sized("targets", MAX_ROLE_BYTES) == archive.get("targets")
        except MetaNotFoundError:
            return False
        finally:
            remote.close()

    def _images_present(self, dst: RegistryClient, repo: str, requests: Iterable[CopyRequest]) -> tuple[int, int]:
        """(present, total) of the requests at the destination (tag or digest names the digest)."""
        present = total = 0
        for r in requests:
            total += 1
            found = dst.head_manifest(repo, r.tag or r.reference)
            present += found is not None and found.digest == r.reference
        return present, total

    # -- one repository ------------------------------------------------------------------

    def migrate(self, repo: str) -> RepoOutcome:
        """Migrate one repository; never raises for the repository's own failures (see the outcome)."""
        out = RepoOutcome(repo)
        try:
            self._migrate(repo, out)
        except TrustboxError as exc:
            out.status, out.reason = FAILED, exc.message
        return out

    def _migrate(self, repo: str, out: RepoOutcome) -> None:
        src, dst, src_host, dst_host = self.names(repo)
        out.repo, out.destination = src.gun, dst.gun
        gun = src.gun
        entry = self.state.repos.get(gun, {})
        archive, previous = self._archive(gun, entry)
        images = signed_images(archive.verify(self.options.now or utcnow()))
        out.images = len(images.requests)
        same_repo = src_host == dst_host and src.path == dst.path
        say = self.reporter.info
        say(f"{gun}: {out.images} signed images" + (f" -> {dst.gun}" if dst.gun != gun else ""))
        if entry.get("status") == "done" or self.options.dry_run:
            trust_ok = previous is None and self._trust_present(archive, dst.gun)
            if same_repo:
                present = total = out.images
            else:
                present, total = self._images_present(self._client("destination", dst_host), dst.path, images.requests)
            out.images_present = present
            if trust_ok and present == total:
                out.status, out.trust = SKIPPED, "present"
                out.reason = "done in an earlier run (destination checked)" if entry.get("status") == "done" \
                    else "already at the destination"
                return
            if self.options.dry_run:
                out.status, out.trust = PLANNED, "present" if trust_ok else "to re-sync" if previous else "to import"
                out.reason = f"{total - present} of {total} images to copy" + ("" if trust_ok else ", trust data to import")
                return
        if images.requests and not same_repo:
            copier = ImageCopier(self._client("source", src_host), src.path, self._client("destination", dst_host),
                                 dst.path, reporter=_BarsOnly(self.reporter), jobs=self.options.jobs,
                                 attachments=self.options.attachments)
            started = time.monotonic()
            results = copier.copy(images.requests)
            out.copy_seconds = time.monotonic() - started
            self._add_stats(copier.stats)
            out.bytes_copied = copier.stats.bytes_copied
            out.images_present = sum(1 for r in results if r.ok and r.present)
            out.images_copied = sum(1 for r in results if r.ok and not r.present)
            failed = [r for r in results if not r.ok]
            if failed:
                first = failed[0]
                assert first.error is not None
                raise TrustboxError(f"{len(failed)} of {len(results)} images not copied; "
                                    f"{first.request.describe()}: {first.error.message}")
            if previous is None:  # a re-sync stays "done" until it is: a rerun exports again
                self.state.mark(gun, status="copied", destination=dst.gun, images=len(results))
        result = import_archive(archive, server_url=self.options.to_server,
                                as_gun=dst.gun if dst.gun != gun else None, trust_dir=self.options.trust_dir,
                                now=self.options.now, ca_files=self.options.ca_files,
                                root_key=self.options.root_key, new_root=self.options.new_root, previous=previous)
        out.trust = "already imported" if result.already_done else f"root v{result.root_version}"
        if previous is not None:
            archive.write(self.state.archive_path(gun))
        self.state.mark(gun, status="done", destination=dst.gun, images=out.images)
        out.status = MOVED
        notes = [f"{len(images.not_images)} targets are not images"] if images.not_images else []
        if previous is not None:
            changed = ", ".join(result.synced) if result.synced else "versions"
            notes.insert(0, f"re-synced: {changed} changed at the source since the earlier run")
        if same_repo:
            notes.append("images stay in the same registry repository")
        out.reason = "; ".join(notes)

    def _add_stats(self, s: CopyStats) -> None:
        t = self.stats
        t.blobs_copied += s.blobs_copied
        t.blobs_mounted += s.blobs_mounted
        t.blobs_present += s.blobs_present
        t.bytes_copied += s.bytes_copied
        t.manifests_written += s.manifests_written


def migrate_repositories(
    repos: Sequence[str], options: MigrateOptions, reporter: Reporter | None = None,
    on_outcome: Callable[[RepoOutcome], None] | None = None,
) -> list[RepoOutcome]:
    """Migrate ``repos`` in order; every repository gets an outcome (one failing does not stop the
    others).

    Raises:
        ConfigError: no source given, or an unreadable state file (before anything is done).
    """
    outcomes: list[RepoOutcome] = []
    with Migrator(options, reporter) as m:
        for repo in repos:
            outcome = m.migrate(repo)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


"""Registry-to-registry image copy (``trustbox copy``), the image half of a migration.

What a copy guarantees:

* **Digests are preserved**: every manifest (the top one, every child of an index, every
  attachment) is read verified (against its digest reference, the pinned descriptor or the
  registry's ``Docker-Content-Digest``) and written back byte for byte under the same media type,
  so signatures naming a digest (Notary targets, cosign, referrers) stay valid.
* **Streaming**: each blob is streamed from the source ``GET`` into the destination upload
  (:meth:`RegistryClient.upload_blob`: one ``PUT`` up to ``monolithic_limit``, ``PATCH`` chunks
  beyond) in 1 MiB pieces; nothing of the image is written to disk and at most a few MiB per
  transfer are held in memory. The bytes are hashed while they pass; a mismatch (or a source
  sending more or fewer bytes than the descriptor) aborts the upload session (``DELETE``).
* **Nothing is tagged unless complete**: blobs first, then child manifests by digest, then the
  top manifest under the destination tag, so a hostile or broken source leaves no tag behind.
* **Work avoided**: blobs the destination already has (``HEAD``) are not sent; within one
  registry they are mounted from the source repository (``POST ...?mount=&from=``, with a token
  for ``push`` on the target and ``pull`` on the source); an image whose destination tag already
  names the same digest is not copied again.
* **Attachments**: cosign's tags (``sha256-<hex>.sig``, ``.att``, ``.sbom``), the OCI referrers
  tag schema (``sha256-<hex>``) and, where the source offers the referrers API, the manifests
  whose ``subject`` is a copied manifest, for the top manifest and every child. A destination
  without the referrers API (distribution 2.8) gets them listed under the referrers tag schema.

A copy is a pipeline (it is mostly waiting on two registries): images are read by a pool of
``jobs`` threads, each image's blob transfers start in a second pool of ``jobs`` threads as soon as
it is read, and each image's manifests are written, in request order, as soon as its own blobs are
at the destination, while the other transfers go on.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

from trustbox.client.images.distribution import RegistryAuthError, RegistryClient, RegistryOptions
from trustbox.client.images.transfer import Reporter
from trustbox.errors import ConfigError, NotFoundError, TrustboxError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import short_id
from trustbox.oci.errors import DigestMismatchError, ImageError
from trustbox.oci.manifest import Manifest, dump_json, parse_manifest
from trustbox.oci.mediatypes import OCI_INDEX
from trustbox.oci.reference import ImageRef, parse_reference

#: cosign's attachment tags (``sha256-<hex>.sig``), and the OCI referrers tag schema (``sha256-<hex>``)
ATTACHMENT_TAG = re.compile(r"^sha256-(?P<hex>[0-9a-f]{64})(?:\.(?:sig|att|sbom))?$")
#: deepest index nesting copied (an index of indexes of manifests)
MAX_INDEX_DEPTH = 2
DEFAULT_JOBS = 4


class CopyError(TrustboxError):
    """An image could not be copied (the cause is in the message)."""


@dataclass(frozen=True)
class CopyRequest:
    """One image to copy within a repository pair.

    ``reference``: tag or digest on the source. ``tag``: the destination tag (None: by digest
    only). ``expected``: the descriptor the top manifest must match (a signed digest and length).
    """

    reference: str
    tag: str | None
    expected: Descriptor | None = None

    def describe(self) -> str:
        """``:tag`` or ``@digest``, as printed."""
        return f":{self.tag}" if self.tag else f"@{self.reference}"


@dataclass
class CopyOutcome:
    """What became of one :class:`CopyRequest`."""

    request: CopyRequest
    digest: str | None = None
    size: int = 0
    media_type: str = ""
    manifests: int = 0
    #: the destination already had the tag at this digest (nothing copied)
    present: bool = False
    #: attachment tags and referrer digests copied with it
    attachments: list[str] = field(default_factory=list)
    error: TrustboxError | None = None

    @property
    def ok(self) -> bool:
        """True when the image (and its attachments) are at the destination."""
        return self.error is None


@dataclass
class CopyStats:
    """Counters over one :class:`ImageCopier` (updated from its worker threads)."""

    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    manifests_written: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, outcome: str, size: int) -> None:
        """Record one blob: ``copied`` (``size`` bytes sent), ``mounted`` or ``present``."""
        with self._lock:
            if outcome == "copied":
                self.blobs_copied += 1
                self.bytes_copied += size
            elif outcome == "mounted":
                self.blobs_mounted += 1
            else:
                self.blobs_present += 1


@dataclass
class _Plan:
    """An image read from the source: its manifests in write order, its blobs, its attachments."""

    request: CopyRequest
    top: Manifest
    children: list[Manifest]
    present: bool = False
    attachments: list[_Plan] = field(default_factory=list)
    label: str = ""
    #: for a referrer found through the referrers API: its subject and the API's descriptor of it
    referrer_of: tuple[str, Descriptor] | None = None

    def blobs(self) -> Iterator[Descriptor]:
        """Every blob of the image and its attachments (repeats possible)."""
        for m in (*self.children, self.top):
            yield from m.blobs()
        for a in self.attachments:
            yield from a.blobs()

    def digests(self) -> list[str]:
        """The digests of the top manifest and every child."""
        return [self.top.digest, *(c.digest for c in self.children)]


class ImageCopier:
    """Copy images from one repository to another (same or different registry).

    The registry clients are the caller's (one shared client when both sides are the same
    registry, so a mount uses one token for both repositories).
    """

    def __init__(
        self,
        source: RegistryClient,
        source_repo: str,
        destination: RegistryClient,
        destination_repo: str,
        *,
        reporter: Reporter | None = None,
        jobs: int = DEFAULT_JOBS,
        attachments: bool = True,
    ) -> None:
        self.source = source
        self.source_repo = source_repo
        self.destination = destination
        self.destination_repo = destination_repo
        self.reporter = reporter or Reporter()
        self.jobs = max(1, jobs)
        self.attachments = attachments
        self.same_registry = source is destination or source.host == destination.host
        self.stats = CopyStats()
        self._source_tags: list[str] | None = None
        self._referrers_api = True
        #: the blob transfers of the running :meth:`copy`, one per digest
        self._blob_pool: ThreadPoolExecutor | None = None
        self._blobs: dict[str, Future[None]] = {}
        self._blob_lock = threading.Lock()

    # -- reading the source ------------------------------------------------------------

    def _read(self, request: CopyRequest, label: str) -> _Plan:
        """The verified manifests of one image.

        Raises:
            DigestMismatchError: a manifest does not match its digest / descriptor.
            NotFoundError, NetworkError, RegistryAuthError, ImageError: see RegistryClient.get_manifest.
        """
        top = self.source.get_manifest(self.source_repo, request.reference, request.expected)
        children: list[Manifest] = []

        def walk(m: Manifest, depth: int) -> None:
            if not m.is_index:
                return
            if depth >= MAX_INDEX_DEPTH:
                raise ImageError(f"{label}: image indexes nested more than {MAX_INDEX_DEPTH} deep")
            for desc in m.manifests:
                child = self.source.get_manifest(self.source_repo, desc.digest, desc)
                walk(child, depth + 1)
                children.append(child)

        walk(top, 0)
        return _Plan(request, top, children, label=label)

    def _tags(self) -> list[str]:
        """The source repository's tags (listed once)."""
        if self._source_tags is None:
            try:
                self._source_tags = self.source.list_tags(self.source_repo)
            except NotFoundError:
                self._source_tags = []
        return self._source_tags

    def _attachments(self, plan: _Plan) -> None:
        """Add cosign / referrers-schema tags and referrers of the image's manifests to ``plan``."""
        wanted = {d.removeprefix("sha256:"): d for d in plan.digests()}
        seen: set[str] = set(wanted.values())
        for tag in self._tags():
            m = ATTACHMENT_TAG.match(tag)
            if m is None or m["hex"] not in wanted:
                continue
            att = self._read(CopyRequest(tag, tag), f"attachment {tag}")
            seen.add(att.top.digest)
            seen.update(c.digest for c in att.children)
            plan.attachments.append(att)
        if not self._referrers_api:
            return
        for digest in wanted.values():
            found = self.source.referrers(self.source_repo, digest)
            if found is None:
                self._referrers_api = False
                return
            for desc in found:
                if desc.digest in seen:
                    continue
                seen.add(desc.digest)
                try:
                    att = self._read(CopyRequest(desc.digest, None, desc), f"referrer {short_id(desc.digest)}")
                except ImageError as exc:  # an artifact type this client does not read
                    self.reporter.info(f"{short_id(desc.digest)}: referrer not copied: {exc.message}")
                    continue
                att.referrer_of = (digest, desc)
                plan.attachments.append(att)

    def _plan(self, result: CopyOutcome) -> _Plan | None:
        """Read one request's image and attachments and check the destination (run in the
        pool); None, with ``result.error`` set, when that fails."""
        req = result.request
        try:
            plan = self._read(req, f"{self.source.host}/{self.source_repo}{req.describe()}")
            plan.present = self._present(plan)
            if self.attachments:
                self._attachments(plan)
                plan.attachments = [a for a in plan.attachments if not self._present(a)]
        except TrustboxError as exc:
            result.error = exc
            return None
        result.digest, result.size, result.media_type = plan.top.digest, plan.top.size, plan.top.media_type
        result.present = plan.present
        return plan

    def _present(self, plan: _Plan) -> bool:
        """Whether the destination already names this image's digest under its tag (or digest)."""
        ref = plan.request.tag or plan.top.digest
        found = self.destination.head_manifest(self.destination_repo, ref)
        return found is not None and found.digest == plan.top.digest

    # -- blobs -------------------------------------------------------------------------

    def _copy_blob(self, desc: Descriptor) -> None:
        """Make one blob present at the destination: already there, mounted, or streamed.

        Raises:
            DigestMismatchError: the source sent other bytes (the upload was aborted).
            NetworkError, RegistryAuthError, RegistryResponseError, NotFoundError: either side failed.
        """
        dst, repo = self.destination, self.destination_repo
        if self.same_registry and self.source_repo != repo and dst.mount_blob(repo, desc.digest, self.source_repo):
            self.stats.count("mounted", desc.size)
            self.reporter.info(f"{short_id(desc.digest)}: Mounted from {self.source_repo}")
            return
        if dst.blob_size(repo, desc.digest, push=True) is not None:
            self.stats.count("present", desc.size)
            self.reporter.info(f"{short_id(desc.digest)}: Layer already exists")
            return
        with self.reporter.transfer(short_id(desc.digest), desc.size) as progress, \
                self.source.open_blob(self.source_repo, desc) as chunks:
            dst.upload_blob(repo, desc, chunks, progress, verified=True)  # open_blob's stream verifies itself
        self.stats.count("copied", desc.size)
        self.reporter.info(f"{short_id(desc.digest)}: Copied")

    def _blob_futures(self, plan: _Plan) -> dict[str, Future[None]]:
        """Start (or join) the transfers of ``plan``'s blobs (the image's unless it is present,
        its attachments' always); one transfer per digest over the whole copy."""
        descs = [d for a in plan.attachments for d in a.blobs()]
        if not plan.present:
            descs += [d for m in (*plan.children, plan.top) for d in m.blobs()]
        futures: dict[str, Future[None]] = {}
        with self._blob_lock:
            for d in descs:
                fut = self._blobs.get(d.digest)
                if fut is None:
                    assert self._blob_pool is not None
                    fut = self._blobs[d.digest] = self._blob_pool.submit(self._copy_blob, d)
                futures[d.digest] = fut
        return futures

    def _plan_and_start(self, result: CopyOutcome) -> tuple[_Plan | None, dict[str, Future[None]]]:
        """Read one image (:meth:`_plan`) and start its blob transfers at once (run in the plan pool)."""
        plan = self._plan(result)
        return plan, self._blob_futures(plan) if plan is not None else {}

    @staticmethod
    def _blob_failures(futures: dict[str, Future[None]]) -> dict[str, TrustboxError]:
        """Wait for the transfers ``futures`` (by digest); their TrustboxErrors by digest.
        Anything else a transfer raised (a programming error) is raised."""
        wait(futures.values())
        failures: dict[str, TrustboxError] = {}
        for digest, fut in futures.items():
            exc = fut.exception()
            if exc is None:
                continue
            if not isinstance(exc, TrustboxError):
                raise exc
            failures[digest] = exc
        return failures

    # -- writing -----------------------------------------------------------------------

    def _write(self, plan: _Plan) -> int:
        """Children by digest, then the top manifest under its tag (or digest); the count written.

        Raises:
            DigestMismatchError: the destination stored a manifest under another digest.
            NetworkError, RegistryAuthError, RegistryResponseError: the destination refused it.
        """
        for child in plan.children:
            self.destination.put_manifest(self.destination_repo, child.digest, child)
        self.destination.put_manifest(self.destination_repo, plan.request.tag or plan.top.digest, plan.top)
        with self.stats._lock:
            self.stats.manifests_written += len(plan.children) + 1
        return len(plan.children) + 1

    def _referrers_tags(self, written: list[_Plan]) -> list[str]:
        """Where the destination has no referrers API, list the referrers just written in the
        OCI referrers tag schema (an index tagged ``sha256-<hex>`` of the subject, merged with
        what that tag already lists), as OCI 1.1 clients expect; the tags written.

        Raises:
            NetworkError, RegistryAuthError, RegistryResponseError, DigestMismatchError: the
                destination failed or refused the index.
        """
        by_subject: dict[str, list[Descriptor]] = {}
        for plan in written:
            if plan.referrer_of is not None:
                by_subject.setdefault(plan.referrer_of[0], []).append(plan.referrer_of[1])
        tags: list[str] = []
        for subject, descs in by_subject.items():
            if self.destination.referrers(self.destination_repo, subject) is not None:
                continue
            tag = "sha256-" + subject.removeprefix("sha256:")
            listed: list[Descriptor] = []
            if self.destination.head_manifest(self.destination_repo, tag) is not None:
                try:
                    old = self.destination.get_manifest(self.destination_repo, tag)
                    listed = list(old.manifests) if old.is_index else []
                except (ImageError, DigestMismatchError):
                    listed = []
            known = {d.digest for d in listed}
            new = [d for d in descs if d.digest not in known]
            if not new:
                continue
            index = parse_manifest(dump_json({
                "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_json() for d in (*listed, *new)],
            }), OCI_INDEX)
            self.destination.put_manifest(self.destination_repo, tag, index)
            tags.append(tag)
        return tags

    # -- the copy ----------------------------------------------------------------------

    def copy(self, requests: Sequence[CopyRequest]) -> list[CopyOutcome]:
        """Copy every request; each result carries its own error (one failing image does not
        stop the others).

        Raises:
            NetworkError, RegistryAuthError: a registry cannot be reached or refuses us at all
                (checked once up front, before anything is read).
        """
        self.destination.prepare(self.destination_repo, push=True)
        results = [CopyOutcome(r) for r in requests]
        if self.attachments:
            self._tags()  # listed once, before the threads
        # A pipeline: images are read by the plan pool, each one's blob transfers start in the
        # blob pool as soon as it is read, and its manifests are written (here, in request order)
        # as soon as its own blobs are there, while the other transfers go on.
        plan_pool = ThreadPoolExecutor(max_workers=min(self.jobs, max(1, len(results))), thread_name_prefix="plan")
        self._blob_pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="copy")
        self._blobs = {}
        try:
            planned = [plan_pool.submit(self._plan_and_start, r) for r in results]
            for result, fut in zip(results, planned, strict=True):
                done, blob_futures = fut.result()
                if done is not None:
                    self._write_image(result, done, self._blob_failures(blob_futures))
        finally:
            plan_pool.shutdown(wait=True, cancel_futures=True)
            self._blob_pool.shutdown(wait=True, cancel_futures=True)
            self._blob_pool = None
        return results

    def _write_image(self, result: CopyOutcome, done: _Plan, failures: dict[str, TrustboxError]) -> None:
        """Write one image's manifests and its attachments' (those whose blobs all arrived);
        a failure goes to ``result.error``."""
        try:
            if not done.present:
                _raise_blob_failure(done.children + [done.top], failures, done.label)
                result.manifests += self._write(done)
            for a in done.attachments:
                _raise_blob_failure(a.children + [a.top], failures, a.label)
                result.manifests += self._write(a)
                result.attachments.append(a.request.tag or a.top.digest)
            result.attachments.extend(self._referrers_tags(done.attachments))
        except TrustboxError as exc:
            result.error = exc


def _raise_blob_failure(manifests: list[Manifest], failures: dict[str, TrustboxError], label: str) -> None:
    """Raise the first failure among the blobs of ``manifests``: a DigestMismatchError naming
    ``label``, a RegistryAuthError as it is (it names the registry and repository), anything else
    as a CopyError naming ``label`` and the blob."""
    for m in manifests:
        for d in m.blobs():
            exc = failures.get(d.digest)
            if exc is None:
                continue
            if isinstance(exc, DigestMismatchError):
                raise DigestMismatchError(f"{label}: {exc.message}")
            if isinstance(exc, RegistryAuthError):
                raise exc
            raise CopyError(f"{label}: blob {short_id(d.digest)}: {exc.message}", hint=exc.hint)


# --- trustbox copy -----------------------------------------------------------------------


@dataclass
class CopyOptions:
    """How ``trustbox copy`` reaches both registries and how much it does at once."""

    source: RegistryOptions = field(default_factory=RegistryOptions)
    destination: RegistryOptions = field(default_factory=RegistryOptions)
    jobs: int = DEFAULT_JOBS
    attachments: bool = True


def copy_targets(src_text: str, dst_text: str) -> tuple[ImageRef, ImageRef, CopyRequest]:
    """Parse ``SRC_IMAGE`` and ``DST_IMAGE``: the references and what to copy.

    The source is read by digest when it has one, else by tag (``latest`` when neither). The
    destination tag is the destination's own, else the source's tag; a destination digest must be
    the source's digest (then nothing is tagged).

    Raises:
        ConfigError: an invalid reference, or a destination digest that differs from the source's.
    """
    src, dst = parse_reference(src_text).tag_name_only(), parse_reference(dst_text)
    if dst.digest and src.digest and dst.digest != src.digest:
        raise ConfigError(f"destination digest {dst.digest} differs from the source digest {src.digest}")
    if dst.digest and not src.digest:
        raise ConfigError("a destination digest needs a source pinned by the same digest")
    tag = dst.tag if dst.tag else (None if dst.digest else src.tag)
    return src, dst, CopyRequest(src.digest or src.tag or "latest", tag)


@contextmanager
def registry_pair(src: str, dst: str, options: CopyOptions) -> Iterator[tuple[RegistryClient, RegistryClient]]:
    """Clients for the source and destination registry hosts: one shared client when they are the
    same host (cross-repository mounts, one token cache), closed on exit."""
    source = RegistryClient(src, options.source)
    destination = source if dst == src else RegistryClient(dst, options.destination)
    try:
        yield source, destination
    finally:
        source.close()
        destination.close()


def copy_image_ref(
    src_text: str, dst_text: str, *, options: CopyOptions, reporter: Reporter | None = None,
    on_stats: Callable[[CopyStats], None] | None = None,
) -> CopyOutcome:
    """``trustbox copy SRC_IMAGE DST_IMAGE``: copy one image (with every child and attachment).

    Raises:
        ConfigError: bad references.
        DigestMismatchError: the source served bytes that do not match their digest (nothing was tagged).
        CopyError, NotFoundError, NetworkError, RegistryAuthError: see :meth:`ImageCopier.copy`.
    """
    src, dst, request = copy_targets(src_text, dst_text)
    with registry_pair(src.api_host, dst.api_host, options) as (source, destination):
        copier = ImageCopier(source, src.path, destination, dst.path, reporter=reporter, jobs=options.jobs,
                             attachments=options.attachments)
        [result] = copier.copy([request])
        if on_stats is not None:
            on_stats(copier.stats)
    if result.error is not None:
        raise result.error
    return result

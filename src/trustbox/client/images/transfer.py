"""Image transfer with content trust: push, pull and verify.

This module joins the registry client, the local image transports and the trust client
(:class:`NotaryTrust`, over :mod:`trustbox.client.trust.repository`); a trusted tag is the trust
client's :class:`~trustbox.client.trust.repository.SignedTarget`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from trustbox.client import dockerenv
from trustbox.client.errors import TrustError, notary_error
from trustbox.client.images.attachments import VerifiedSignature, sign_image, verify_signatures
from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.images.layout import (
    DockerArchiveDestination,
    ImageDestination,
    ImageSource,
    Progress,
    open_destination,
    open_source,
    parse_local_ref,
)
from trustbox.client.trust.repository import SignedTarget, TrustClient, trust_client_for
from trustbox.errors import (
    ConfigError,
    HashMismatchError,
    NetworkError,
    NotFoundError,
    TrustboxError,
)
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import short_id
from trustbox.oci.errors import DigestMismatchError, ImageError
from trustbox.oci.manifest import Manifest
from trustbox.oci.platforms import Platform, machine_platform, parse_platform, select_platform
from trustbox.oci.reference import ImageRef, parse_image_ref, parse_reference
from trustbox.oci.simplesigning import signature_tag
from trustbox.tuf.keys import PrivateKey, PublicKey

# --- DOCKER_CONTENT_TRUST ---------------------------------------------------------------


def content_trust_enabled(environ: dict[str, str] | None = None) -> bool:
    """docker's rule: any non-empty ``DOCKER_CONTENT_TRUST`` that is not a false boolean enables it."""
    value = (os.environ if environ is None else environ).get("DOCKER_CONTENT_TRUST", "")
    if not value:
        return False
    return value not in ("0", "f", "F", "false", "FALSE", "False")


# --- content trust ----------------------------------------------------------------------


class NotaryTrust:
    """Content trust for the image commands, over trustbox's own trust client
    (:func:`~trustbox.client.trust.repository.trust_client_for`); every failure is worded by
    :func:`~trustbox.client.errors.notary_error`."""

    def __init__(self, **opts: Any) -> None:
        """``opts`` are passed to ``trust_client_for`` (None values are left out)."""
        self.opts = {k: v for k, v in opts.items() if v is not None}

    def _client(self, ref: ImageRef) -> TrustClient:
        try:
            return trust_client_for(ref.name, **self.opts)
        except TrustboxError as exc:
            raise notary_error(ref.name, exc) from None

    def lookup(self, ref: ImageRef, tag: str) -> SignedTarget:
        """Update the trust data and resolve ``tag`` (roles ``targets/releases`` then ``targets``).

        Raises:
            TrustError: docker's wording of the failure, or ``No valid trust data for <tag>``.
        """
        client = self._client(ref)
        try:
            client.update()
            t = client.get_signed_target(tag)
        except TrustboxError as exc:
            raise notary_error(ref.name, exc) from None
        finally:
            client.close()
        if len(t.sha256_hex) != 64:
            raise TrustError(f"No valid trust data for {tag}")
        return SignedTarget(t.name or tag, t.sha256_hex, t.length, t.role, tuple(t.signers), stale=client.stale_reason)

    def list_targets(self, ref: ImageRef) -> list[SignedTarget]:
        """All tags in ``targets/releases`` / ``targets``.

        Raises:
            TrustError: docker's wording of the failure.
        """
        client = self._client(ref)
        try:
            client.update()
            return client.list_signed_targets()
        except TrustboxError as exc:
            raise notary_error(ref.name, exc) from None
        finally:
            client.close()

    def sign(self, ref: ImageRef, tag: str, digest: str, length: int) -> list[PrivateKey]:
        """Sign the pushed manifest under ``tag``, initialising the repository if needed; the
        private keys that signed (for the sigstore attachment).

        Raises:
            TrustError: docker's wording of the failure.
        """
        client = self._client(ref)
        try:
            return list(client.sign_target(tag, digest.split(":", 1)[1], length) or [])
        except TrustboxError as exc:
            raise notary_error(ref.name, exc) from None
        finally:
            client.close()


# --- reporting ----------------------------------------------------------------------------


class Reporter:
    """Where transfer messages go. The base class is silent except for ``info`` lines."""

    def __init__(self, out: Callable[[str], None] | None = None, quiet: bool = False,
                 err: Callable[[str], None] | None = None) -> None:
        self._out = out
        self._err = err
        self.quiet = quiet

    def info(self, line: str) -> None:
        """A docker-style status line (suppressed with ``quiet``)."""
        if self._out is not None and not self.quiet:
            self._out(line)

    def note(self, line: str) -> None:
        """A status line beyond docker's output, on stderr (suppressed with ``quiet``): stdout stays
        what docker prints."""
        if self._err is not None and not self.quiet:
            self._err(line)

    def warning(self, line: str) -> None:
        """A warning on stderr, even with ``quiet`` (on stdout when there is no stderr callback)."""
        if self._err is not None:
            self._err(line)
        else:
            self.always(line)

    def always(self, line: str) -> None:
        """A line printed even with ``quiet`` (results scripts rely on)."""
        if self._out is not None:
            self._out(line)

    @contextmanager
    def transfer(self, label: str, total: int) -> Iterator[Progress | None]:
        """A progress callback for one blob (None when there is nothing to show)."""
        yield None


# --- registry as source / destination ---------------------------------------------------


class RegistrySource:
    """Read an image from a registry; ``expected`` pins the top manifest's digest and size."""

    def __init__(self, client: RegistryClient, repo: str, reference: str, expected: Descriptor | None = None) -> None:
        self.client = client
        self.repo = repo
        self.reference = reference
        self.expected = expected

    def describe(self) -> str:
        """``host/repo:ref``."""
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.client.host}/{self.repo}{sep}{self.reference}"

    def top(self) -> Manifest:
        """The top manifest, verified against the reference / expected descriptor."""
        return self.client.get_manifest(self.repo, self.reference, self.expected)

    def manifest(self, desc: Descriptor) -> Manifest:
        """A child manifest by digest, verified against its descriptor."""
        return self.client.get_manifest(self.repo, desc.digest, desc)

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """A verified blob stream."""
        return self.client.open_blob(self.repo, desc)

    def close(self) -> None:
        """The client is owned by the caller."""


class RegistryDestination:
    """Write an image into a registry repository under ``tag`` (or only by digest)."""

    def __init__(self, client: RegistryClient, repo: str, tag: str | None, mount_from: Iterable[str] = ()) -> None:
        self.client = client
        self.repo = repo
        self.tag = tag
        self.mount_from = tuple(mount_from)
        self.pushed_digest: str | None = None
        self.pushed_size: int | None = None
        client.prepare(repo, push=True)

    def describe(self) -> str:
        """``host/repo[:tag]``."""
        return f"{self.client.host}/{self.repo}" + (f":{self.tag}" if self.tag else "")

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the repository already has the blob (or it could be mounted from another repo)."""
        size = self.client.blob_size(self.repo, desc.digest, push=True)
        if size is not None:
            return True
        for other in self.mount_from:
            if other != self.repo and self.client.mount_blob(self.repo, desc.digest, other):
                return True
        return False

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        """Upload a blob."""
        self.client.upload_blob(self.repo, desc, chunks, progress)

    def put_manifest(self, m: Manifest, top: bool) -> None:
        """Children by digest; the top manifest under the tag (or its digest)."""
        ref = self.tag if (top and self.tag) else m.digest
        self.client.put_manifest(self.repo, ref, m)
        if top:
            self.pushed_digest, self.pushed_size = m.digest, m.size

    def commit(self) -> None:
        """Nothing to do: the manifest PUT made the image visible."""

    def abort(self) -> None:
        """Uploaded blobs stay (unreferenced blobs are garbage-collected by the registry)."""


# --- copying ------------------------------------------------------------------------------


@dataclass
class CopyResult:
    """What a copy moved."""

    top: Manifest
    children: list[Manifest] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_skipped: int = 0


def copy_image(
    src: ImageSource,
    dest: ImageDestination,
    reporter: Reporter,
    top: Manifest | None = None,
    verb: str = "Pushed",
) -> CopyResult:
    """Copy an image (a manifest, or an index with its child manifests) from ``src`` to ``dest``.

    Children and blobs go first, the top manifest last; on any error ``dest.abort()`` runs.
    """
    try:
        top = top or src.top()
        result = CopyResult(top)
        seen: set[str] = set()

        def copy_blobs(m: Manifest) -> None:
            for desc in m.blobs():
                if desc.digest in seen:
                    continue
                seen.add(desc.digest)
                if dest.has_blob(desc):
                    result.blobs_skipped += 1
                    reporter.info(f"{short_id(desc.digest)}: {'Layer already exists' if verb == 'Pushed' else 'Already exists'}")
                    continue
                with reporter.transfer(short_id(desc.digest), desc.size) as progress, src.open_blob(desc) as chunks:
                    dest.put_blob(desc, chunks, progress)
                result.blobs_copied += 1
                reporter.info(f"{short_id(desc.digest)}: {verb if verb == 'Pushed' else 'Pull complete'}")

        def copy_manifest(m: Manifest, depth: int) -> None:
            if m.is_index:
                if depth > 2:
                    raise ImageError("image indexes nested too deeply")
                for child_desc in m.manifests:
                    child = src.manifest(child_desc)
                    copy_manifest(child, depth + 1)
                    result.children.append(child)
                    dest.put_manifest(child, top=False)
            else:
                copy_blobs(m)

        copy_manifest(top, 0)
        dest.put_manifest(top, top=True)
        dest.commit()
        return result
    except BaseException:
        dest.abort()
        raise


def verify_image_blobs(src: ImageSource, top: Manifest, reporter: Reporter) -> int:
    """Download and verify every manifest and blob of an image without storing it; return the count."""
    count = 0

    def walk(m: Manifest, depth: int) -> None:
        nonlocal count
        if m.is_index:
            if depth > 2:
                raise ImageError("image indexes nested too deeply")
            for d in m.manifests:
                walk(src.manifest(d), depth + 1)
                count += 1
            return
        for desc in m.blobs():
            with reporter.transfer(short_id(desc.digest), desc.size) as progress, src.open_blob(desc) as chunks:
                for b in chunks:
                    if progress is not None:
                        progress(len(b))
            count += 1

    walk(top, 0)
    return count


# --- high-level operations ----------------------------------------------------------------


@dataclass
class TransferOptions:
    """Options shared by push, pull and verify."""

    registry: RegistryOptions = field(default_factory=RegistryOptions)
    trust: NotaryTrust | None = None


def _trust(opts: TransferOptions) -> NotaryTrust:
    return opts.trust if opts.trust is not None else NotaryTrust()


def push_image(
    source: str,
    target: str,
    *,
    sign: bool,
    opts: TransferOptions,
    reporter: Reporter,
    sigstore: bool | None = None,
) -> tuple[ImageRef, Manifest]:
    """``trustbox push``: copy a local image to ``IMAGE:TAG`` and, with ``sign``, sign the tag;
    with ``sigstore`` (None: ``$TRUSTBOX_SIGSTORE``, default on) the signing keys also write the
    sigstore attachments (a failure there is a warning: the trust signature stands).

    Raises:
        ConfigError: a digest reference, a bad ``$TRUSTBOX_SIGSTORE``.
        TrustError: signing failed (docker's wording).
        ImageError, NetworkError, RegistryAuthError, RegistryResponseError: the push failed.
    """
    ref = parse_image_ref(target)
    if ref.digest:
        raise ConfigError(f"cannot push to a digest reference {target!r}; name a tag")
    assert ref.tag is not None
    src = open_source(source)
    try:
        with RegistryClient(ref.api_host, opts.registry) as client:
            reporter.info(f"The push refers to repository [{ref.name}]")
            dest = RegistryDestination(client, ref.path, ref.tag)
            result = copy_image(src, dest, reporter)
    finally:
        src.close()
    top = result.top
    reporter.info(f"{ref.tag}: digest: {top.digest} size: {top.size}")
    if sign:
        with_sigstore = dockerenv.sigstore_attachments() if sigstore is None else sigstore
        reporter.always("Signing and pushing trust metadata")
        keys = _trust(opts).sign(ref, ref.tag, top.digest, top.size)
        reporter.always(f"Successfully signed {ref.name}:{ref.tag}")
        if with_sigstore and keys:
            try:
                with RegistryClient(ref.api_host, opts.registry) as client:
                    done = sign_image(client, ref.path, ref.name, top, keys)
            except TrustboxError as exc:
                reporter.warning(
                    f"Warning: {ref.name}:{ref.tag} is signed in the trust data, but its sigstore signature was not "
                    f"written: {exc.message} (retry with: trustbox trust attach {ref.name}:{ref.tag})"
                )
            else:
                reporter.note(f"Sigstore signature {ref.name}:{signature_tag(top.digest)}: {done.added} added for "
                              f"{len(done.digests)} manifest(s)")
                for keyid, why in done.skipped:
                    reporter.warning(f"Warning: no sigstore signature by key {keyid[:12]}: {why}")
    return ref, top


def resolve_trusted(ref: ImageRef, opts: TransferOptions) -> SignedTarget:
    """Resolve a tag through the trust data (docker's ``TrustedReference``)."""
    assert ref.tag is not None
    return _trust(opts).lookup(ref, ref.tag)


def host_platform() -> Platform:
    """This machine's platform (``linux/amd64`` on x86-64 Linux)."""
    return machine_platform(platform.system(), platform.machine())


def _archive_tags(ref: ImageRef, named: str | None) -> list[str]:
    """``RepoTags`` of a docker archive: ``NAME:TAG`` from the destination, else the pulled tag
    (none for a pull by digest), in docker's familiar form.

    Raises:
        ConfigError: ``named`` is no ``NAME:TAG`` reference.
    """
    if named:
        tagged = parse_reference(named)
        if not tagged.tag or tagged.digest:
            raise ConfigError(f"docker-archive reference {named!r} must be NAME:TAG")
        return [tagged.familiar()]
    if ref.digest or not ref.tag:
        return []
    return [f"{ref.familiar_name}:{ref.tag}"]


def pull_image(
    image: str,
    destination: str,
    *,
    trusted: bool,
    opts: TransferOptions,
    reporter: Reporter,
    platform_name: str | None = None,
) -> tuple[ImageRef, Manifest]:
    """``trustbox pull``: resolve (through trust unless disabled or pinned by digest), download,
    verify everything while it streams, and write ``destination`` atomically.

    A ``docker-archive:FILE[:NAME:TAG]`` destination holds one platform: for an index, the child
    for ``platform_name`` (``os/arch[/variant]``, default this machine's), after the index itself
    was checked against the signature; the archive is tagged ``NAME:TAG`` or the pulled tag.

    Raises:
        ConfigError: a bad reference or destination.
        FormatError: a bad platform, or no manifest for it in the index.
        TrustError: the trust lookup failed (docker's wording).
        ImageError, DigestMismatchError, NotFoundError, NetworkError: the download failed.
    """
    ref = parse_image_ref(image)
    if ref.digest is None and ":" not in image.rsplit("/", 1)[-1]:
        reporter.info(f"Using default tag: {ref.tag}")
    local = parse_local_ref(destination)
    if local is None:
        raise ConfigError(
            f"destination {destination!r} must be oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME:TAG]"
        )
    repo_tags = _archive_tags(ref, local.ref) if local.transport == "docker-archive" else []
    want = parse_platform(platform_name) if platform_name else host_platform()
    expected: Descriptor | None = None
    reference = ref.reference
    if ref.digest is None and trusted:
        target = resolve_trusted(ref, opts)
        reporter.always(f"Pull (1 of 1): {ref.familiar_name}:{ref.tag}@{target.digest}")
        expected = Descriptor("", target.digest, target.length)
        reference = target.digest
    elif ref.digest is not None:
        expected = None  # the digest itself pins the content (checked in get_manifest)
    with RegistryClient(ref.api_host, opts.registry) as client:
        src = RegistrySource(client, ref.path, reference, expected)
        top = src.top()
        reporter.info(f"{reference}: Pulling from {ref.path}")
        if local.transport == "docker-archive":
            chosen = top
            if top.is_index:
                child = select_platform(top, want)
                reporter.info(f"Platform {want}: {child.digest}")
                chosen = src.manifest(child)
            copy_image(src, DockerArchiveDestination(local.path, repo_tags), reporter, top=chosen, verb="Pulled")
        else:
            copy_image(src, open_destination(destination), reporter, top=top, verb="Pulled")
    reporter.info(f"Digest: {top.digest}")
    reporter.info(f"Status: Downloaded {ref.familiar_name}@{top.digest} to {destination}")
    return ref, top


# --- verify -------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_UNTRUSTED = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3


#: what ``verify --require`` may demand: the content-trust signature, the sigstore attachment, both
REQUIRE_CHOICES = ("dct", "sigstore", "both")


@dataclass
class Verdict:
    """The result of ``trustbox verify``."""

    image: str
    gun: str = ""
    tag: str = ""
    verified: bool = False
    exit_code: int = EXIT_UNTRUSTED
    reason: str = ""
    signed_digest: str | None = None
    signed_size: int | None = None
    role: str | None = None
    signers: list[str] = field(default_factory=list)
    required_signers: list[str] = field(default_factory=list)
    registry_digest: str | None = None
    registry_size: int | None = None
    media_type: str | None = None
    platforms: list[str] = field(default_factory=list)
    blobs_verified: int | None = None
    #: the trust data came from the local cache (None: no trust data was loaded)
    from_cache: bool | None = None
    #: which signatures were required (``dct``, ``sigstore``, ``both``)
    require: str = "dct"
    #: the sigstore signatures that verified (None: not checked)
    sigstore: list[VerifiedSignature] | None = None

    @property
    def digest(self) -> str | None:
        """The verified manifest digest: the signed one, or (sigstore alone) the registry's."""
        return self.signed_digest or self.registry_digest

    @property
    def resolved(self) -> str | None:
        """``<repository>@<digest>`` when verified (what ``trustbox resolve`` prints), else None."""
        if not self.verified or not self.gun or not self.digest:
            return None
        return f"{self.gun}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        """A machine-readable verdict."""
        return {
            "image": self.image,
            "gun": self.gun,
            "tag": self.tag,
            "verified": self.verified,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "require": self.require,
            "signed": {"digest": self.signed_digest, "size": self.signed_size, "role": self.role, "signers": self.signers}
            if self.signed_digest
            else None,
            "required_signers": self.required_signers,
            "registry": {"digest": self.registry_digest, "size": self.registry_size, "media_type": self.media_type}
            if self.registry_digest
            else None,
            "sigstore": [
                {"digest": s.digest, "key_id": s.key.canonical_keyid, "identity": s.identity, "payload": s.payload_digest}
                for s in self.sigstore
            ]
            if self.sigstore is not None
            else None,
            "platforms": self.platforms,
            "blobs_verified": self.blobs_verified,
            "from_cache": self.from_cache,
            "resolved": self.resolved,
        }


def _usage(v: Verdict, reason: str) -> Verdict:
    v.exit_code, v.reason = EXIT_USAGE, reason
    return v


def verify_image(
    image: str,
    *,
    signers: Iterable[str] = (),
    deep: bool = False,
    require_fresh: bool = False,
    opts: TransferOptions,
    reporter: Reporter,
    require: str = "dct",
    sigstore_keys: Sequence[PublicKey] = (),
) -> Verdict:
    """``trustbox verify``: is ``IMAGE:TAG`` signed (by ``signers``) and does the registry serve
    exactly the signed manifest? ``require_fresh`` refuses trust data the server did not confirm
    (the cached timestamp was used).

    ``require``: ``dct`` (the content-trust signature, the default), ``sigstore`` (a sigstore
    attachment of the manifest the registry serves verifying with one of ``sigstore_keys``; no
    trust server involved; ``IMAGE@DIGEST`` allowed), or ``both`` (the attachment must sign the
    digest the trust data signed). Never raises for a negative answer; see ``Verdict.exit_code``.
    """
    v = Verdict(image=image, required_signers=sorted(set(signers)), require=require)
    if require not in REQUIRE_CHOICES:
        return _usage(v, f"--require must be one of {', '.join(REQUIRE_CHOICES)}, not {require!r}")
    if require != "dct" and not sigstore_keys:
        return _usage(v, f"--require {require} needs at least one --sigstore-key")
    if require == "dct" and sigstore_keys:
        return _usage(v, "--sigstore-key is checked only with --require sigstore or --require both")
    if require == "sigstore" and v.required_signers:
        return _usage(v, "--signer names content-trust signers; it needs --require dct or both")
    try:
        ref = parse_image_ref(image)
    except ConfigError as exc:
        return _usage(v, exc.message)
    if ref.digest and require != "sigstore":
        return _usage(v, "verify needs IMAGE:TAG, not a digest reference")
    v.gun, v.tag = ref.name, ref.tag or ""
    target: SignedTarget | None = None
    if require != "sigstore":
        assert ref.tag is not None
        try:
            target = resolve_trusted(ref, opts)
        except TrustError as exc:
            v.exit_code = EXIT_NETWORK if exc.kind == "network" else (EXIT_USAGE if exc.kind == "config" else EXIT_UNTRUSTED)
            v.reason = exc.message
            return v
        v.from_cache = target.from_cache
        if require_fresh and target.stale is not None:
            v.exit_code = EXIT_NETWORK if isinstance(target.stale, NetworkError) else EXIT_UNTRUSTED
            v.reason = (
                f"the trust server did not serve current trust data for {ref.name} ({target.stale.message}); "
                "the cached copy is not accepted with --require-fresh"
            )
            return v
        v.signed_digest, v.signed_size, v.role, v.signers = target.digest, target.length, target.role, sorted(target.signers)
        missing = [s for s in v.required_signers if s not in target.signers]
        if missing:
            v.reason = f"{ref.name}:{ref.tag} is not signed by {', '.join(missing)} (signed by {', '.join(v.signers) or 'nobody'})"
            return v
    try:
        with RegistryClient(ref.api_host, opts.registry) as client:
            current = client.get_manifest(ref.path, ref.reference)
            v.registry_digest, v.registry_size, v.media_type = current.digest, current.size, current.media_type
            if target is not None and (current.digest != target.digest or current.size != target.length):
                v.reason = (
                    f"registry serves {current.digest} ({current.size} bytes) for {ref.tag} but the signed manifest is "
                    f"{target.digest} ({target.length} bytes)"
                )
                return v
            v.platforms = [d.platform_string() for d in current.manifests]
            if require != "dct":
                v.sigstore = verify_signatures(client, ref.path, current.digest, sigstore_keys)
            if deep:
                src = RegistrySource(client, ref.path, current.digest, current.descriptor())
                v.blobs_verified = verify_image_blobs(src, current, reporter)
    except (DigestMismatchError, HashMismatchError) as exc:
        v.reason = exc.message
        return v
    except NotFoundError as exc:
        v.reason = exc.message
        return v
    except NetworkError as exc:
        v.exit_code, v.reason = EXIT_NETWORK, exc.message
        return v
    except TrustboxError as exc:
        v.reason = exc.message
        return v
    v.verified, v.exit_code = True, EXIT_OK
    shown = f"{ref.name}:{ref.tag}" if ref.tag and not ref.digest else f"{ref.name}@{current.digest}"
    parts = []
    if target is not None:
        parts.append(f"is signed ({', '.join(v.signers) or target.role})")
    if v.sigstore is not None:
        keys = sorted({s.key.canonical_keyid[:12] for s in v.sigstore})
        parts.append(f"has a sigstore signature by key {', '.join(keys)}")
    v.reason = f"{shown} {' and '.join(parts)} and the registry serves the signed manifest {current.digest}"
    return v

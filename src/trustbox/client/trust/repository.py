"""The stable client API of one GUN on one trust server (used by ``trustbox image push/pull``).

Docker semantics: a tag is looked up in ``targets/releases`` then ``targets``; signing a tag
initialises a new repository (server-managed snapshot, the tag in ``targets``) or signs into
every role the local keys can sign (``AddToAllSignableRoles``), then publishes.

A publish is reported done only when the server has answered 2xx to the update; when the server
has no trust data for a cached repository, the whole cached repository is uploaded with the change
(notary's initial publish) and a refusal is reported as :class:`RemoteTrustDataMissingError`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from trustbox.client import dockerenv
from trustbox.client.errors import (
    NoSuchTargetError,
    RemoteTrustDataMissingError,
    RepositoryNotExistError,
    ServerRejectedError,
    UnconfirmedStateError,
)
from trustbox.client.pinning import TrustPinning
from trustbox.client.trust.cache import MetadataCache
from trustbox.client.trust.publish import RepoDraft
from trustbox.client.trust.remote import PULL, PUSH_PULL, RemoteStore
from trustbox.client.trust.updater import update_repository
from trustbox.errors import KeyStoreError, TrustboxError
from trustbox.keystore.passphrase import PassphraseRetriever, docker_retriever
from trustbox.keystore.store import KeyStore
from trustbox.oci.reference import parse_reference
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.metadata import ROOT, TARGETS, FileMeta
from trustbox.tuf.timefmt import utcnow
from trustbox.tuf.verify import TrustedCollection

log = logging.getLogger(__name__)

RELEASES_ROLE = "targets/releases"
RELEASED_ROLES = (RELEASES_ROLE, TARGETS)
REPO_ADMIN = "Repo Admin"


@dataclass(frozen=True)
class SignedTarget:
    """A trusted tag: manifest digest (hex sha256), manifest length, the role it was found in,
    and the signers (``targets/<name>`` roles holding the same digest; ``["Repo Admin"]`` if none)."""

    name: str
    sha256_hex: str
    length: int
    role: str
    signers: tuple[str, ...] = field(default_factory=tuple)
    #: why the trust data came from the local cache (the server did not serve its current timestamp);
    #: None when the server confirmed it
    stale: TrustboxError | None = field(default=None, compare=False)

    @property
    def digest(self) -> str:
        """``sha256:<hex>``."""
        return "sha256:" + self.sha256_hex

    @property
    def from_cache(self) -> bool:
        """Whether the lookup used the cached trust data instead of the server's current one."""
        return self.stale is not None


@dataclass(frozen=True)
class TargetEntry:
    """One target as found in one role during a walk of the delegation tree."""

    role: str
    name: str
    meta: FileMeta

    @property
    def sha256_hex(self) -> str:
        """Hex of the sha256 hash ("" if the role lists none)."""
        h = self.meta.hashes.get("sha256")
        return h.hex() if h is not None else ""


def is_released_role(role: str) -> bool:
    """``targets`` and ``targets/releases`` are the roles docker pulls from."""
    return role in RELEASED_ROLES


def signer_name(role: str) -> str:
    """``targets/alice`` -> ``alice``; released roles -> ``Repo Admin``."""
    if is_released_role(role):
        return REPO_ADMIN
    return role[len("targets/"):] if role.startswith("targets/") else role


class TrustClient:
    """One GUN on one trust server: update/verify, look up tags, sign tags."""

    def __init__(
        self,
        gun: str,
        server_url: str,
        trust_dir: Path,
        *,
        ca_files: Sequence[Path] = (),
        passphrase_retriever: PassphraseRetriever | None = None,
        now: datetime | None = None,
        http: httpx.Client | None = None,
        client_pairs: Sequence[tuple[Path, Path]] = (),
        credentials: dockerenv.Credentials | None = None,
        pinning: TrustPinning | None = None,
        insecure_skip_verify: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.gun = gun
        self.server_url = server_url
        self.trust_dir = Path(trust_dir)
        self._now = now
        self.remote = RemoteStore(
            server_url,
            gun,
            http=http,
            ca_files=ca_files,
            client_pairs=client_pairs,
            credentials=credentials,
            actions=PULL,
            insecure_skip_verify=insecure_skip_verify,
        )
        self.cache = MetadataCache(self.trust_dir, gun)
        self.keystore = KeyStore(self.trust_dir, passphrase_retriever or docker_retriever())
        self.pinning = pinning or TrustPinning()
        self.warn = warn
        self._tc: TrustedCollection | None = None
        self.skipped: dict[str, TrustboxError] = {}
        #: why the last update used the cached timestamp (None: the server confirmed the current versions)
        self.stale_reason: TrustboxError | None = None
        #: the last (write) update found no trust data on the server; the collection is the cache's
        self.remote_missing = False

    # -- state ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The verification time (pinned in tests, else the clock)."""
        return self._now or utcnow()

    def close(self) -> None:
        """Release the HTTP client (if this object created it)."""
        self.remote.close()

    def __enter__(self) -> TrustClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, for_write: bool = False) -> None:
        """Fetch and verify the repository's metadata (raises trustbox errors). ``for_write`` also
        asks the server whether it holds the repository at all (notary's ``Update(forWrite)``)."""
        self._tc = None
        result = update_repository(
            self.gun, self.remote, self.cache, self.now, self.pinning, check_initialized=for_write, warn=self.warn
        )
        self._tc, self.skipped = result.collection, result.skipped
        self.stale_reason, self.remote_missing = result.stale, result.remote_missing

    @property
    def from_cache(self) -> bool:
        """Whether the last update used the cached timestamp (the server did not confirm it)."""
        return self.stale_reason is not None

    @property
    def collection(self) -> TrustedCollection:
        """The verified metadata (updating first if needed)."""
        if self._tc is None:
            self.update()
        assert self._tc is not None
        return self._tc

    # -- reading -----------------------------------------------------------------------------------

    def walk_targets(self, name: str | None = None) -> list[TargetEntry]:
        """Every (role, target) pair, breadth first from ``targets`` through valid delegations
        (notary ``GetAllTargetMetadataByName``); ``name`` restricts to one target."""
        tc = self.collection
        out: list[TargetEntry] = []
        queue = deque([TARGETS])
        while queue:
            role = queue.popleft()
            if role != TARGETS and role not in tc.delegations:
                continue
            for tname, meta in tc.role_targets(role).items():
                if name is None or tname == name:
                    out.append(TargetEntry(role, tname, meta))
            queue.extend(tc.delegated_roles(role))
        return out

    def _signed(self, role: str, name: str, meta: FileMeta, entries: list[TargetEntry]) -> SignedTarget:
        sha = meta.hashes.get("sha256")
        if sha is None:
            raise NoSuchTargetError(name)
        signers = [
            signer_name(e.role)
            for e in entries
            if e.name == name and not is_released_role(e.role) and e.meta.hashes.get("sha256") == sha
        ]
        return SignedTarget(name, sha.hex(), meta.length, role, tuple(signers) or (REPO_ADMIN,))

    def get_signed_target(self, tag: str) -> SignedTarget:
        """The trusted target for ``tag`` from ``targets/releases`` then ``targets`` (as docker pull)."""
        tc = self.collection
        found = tc.find_target(tag, RELEASED_ROLES)
        if found is None:
            skipped = self.skipped.get(RELEASES_ROLE)
            if skipped is not None:
                raise skipped
            raise NoSuchTargetError(tag)
        role, meta = found
        return self._signed(role, tag, meta, self.walk_targets(tag))

    def list_signed_targets(self) -> list[SignedTarget]:
        """Every released tag (``targets/releases`` wins over ``targets``), sorted by name."""
        tc = self.collection
        entries = self.walk_targets()
        seen: dict[str, SignedTarget] = {}
        for role in RELEASED_ROLES:
            for name, meta in sorted(tc.role_targets(role).items()):
                if name in seen or "sha256" not in meta.hashes:
                    continue
                seen[name] = self._signed(role, name, meta, entries)
        return [seen[n] for n in sorted(seen)]

    # -- writing ---------------------------------------------------------------------------------

    def update_for_write(self) -> None:
        """:meth:`update` with a ``pull,push`` token and the server's root checked (before a publish)."""
        self.remote.use_actions(PUSH_PULL)
        self.update(for_write=True)

    def draft(self) -> RepoDraft:
        """A draft over the current verified state (an initial publish if the last write update
        found the server without trust data)."""
        return RepoDraft.from_collection(self.collection, self.keystore, self.now, initial_publish=self.remote_missing)

    def new_repository_draft(self) -> RepoDraft:
        """A draft initialising the repository (docker's ``Initialize(rootKey, snapshot)``); the
        cache is replaced only once the server has accepted it."""
        self.remote.use_actions(PUSH_PULL)
        return RepoDraft.new_repository(self.gun, self.keystore, self.now, self.remote)

    def draft_or_new(self) -> tuple[RepoDraft, bool]:
        """(draft, created): the current state, or a new repository if neither the server nor the
        cache has one. Raises RemoteTrustDataMissingError when the server has none and the
        cache's copy is unusable."""
        try:
            self.update_for_write()
        except RepositoryNotExistError:
            return self.new_repository_draft(), True
        return self.draft(), False

    def publish(self, draft: RepoDraft) -> None:
        """Sign the draft and upload it in one POST; done only when the server answers 2xx (the
        next read updates again). Raises UnconfirmedStateError when there is nothing to send but
        the server did not confirm the current versions, RemoteTrustDataMissingError when the
        server refuses the cached repository it lacks, and the server's error otherwise."""
        self.remote.use_actions(PUSH_PULL)
        parts = draft.sign()
        if not parts:
            if self.stale_reason is not None:
                raise UnconfirmedStateError(
                    f"nothing to publish for {self.gun}, but the trust server did not serve its current "
                    f"timestamp ({self.stale_reason.message}), so it cannot be confirmed to hold these "
                    "versions; nothing was published"
                )
            return
        try:
            self.remote.post_update(parts)
        except ServerRejectedError as exc:
            if draft.initial_publish:
                raise RemoteTrustDataMissingError(
                    self.remote.host, self.gun, self.cache.root_dir, f"the server refused it: {exc.message}"
                ) from exc
            raise
        if draft.new_repo:
            self.cache.clear()
            self.cache.set(ROOT, draft.root.to_bytes())
        self._tc = None

    def signable_roles(self, draft: RepoDraft, tag: str) -> list[str]:
        """Docker's ``GetSignableRoles``: ``targets`` if there are no delegations, else every direct
        child of ``targets`` covering ``tag`` whose keys are held locally."""
        delegations = draft.delegation_roles()
        if not delegations:
            return [TARGETS]
        roles = [
            r.name
            for r in delegations
            if r.name.rsplit("/", 1)[0] == TARGETS and r.covers(tag) and draft.can_sign(r.name)
        ]
        if not roles:
            raise KeyStoreError("no valid signing keys for delegation roles")
        return roles

    def sign_target(self, tag: str, sha256_hex: str, length: int) -> list[PrivateKey]:
        """Sign ``tag`` -> (sha256, length) like ``docker push`` with content trust, and publish.
        Returns the private keys that signed (for the sigstore attachment of the same digest)."""
        try:
            digest = bytes.fromhex(sha256_hex)
        except ValueError as exc:
            raise TrustboxError(f"invalid sha256 digest {sha256_hex!r}") from exc
        if len(digest) != 32:
            raise TrustboxError(f"invalid sha256 digest {sha256_hex!r}")
        meta = FileMeta(length, {"sha256": digest})
        draft, created = self.draft_or_new()
        roles = [TARGETS] if created else self.signable_roles(draft, tag)
        for role in roles:
            draft.add_target(role, tag, meta)
        self.publish(draft)
        return draft.held_keys(roles)


def trust_client_for(image_ref: str, **opts: object) -> TrustClient:
    """A TrustClient for an image reference, resolving GUN, trust server, CA files and trust dir
    from the environment like docker (``DOCKER_CONFIG``, ``DOCKER_CONTENT_TRUST_SERVER``, ...).

    Keyword options are passed to :class:`TrustClient` (``ca_files`` are added to the ones
    found under ``$DOCKER_CONFIG/tls/<host:port>/``); ``environ`` overrides ``os.environ``.
    """
    environ = opts.pop("environ", None)
    env = environ if isinstance(environ, dict) else None
    ref = parse_reference(image_ref)
    server = str(opts.pop("server_url", "") or dockerenv.trust_server(ref, env))
    extra = opts.pop("ca_files", ()) or ()
    tls = dockerenv.tls_files(server, env, [Path(p) for p in extra])  # type: ignore[attr-defined]
    trust_dir = Path(str(opts.pop("trust_dir", "") or dockerenv.trust_dir(env)))
    opts.setdefault("credentials", dockerenv.registry_credentials(ref, env))
    opts.setdefault("client_pairs", tls.client_pairs)
    opts.setdefault("pinning", dockerenv.trust_pinning(env))
    return TrustClient(ref.gun, server, trust_dir, ca_files=tls.ca_files, **opts)  # type: ignore[arg-type]

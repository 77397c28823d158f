"""``trustbox trust import``: publish a :class:`TrustArchive` to a trust server (trustbox's or any
Notary v1 server) so that clients that pinned the repository on the old server keep working.

What notary-server (and trustbox's server, which validates the same way) accepts decides the
shape of an import (upstream ``server/handlers/validation.go``):

* the first update of a GUN may carry root version 1 or 2 only, and every later update the
  stored version or the next one (``Root modifications must increment the version``); each root
  must be signed by the previous version's root keys and its own;
* an update without a snapshot is completed by the server, which must hold the snapshot key the
  root names; the timestamp is always the server's (notary-server signs it when it is fetched);
* snapshot and timestamp versions are the server's own: one more per update.

The archive's old roots name the old server's timestamp key (and snapshot key), so they cannot
be stored as they are. The import therefore publishes a root chain ``1, 2, ...``: every version
holds the archive's newest root and targets keys and the new server's timestamp and snapshot keys,
signed with the existing root key(s) (and version ``k+1`` also with the root key of the archive's
version ``k`` when that differs and is at hand). A client that pinned any version walks the chain
up and accepts each step. Version 1 carries targets and delegations byte for byte, so every
signature stays valid. The chain goes on past ``N+1`` until the server's snapshot and timestamp
versions (one more per update) are above the archive's: clients refuse versions lower than the
ones they cached.

``as_gun``: a new name has no pinned clients: one root version 1 whose certificate is re-issued
for the new name with the same root key. Without the old root key the import is refused before
anything is uploaded, unless ``new_root`` (a new root key; consumers must re-pin, see
:func:`repin_instructions`).

Importing again into a server that holds an earlier import of the same repository publishes
only what changed: targets and delegations that differ from the server's, byte for byte, in one
update, when the server's copies are those of the earlier import (``previous``, which ``trust
migrate`` keeps) and older than the archive's; then the version chain continues as above. A
server whose targets differ otherwise was signed there after the import: refused, nothing uploaded.

Finally the result is read back as a client that cached the archive would read it (seeded with
the archive's documents as its cache), and the import is reported done only if that client
accepts the server's current data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from trustbox.client import dockerenv
from trustbox.client.errors import MetaNotFoundError
from trustbox.client.trust.archive import TrustArchive
from trustbox.client.trust.cache import MetadataCache
from trustbox.client.trust.remote import PUSH_PULL, RemoteStore
from trustbox.client.trust.updater import update_repository
from trustbox.errors import KeyStoreError, NetworkError, PassphraseError, TrustboxError, VerificationError
from trustbox.keystore.passphrase import (
    PassphraseRetriever,
    PassphraseUnavailable,
    chain_retriever,
    docker_env_retriever,
    notary_env_retriever,
)
from trustbox.keystore.pkcs8 import decode_key_file, key_file_info
from trustbox.keystore.store import KeyStore
from trustbox.oci.reference import parse_reference
from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import PrivateKey, PublicKey, Signer
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Timestamp,
)
from trustbox.tuf.timefmt import utcnow
from trustbox.tuf.verify import MAX_ROOT_SIZE, MAX_TIMESTAMP_SIZE, TrustedCollection

__all__ = ["DestinationChangedError", "ImportResult", "RootKeyMissingError", "WrongRootKeyError", "import_archive", "repin_instructions"]

ROOT_EXPIRY = timedelta(days=3650)
SNAPSHOT_EXPIRY = timedelta(days=3 * 365)
#: the largest targets or delegation document read back from the server
MAX_ROLE_BYTES = 100 * 1024 * 1024
#: an import posts at most this many updates (root versions) to raise the server's snapshot and
#: timestamp versions above the archive's; a second run continues where it stopped
MAX_UPDATES = 100_000


class RootKeyMissingError(KeyStoreError):
    """The archive's root key is not available: nothing was uploaded."""


class WrongRootKeyError(KeyStoreError):
    """A root key was given that is not one of the archive's root keys: nothing was uploaded."""


class DestinationChangedError(TrustboxError):
    """The server holds targets or delegations for the repository that neither the archive nor the
    earlier import it continues has: signed there since. Nothing was uploaded."""


@dataclass
class ImportResult:
    """What an import published."""

    gun: str
    server: str
    root_version: int
    snapshot_version: int
    timestamp_version: int
    updates: int
    new_root: bool = False
    already_done: bool = False
    #: targets roles published again because they changed at the source (a re-sync)
    synced: tuple[str, ...] = ()


def repin_instructions(gun: str, server_url: str) -> str:
    """The exact commands consumers run after a ``--new-root`` import (their pinned root is gone)."""
    return (
        f"consumers that pinned {gun} must forget the old root and trust the new one on first use:\n"
        f"  docker:   rm -rf \"${{DOCKER_CONFIG:-$HOME/.docker}}/trust/tuf/{gun}\"   "
        f"(then DOCKER_CONTENT_TRUST_SERVER={server_url} docker trust inspect {gun})\n"
        f"  notary:   rm -rf \"$HOME/.notary/tuf/{gun}\"   (then notary -s {server_url} list {gun})\n"
        f"  trustbox: rm -rf \"${{DOCKER_CONFIG:-$HOME/.docker}}/trust/tuf/{gun}\"   "
        f"(then DOCKER_CONTENT_TRUST_SERVER={server_url} trustbox trust inspect {gun})"
    )


def _env_retriever(env: Mapping[str, str]) -> PassphraseRetriever:
    return chain_retriever(docker_env_retriever(env), notary_env_retriever(env))


def read_root_key(path: Path, retriever: PassphraseRetriever) -> PrivateKey:
    """A private key file given with ``--root-key`` (encrypted ones through ``retriever``).

    Raises KeyStoreError when it cannot be read or decrypted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read root key file {path}: {exc.strerror or exc}") from exc
    try:
        if not key_file_info(data).encrypted:
            return decode_key_file(data)[0]
        for attempt in range(4):
            try:
                passphrase = retriever("", ROOT, False, attempt)
            except PassphraseUnavailable as exc:
                raise PassphraseError(f"no passphrase available for the root key in {path}", hint=exc.message) from exc
            try:
                return decode_key_file(data, passphrase)[0]
            except PassphraseError:
                continue
    except PassphraseError:
        raise
    except TrustboxError as exc:
        raise KeyStoreError(f"{path} is not a usable private key: {exc.message}") from exc
    raise PassphraseError(f"incorrect passphrase for the root key in {path}")


class _Importer:
    def __init__(self, archive: TrustArchive, tc: TrustedCollection, remote: RemoteStore, keystore: KeyStore,
                 now: datetime, progress: Callable[[str], None]) -> None:
        self.archive = archive
        self.tc = tc
        self.remote = remote
        self.keystore = keystore
        self.now = now
        self.progress = progress
        self.updates = 0
        #: the publisher's snapshot key(s), when the repository keeps signing its own snapshots
        self.snapshot_signers: list[tuple[str, Signer]] = []

    # -- keys ----------------------------------------------------------------------------------

    def root_signers(self, given: PrivateKey | None) -> list[tuple[str, Signer]]:
        """(root keyid, private key) pairs meeting the root threshold. Raises WrongRootKeyError /
        RootKeyMissingError before anything is uploaded."""
        keys, threshold = self.tc.root.signed.role_keys(ROOT)
        if given is not None:
            pub = given.public_key()
            found: list[tuple[str, Signer]] = [(kid, given) for kid, k in keys.items() if k.canonical() == pub]
            if not found:
                raise WrongRootKeyError(
                    f"the given root key ({pub.keyid[:12]}) is not a root key of {self.archive.gun} "
                    f"(its root keys: {', '.join(k.canonical_keyid[:12] for k in keys.values())}); nothing was uploaded")
            signers = found + [s for s in self.keystore.signing_keys(keys, keys) if s[0] != found[0][0]]
        else:
            signers = self.keystore.signing_keys(keys, keys)
        if len(signers) < threshold:
            raise RootKeyMissingError(
                f"the root key of {self.archive.gun} ({', '.join(k.canonical_keyid[:12] for k in keys.values())}) "
                f"is not in {self.keystore.private_dir} (or --root-key); nothing was uploaded",
                hint="with --new-root the repository gets a new root key instead, and every consumer that pinned "
                     "it must re-pin (the commands are printed after the import)")
        return signers

    def old_root_signers(self, version: int) -> list[tuple[str, Signer]]:
        """Root keys of the archive's root ``version`` that are held locally (for clients pinned there)."""
        data = self.archive.root_versions.get(version)
        if data is None:
            return []
        root: Metadata[Root] = Metadata.parse(data, ROOT, expect=Root)
        keys, _ = root.signed.role_keys(ROOT)
        try:
            return self.keystore.signing_keys(keys, keys)
        except TrustboxError:
            return []

    # -- documents -----------------------------------------------------------------------------

    def make_root(self, version: int, keys: dict[str, PublicKey], roles: dict[str, RoleKeys],
                  signers: list[tuple[str, Signer]]) -> bytes:
        body = Root(version, self.now + ROOT_EXPIRY, keys=dict(keys), roles=dict(roles),
                    consistent_snapshot=self.tc.root.signed.consistent_snapshot)
        md: Metadata[Root] = Metadata(body)
        done = set()
        for keyid, key in signers:
            if key.keyid not in done:
                md.sign(key, keyid)
                done.add(key.keyid)
        return md.to_bytes()

    def server_keys(self, base: Root) -> tuple[dict[str, PublicKey], dict[str, RoleKeys]]:
        """The archive's keys with the new server's timestamp key in place of the old one, and its
        snapshot key too unless the snapshot key was the publisher's and is held here (then the
        import keeps it and signs the snapshots itself: :attr:`snapshot_signers`).

        Raises the errors of :meth:`RemoteStore.get_key` (NetworkError, MetaNotFoundError, FormatError)."""
        ts = self.remote.get_key(TIMESTAMP)
        roles = {ROOT: base.roles[ROOT], TARGETS: base.roles[TARGETS], TIMESTAMP: RoleKeys([ts.keyid])}
        old_keys, threshold = base.role_keys(SNAPSHOT)
        held = self.keystore.signing_keys(old_keys, old_keys)
        extra: dict[str, PublicKey] = {ts.keyid: ts}
        if len(held) >= threshold:
            roles[SNAPSHOT] = base.roles[SNAPSHOT]
            self.snapshot_signers = held
        else:
            snap = self.remote.get_key(SNAPSHOT)
            roles[SNAPSHOT] = RoleKeys([snap.keyid])
            extra[snap.keyid] = snap
        used = {k for r in roles.values() for k in r.keyids}
        keys = {kid: k for kid, k in base.keys.items() if kid in used}
        keys.update(extra)
        return keys, roles

    def snapshot_part(self, version: int, root_bytes: bytes) -> tuple[str, bytes]:
        """A snapshot signed with the publisher's snapshot key over the new root and the archive's targets."""
        meta = {ROOT: FileMeta.from_bytes(root_bytes)}
        meta.update({role: FileMeta.from_bytes(data) for role, data in self.targets_parts()})
        md: Metadata[Snapshot] = Metadata(Snapshot(version, self.now + SNAPSHOT_EXPIRY, meta=meta))
        for keyid, key in self.snapshot_signers:
            md.sign(key, keyid)
        return SNAPSHOT, md.to_bytes()

    def targets_parts(self) -> list[tuple[str, bytes]]:
        """targets.json and every delegation, parents first, byte for byte."""
        parts = [(TARGETS, self.archive.get(TARGETS))]
        for role in sorted(self.tc.delegations, key=lambda r: (r.count("/"), r)):
            parts.append((role, self.archive.files[f"{role}.json"]))
        return parts

    # -- server ----------------------------------------------------------------------------------

    def publish_update(self, parts: list[tuple[str, bytes]]) -> None:
        """One update; raises ServerRejectedError / NetworkError / UnauthorizedError."""
        self.remote.post_update(parts)
        self.updates += 1

    def timestamp(self) -> Metadata[Timestamp]:
        """The server's timestamp now (fetching it also makes notary-server sign a new one for a new
        snapshot). Raises NetworkError / MetaNotFoundError / FormatError."""
        ts_data = self.remote.get_sized(TIMESTAMP, MAX_TIMESTAMP_SIZE)
        ts: Metadata[Timestamp] = Metadata.parse(ts_data, TIMESTAMP, expect=Timestamp)
        return ts

    def server_versions(self) -> tuple[int, int]:
        """(snapshot, timestamp) versions the server serves now (errors as :meth:`timestamp`)."""
        ts = self.timestamp()
        meta = ts.signed.snapshot_meta
        snap_data = self.remote.get_sized(SNAPSHOT, meta.length)
        snap: Metadata[Snapshot] = Metadata.parse(snap_data, SNAPSHOT, expect=Snapshot)
        return int(snap.signed.version), int(ts.signed.version)

    def existing_root(self) -> tuple[Metadata[Root], bytes] | None:
        """The server's root of the GUN and its bytes as served, None when it has none; raises
        NetworkError / FormatError."""
        try:
            data = self.remote.get_sized(ROOT, MAX_ROOT_SIZE)
        except MetaNotFoundError:
            return None
        md: Metadata[Root] = Metadata.parse(data, ROOT, expect=Root)
        return md, data

    def changed_parts(self, previous: TrustArchive | None) -> list[tuple[str, bytes]]:
        """The archive's targets and delegations that the server does not serve byte for byte,
        parents first: what a newer export of an imported repository brings. The server's copy of
        each must be the one of ``previous`` (the archive the earlier import published) and older
        than the archive's; anything else was signed at the destination since.

        Raises:
            DestinationChangedError: a role the server holds is neither this archive's nor
                ``previous``'s (nothing is uploaded).
            NetworkError, FormatError: reading the server failed.
        """
        out: list[tuple[str, bytes]] = []
        for role, data in self.targets_parts():
            try:
                current = self.remote.get_sized(role, MAX_ROLE_BYTES)
            except MetaNotFoundError:
                out.append((role, data))  # a delegation added at the source since
                continue
            if current == data:
                continue
            before = previous.files.get(f"{role}.json") if previous is not None else None
            if current != before or _version(current, role) >= _version(data, role):
                raise DestinationChangedError(
                    f"{self.remote.host} holds {role} version {_version(current, role)} of {self.archive.gun}, "
                    f"which is not the one imported earlier: it was signed there after the import, and the "
                    f"source's version {_version(data, role)} would replace it; nothing was uploaded",
                    hint="sign the source's new tags at the destination instead (it is the repository's home now)")
            out.append((role, data))
        return out


def _version(data: bytes, role: str) -> int:
    return int(Metadata.parse(data, role).signed.version)


def import_archive(
    archive: TrustArchive,
    *,
    server_url: str,
    as_gun: str | None = None,
    root_key: Path | None = None,
    new_root: bool = False,
    trust_dir: Path | None = None,
    now: datetime | None = None,
    ca_files: tuple[Path, ...] = (),
    http: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
    passphrase_retriever: PassphraseRetriever | None = None,
    progress: Callable[[str], None] | None = None,
    previous: TrustArchive | None = None,
) -> ImportResult:
    """Publish ``archive`` to ``server_url`` (see the module docstring).

    ``previous``: the archive an earlier import of the same repository published; the server's
    targets and delegations may then be that archive's, and the ones that changed at the source
    since are published byte for byte (a re-sync). Without it the server must serve the
    archive's own.

    ``trust_dir`` (default ``$DOCKER_CONFIG/trust``) holds the root key unless ``root_key`` names
    a key file; passphrases come from ``passphrase_retriever`` (default: docker's and notary's
    environment variables). Registry credentials for the destination's token auth come from
    docker's ``config.json`` / credential helpers for the (new) repository's registry.

    Raises:
        ArchiveVerificationError / ArchiveError: the archive does not verify (nothing uploaded).
        RootKeyMissingError / WrongRootKeyError / PassphraseError: no usable root key (nothing uploaded).
        TrustboxError (ServerRejectedError, NetworkError, UnauthorizedError, ...): the server refused
        or failed; an import that failed half-way is completed by running it again.
        DestinationChangedError: the server holds targets signed after the earlier import.
        VerificationError: the server's result is not accepted by a client that cached the archive.
    """
    when = now or utcnow()
    env = dict(environ) if environ is not None else dict(os.environ)
    say = progress or (lambda _m: None)
    tc = archive.verify(when)
    gun = parse_reference(as_gun).gun if as_gun else archive.gun
    renamed = gun != archive.gun
    tdir = Path(trust_dir) if trust_dir is not None else dockerenv.trust_dir(env)
    retriever = passphrase_retriever or _env_retriever(env)
    keystore = KeyStore(tdir, retriever)
    tls = dockerenv.tls_files(server_url, env, list(ca_files))
    remote = RemoteStore(server_url, gun, http=http, ca_files=tls.ca_files, client_pairs=tls.client_pairs,
                         credentials=dockerenv.registry_credentials(parse_reference(gun), env), actions=PUSH_PULL)
    try:
        imp = _Importer(archive, tc, remote, keystore, when, say)
        given = read_root_key(root_key, retriever) if root_key is not None else None
        try:
            signers = imp.root_signers(given)
        except RootKeyMissingError:
            if not new_root:
                raise
            signers = []
        base = tc.root.signed
        found = imp.existing_root()
        existing, existing_bytes = found if found is not None else (None, b"")
        if existing is not None:
            done = _already_imported(existing, base, renamed, new_root)
            if not done:
                raise TrustboxError(
                    f"{remote.host} already holds trust data for {gun} that is not this import; nothing was uploaded",
                    hint="import into a server (or a name, --as) that has no trust data for it")
        keys, roles = imp.server_keys(base)
        generated = not signers
        if generated and existing is None:  # --new-root: a new root key, certificate for the (new) name
            signers = [("", keystore.generate_key(ROOT))]
        fresh = renamed or not _holds_all(signers, base)
        if fresh:
            certs = [make_root_public_key(key, gun, when) for _, key in signers]
            for cert in certs:
                keys[cert.keyid] = cert
            for kid in base.roles[ROOT].keyids:
                keys.pop(kid, None)
            roles[ROOT] = RoleKeys([c.keyid for c in certs], min(base.roles[ROOT].threshold, len(certs)))
            signers = [(cert.keyid, key) for cert, (_, key) in zip(certs, signers, strict=True)]
            last = 1
        else:
            last = base.version + 1
        version = existing.signed.version if existing is not None else 0
        # clients refuse snapshot/timestamp versions below the ones they cached: keep extending the
        # chain (one more root version per update) until the server's versions pass the archive's
        want_snap = 0 if fresh else archive.version(SNAPSHOT) + 1
        want_ts = 0 if fresh else archive.version(TIMESTAMP) + 1
        snap_v, ts_v = imp.server_versions() if existing is not None else (0, 0)
        synced: tuple[str, ...] = ()
        if existing is not None:
            changed = imp.changed_parts(previous)
            if changed:
                say(f"publishing {', '.join(role for role, _ in changed)} (changed at the source since the import)")
                parts = list(changed)
                if imp.snapshot_signers:
                    parts.append(imp.snapshot_part(snap_v + 1, existing_bytes))
                imp.publish_update(parts)
                synced = tuple(role for role, _ in changed)
                snap_v, ts_v = imp.server_versions()
        while version < last or snap_v < want_snap or ts_v < want_ts:
            if imp.updates >= MAX_UPDATES:
                raise NetworkError(f"{remote.host} did not reach the archive's snapshot/timestamp versions "
                                   f"after {imp.updates} updates; run the import again to continue")
            version += 1
            extra = [] if fresh else imp.old_root_signers(version - 1)
            root_bytes = imp.make_root(version, keys, roles, signers + extra)
            parts = [(ROOT, root_bytes)]
            if version == 1:
                parts += imp.targets_parts()
            if imp.snapshot_signers:
                parts.append(imp.snapshot_part(max(snap_v, want_snap - 1) + 1, root_bytes))
            if version <= last or imp.updates % 50 == 0:
                say(f"publishing root version {version} (snapshot {snap_v}/{want_snap}, timestamp {ts_v}/{want_ts})")
            imp.publish_update(parts)
            # each update makes one more snapshot version; confirmed from the server once the loop would end
            snap_v, ts_v = snap_v + 1, int(imp.timestamp().signed.version)
            if imp.snapshot_signers:
                snap_v = _version(parts[-1][1], SNAPSHOT)
            if version >= last and snap_v >= want_snap and ts_v >= want_ts:
                snap_v, ts_v = imp.server_versions()
        if not fresh:
            _check_as_pinned_client(archive, remote, when)
        return ImportResult(gun, remote.server_url, version, snap_v, ts_v, imp.updates, new_root=generated,
                            already_done=existing is not None and imp.updates == 0, synced=synced)
    finally:
        remote.close()


def _holds_all(signers: list[tuple[str, Signer]], base: Root) -> bool:
    keys, _ = base.role_keys(ROOT)
    pubs = {k.canonical() for k in keys.values()}
    return bool(signers) and all(key.public_key() in pubs for _, key in signers)


def _already_imported(existing: Metadata[Root], base: Root, renamed: bool, new_root: bool) -> bool:
    """Whether the server's root comes from an earlier run of this import (same targets keys)."""
    if existing.signed.roles.get(TARGETS) is None:
        return False
    same_targets = existing.signed.roles[TARGETS].keyids == base.roles[TARGETS].keyids
    if renamed or new_root:
        return same_targets
    return same_targets and existing.signed.roles[ROOT].keyids == base.roles[ROOT].keyids


def _check_as_pinned_client(archive: TrustArchive, remote: RemoteStore, now: datetime) -> None:
    """Read the server as a client whose cache holds the archive: it must accept the server's data
    (its own timestamp, no fallback to the cache) and find targets and delegations byte-identical.
    Raises VerificationError otherwise."""
    with tempfile.TemporaryDirectory(prefix="trustbox-import-check-") as tmp:
        cache = MetadataCache(Path(tmp), archive.gun)
        for name, data in archive.files.items():
            role = name[: -len(".json")]
            if "." not in role:
                cache.set(role, data)
        warnings: list[str] = []
        remote.use_actions(("pull",))
        result = update_repository(archive.gun, remote, cache, now, warn=warnings.append)
        if result.stale is not None or warnings:
            raise VerificationError(f"a client that pinned {archive.gun} did not get the imported data: "
                                    f"{result.stale.message if result.stale else warnings[0]}")
        got: dict[str, Any] = {TARGETS: result.collection.targets}
        got.update({r: loaded.metadata for r, loaded in result.collection.delegations.items()})
        for role, md in got.items():
            if md is None or md.to_bytes() != archive.get(role):
                raise VerificationError(f"the server does not serve {role} of {archive.gun} byte for byte as imported")

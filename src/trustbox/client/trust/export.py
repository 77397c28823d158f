"""``trustbox trust export``: a repository's trust data as a portable :class:`TrustArchive`.

Online, the repository is read as docker reads it (:func:`trust_client_for`: the trust server,
TLS folders, ``$DOCKER_CONFIG/config.json`` credentials and credential helpers for the registry
token auth, trust pinning; the root pinned in the local cache, or trust on first use) and every
root version ``1..N`` is then fetched as ``<v>.root.json`` and chained version by version up to
the verified root. With ``from_cache`` the same archive is built from the docker/notary trust cache
(``<trust dir>/tuf/<gun>/metadata/``) when the source server is gone; the cache holds only the
newest root. Either way the archive is verified (:meth:`TrustArchive.verify`) before it is returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import httpx

from trustbox.client import dockerenv
from trustbox.client.errors import MetaNotFoundError
from trustbox.client.trust.archive import ArchiveError, TrustArchive
from trustbox.client.trust.cache import MetadataCache
from trustbox.client.trust.repository import trust_client_for
from trustbox.errors import NetworkError, NotFoundError, TrustboxError
from trustbox.oci.reference import parse_reference
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, Metadata, Root
from trustbox.tuf.timefmt import utcnow
from trustbox.tuf.verify import MAX_ROOT_SIZE

__all__ = ["export_repository", "export_from_cache", "gun_of"]


def gun_of(repo: str) -> str:
    """The GUN of a repository or image reference (``alpine`` -> ``docker.io/library/alpine``)."""
    return parse_reference(repo).gun


def export_repository(
    repo: str,
    *,
    server_url: str | None = None,
    trust_dir: Path | None = None,
    from_cache: bool = False,
    now: datetime | None = None,
    ca_files: tuple[Path, ...] = (),
    http: httpx.Client | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TrustArchive:
    """Export the trust data of ``repo`` (a repository or image name) as a verified archive.

    ``server_url`` defaults to docker's trust server for the repository; ``trust_dir`` to
    ``$DOCKER_CONFIG/trust``. ``from_cache`` reads only the local cache (no network).

    Raises:
        RepositoryNotExistError / NetworkError / UnauthorizedError: the source cannot serve it.
        NotFoundError: ``from_cache`` and nothing is cached for the repository.
        VerificationError (ArchiveVerificationError): the data does not verify.
        TrustError: the server only confirmed a cached copy (its timestamp was not served).
    """
    when = now or utcnow()
    env = dict(environ) if environ is not None else dict(os.environ)
    gun = gun_of(repo)
    tdir = Path(trust_dir) if trust_dir is not None else dockerenv.trust_dir(env)
    if from_cache:
        return export_from_cache(gun, tdir, when, warn=warn)
    ref = parse_reference(repo)
    server = server_url or dockerenv.trust_server(ref, env)
    opts: dict[str, object] = {"server_url": server, "trust_dir": tdir, "now": when, "environ": env,
                               "ca_files": ca_files}
    if http is not None:
        opts["http"] = http
    held: list[str] = []  # the cache-fallback warning is replaced by the error below
    opts["warn"] = held.append
    with trust_client_for(repo, **opts) as client:
        try:
            client.update()
        except NetworkError as exc:
            raise NetworkError(f"cannot export {gun} from {client.remote.host}: {exc.message}", exc.hint) from exc
        if client.stale_reason is not None:
            raise NetworkError(
                f"cannot export {gun}: {client.remote.host} did not serve its current trust data "
                f"({client.stale_reason.message}); nothing was exported (--from-cache exports the cached copy)"
            )
        for msg in held:
            (warn or _ignore)(msg)
        tc = client.collection
        files: dict[str, bytes] = {"root.json": tc.root.to_bytes()}
        for role, md in ((TIMESTAMP, tc.timestamp), (SNAPSHOT, tc.snapshot), (TARGETS, tc.targets)):
            assert md is not None
            files[f"{role}.json"] = md.to_bytes()
        for role, loaded in tc.delegations.items():
            files[f"{role}.json"] = loaded.metadata.to_bytes()
        for role, why in client.skipped.items():
            (warn or _ignore)(f"delegation {role} is not exported: {why.message}")
        newest = tc.root.signed.version
        for v in range(newest, 0, -1):
            if v == newest:
                files[f"{v}.root.json"] = files["root.json"]
                continue
            try:
                files[f"{v}.root.json"] = client.remote.get_sized(f"{v}.{ROOT}", MAX_ROOT_SIZE)
            except MetaNotFoundError:
                (warn or _ignore)(f"{client.remote.host} no longer has root version {v} of {gun}; "
                                  f"the archive starts at version {v + 1}")
                break
    archive = TrustArchive(gun, client.server_url, when, files)
    archive.verify(when)
    return archive


def export_from_cache(gun: str, trust_dir: Path, now: datetime, *, warn: Callable[[str], None] | None = None) -> TrustArchive:
    """The archive of what the docker/notary cache holds for ``gun`` (verified, newest root only).

    Raises NotFoundError when nothing is cached, ArchiveVerificationError when it does not verify."""
    cache = MetadataCache(trust_dir, gun)
    root = cache.get(ROOT)
    if root is None:
        raise NotFoundError(f"no cached trust data for {gun} under {cache.dir}")
    files: dict[str, bytes] = {"root.json": root}
    try:
        version = Metadata.parse(root, ROOT, expect=Root).signed.version
    except TrustboxError as exc:
        raise ArchiveError(f"the cached root of {gun} ({cache.path(ROOT)}) is invalid: {exc.message}") from exc
    files[f"{version}.root.json"] = root
    for role in (TIMESTAMP, SNAPSHOT, TARGETS):
        data = cache.get(role)
        if data is None:
            raise NotFoundError(f"the cache of {gun} has no {role}.json ({cache.dir}); it cannot be exported")
        files[f"{role}.json"] = data
    targets_dir = cache.dir / TARGETS
    if targets_dir.is_dir():
        for path in sorted(targets_dir.rglob("*.json")):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(cache.dir).as_posix()
                files[rel] = path.read_bytes()
    archive = TrustArchive(gun, f"cache:{cache.dir}", now, files)
    tc = archive.verify(now, extra_ok=True)
    # a cached delegation the current snapshot no longer lists is history, not part of the repository
    for name in list(archive.files):
        role = name[: -len(".json")]
        if role.startswith(TARGETS + "/") and role not in tc.delegations:
            (warn or _ignore)(f"cached {role} is not part of the current repository; left out")
            del archive.files[name]
    if version > 1:
        (warn or _ignore)(f"the cache holds only root version {version} of {gun}; clients that pinned an older "
                          "root follow the chain the import publishes")
    return archive


def _ignore(_msg: str) -> None:
    return None

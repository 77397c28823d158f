"""The ``docker trust`` verbs as plain functions (``trustbox trust ...`` is a thin CLI over them).

Progress lines go to ``out``/``err`` exactly as docker prints them; results are returned as data.
Errors are trustbox errors whose message is docker's text (see :func:`notary_error`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from trustbox.client import dockerenv
from trustbox.client.errors import (
    Cancelled,
    NoSuchTargetError,
    notary_error,
)
from trustbox.client.images.attachments import SignResult, image_digests, remove_signatures, sign_image
from trustbox.client.images.distribution import ManifestInfo, RegistryClient, RegistryOptions, lookup_manifest
from trustbox.client.textfmt import NaturalKey, go_json_indent, tab_table
from trustbox.client.trust.publish import RepoDraft
from trustbox.client.trust.repository import (
    RELEASED_ROLES,
    RELEASES_ROLE,
    REPO_ADMIN,
    TrustClient,
    is_released_role,
    signer_name,
)
from trustbox.errors import (
    ConfigError,
    KeyStoreError,
    NotFoundError,
    RoleError,
    TrustboxError,
)
from trustbox.keystore.passphrase import PassphraseRetriever, docker_retriever
from trustbox.keystore.store import KeyInfo, KeyStore
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.reference import ImageRef, parse_reference
from trustbox.oci.simplesigning import public_key_pem, signature_tag
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import ROOT, TARGETS, FileMeta
from trustbox.tuf.pem import PEMBlock, encode_pem_block
from trustbox.tuf.verify import valid_signers

VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class TrustCommandError(TrustboxError):
    """An error whose message is the full text docker prints (``Error: ...``/``Warning: ...`` or bare)."""


@dataclass
class TrustContext:
    """Environment of one command: docker config, passphrases, TLS extras, and test hooks."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    ca_files: Sequence[Path] = ()
    passphrase_retriever: PassphraseRetriever | None = None
    now: datetime | None = None
    http_factory: Callable[[], httpx.Client] | None = None
    registry_http_factory: Callable[[], httpx.Client] | None = None
    insecure_registries: Sequence[str] = ()
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    confirm: Callable[[str], bool] | None = None
    #: write sigstore attachments when signing (None: ``$TRUSTBOX_SIGSTORE``, default on)
    sigstore: bool | None = None
    #: the HTTP transport of the registry client that writes attachments (tests)
    registry_transport: httpx.BaseTransport | None = None

    @property
    def trust_dir(self) -> Path:
        """``$DOCKER_CONFIG/trust``."""
        return dockerenv.trust_dir(self.environ)

    def retriever(self) -> PassphraseRetriever:
        """The passphrase retriever (docker's env variables, then a prompt)."""
        if self.passphrase_retriever is None:
            self.passphrase_retriever = docker_retriever(self.environ)
        return self.passphrase_retriever

    def keystore(self) -> KeyStore:
        """The key store of the trust dir."""
        return KeyStore(self.trust_dir, self.retriever())

    def client(self, ref: ImageRef) -> TrustClient:
        """A TrustClient for the image's repository."""
        server = dockerenv.trust_server(ref, self.environ)
        tls = dockerenv.tls_files(server, self.environ, self.ca_files)
        return TrustClient(
            ref.gun,
            server,
            self.trust_dir,
            ca_files=tls.ca_files,
            client_pairs=tls.client_pairs,
            passphrase_retriever=self.retriever(),
            now=self.now,
            http=self.http_factory() if self.http_factory else None,
            credentials=dockerenv.registry_credentials(ref, self.environ),
            pinning=dockerenv.trust_pinning(self.environ),
            warn=self.warn,
        )

    def sigstore_enabled(self) -> bool:
        """Whether signing also writes sigstore attachments (``sigstore``, else ``$TRUSTBOX_SIGSTORE``).

        Raises:
            ConfigError: ``$TRUSTBOX_SIGSTORE`` is not a boolean.
        """
        return self.sigstore if self.sigstore is not None else dockerenv.sigstore_attachments(self.environ)

    def registry_client(self, ref: ImageRef) -> RegistryClient:
        """A registry client for the image's registry (docker's credentials and TLS folders,
        ``--insecure-registry`` hosts, ``--ca-cert`` files), for the sigstore attachments."""
        creds = dockerenv.registry_credentials(ref, self.environ)
        options = RegistryOptions(
            insecure_registries=tuple(self.insecure_registries) + dockerenv.insecure_registries(self.environ),
            ca_certs=tuple(self.ca_files) + tuple(dockerenv.env_ca_files(self.environ)),
            docker_config=dockerenv.config_dir(self.environ),
            transport=self.registry_transport,
            credentials=(creds.username, creds.password) if creds.username else None,
        )
        return RegistryClient(ref.api_host, options)

    def warn(self, line: str) -> None:
        """A warning line on ``err`` (notary's warnings, e.g. the cached timestamp in use)."""
        self.err.write(line + "\n")
        self.err.flush()

    def ask(self, message: str) -> bool:
        """Docker's ``prompt.Confirm``: ``<message> [y/N] ``, yes only for y/Y."""
        if self.confirm is not None:
            return self.confirm(message)
        self.out.write(f"{message} [y/N] ")
        self.out.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")


# --- keys ----------------------------------------------------------------------------------------


def _check_name(name: str, what: str = "key name") -> None:
    if not VALID_NAME.match(name):
        raise TrustCommandError(
            f'{what} "{name}" must start with lowercase alphanumeric characters and can include "-" or "_" '
            "after the first character"
        )


def key_generate(ctx: TrustContext, name: str, directory: Path | None = None) -> Path:
    """``docker trust key generate``: new ECDSA key stored with role NAME; returns the .pub path."""
    _check_name(name)
    target_dir = Path(directory) if directory is not None else Path.cwd()
    if not target_dir.exists():
        raise TrustCommandError(f'public key path does not exist: "{target_dir}"')
    pub_path = target_dir / f"{name}.pub"
    if pub_path.exists():
        raise TrustCommandError(f'public key file already exists: "{pub_path}"')
    ctx.out.write(f"Generating key for {name}...\n")
    try:
        key = ctx.keystore().generate_key(name)
    except TrustboxError as exc:
        raise TrustCommandError(f"failed to generate key for {name}: {exc.message}") from exc
    pem = encode_pem_block(PEMBlock("PUBLIC KEY", key.public_key().public, {"role": name}))
    fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    ctx.out.write(f"Successfully generated and loaded private key. Corresponding public key available: {pub_path}\n")
    return pub_path


def key_load(ctx: TrustContext, path: Path, name: str = "signer") -> KeyInfo:
    """``docker trust key load``: import a private key file with role NAME."""
    _check_name(name)
    ctx.out.write(f'Loading key from "{path}"...\n')
    try:
        info = ctx.keystore().load_docker_key(path, name)
    except TrustboxError as exc:
        if "must not be readable" in exc.message or "refusing" in exc.message:
            text = exc.message if exc.message.startswith("refusing") else f"refusing to load key from {path}: {exc.message}"
        else:
            text = f"error importing key from {path}: {exc.message}"
        raise TrustCommandError(text) from exc
    ctx.out.write(f"Successfully imported key from {path}\n")
    return info


def key_list(ctx: TrustContext) -> list[KeyInfo]:
    """Every private key in the trust dir (ID, role, GUN)."""
    return ctx.keystore().list_keys()


# --- inspect ---------------------------------------------------------------------------------------


@dataclass
class TrustInfo:
    """What ``docker trust inspect`` reports for one repository."""

    name: str
    signed_tags: list[tuple[str, str, list[str]]]
    signers: dict[str, list[str]]
    admin: dict[str, list[str]]


def _ref(text: str) -> ImageRef:
    try:
        return parse_reference(text)
    except ConfigError as exc:
        raise TrustCommandError(exc.message) from exc


def _client(ctx: TrustContext, ref: ImageRef) -> TrustClient:
    """``ctx.client(ref)``, its failure in docker's words (:func:`notary_error`)."""
    try:
        return ctx.client(ref)
    except TrustboxError as exc:
        raise notary_error(ref.gun, exc) from exc


def lookup_trust_info(ctx: TrustContext, remote: str) -> TrustInfo:
    """Released tags with their signers, signer roles with keys, and the admin keys of a repo."""
    ref = _ref(remote)
    client = _client(ctx, ref)
    with client:
        try:
            entries = client.walk_targets(ref.tag or None)
        except TrustboxError as exc:
            raise TrustCommandError(f"no signatures or cannot access {remote}") from exc
        tc = client.collection
    released: dict[tuple[str, str], list[str]] = {}
    for e in entries:
        if is_released_role(e.role):
            released.setdefault((e.name, e.sha256_hex), [])
    for e in entries:
        key = (e.name, e.sha256_hex)
        if key in released and not is_released_role(e.role):
            released[key].append(signer_name(e.role))
    rows = sorted(((n, d, s) for (n, d), s in released.items()), key=lambda r: NaturalKey(r[0]))
    signers: dict[str, list[str]] = {}
    queue = [TARGETS]
    while queue:
        role = queue.pop(0)
        md = tc.targets if role == TARGETS else (tc.delegations[role].metadata if role in tc.delegations else None)
        if md is None:
            continue
        dkeys = md.signed.delegations.keys
        for r in md.signed.delegations.roles:
            queue.append(r.name)
            if r.name == RELEASES_ROLE:
                continue
            signers[signer_name(r.name)] = [
                dkeys[k].canonical_keyid if k in dkeys else k for k in r.keyids
            ]
    admin = {
        ROOT: list(tc.root.signed.roles[ROOT].keyids),
        TARGETS: list(tc.root.signed.roles[TARGETS].keyids),
    }
    return TrustInfo(remote, rows, signers, admin)


def _repo_json(info: TrustInfo) -> dict[str, Any]:
    def keys(ids: list[str]) -> dict[str, Any]:
        return {"Keys": [{"ID": k} for k in ids]} if ids else {}

    signers = [{"Name": n, **keys(ids)} for n, ids in sorted(info.signers.items(), key=lambda kv: kv[0], reverse=True)]
    admin = [{"Name": "Root", **keys(info.admin[ROOT])}, {"Name": "Repository", **keys(info.admin[TARGETS])}]
    return {
        "Name": info.name,
        "SignedTags": [
            {"SignedTag": n, "Digest": d, "Signers": s or [REPO_ADMIN]} for n, d, s in info.signed_tags
        ],
        "Signers": signers,
        "AdministrativeKeys": admin,
    }


def inspect(ctx: TrustContext, remotes: Sequence[str]) -> tuple[str, list[str]]:
    """``docker trust inspect``: (JSON text for stdout, error lines for stderr)."""
    items: list[dict[str, Any]] = []
    errors: list[str] = []
    for remote in remotes:
        try:
            items.append(_repo_json(lookup_trust_info(ctx, remote)))
        except TrustboxError as exc:
            errors.append(exc.message)
    return go_json_indent(items) + "\n", errors


def inspect_pretty(ctx: TrustContext, remote: str) -> str:
    """``docker trust inspect --pretty`` for one repository."""
    info = lookup_trust_info(ctx, remote)
    out = []
    if info.signed_tags:
        out.append(f"\nSignatures for {remote}\n\n")
        rows = [["SIGNED TAG", "DIGEST", "SIGNERS"]]
        for name, digest, signers in info.signed_tags:
            rows.append([name, digest, ", ".join(sorted(signers)) if signers else f"({REPO_ADMIN})"])
        out.append(tab_table(rows))
    else:
        out.append(f"\nNo signatures for {remote}\n\n")
    if info.signers:
        out.append(f"\nList of signers and their keys for {remote}\n\n")
        rows = [["SIGNER", "KEYS"]]
        for name in sorted(info.signers, key=NaturalKey):
            rows.append([name, ", ".join(k[:12] for k in sorted(info.signers[name]))])
        out.append(tab_table(rows))
    out.append(f"\nAdministrative keys for {remote}\n\n")
    out.append(f"  Repository Key:\t{', '.join(sorted(info.admin[TARGETS]))}\n")
    out.append(f"  Root Key:\t{', '.join(sorted(info.admin[ROOT]))}\n")
    return "".join(out)


# --- signers ---------------------------------------------------------------------------------------


def read_public_keys(paths: Sequence[Path]) -> list[PublicKey]:
    """Parse signer public key files (PEM ``PUBLIC KEY`` or certificate)."""
    keys = []
    for p in paths:
        try:
            data = Path(p).read_bytes()[: 1 << 20]
        except OSError as exc:
            raise TrustCommandError(f"unable to read public key from file: open {p}: {exc.strerror}") from exc
        try:
            keys.append(PublicKey.from_pem(data))
        except TrustboxError as exc:
            raise TrustCommandError(f"could not parse public key from file: {p}: {exc.message}") from exc
    return keys


def signer_add(ctx: TrustContext, name: str, repos: Sequence[str], key_paths: Sequence[Path]) -> list[str]:
    """``docker trust signer add``: add ``targets/NAME`` and the keys to ``targets/releases``.
    Returns the repositories that failed (the error was printed)."""
    _check_name(name, "signer name")
    if name == "releases":
        raise TrustCommandError("releases is a reserved keyword, use a different signer name")
    if not key_paths:
        raise TrustCommandError("path to a public key must be provided using the `--key` flag")
    keys = read_public_keys(key_paths)
    failed = []
    for repo in repos:
        ctx.out.write(f'Adding signer "{name}" to {repo}...\n')
        try:
            _add_signer_to_repo(ctx, name, repo, keys)
        except TrustboxError as exc:
            ctx.err.write(exc.message + "\n\n")
            failed.append(repo)
        else:
            ctx.out.write(f"Successfully added signer: {name} to {repo}\n\n")
    if failed:
        raise TrustCommandError(f"failed to add signer to: {', '.join(failed)}")
    return failed


def _add_signer_to_repo(ctx: TrustContext, name: str, repo: str, keys: list[PublicKey]) -> None:
    ref = _ref(repo)
    client = _client(ctx, ref)
    with client:
        try:
            draft, created = client.draft_or_new()
        except TrustboxError as exc:
            raise notary_error(repo, exc) from exc
        if created:
            ctx.out.write(f"Initializing signed repository for {repo}...\n")
            ctx.out.write(f'Successfully initialized "{repo}"\n')
        role = f"targets/{name}"
        try:
            draft.add_delegation(role, keys, [""])
            draft.add_delegation(RELEASES_ROLE, keys, [""])
        except TrustboxError as exc:
            raise TrustCommandError(f"could not add signer to repo: {name}: {exc.message}") from exc
        try:
            client.publish(draft)
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc


def signer_remove(ctx: TrustContext, name: str, repos: Sequence[str], force: bool = False) -> list[str]:
    """``docker trust signer remove`` (as docker intends it): delete ``targets/NAME`` and remove its
    keys from ``targets/releases``; asks first when that would leave releases below threshold."""
    failed = []
    removed = []
    for repo in repos:
        ctx.out.write(f'Removing signer "{name}" from {repo}...\n')
        try:
            if _remove_single_signer(ctx, repo, name, force):
                removed.append(repo)
        except TrustboxError as exc:
            ctx.err.write(exc.message + "\n\n")
            failed.append(repo)
    if failed:
        raise TrustCommandError(f"error removing signer from: {', '.join(failed)}")
    return removed


def _remove_single_signer(ctx: TrustContext, repo: str, name: str, force: bool) -> bool:
    ref = _ref(repo)
    role = f"targets/{name}"
    if role == RELEASES_ROLE:
        raise TrustCommandError("releases is a reserved keyword and cannot be removed")
    client = _client(ctx, ref)
    with client:
        try:
            client.update_for_write()
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc
        draft = client.draft()
        entry = next((r for r in draft.delegation_roles() if r.name == role), None)
        if entry is None:
            raise TrustCommandError(f"no signer {name} for repository {repo}")
        if _is_last_signer(client, entry.keyids) and not force:
            message = (
                f'The signer "{name}" signed the last released version of {repo}. '
                f"Removing this signer will make {repo} unpullable. Are you sure you want to continue?"
            )
            if not ctx.ask(message):
                return False
        draft.remove_delegation_keys(RELEASES_ROLE, entry.keyids)
        draft.remove_delegation(role)
        try:
            client.publish(draft)
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc
    ctx.out.write(f"Successfully removed {name} from {repo}\n\n")
    return True


def _is_last_signer(client: TrustClient, keyids: Sequence[str]) -> bool:
    """Would releases drop below its threshold of valid signatures without these keys?"""
    tc = client.collection
    loaded = tc.delegations.get(RELEASES_ROLE)
    if loaded is None or not loaded.metadata.signed.targets:
        return False

    keys, threshold = tc.targets.signed.delegations.role_keys(RELEASES_ROLE) if tc.targets else ({}, 1)
    remaining = [k for k in valid_signers(loaded.metadata, keys) if k not in set(keyids)]
    return len(remaining) < threshold


# --- sign / revoke -------------------------------------------------------------------------------


def _validate_tag(ref: ImageRef) -> str:
    """The reference's tag.

    Raises:
        TrustCommandError: a digest reference, or no tag (docker's ``trust sign`` needs one).
    """
    if not ref.tag:
        if ref.digest:
            raise TrustCommandError("cannot use a digest reference for IMAGE:TAG")
        raise TrustCommandError(f"no tag specified for {ref.original or ref.name}")
    return ref.tag


def sign(ctx: TrustContext, image: str, local: bool = False) -> FileMeta:
    """``docker trust sign IMAGE:TAG``: co-sign an existing release, or sign the manifest the
    registry holds for the tag (read over HTTP, no daemon). Returns the signed target meta."""
    ref = _ref(image)
    tag = _validate_tag(ref)
    sigstore = ctx.sigstore_enabled()
    client = _client(ctx, ref)
    with client:
        try:
            draft, created = client.draft_or_new()
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc
        existing = None
        if not created and not local:
            found = client.collection.find_target(tag, RELEASED_ROLES)
            if found is not None and "sha256" in found[1].hashes:
                existing = found[1]
        if existing is None:
            info = _manifest(ctx, ref)
            meta = FileMeta(info.length, {"sha256": bytes.fromhex(info.sha256_hex)})
        else:
            meta = FileMeta(existing.length, {"sha256": existing.hashes["sha256"]})
        ctx.out.write(f"Signing and pushing trust metadata for {image}\n")
        try:
            roles = [TARGETS] if created else client.signable_roles(draft, tag)
            if existing is not None:
                sha = existing.hashes["sha256"]
                signers = sorted(
                    signer_name(e.role)
                    for e in client.walk_targets(tag)
                    if not is_released_role(e.role) and e.meta.hashes.get("sha256") == sha
                )
                ctx.out.write(f"Existing signatures for tag {tag} digest {sha.hex()} from:\n{', '.join(signers)}\n")
            for role in roles:
                draft.add_target(role, tag, meta)
            keys = draft.held_keys(roles) if sigstore else []  # the keys publish signs with
            client.publish(draft)
        except TrustboxError as exc:
            raise TrustCommandError(f"failed to sign {ref.name}:{tag}: {exc.message}") from exc
    ctx.out.write(f"Successfully signed {ref.name}:{tag}\n")
    if keys:
        digest = "sha256:" + meta.hashes["sha256"].hex()
        try:
            done = write_attachments(ctx, ref, digest, meta.length, keys)
        except TrustboxError as exc:
            ctx.err.write(
                f"Warning: {ref.name}:{tag} is signed in the trust data, but its sigstore signature was not written: "
                f"{exc.message} (retry with: trustbox trust attach {image})\n"
            )
        else:
            _report_signed(ctx, f"Sigstore signature {ref.name}:{signature_tag(digest)}", done)
    return meta


def _report_signed(ctx: TrustContext, what: str, done: SignResult, out: TextIO | None = None) -> None:
    """``<what>: N added for M manifest(s), key(s) ...`` on ``out`` (default ``err``: after a docker
    verb, stdout stays docker's own); skipped keys as warnings on ``err``."""
    used = [k for k in done.keys if k not in {s for s, _ in done.skipped}]
    if used:
        (out or ctx.err).write(f"{what}: {done.added} added for {len(done.digests)} manifest(s), "
                               f"key(s) {', '.join(k[:12] for k in used)}\n")
    for keyid, why in done.skipped:
        ctx.err.write(f"Warning: no sigstore signature by key {keyid[:12]}: {why}\n")


def write_attachments(
    ctx: TrustContext, ref: ImageRef, digest: str, length: int, keys: Sequence[PrivateKey]
) -> SignResult:
    """Sign manifest ``digest`` (``length`` bytes, as signed in the trust data) and, for an index,
    each child manifest with every key as sigstore attachments in the image's repository
    (:func:`~trustbox.client.images.attachments.sign_image`: keys cosign cannot verify are skipped).

    Raises:
        DigestMismatchError: the registry serves other bytes for ``digest``.
        NotFoundError, NetworkError, RegistryAuthError, RegistryResponseError: the registry failed.
    """
    with ctx.registry_client(ref) as rc:
        return sign_image(rc, ref.path, ref.name, rc.get_manifest(ref.path, digest, Descriptor("", digest, length)), keys)


def remove_attachments(ctx: TrustContext, ref: ImageRef, digest: str, keys: Sequence[PublicKey]) -> int:
    """Remove the sigstore signatures of ``keys`` from ``digest`` and (for an index the registry
    still serves) its child manifests. Returns how many were removed.

    Raises:
        NetworkError, RegistryAuthError, RegistryResponseError, FormatError: the registry failed
            or holds a malformed signature manifest.
    """
    with ctx.registry_client(ref) as rc:
        try:
            digests = image_digests(rc, ref.path, rc.get_manifest(ref.path, digest))
        except NotFoundError:
            digests = [digest]
        return sum(remove_signatures(rc, ref.path, d, keys) for d in digests)


def _manifest(ctx: TrustContext, ref: ImageRef) -> ManifestInfo:
    insecure = ref.domain in ctx.insecure_registries or ref.host in ctx.insecure_registries
    http = ctx.registry_http_factory() if ctx.registry_http_factory else None
    try:
        return lookup_manifest(
            ref,
            insecure=insecure,
            ca_files=list(ctx.ca_files) + dockerenv.tls_files("https://" + ref.domain, ctx.environ).ca_files,
            credentials=dockerenv.registry_credentials(ref, ctx.environ),
            http=http,
        )
    except TrustboxError as exc:
        raise TrustCommandError(f"failed to sign {ref.name}:{ref.tag}: {exc.message}") from exc
    finally:
        if http is not None:
            http.close()


def revoke(ctx: TrustContext, image: str, yes: bool = False) -> list[str]:
    """``docker trust revoke``: remove a tag (or every released tag) from the roles the local keys
    can sign, and publish. Returns the revoked tags."""
    ref = _ref(image)
    if not ref.tag and ref.digest:
        raise TrustCommandError("cannot use a digest reference for IMAGE:TAG")
    if not ref.tag and not yes:
        if not ctx.ask(f"Confirm you would like to delete all signature data for {image}?"):
            raise Cancelled("trust revoke has been cancelled")
    sigstore = ctx.sigstore_enabled()
    client = _client(ctx, ref)
    with client:
        try:
            client.update_for_write()
            tc = client.collection
            if ref.tag:
                found = tc.find_target(ref.tag, RELEASED_ROLES)
                if found is None:
                    raise NoSuchTargetError(ref.tag)
                tags = [ref.tag]
            else:
                tags = sorted({n for role in RELEASED_ROLES for n in tc.role_targets(role)})
                if not tags:
                    raise TrustboxError("no signed tags to remove")
            draft = client.draft()
            revoked: list[tuple[str, str]] = []
            for tag in tags:
                for role in client.signable_roles(draft, tag):
                    old = draft.bodies[role].targets.get(tag) if role in draft.bodies else None
                    draft.remove_target(role, tag)
                    if old is not None and "sha256" in old.hashes:
                        revoked.append((role, "sha256:" + old.hashes["sha256"].hex()))
            client.publish(draft)
            unsign = _unsigned_by(draft, revoked) if sigstore else {}
        except TrustboxError as exc:
            raise TrustCommandError(f"could not remove signature for {image}: {exc.message}") from exc
    ctx.out.write(f"Successfully deleted signature for {image}\n")
    for digest, keys in unsign.items():
        try:
            removed = remove_attachments(ctx, ref, digest, keys)
        except TrustboxError as exc:
            ctx.err.write(f"Warning: the sigstore signature of {ref.name}@{digest} was not removed: {exc.message}\n")
        else:
            if removed:
                ctx.err.write(f"Removed {removed} sigstore signature(s) from {ref.name}:{signature_tag(digest)}\n")
    return tags


def _unsigned_by(draft: RepoDraft, revoked: Sequence[tuple[str, str]]) -> dict[str, list[PublicKey]]:
    """For each revoked (role, digest) whose digest no tag of that role still holds: the role's
    locally held public keys, by digest (their sigstore layers go; another tag of the same digest
    keeps them)."""
    out: dict[str, dict[str, PublicKey]] = {}
    for role, digest in revoked:
        body = draft.bodies.get(role)
        still = body is not None and any(
            "sha256:" + m.hashes["sha256"].hex() == digest for m in body.targets.values() if "sha256" in m.hashes
        )
        if still:
            continue
        for key in draft.held_keys([role]):
            out.setdefault(digest, {})[key.keyid] = key.public_key()
    return {d: list(keys.values()) for d, keys in out.items()}


# --- sigstore: attach, export-public ---------------------------------------------------------------


@dataclass
class AttachReport:
    """What ``trust attach`` did per tag: attached (tag, digest, added, present keys) and failed (tag, why)."""

    attached: list[tuple[str, str, int, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def attach(ctx: TrustContext, image: str, all_tags: bool = False) -> AttachReport:
    """``trustbox trust attach REPO[:TAG] [--all-tags]``: write sigstore attachments for tags
    already signed in the (verified) trust data, with every signing key of the roles holding the
    tag's digest that is in the local key store. Prints one line per tag; tags that could not be
    attached (no local key, registry failure) are reported on ``err`` and raise at the end.

    Raises:
        TrustCommandError: usage (no tag without ``--all-tags``, both), no signed tags, trust data
            unavailable, or some tags could not be attached (after all were tried).
    """
    ref = _ref(image)
    if ref.digest:
        raise TrustCommandError("cannot use a digest reference for REPO[:TAG]")
    if ref.tag and all_tags:
        raise TrustCommandError(f"name a tag or use --all-tags, not both: {image}")
    if not ref.tag and not all_tags:
        raise TrustCommandError(f"no tag specified for {image}; name one or use --all-tags")
    report = AttachReport()
    client = _client(ctx, ref)
    with client:
        try:
            client.update()
            targets = [client.get_signed_target(ref.tag)] if ref.tag else client.list_signed_targets()
            entries = client.walk_targets(ref.tag or None)
            draft = client.draft()
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc
        plans: list[tuple[str, str, int, list[PrivateKey], list[str]]] = []
        for t in targets:
            roles = sorted({e.role for e in entries if e.name == t.name and e.sha256_hex == t.sha256_hex})
            try:
                keys = draft.held_keys(roles)
            except TrustboxError as exc:
                report.failed.append((t.name, exc.message))
                continue
            plans.append((t.name, t.digest, t.length, keys, roles))
    if not targets:
        raise TrustCommandError(f"no signed tags in {ref.name}")
    for tag, digest, length, keys, roles in plans:
        if not keys:
            who = ", ".join(signer_name(r) for r in roles)
            report.failed.append((tag, f"no private key of its signer(s) ({who}) in {ctx.trust_dir / 'private'}"))
            continue
        try:
            done = write_attachments(ctx, ref, digest, length, keys)
        except TrustboxError as exc:
            report.failed.append((tag, exc.message))
            continue
        if len(done.skipped) == len(keys):
            report.failed.append((tag, "; ".join(why for _, why in done.skipped)))
            continue
        report.attached.append((tag, digest, done.added, [k for k in done.keys if k not in dict(done.skipped)]))
        _report_signed(ctx, f"{ref.name}:{tag}: sigstore signature {signature_tag(digest)}", done, ctx.out)
    for tag, why in report.failed:
        ctx.err.write(f"{ref.name}:{tag}: not attached: {why}\n")
    if report.failed:
        raise TrustCommandError(f"could not attach {len(report.failed)} of {len(targets)} signed tag(s) of {ref.name}")
    return report


def export_public(ctx: TrustContext, repo: str, signer: str | None = None, role: str | None = None) -> bytes:
    """``trustbox trust key export-public REPO [--signer NAME | --role ROLE]``: the public key(s)
    of a role as PEM ``PUBLIC KEY`` blocks (SubjectPublicKeyInfo; a certificate's key for x509
    keys), from the verified trust data (no private key needed), for ``cosign verify --key`` and a
    containers-policy ``keyPath``. Without a choice: the repository (``targets``) keys, then every
    signer's, each key once.

    Raises:
        TrustCommandError: both ``signer`` and ``role``, no such signer or role, trust data
            unavailable.
    """
    if signer and role:
        raise TrustCommandError("use --signer or --role, not both")
    ref = _ref(repo)
    client = _client(ctx, ref)
    with client:
        try:
            client.update()
            draft = client.draft()
        except TrustboxError as exc:
            raise notary_error(ref.gun, exc) from exc
    if signer:
        roles = [f"targets/{signer}"]
    elif role:
        roles = [role]
    else:
        roles = [TARGETS] + [r.name for r in draft.delegation_roles() if r.name != RELEASES_ROLE]
    found: dict[str, bytes] = {}
    for name in roles:
        try:
            keys, _ = draft.role_keys(name)
        except RoleError:
            keys = {}
        if name != TARGETS and draft.delegation(name) is None:
            keys = {}
        if not keys and (signer or role):
            what = f"signer {signer}" if signer else f"role {role}"
            raise TrustCommandError(f"no {what} with keys in the trust data of {ref.name}")
        for key in keys.values():
            try:
                found.setdefault(key.canonical_keyid, public_key_pem(key))
            except TrustboxError as exc:
                raise TrustCommandError(f"cannot export key {key.keyid[:12]} of {name}: {exc.message}") from exc
    return b"".join(found.values())


__all__ = [
    "AttachReport",
    "KeyStoreError",
    "TrustCommandError",
    "TrustContext",
    "TrustInfo",
    "attach",
    "export_public",
    "inspect",
    "inspect_pretty",
    "key_generate",
    "key_list",
    "key_load",
    "lookup_trust_info",
    "notary_error",
    "remove_attachments",
    "revoke",
    "sign",
    "signer_add",
    "signer_remove",
    "write_attachments",
]

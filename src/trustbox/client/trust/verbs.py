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
from trustbox.client.images.distribution import ManifestInfo, lookup_manifest
from trustbox.client.textfmt import NaturalKey, go_json_indent, tab_table
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
    TrustboxError,
)
from trustbox.keystore.passphrase import PassphraseRetriever, docker_retriever
from trustbox.keystore.store import KeyInfo, KeyStore
from trustbox.oci.reference import ImageRef, parse_reference
from trustbox.tuf.keys import PublicKey
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
            client.publish(draft)
        except TrustboxError as exc:
            raise TrustCommandError(f"failed to sign {ref.name}:{tag}: {exc.message}") from exc
    ctx.out.write(f"Successfully signed {ref.name}:{tag}\n")
    return meta


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
            for tag in tags:
                for role in client.signable_roles(draft, tag):
                    draft.remove_target(role, tag)
            client.publish(draft)
        except TrustboxError as exc:
            raise TrustCommandError(f"could not remove signature for {image}: {exc.message}") from exc
    ctx.out.write(f"Successfully deleted signature for {image}\n")
    return tags


__all__ = [
    "KeyStoreError",
    "TrustCommandError",
    "TrustContext",
    "TrustInfo",
    "inspect",
    "inspect_pretty",
    "key_generate",
    "key_list",
    "key_load",
    "lookup_trust_info",
    "notary_error",
    "revoke",
    "sign",
    "signer_add",
    "signer_remove",
]

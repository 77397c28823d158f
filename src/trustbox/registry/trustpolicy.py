"""Registry-side enforcement of signatures (``trustbox serve registry --trust-policy FILE``).

A policy is a list of rules, each for repositories matching globs (``*`` within one path
component, ``**`` across components; the first matching rule applies). A rule requires
content-trust signatures (a trust server; optionally named signers and a minimum number of
signing roles) and/or sigstore attachments by given public keys. For a protected repository a
manifest GET/HEAD

- by tag succeeds only if the tag resolves, in verified trust data, to the digest served (and the
  served digest has a valid attachment by the rule's keys), or it is the ``.sig`` tag of an
  approved manifest;
- by digest succeeds only if the digest is approved (signed for some tag), a child of an approved
  index, or a signature/referrer artifact of an approved manifest;

and otherwise fails with 403 ``DENIED`` naming the rule. Trust data is verified by
:mod:`trustbox.registry.trustfetch` (the core's rules), kept for at most ``cache_seconds`` and never
beyond the earliest expiry of the documents; a failed verification drops what was kept. An
unreachable trust server means refusal unless the rule says ``unreachable = "cached"`` (the last
verified data, within its expiry) or ``"allow"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx

from trustbox.errors import ConfigError, FormatError, NotFoundError, TrustboxError
from trustbox.oci.manifest import validate_manifest
from trustbox.oci.simplesigning import (
    MAX_PAYLOAD_BYTES,
    load_public_key,
    parse_signature_manifest,
    signature_tag,
    signed_digest_of_tag,
    verify_attachment,
)
from trustbox.registry.errors import Denied, RegistryError
from trustbox.registry.manifests import ManifestStore, StoredManifest
from trustbox.registry.names import parse_digest
from trustbox.registry.storage.base import StorageDriver
from trustbox.registry.trustfetch import RootStore, TrustFetcher, TrustServerUnreachable, VerifiedTrust
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import TARGETS

log = logging.getLogger("trustbox.registry.trust")

UNREACHABLE_MODES = ("deny", "cached", "allow")
DEFAULT_CACHE_SECONDS = 30.0
#: a failed fetch is not retried sooner than this (the failure, never trust data, is remembered)
RETRY_SECONDS = 1.0
_RELEASES = "targets/releases"
_RULE_KEYS = frozenset({
    "name", "repositories", "trust_server", "trust_server_ca", "gun_prefix", "signers", "min_signers",
    "root_keys", "sigstore_keys", "sigstore_threshold", "cache_seconds", "unreachable", "timeout",
})
_SIGSTORE_CACHE = 4096


# --- configuration ------------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository glob as a regex: ``**`` any characters, ``*`` any within a path component,
    ``?`` one character other than ``/``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass
class TrustRule:
    """One rule of a trust policy (see the module docstring and docs/registry.md)."""

    name: str
    repositories: list[str]
    trust_server: str | None = None
    trust_server_ca: str | None = None
    gun_prefix: str = ""
    signers: list[str] = field(default_factory=list)  # delegation roles (``alice`` = ``targets/alice``)
    min_signers: int = 1
    root_keys: list[str] = field(default_factory=list)
    sigstore_keys: list[PublicKey] = field(default_factory=list)
    sigstore_key_files: list[str] = field(default_factory=list)
    sigstore_threshold: int = 1
    cache_seconds: float = DEFAULT_CACHE_SECONDS
    unreachable: str = "deny"
    timeout: float = 10.0
    patterns: list[re.Pattern[str]] = field(default_factory=list)

    @property
    def content_trust(self) -> bool:
        """Whether the rule requires content-trust signatures."""
        return self.trust_server is not None

    def matches(self, repository: str) -> bool:
        """Whether ``repository`` is one of the rule's."""
        return any(p.fullmatch(repository) for p in self.patterns)

    def gun(self, repository: str) -> str:
        """The GUN of ``repository`` in the trust server."""
        return self.gun_prefix + repository


def _strings(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"trust policy: {what} must be a list of non-empty strings")
    return list(value)


def _nonempty(value: Any, what: str) -> list[str]:
    out = _strings(value, what)
    if not out:
        raise ConfigError(f"trust policy: {what} must be a list of non-empty strings")
    return list(value)


def _number(value: Any, what: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"trust policy: {what} must be a number of at least {minimum}")
    return float(value)


def _rule(index: int, doc: Any, base: Path) -> TrustRule:
    if not isinstance(doc, dict):
        raise ConfigError(f"trust policy: rule {index} must be a table/object")
    unknown = sorted(set(doc) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"trust policy: rule {index}: unknown key {unknown[0]!r}")
    name = doc.get("name", f"rule {index}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"trust policy: rule {index}: name must be a non-empty string")
    where = f"rule {name!r}"
    rule = TrustRule(name, _nonempty(doc.get("repositories"), f"{where}: repositories"))
    rule.patterns = [glob_regex(p) for p in rule.repositories]
    server = doc.get("trust_server")
    if server is not None:
        if not isinstance(server, str) or not re.match(r"^https?://[^/]+", server):
            raise ConfigError(f"trust policy: {where}: trust_server must be an http(s) URL")
        rule.trust_server = server.rstrip("/")
        prefix = doc.get("gun_prefix")
        if not isinstance(prefix, str) or not prefix.endswith("/"):
            raise ConfigError(f"trust policy: {where}: gun_prefix (the registry's name as clients write it, "
                              "ending in '/', e.g. \"registry.example:5000/\") is required with trust_server")
        rule.gun_prefix = prefix
        ca = doc.get("trust_server_ca")
        if ca is not None:
            path = base / str(ca)
            if not path.is_file():
                raise ConfigError(f"trust policy: {where}: trust_server_ca {path} not found")
            rule.trust_server_ca = str(path)
    elif any(k in doc for k in ("signers", "min_signers", "root_keys", "trust_server_ca", "gun_prefix")):
        raise ConfigError(f"trust policy: {where}: signers, min_signers, root_keys, gun_prefix need trust_server")
    rule.signers = [s if s.startswith(TARGETS + "/") else f"{TARGETS}/{s}"
                    for s in _strings(doc.get("signers", []), f"{where}: signers")]
    rule.min_signers = int(_number(doc.get("min_signers", 1), f"{where}: min_signers", 1))
    rule.root_keys = _strings(doc.get("root_keys", []), f"{where}: root_keys")
    for f in _strings(doc.get("sigstore_keys", []), f"{where}: sigstore_keys"):
        path = base / f
        try:
            rule.sigstore_keys.append(load_public_key(path.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"trust policy: {where}: cannot read sigstore key {path}: {exc.strerror}") from None
        except TrustboxError as exc:
            raise ConfigError(f"trust policy: {where}: sigstore key {path}: {exc.message}") from None
        rule.sigstore_key_files.append(str(path))
    rule.sigstore_threshold = int(_number(doc.get("sigstore_threshold", 1), f"{where}: sigstore_threshold", 1))
    if rule.sigstore_keys and rule.sigstore_threshold > len(rule.sigstore_keys):
        raise ConfigError(f"trust policy: {where}: sigstore_threshold exceeds the number of sigstore_keys")
    if not rule.content_trust and not rule.sigstore_keys:
        raise ConfigError(f"trust policy: {where} requires nothing: give trust_server and/or sigstore_keys")
    rule.cache_seconds = _number(doc.get("cache_seconds", DEFAULT_CACHE_SECONDS), f"{where}: cache_seconds", 0)
    rule.timeout = _number(doc.get("timeout", 10.0), f"{where}: timeout", 0.1)
    unreachable = doc.get("unreachable", "deny")
    if unreachable not in UNREACHABLE_MODES:
        raise ConfigError(f"trust policy: {where}: unreachable must be one of {', '.join(UNREACHABLE_MODES)}")
    rule.unreachable = unreachable
    return rule


def load_trust_policy(path: Path) -> list[TrustRule]:
    """The rules of a trust policy file (TOML ``[[rule]]`` tables, or JSON ``{"rules": [...]}``);
    relative key and CA paths are relative to the file.

    Raises:
        ConfigError: unreadable file, unknown keys, missing or invalid values, unreadable keys.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read trust policy {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid trust policy {path}: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"rule", "rules"}:
        raise ConfigError(f"trust policy {path} must hold only a list of rules ([[rule]] or \"rules\")")
    rules = data.get("rule", data.get("rules"))
    if not isinstance(rules, list) or not rules:
        raise ConfigError(f"trust policy {path} holds no rules")
    return [_rule(i + 1, r, path.parent) for i, r in enumerate(rules)]


# --- runtime ------------------------------------------------------------------------------------


@dataclass
class _TrustEntry:
    trust: VerifiedTrust | None = None
    fetched: float = 0.0  # monotonic time of the last verified fetch
    failed: float = -1e18  # monotonic time of the last failed fetch
    failure: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class _Approved:
    """The manifests a repository's verified signatures approve, as computed at one moment."""

    top: frozenset[str]  # approved digests (signed for some tag / with a valid attachment)
    children: frozenset[str]  # children of approved indexes
    artifacts: frozenset[str]  # .sig manifests of approved digests


class TrustPolicy:
    """Decides manifest reads of protected repositories (``authorize``)."""

    def __init__(
        self,
        rules: list[TrustRule],
        driver: StorageDriver,
        manifests: ManifestStore,
        *,
        clock: Callable[[], datetime] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.rules = rules
        self.driver = driver
        self.manifests = manifests
        self.clock = clock or (lambda: datetime.now(UTC))
        store = RootStore(driver)
        self._fetchers: dict[tuple[str, str | None, float], TrustFetcher] = {}
        for rule in rules:
            if rule.trust_server is not None:
                key = (rule.trust_server, rule.trust_server_ca, rule.timeout)
                if key not in self._fetchers:
                    self._fetchers[key] = TrustFetcher(rule.trust_server, store, ca=rule.trust_server_ca,
                                                       timeout=rule.timeout, transport=transport)
        self._rule_of: dict[str, TrustRule | None] = {}
        self._trust: dict[tuple[str, str], _TrustEntry] = {}
        self._sigstore: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._children: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._approved_cache: dict[tuple[str, str], tuple[VerifiedTrust | None, float, _Approved]] = {}

    def rule_for(self, repository: str) -> TrustRule | None:
        """The first rule matching ``repository`` (None: not protected)."""
        try:
            return self._rule_of[repository]
        except KeyError:
            rule = next((r for r in self.rules if r.matches(repository)), None)
            if len(self._rule_of) > 65536:
                self._rule_of.clear()
            self._rule_of[repository] = rule
            return rule

    # -- the decision --------------------------------------------------------------------------------

    async def authorize(self, name: str, reference: str, manifest: StoredManifest) -> None:
        """Allow the read of ``manifest`` (``reference`` of ``name``) or raise Denied naming the rule."""
        rule = self.rule_for(name)
        if rule is None:
            return
        digest = str(manifest.digest)
        if ":" not in reference:
            subject = signed_digest_of_tag(reference)
            if subject is None:
                await self._authorize_tag(rule, name, reference, digest)
                return
            if not _is_artifact(manifest):
                raise self._denied(rule, name, reference, f"{reference} holds an image, not signatures")
            if await self._approved_digest(rule, name, subject):
                return
            raise self._denied(rule, name, reference,
                               f"{reference} holds signatures of {subject}, which the rule does not approve")
        if await self._approved_digest(rule, name, digest, manifest):
            return
        raise self._denied(rule, name, reference, f"manifest {digest} is neither signed, nor a child of a signed "
                                                  "index, nor a signature or referrer of a signed manifest")

    @staticmethod
    def _denied(rule: TrustRule, name: str, reference: str, why: str) -> Denied:
        return Denied(f"trust policy rule {rule.name!r} refused {name}:{reference}: {why}"
                      if ":" not in reference else f"trust policy rule {rule.name!r} refused {name}@{reference}: {why}",
                      detail={"rule": rule.name, "repository": name, "reference": reference[:200]})

    async def _authorize_tag(self, rule: TrustRule, name: str, tag: str, digest: str) -> None:
        if rule.content_trust:
            trust = await self._trust_for(rule, name, tag)
            if trust is not None:
                key = (rule.name, tag, digest)
                try:
                    why = trust.memo[key]
                except KeyError:
                    why = _tag_refusal(rule, trust, tag, digest)
                    if len(trust.memo) > _SIGSTORE_CACHE:
                        trust.memo.clear()
                    trust.memo[key] = why
                if why is not None:
                    raise self._denied(rule, name, tag, why)
        if rule.sigstore_keys and not await self._sigstore_ok(rule, name, digest):
            raise self._denied(rule, name, tag, f"{digest} has no valid sigstore signature by "
                                                f"{rule.sigstore_threshold} of the rule's keys")

    # -- content trust -------------------------------------------------------------------------------

    async def _trust_for(self, rule: TrustRule, name: str, reference: str) -> VerifiedTrust | None:
        """Verified trust data of ``name`` within the rule's staleness bound; None only when the
        server is unreachable and the rule says ``allow``.

        Raises:
            Denied: no verified trust data can be had.
        """
        assert rule.trust_server is not None
        gun = rule.gun(name)
        key = (rule.trust_server, gun)
        entry = self._trust.get(key)
        if entry is None:
            entry = self._trust.setdefault(key, _TrustEntry())
        if self._fresh(rule, entry):
            return entry.trust
        async with entry.lock:
            if self._fresh(rule, entry):
                return entry.trust
            mono = time.monotonic()
            if mono - entry.failed < min(RETRY_SECONDS, rule.cache_seconds or RETRY_SECONDS):
                return self._after_failure(rule, entry, name, reference, unreachable=None)
            fetcher = self._fetchers[(rule.trust_server, rule.trust_server_ca, rule.timeout)]
            now = self.clock()
            try:
                trust = await anyio.to_thread.run_sync(fetcher.fetch, gun, now, rule.root_keys)
            except TrustServerUnreachable as exc:
                log.warning("trust policy rule %r: %s: trust server unreachable: %s", rule.name, gun, exc.message)
                entry.failed, entry.failure = time.monotonic(), f"trust server unreachable: {exc.message}"
                return self._after_failure(rule, entry, name, reference, unreachable=True)
            except NotFoundError as exc:
                log.warning("trust policy rule %r: %s: no trust data: %s", rule.name, gun, exc.message)
                entry.trust, entry.failed = None, time.monotonic()
                entry.failure = f"no content trust data for {gun}"
                return self._after_failure(rule, entry, name, reference, unreachable=False)
            except Exception as exc:  # noqa: BLE001 - anything else the data caused: refused, never a 500
                message = exc.message if isinstance(exc, TrustboxError) else f"{type(exc).__name__}: {exc}"
                log.warning("trust policy rule %r: %s: trust data refused: %s", rule.name, gun, message)
                entry.trust, entry.failed = None, time.monotonic()  # never keep what failed verification
                entry.failure = f"trust data of {gun} failed verification: {message}"
                return self._after_failure(rule, entry, name, reference, unreachable=False)
            entry.trust, entry.fetched, entry.failure = trust, time.monotonic(), ""
            return trust

    def _fresh(self, rule: TrustRule, entry: _TrustEntry) -> bool:
        return (entry.trust is not None and time.monotonic() - entry.fetched < rule.cache_seconds
                and self.clock() < entry.trust.expires)

    def _after_failure(self, rule: TrustRule, entry: _TrustEntry, name: str, reference: str,
                       unreachable: bool | None) -> VerifiedTrust | None:
        """What a rule does after a failed fetch (``unreachable`` None: the recent failure again)."""
        if unreachable is None:
            unreachable = entry.failure.startswith("trust server unreachable")
        if unreachable and rule.unreachable == "allow":
            return None
        if unreachable and rule.unreachable == "cached" and entry.trust is not None and self.clock() < entry.trust.expires:
            return entry.trust
        if not unreachable:
            entry.trust = None
        raise self._denied(rule, name, reference, entry.failure or "no verified trust data")

    async def _approved_by_trust(self, rule: TrustRule, name: str, reference: str) -> set[str] | None:
        trust = await self._trust_for(rule, name, reference)
        if trust is None:
            return None
        tags: set[str] = set()
        for targets in trust.roles.values():
            tags.update(targets)
        out: set[str] = set()
        for tag in tags:
            resolved = _resolve(trust, tag)
            if resolved is not None and _tag_refusal(rule, trust, tag, resolved) is None:
                out.add(resolved)
        return out

    # -- sigstore ------------------------------------------------------------------------------------

    async def _sigstore_ok(self, rule: TrustRule, name: str, digest: str) -> bool:
        """Whether ``digest`` has valid attachments by ``sigstore_threshold`` of the rule's keys."""
        try:
            sig = await self.manifests.get(name, signature_tag(digest))
        except (RegistryError, FormatError):
            return False
        key = (rule.name, name, f"{digest} {sig.digest}")
        cached = self._sigstore.get(key)
        if cached is None:
            cached = await self._count_signers(rule, name, digest, sig.body)
            self._sigstore[key] = cached
            while len(self._sigstore) > _SIGSTORE_CACHE:
                self._sigstore.popitem(last=False)
        return cached >= rule.sigstore_threshold

    async def _count_signers(self, rule: TrustRule, name: str, digest: str, body: bytes) -> int:
        try:
            layers = parse_signature_manifest(body)
        except FormatError as exc:
            log.info("trust policy rule %r: %s: unreadable signature manifest for %s: %s", rule.name, name, digest, exc)
            return 0
        good: set[int] = set()
        for layer in layers:
            if layer.payload_size > MAX_PAYLOAD_BYTES:
                continue
            try:
                d = parse_digest(layer.payload_digest)
            except RegistryError:
                continue
            payload = await self.manifests.blobs.read_small(name, d, MAX_PAYLOAD_BYTES)
            if payload is None or len(payload) != layer.payload_size:
                continue
            for i, pub in enumerate(rule.sigstore_keys):
                if i in good:
                    continue
                try:
                    claims = verify_attachment(pub, payload, layer.signature, digest)
                except TrustboxError:
                    continue
                repo = claims.repository
                if repo == name or repo.endswith("/" + name):
                    good.add(i)
        return len(good)

    async def _approved_by_sigstore(self, rule: TrustRule, name: str) -> set[str]:
        out: set[str] = set()
        for tag in await self.manifests.tags(name):
            subject = signed_digest_of_tag(tag)
            if subject is not None and await self._sigstore_ok(rule, name, subject):
                out.add(subject)
        return out

    # -- digests ---------------------------------------------------------------------------------------

    async def _approved(self, rule: TrustRule, name: str, reference: str) -> _Approved | None:
        """The digests the rule approves in ``name`` now (None: the trust server is unreachable and
        the rule allows that)."""
        top: set[str] | None = None
        if rule.content_trust:
            top = await self._approved_by_trust(rule, name, reference)
            if top is None:
                return None
        if rule.sigstore_keys:
            signed = await self._approved_by_sigstore(rule, name)
            top = signed if top is None else top & signed
        assert top is not None
        children: set[str] = set()
        for d in top:
            children |= await self._index_children(name, d)
        artifacts: set[str] = set()
        for d in top | children:
            try:
                sig = await self.manifests.get(name, signature_tag(d))
            except (RegistryError, FormatError):
                continue
            if _is_artifact(sig):
                artifacts.add(str(sig.digest))
        return _Approved(frozenset(top), frozenset(children), frozenset(artifacts))

    async def _index_children(self, name: str, digest: str) -> frozenset[str]:
        cached = self._children.get(digest)
        if cached is not None:
            return cached
        children: frozenset[str] = frozenset()
        try:
            m = await self.manifests.get(name, digest)
            parsed = validate_manifest(m.body, m.media_type)
            children = frozenset(d.digest for d in parsed.manifests)
        except (RegistryError, FormatError):
            return frozenset()  # not stored here: nothing to remember
        self._children[digest] = children
        while len(self._children) > _SIGSTORE_CACHE:
            self._children.popitem(last=False)
        return children

    async def _approved_digest(self, rule: TrustRule, name: str, digest: str,
                               manifest: StoredManifest | None = None) -> bool:
        trust = await self._trust_for(rule, name, digest) if rule.content_trust else None
        if rule.content_trust and trust is None:
            return True  # unreachable trust server and the rule says allow
        key = (rule.name, name)
        cached = self._approved_cache.get(key)
        if (cached is not None and cached[0] is trust and time.monotonic() - cached[1] < rule.cache_seconds
                and (digest in cached[2].top or digest in cached[2].children or digest in cached[2].artifacts)):
            return True
        approved = await self._approved(rule, name, digest)
        if approved is None:
            return True  # unreachable trust server and the rule says allow
        if len(self._approved_cache) > _SIGSTORE_CACHE:
            self._approved_cache.clear()
        self._approved_cache[key] = (trust, time.monotonic(), approved)
        if digest in approved.top or digest in approved.children or digest in approved.artifacts:
            return True
        if manifest is not None and _is_artifact(manifest):
            parsed = validate_manifest(manifest.body, manifest.media_type)
            subject = parsed.subject.digest if parsed.subject is not None else None
            return subject is not None and (subject in approved.top or subject in approved.children)
        return False


def _is_artifact(manifest: StoredManifest) -> bool:
    """Whether ``manifest`` is a signature/attestation artifact and not something a container
    engine could run: an image manifest whose layers are all JSON documents (cosign's
    simple-signing payloads, DSSE envelopes, JWS). An index, or an image with a filesystem layer
    pushed under a ``.sig`` tag or with a ``subject``, is no artifact."""
    try:
        parsed = validate_manifest(manifest.body, manifest.media_type)
    except FormatError:
        return False
    if parsed.is_index:
        return False
    return all(layer.media_type.endswith("json") for layer in parsed.layers)


def _resolve(trust: VerifiedTrust, tag: str) -> str | None:
    """The digest docker resolves ``tag`` to: ``targets/releases`` first, then ``targets``."""
    for role in (_RELEASES, TARGETS):
        d = trust.signed_digest(tag, role)
        if d is not None:
            return d
    return None


def _tag_refusal(rule: TrustRule, trust: VerifiedTrust, tag: str, digest: str) -> str | None:
    """Why ``tag`` served as ``digest`` breaks the rule's content-trust requirement (None: it does not)."""
    resolved = _resolve(trust, tag)
    if resolved is None:
        return f"tag {tag} is not signed in the content trust data of {trust.gun}"
    if resolved != digest:
        return f"tag {tag} is signed for {resolved} but the registry holds {digest}"
    missing = [s for s in rule.signers if trust.signed_digest(tag, s) != digest]
    if missing:
        return f"tag {tag} is not signed for {digest} by {', '.join(missing)}"
    # signers: targets and each delegation; targets/releases (the role docker's signers share) counts
    # only when no other role signs the digest
    count = sum(1 for role in trust.roles if role != _RELEASES and trust.signed_digest(tag, role) == digest)
    count = count or int(trust.signed_digest(tag, _RELEASES) == digest)
    if count < rule.min_signers:
        return f"tag {tag} is signed by {count} role(s), the rule requires {rule.min_signers}"
    return None

"""Typed TUF/notary metadata: root, targets (with delegations), snapshot, timestamp.

Documents are parsed from bytes into :class:`Metadata` objects that keep the exact
``signed`` value they were parsed from (signatures are checked over its canonical form, so
unknown fields survive) and the original bytes (hashes in snapshot/timestamp cover them).
New documents are built from the typed classes, signed, and serialised in notary's wire form.
"""

from __future__ import annotations

import binascii
import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from trustbox.errors import FormatError, RoleError
from trustbox.tuf.canonical import encode_canonical, encode_canonical_parsed, encode_wire, loads_document
from trustbox.tuf.keys import PublicKey, Signer, b64decode, b64encode
from trustbox.tuf.timefmt import format_time, parse_time

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)

_DELEGATION_RE = re.compile(r"^[-a-z0-9_/]+$")
_TYPE_NAMES = {ROOT: "Root", TARGETS: "Targets", SNAPSHOT: "Snapshot", TIMESTAMP: "Timestamp"}
SUPPORTED_HASHES = ("sha256", "sha512")


def is_delegation(role: str) -> bool:
    """Whether ``role`` is a syntactically valid delegated role name (``targets/...``)."""
    if len(role) >= 256 or not role.startswith("targets/") or not _DELEGATION_RE.match(role):
        return False
    return posixpath.normpath(role) == role and role != "targets"


def is_valid_role(role: str) -> bool:
    """A base role or a valid delegated role name."""
    return role in BASE_ROLES or is_delegation(role)


def check_role(role: str) -> str:
    """Return ``role`` or raise RoleError naming it."""
    if not is_valid_role(role):
        raise RoleError(f"{role!r} is not a valid role name")
    return role


def role_type(role: str) -> str:
    """The ``_type`` value documents of ``role`` carry."""
    return _TYPE_NAMES[TARGETS if is_delegation(role) else role]


def within_paths(name: str, paths: list[str]) -> bool:
    """Whether ``name`` (a target or a delegated path) starts with one of the path prefixes."""
    return any(name.startswith(p) for p in paths)


def parent_role(role: str) -> str:
    """The role that delegates to ``role`` (``targets/a/b`` -> ``targets/a``)."""
    return role.rsplit("/", 1)[0]


# --- small helpers for parsing untrusted dicts ------------------------------------------

_LAST_OF_TWO = frozenset("AQgw")  # last character before "==" when the unused 4 bits are zero
_LAST_OF_THREE = frozenset("AEIMQUYcgkosw048")  # before "=": unused 2 bits zero


def canonical_b64decode(value: str) -> bytes | None:
    """Decode padded standard base64 whose unused bits are zero (the one encoding
    :func:`~trustbox.tuf.keys.b64decode` accepts); None for anything else. Fast path only."""
    if len(value) % 4:
        return None
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except ValueError:
        return None
    if value[-2:] == "==":
        return raw if value[-3] in _LAST_OF_TWO else None
    if value[-1:] == "=":
        return raw if value[-2] in _LAST_OF_THREE else None
    return raw


def _get(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise FormatError(f"{where}: missing field {key!r}")
    v = d[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise FormatError(f"{where}: field {key!r} must be an integer")
    if typ is int:
        if isinstance(v, float):
            if not v.is_integer():
                raise FormatError(f"{where}: field {key!r} must be an integer")
            v = int(v)
        return v
    if not isinstance(v, typ):
        raise FormatError(f"{where}: field {key!r} has the wrong type")
    return v


# --- file metadata ------------------------------------------------------------------------


@dataclass
class FileMeta:
    """Length, hashes and optional custom data of a target or a metadata file."""

    length: int
    hashes: dict[str, bytes]
    custom: Any = None
    has_custom: bool = False

    @classmethod
    def from_bytes(cls, data: bytes, hash_names: tuple[str, ...] = SUPPORTED_HASHES) -> FileMeta:
        """Describe ``data`` with the given hashes."""
        return cls(len(data), {n: hashlib.new(n, data).digest() for n in hash_names})

    @classmethod
    def from_plain_dict(cls, d: Any) -> FileMeta | None:
        """Fast path of :meth:`from_dict` for the common ``{"hashes":{..},"length":..}``;
        None when ``d`` has any other shape or value (then :meth:`from_dict` decides)."""
        if type(d) is not dict or len(d) != 2:
            return None
        length = d.get("length")
        raw_hashes = d.get("hashes")
        if type(length) is not int or length < 0 or type(raw_hashes) is not dict:
            return None
        hashes = {}
        for name, value in raw_hashes.items():
            raw = canonical_b64decode(value) if type(value) is str else None
            if raw is None:
                return None
            hashes[name] = raw
        return cls(length, hashes)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> FileMeta:
        """Parse ``{"length":..,"hashes":{..},"custom":..}``."""
        if not isinstance(d, dict):
            raise FormatError(f"{where}: file meta must be an object")
        length = _get(d, "length", int, where)
        if length < 0:
            raise FormatError(f"{where}: negative length")
        raw_hashes = _get(d, "hashes", dict, where)
        hashes = {}
        for name, value in raw_hashes.items():
            hashes[name] = b64decode(value, f"{where}: hash {name}")
        return cls(length, hashes, d.get("custom"), "custom" in d)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object notary writes."""
        d: dict[str, Any] = {"hashes": {k: b64encode(v) for k, v in self.hashes.items()}, "length": self.length}
        if self.has_custom or self.custom is not None:
            d["custom"] = self.custom
        return d

    def known_hashes(self) -> dict[str, bytes]:
        """The hashes trustbox can check (sha256, sha512)."""
        return {k: v for k, v in self.hashes.items() if k in SUPPORTED_HASHES}

    def difference(self, data: bytes) -> str | None:
        """The first way ``data`` differs from this description, in notary's order: ``"checksums"``
        (no sha256/sha512 to check), a hash algorithm whose digest differs (listed order), then
        ``"length"``; None when ``data`` is what it describes."""
        known = self.known_hashes()
        if not known:
            return "checksums"
        for algorithm, expected in known.items():
            if hashlib.new(algorithm, data).digest() != expected:
                return algorithm
        return "length" if len(data) != self.length else None

    def matches(self, data: bytes) -> bool:
        """Length and every known hash match ``data`` (and at least one known hash exists)."""
        return self.difference(data) is None


# --- role bodies --------------------------------------------------------------------------


@dataclass
class RoleKeys:
    """Key IDs and threshold of a base role in root.json."""

    keyids: list[str]
    threshold: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"keyids": list(self.keyids), "threshold": self.threshold}


def _parse_keys(d: Any, where: str) -> dict[str, PublicKey]:
    if not isinstance(d, dict):
        raise FormatError(f"{where}: keys must be an object")
    return {kid: PublicKey.from_dict(kv) for kid, kv in d.items()}


def _parse_keyids(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise FormatError(f"{where}: keyids must be a list of strings")
    return list(v)


@dataclass
class Signed:
    """Fields every role body has."""

    _type: ClassVar[str] = ""
    version: int
    expires: datetime
    expires_text: str = ""

    def __post_init__(self) -> None:
        if not self.expires_text:
            self.expires_text = format_time(self.expires)

    def set_expires(self, when: datetime) -> None:
        """Set the expiry (and its text form)."""
        self.expires = when
        self.expires_text = format_time(when)

    def is_expired(self, now: datetime) -> bool:
        """Whether the document has expired at ``now``."""
        return now >= self.expires

    @classmethod
    def _common(cls, d: dict[str, Any], where: str) -> tuple[int, datetime, str]:
        t = _get(d, "_type", str, where)
        if t != cls._type:
            raise FormatError(f"{where}: _type is {t!r}, expected {cls._type!r}")
        version = _get(d, "version", int, where)
        if version < 1:
            raise FormatError(f"{where}: version must be at least 1, got {version}")
        text = _get(d, "expires", str, where)
        return version, parse_time(text, f"{where}: expires"), text

    def _common_dict(self) -> dict[str, Any]:
        return {"_type": self._type, "expires": self.expires_text, "version": self.version}

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - overridden
        """The ``signed`` JSON object."""
        raise NotImplementedError


@dataclass
class Root(Signed):
    """root.json: the keys of every base role."""

    _type: ClassVar[str] = "Root"
    keys: dict[str, PublicKey] = field(default_factory=dict)
    roles: dict[str, RoleKeys] = field(default_factory=dict)
    consistent_snapshot: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "root") -> Root:
        """Parse and check structure: all four roles, thresholds >= 1, listed keys present."""
        version, expires, text = cls._common(d, where)
        keys = _parse_keys(_get(d, "keys", dict, where), f"{where}: keys")
        roles_raw = _get(d, "roles", dict, where)
        roles: dict[str, RoleKeys] = {}
        for name in BASE_ROLES:
            r = roles_raw.get(name)
            if not isinstance(r, dict):
                raise FormatError(f"{where}: role {name!r} missing from roles")
            keyids = _parse_keyids(r.get("keyids"), f"{where}: roles.{name}")
            threshold = _get(r, "threshold", int, f"{where}: roles.{name}")
            if threshold < 1:
                raise FormatError(f"{where}: roles.{name} threshold must be at least 1")
            if not keyids:
                raise FormatError(f"{where}: roles.{name} lists no keys")
            for kid in keyids:
                if kid not in keys:
                    raise FormatError(f"{where}: roles.{name} lists key {kid} that is not in keys")
            roles[name] = RoleKeys(keyids, threshold)
        for name in roles_raw:
            if name not in BASE_ROLES:
                raise FormatError(f"{where}: unknown role {name!r} in roles")
        cs = d.get("consistent_snapshot", False)
        return cls(version, expires, text, keys, roles, bool(cs))

    def to_dict(self) -> dict[str, Any]:
        """The ``signed`` JSON object."""
        d = self._common_dict()
        d["consistent_snapshot"] = self.consistent_snapshot
        d["keys"] = {k: v.to_dict() for k, v in self.keys.items()}
        d["roles"] = {k: v.to_dict() for k, v in self.roles.items()}
        return d

    def role_keys(self, role: str) -> tuple[dict[str, PublicKey], int]:
        """The keys (by ID) and threshold of a base role."""
        rk = self.roles[role]
        return {k: self.keys[k] for k in rk.keyids if k in self.keys}, rk.threshold


@dataclass
class DelegatedRole:
    """One entry of ``delegations.roles``."""

    name: str
    keyids: list[str]
    threshold: int = 1
    paths: list[str] = field(default_factory=lambda: [""])

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``paths`` omitted when empty, as notary does)."""
        d: dict[str, Any] = {"keyids": list(self.keyids), "name": self.name, "threshold": self.threshold}
        if self.paths:
            d["paths"] = list(self.paths)
        return d

    def covers(self, target: str) -> bool:
        """Whether ``target`` falls under one of the role's path prefixes."""
        return within_paths(target, self.paths)


@dataclass
class Delegations:
    """``delegations``: keys and delegated roles of a targets document."""

    keys: dict[str, PublicKey] = field(default_factory=dict)
    roles: list[DelegatedRole] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"keys": {k: v.to_dict() for k, v in self.keys.items()}, "roles": [r.to_dict() for r in self.roles]}

    def get(self, name: str) -> DelegatedRole | None:
        """The delegated role called ``name``, if listed."""
        for r in self.roles:
            if r.name == name:
                return r
        return None

    def role_keys(self, name: str) -> tuple[dict[str, PublicKey], int]:
        """Keys and threshold of delegated role ``name``."""
        r = self.get(name)
        if r is None:
            raise RoleError(f"{name} is not delegated")
        return {k: self.keys[k] for k in r.keyids if k in self.keys}, r.threshold


@dataclass
class Targets(Signed):
    """targets.json or a delegation: target files and delegations."""

    _type: ClassVar[str] = "Targets"
    targets: dict[str, FileMeta] = field(default_factory=dict)
    delegations: Delegations = field(default_factory=Delegations)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "targets") -> Targets:
        """Parse a targets body."""
        version, expires, text = cls._common(d, where)
        raw_targets = _get(d, "targets", dict, where)
        targets = {}
        for name, fm in raw_targets.items():
            quick = FileMeta.from_plain_dict(fm)
            targets[name] = quick if quick is not None else FileMeta.from_dict(fm, f"{where}: target {name!r}")
        delegations = Delegations()
        raw_del = d.get("delegations")
        if raw_del is not None:
            if not isinstance(raw_del, dict):
                raise FormatError(f"{where}: delegations must be an object")
            dkeys = _parse_keys(raw_del.get("keys", {}), f"{where}: delegations.keys")
            raw_roles = raw_del.get("roles", [])
            if raw_roles is None:
                raw_roles = []
            if not isinstance(raw_roles, list):
                raise FormatError(f"{where}: delegations.roles must be a list")
            roles = []
            seen = set()
            for i, r in enumerate(raw_roles):
                rw = f"{where}: delegations.roles[{i}]"
                if not isinstance(r, dict):
                    raise FormatError(f"{rw} must be an object")
                name = _get(r, "name", str, rw)
                if name in seen:
                    raise FormatError(f"{rw}: role {name!r} delegated twice")
                seen.add(name)
                keyids = _parse_keyids(r.get("keyids"), rw)
                threshold = _get(r, "threshold", int, rw)
                if threshold < 1:
                    raise FormatError(f"{rw}: threshold must be at least 1")
                paths = r.get("paths") or []
                if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                    raise FormatError(f"{rw}: paths must be a list of strings")
                if "path_hash_prefixes" in r:
                    raise FormatError(f"{rw}: path_hash_prefixes is not supported")
                roles.append(DelegatedRole(name, keyids, threshold, list(paths)))
            delegations = Delegations(dkeys, roles)
        return cls(version, expires, text, targets, delegations)

    def to_dict(self) -> dict[str, Any]:
        """The ``signed`` JSON object."""
        d = self._common_dict()
        d["delegations"] = self.delegations.to_dict()
        d["targets"] = {k: v.to_dict() for k, v in self.targets.items()}
        return d


@dataclass
class Snapshot(Signed):
    """snapshot.json: hashes and lengths of root, targets and delegations."""

    _type: ClassVar[str] = "Snapshot"
    meta: dict[str, FileMeta] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "snapshot") -> Snapshot:
        """Parse a snapshot body."""
        version, expires, text = cls._common(d, where)
        raw = _get(d, "meta", dict, where)
        meta = {name: FileMeta.from_dict(fm, f"{where}: meta {name!r}") for name, fm in raw.items()}
        return cls(version, expires, text, meta)

    def to_dict(self) -> dict[str, Any]:
        """The ``signed`` JSON object."""
        d = self._common_dict()
        d["meta"] = {k: v.to_dict() for k, v in self.meta.items()}
        return d


@dataclass
class Timestamp(Signed):
    """timestamp.json: hashes and length of the current snapshot."""

    _type: ClassVar[str] = "Timestamp"
    meta: dict[str, FileMeta] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "timestamp") -> Timestamp:
        """Parse a timestamp body (``meta.snapshot`` is required)."""
        version, expires, text = cls._common(d, where)
        raw = _get(d, "meta", dict, where)
        if "snapshot" not in raw:
            raise FormatError(f"{where}: meta has no snapshot entry")
        meta = {name: FileMeta.from_dict(fm, f"{where}: meta {name!r}") for name, fm in raw.items()}
        return cls(version, expires, text, meta)

    @property
    def snapshot_meta(self) -> FileMeta:
        """The snapshot's file meta."""
        return self.meta["snapshot"]

    def to_dict(self) -> dict[str, Any]:
        """The ``signed`` JSON object."""
        d = self._common_dict()
        d["meta"] = {k: v.to_dict() for k, v in self.meta.items()}
        return d


_CLASSES: dict[str, type[Signed]] = {"Root": Root, "Targets": Targets, "Snapshot": Snapshot, "Timestamp": Timestamp}


def signed_class(role: str) -> type[Signed]:
    """The body class documents of ``role`` have (``Targets`` for delegations)."""
    return _CLASSES[role_type(role)]


# --- the signed envelope -------------------------------------------------------------------


@dataclass
class Signature:
    """One signature: key ID, method and raw signature bytes."""

    keyid: str
    method: str
    sig: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"keyid": self.keyid, "method": self.method, "sig": b64encode(self.sig)}


T = TypeVar("T", bound=Signed)


class Metadata(Generic[T]):
    """A signed document: typed body, the exact ``signed`` value, signatures and raw bytes."""

    def __init__(
        self,
        signed: T,
        signatures: list[Signature] | None = None,
        signed_value: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.signed = signed
        self.signatures: list[Signature] = signatures or []
        self._signed_value = signed_value
        self._signed_bytes: bytes | None = None
        self.raw = raw

    # -- parsing --------------------------------------------------------------------------

    @staticmethod
    def parse(data: bytes, where: str = "metadata", expect: type[Signed] | None = None) -> Metadata[Any]:
        """Parse a document from bytes (one strict JSON parse, the canonical ``signed`` bytes
        computed at most once); ``expect`` checks its ``_type``. Raises FormatError."""
        value, signed_bytes = loads_document(data)
        return Metadata.from_value(value, data, where, expect, signed_bytes)

    @staticmethod
    def from_value(
        value: Any,
        raw: bytes,
        where: str = "metadata",
        expect: type[Signed] | None = None,
        signed_bytes: bytes | None = None,
    ) -> Metadata[Any]:
        """Typed metadata from a strictly parsed document ``value`` whose bytes are ``raw``;
        ``signed_bytes``, when the caller already knows them, are the canonical bytes of its
        ``signed`` value (else they are computed here, once)."""
        if not isinstance(value, dict) or "signed" not in value or "signatures" not in value:
            raise FormatError(f"{where}: not a signed document (needs 'signed' and 'signatures')")
        signed = value["signed"]
        if not isinstance(signed, dict):
            raise FormatError(f"{where}: 'signed' must be an object")
        t = signed.get("_type")
        cls = _CLASSES.get(t) if isinstance(t, str) else None
        if cls is None:
            raise FormatError(f"{where}: unknown _type {t!r}")
        if expect is not None and cls is not expect:
            raise FormatError(f"{where}: _type is {t!r}, expected {expect._type!r}")
        body = cls.from_dict(signed, where)  # type: ignore[attr-defined]
        sigs_raw = value["signatures"]
        if not isinstance(sigs_raw, list):
            raise FormatError(f"{where}: 'signatures' must be a list")
        sigs = []
        for i, s in enumerate(sigs_raw):
            sw = f"{where}: signatures[{i}]"
            if not isinstance(s, dict):
                raise FormatError(f"{sw} must be an object")
            sigs.append(
                Signature(
                    _get(s, "keyid", str, sw),
                    _get(s, "method", str, sw).lower(),
                    b64decode(_get(s, "sig", str, sw), f"{sw}.sig"),
                )
            )
        md: Metadata[Any] = Metadata(body, sigs, signed, bytes(raw))
        # Signatures are over the canonical form: compute it once now (failing early if it
        # cannot be produced) and keep it for every signature check.
        md._signed_bytes = signed_bytes if signed_bytes is not None else encode_canonical_parsed(signed)
        return md

    # -- views ------------------------------------------------------------------------------

    @property
    def signed_value(self) -> dict[str, Any]:
        """The ``signed`` JSON value (as parsed, or built from the typed body)."""
        if self._signed_value is None:
            return self.signed.to_dict()
        return self._signed_value

    def signed_bytes(self) -> bytes:
        """The canonical bytes signatures are computed over (cached for parsed documents)."""
        if self._signed_bytes is not None:
            return self._signed_bytes
        return encode_canonical(self.signed_value)

    def refresh(self) -> None:
        """Forget the parsed ``signed`` value and raw bytes after editing the typed body."""
        self._signed_value = None
        self._signed_bytes = None
        self.raw = None
        self.signatures = []

    def to_bytes(self) -> bytes:
        """The bytes to store and serve: the original bytes if parsed, else notary's wire form."""
        if self.raw is not None:
            return self.raw
        sigs = b",".join(encode_canonical(s.to_dict()) for s in self.signatures)
        return b'{"signed":' + encode_wire(self.signed_value) + b',"signatures":[' + sigs + b"]}"

    # -- signing ------------------------------------------------------------------------------

    def sign(self, key: Signer, keyid: str | None = None) -> Signature:
        """Add a signature by ``key`` (``keyid`` overrides, e.g. a root certificate's ID)."""
        self.raw = None
        sig = Signature(keyid or key.keyid, key.method, key.sign(self.signed_bytes()))
        self.signatures = [s for s in self.signatures if s.keyid != sig.keyid] + [sig]
        return sig

"""The one repository simulator of the test suite (python-tuf's ``RepositorySimulator``, for notary).

A :class:`RepositorySimulator` holds one GUN's keys, the version of every role and every document it
made, and makes each role's document in one place (``_root_body`` ... ``_sign``) with real keys and
real signatures through the trustbox core. Tests use it in three ways, all on the same state:

* offline sets (``root_doc``, ``targets_doc``, ``snapshot_doc``, ``timestamp_doc``, ``publish``):
  documents of the current versions, not recorded (core tests: loader, TrustedCollection);
* ``make_*``: the next version of a role, recorded in ``docs`` (current) and ``history`` (every
  version), served by ``serve`` into the client tests' fake notary server; ``version=`` pins it
  (trust server tests upload exactly the versions they mean);
* keys held by the server: pass its timestamp (and snapshot) *public* key, as a notary client does
  after ``GET .../timestamp.key``; the simulator lists it in root and never signs with it.

Versions start at 1: the first ``make_*`` of a role makes version 1 (or the version set before it),
each later one the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import ECDSA, PrivateKey, PublicKey
from trustbox.tuf.metadata import (
    DelegatedRole,
    Delegations,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)

GUN = "registry.example.test/team/app"
NOW = datetime(2026, 11, 23, tzinfo=UTC)
RELEASES = "targets/releases"

#: (private key, key ID or listed public key) of one signature
Signer = tuple[PrivateKey, "str | PublicKey"]
Expiry = datetime | timedelta | None


def target_meta(digest_byte: int, length: int = 401) -> FileMeta:
    """A docker-style target (sha256 only) whose digest is ``digest_byte`` repeated."""
    return FileMeta(length, {"sha256": bytes([digest_byte]) * 32})


def target(data: bytes) -> FileMeta:
    """FileMeta of a payload, as ``notary add`` writes it."""
    return FileMeta.from_bytes(data)


class ServedRepo(Protocol):
    """What ``serve`` fills: a fake server's repository (``versions`` and ``current``)."""

    versions: dict[str, dict[int, bytes]]
    current: dict[str, bytes]


class FakeServer(Protocol):
    def repo(self, gun: str) -> ServedRepo: ...


@dataclass
class RepositorySimulator:
    """Keys and the documents of every version of one GUN. See the module docstring."""

    gun: str = GUN
    now: datetime = NOW
    targets_keys: list[PrivateKey] = field(default_factory=lambda: [PrivateKey.generate(ECDSA)])
    targets_threshold: int = 1
    #: a private key (held by the test) or a public key (held by the server); None: generate one
    snapshot_key: Any = None
    timestamp_key: Any = None
    root_keytype: str = ECDSA
    root_threshold: int = 1
    root_keys: list[tuple[PrivateKey, PublicKey]] = field(default_factory=list)
    #: signers added to every root made (the old root key during a rotation)
    extra_root_signers: list[Signer] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    docs: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, dict[int, bytes]] = field(default_factory=dict)
    #: offline state: targets per role, delegations per parent role, delegation keys
    target_files: dict[str, dict[str, FileMeta]] = field(default_factory=lambda: {"targets": {}})
    delegations: dict[str, list[DelegatedRole]] = field(default_factory=lambda: {"targets": []})
    delegation_keys: dict[str, PrivateKey] = field(default_factory=dict)
    #: the public key listed for a delegation when not the bare key (e.g. a certificate)
    delegation_pubs: dict[str, PublicKey] = field(default_factory=dict)
    expiry: dict[str, timedelta] = field(default_factory=lambda: {
        "root": timedelta(days=3650), "targets": timedelta(days=1095),
        "snapshot": timedelta(days=1095), "timestamp": timedelta(days=14)})

    def __post_init__(self) -> None:
        if not self.root_keys:
            self.add_root_key(self.root_keytype)
        if self.snapshot_key is None:
            self.snapshot_key = PrivateKey.generate(ECDSA)
        if self.timestamp_key is None:
            self.timestamp_key = PrivateKey.generate(ECDSA)
        for role in ("root", "targets", "snapshot", "timestamp"):
            self.versions.setdefault(role, 1)

    # -- keys ------------------------------------------------------------------------------------

    def add_root_key(self, keytype: str = ECDSA) -> tuple[PrivateKey, PublicKey]:
        """A new root key with its certificate for this GUN (valid from a day before ``now``)."""
        k = PrivateKey.generate(keytype)
        pair = (k, make_root_public_key(k, self.gun, self.now - timedelta(days=1)))
        self.root_keys.append(pair)
        return pair

    def rotate_root_key(self) -> Signer:
        """Replace the root key; the next roots are signed by the old and the new key. Returns the old."""
        old_key, old_pub = self.root_keys[0]
        self.root_keys = []
        self.add_root_key()
        self.extra_root_signers = [(old_key, old_pub.keyid)]
        return old_key, old_pub.keyid

    @property
    def root_key(self) -> PrivateKey:
        return self.root_keys[0][0]

    @property
    def root_pub(self) -> PublicKey:
        return self.root_keys[0][1]

    @property
    def certs(self) -> list[PublicKey]:
        return [pub for _k, pub in self.root_keys]

    @property
    def root_version(self) -> int:
        return self.versions["root"]

    @root_version.setter
    def root_version(self, value: int) -> None:
        self.versions["root"] = value

    @property
    def targets_key(self) -> PrivateKey:
        return self.targets_keys[0]

    @property
    def snapshot_pub(self) -> PublicKey:
        return _public(self.snapshot_key)

    @property
    def timestamp_pub(self) -> PublicKey:
        return _public(self.timestamp_key)

    @property
    def client_snapshot_key(self) -> PrivateKey | None:
        """The snapshot key when the client holds it, None when the server does."""
        return self.snapshot_key if isinstance(self.snapshot_key, PrivateKey) else None

    @property
    def keys(self) -> dict[str, PrivateKey]:
        """The private key of each top-level role the test holds."""
        held = {"targets": self.targets_key, "snapshot": self.snapshot_key, "timestamp": self.timestamp_key}
        return {r: k for r, k in held.items() if isinstance(k, PrivateKey)}

    @property
    def releases_key(self) -> PrivateKey:
        return self.delegation_keys.setdefault(RELEASES, PrivateKey.generate(ECDSA))

    @releases_key.setter
    def releases_key(self, key: PrivateKey) -> None:
        self.delegation_keys[RELEASES] = key

    # -- the one place each document is made -----------------------------------------------------

    def _expires(self, role: str, expires: Expiry) -> datetime:
        if isinstance(expires, datetime):
            return expires
        return self.now + (expires if expires is not None else self.expiry[role])

    def _root_body(self, version: int, expires: datetime, extra_keys: dict[str, PublicKey] | None,
                   threshold: int | None) -> Root:
        keys = {pub.keyid: pub for _k, pub in self.root_keys}
        tkeys = [k.public_key() for k in self.targets_keys]
        keys.update({k.keyid: k for k in tkeys})
        keys[self.snapshot_pub.keyid] = self.snapshot_pub
        keys[self.timestamp_pub.keyid] = self.timestamp_pub
        keys.update(extra_keys or {})
        return Root(version, expires, keys=keys, roles={
            "root": RoleKeys([pub.keyid for _k, pub in self.root_keys], threshold or self.root_threshold),
            "targets": RoleKeys([k.keyid for k in tkeys], self.targets_threshold),
            "snapshot": RoleKeys([self.snapshot_pub.keyid]),
            "timestamp": RoleKeys([self.timestamp_pub.keyid]),
        })

    def _targets_body(self, version: int, expires: datetime, files: dict[str, FileMeta],
                      delegations: Delegations) -> Targets:
        return Targets(version, expires, targets=dict(files), delegations=delegations)

    def _delegations_of(self, role: str) -> Delegations:
        roles = list(self.delegations.get(role, []))
        keys = {}
        for dr in roles:
            pub = self.delegation_pubs.get(dr.name) or self.delegation_keys[dr.name].public_key()
            keys[pub.keyid] = pub
        return Delegations(keys, roles)

    def _role_signers(self, role: str) -> list[Signer]:
        if role == "targets":
            return [(k, k.public_key()) for k in self.targets_keys]
        if role in ("snapshot", "timestamp"):
            key = self.keys.get(role)
            assert key is not None, f"the {role} key is held by the server"
            return [(key, key.public_key())]
        if role not in self.delegation_keys:  # no key of its own: the targets keys sign it
            return self._role_signers("targets")
        key = self.delegation_keys[role]
        return [(key, self.delegation_pubs.get(role) or key.public_key())]

    @staticmethod
    def _sign(body: Any, signers: list[Signer]) -> bytes:
        md: Metadata[Any] = Metadata(body)
        for key, listed in signers:
            md.sign(key, listed if isinstance(listed, str) else listed.keyid)
        return md.to_bytes()

    def _keep(self, role: str, version: int, data: bytes) -> bytes:
        self.versions[role] = version
        self.docs[role] = data
        self.history.setdefault(role, {})[version] = data
        return data

    def _next(self, role: str, version: int | None) -> int:
        if version is not None:
            return version
        current = self.versions.setdefault(role, 1)
        return current + 1 if role in self.history else max(current, 1)

    # -- offline sets (current versions, not recorded) -------------------------------------------

    def add_target(self, name: str, data: bytes, role: str = "targets") -> None:
        self.target_files.setdefault(role, {})[name] = FileMeta.from_bytes(data)

    def delegate(self, role: str, paths: list[str] | None = None, parent: str = "targets",
                 key: PrivateKey | None = None, pub: PublicKey | None = None) -> PrivateKey:
        """Delegate ``role`` from ``parent`` (to a new key unless given). Returns the role's key."""
        key = key or PrivateKey.generate(ECDSA)
        self.delegation_keys[role] = key
        if pub is not None:
            self.delegation_pubs[role] = pub
        kid = (pub or key.public_key()).keyid
        self.delegations.setdefault(parent, []).append(DelegatedRole(role, [kid], 1, paths if paths is not None else [""]))
        self.target_files.setdefault(role, {})
        self.delegations.setdefault(role, [])
        self.versions.setdefault(role, 1)
        return key

    def root_doc(self, signers: list[tuple[PrivateKey, PublicKey]] | None = None) -> bytes:
        """root.json of the current root version, signed by every root key (or ``signers``)."""
        body = self._root_body(self.root_version, self._expires("root", None), None, None)
        return self._sign(body, list(signers if signers is not None else self.root_keys))

    def targets_doc(self, role: str = "targets", expired: bool = False, key: PrivateKey | None = None) -> bytes:
        exp = self.now - timedelta(seconds=1) if expired else self._expires("targets", None)
        body = self._targets_body(self.versions[role], exp, self.target_files.get(role, {}), self._delegations_of(role))
        return self._sign(body, [(key, key.public_key())] if key is not None else self._role_signers(role))

    def snapshot_doc(self, files: dict[str, bytes], expired: bool = False, key: PrivateKey | None = None) -> bytes:
        exp = self.now - timedelta(seconds=1) if expired else self._expires("snapshot", None)
        body = Snapshot(self.versions["snapshot"], exp, meta={r: FileMeta.from_bytes(b) for r, b in files.items()})
        return self._sign(body, [(key, key.public_key())] if key is not None else self._role_signers("snapshot"))

    def timestamp_doc(self, snapshot: bytes, expired: bool = False, key: PrivateKey | None = None) -> bytes:
        exp = self.now - timedelta(seconds=1) if expired else self._expires("timestamp", None)
        body = Timestamp(self.versions["timestamp"], exp, meta={"snapshot": FileMeta.from_bytes(snapshot)})
        return self._sign(body, [(key, key.public_key())] if key is not None else self._role_signers("timestamp"))

    def publish(self) -> dict[str, bytes]:
        """A consistent offline set of documents for the current state."""
        docs = {"root": self.root_doc()}
        for role in self.target_files:
            docs[role] = self.targets_doc(role)
        docs["snapshot"] = self.snapshot_doc(dict(docs))
        docs["timestamp"] = self.timestamp_doc(docs["snapshot"])
        return docs

    # -- recorded versions -----------------------------------------------------------------------

    def make_root(self, *, version: int | None = None, expires: Expiry = None,
                  extra_keys: dict[str, PublicKey] | None = None, signers: list[Signer] | None = None,
                  threshold: int | None = None) -> bytes:
        """The next root (or ``version``) listing the current keys, signed by the root keys (or
        ``signers``) and ``extra_root_signers``."""
        v = self._next("root", version)
        body = self._root_body(v, self._expires("root", expires), extra_keys, threshold)
        own: list[Signer] = list(signers) if signers is not None else list(self.root_keys)
        return self._keep("root", v, self._sign(body, own + self.extra_root_signers))

    def make_targets(self, targets: dict[str, FileMeta] | None = None, *, version: int | None = None,
                     role: str = "targets", releases: bool = False,
                     delegations: list[tuple[str, PublicKey, list[str]]] | None = None,
                     expires: Expiry = None, signers: list[PrivateKey] | None = None,
                     key: PrivateKey | None = None, threshold: int = 1) -> bytes:
        """The next targets (or delegation ``role``) document with ``targets``; ``releases``
        delegates ``targets/releases`` to ``releases_key``; ``delegations`` lists (name, key, paths)."""
        v = self._next(role, version)
        dele = Delegations()
        if releases:
            pub = self.releases_key.public_key()
            dele = Delegations({pub.keyid: pub}, [DelegatedRole(RELEASES, [pub.keyid], 1, [""])])
        if delegations:
            dele = Delegations({pub.keyid: pub for _n, pub, _p in delegations},
                               [DelegatedRole(name, [pub.keyid], threshold, paths) for name, pub, paths in delegations])
        body = self._targets_body(v, self._expires("targets", expires), targets or {}, dele)
        if key is not None:
            signed_by: list[Signer] = [(key, key.public_key())]
        elif signers is not None:
            signed_by = [(k, k.public_key()) for k in signers]
        else:
            signed_by = self._role_signers(role)
        return self._keep(role, v, self._sign(body, signed_by))

    def make_releases(self, targets: dict[str, FileMeta], expires: Expiry = None) -> bytes:
        """The next ``targets/releases`` document, signed by ``releases_key``."""
        self.releases_key  # noqa: B018  (creates the key on first use)
        return self.make_targets(targets, role=RELEASES, expires=expires)

    def make_snapshot(self, roles: dict[str, bytes] | None = None, *, version: int | None = None,
                      expires: Expiry = None, key: PrivateKey | None = None) -> bytes:
        """The next snapshot over ``roles`` (default: every current document but snapshot and timestamp)."""
        v = self._next("snapshot", version)
        roles = roles if roles is not None else {r: d for r, d in self.docs.items() if r not in ("snapshot", "timestamp")}
        body = Snapshot(v, self._expires("snapshot", expires), meta={r: FileMeta.from_bytes(d) for r, d in roles.items()})
        signed_by: list[Signer] = [(key, key.public_key())] if key is not None else self._role_signers("snapshot")
        return self._keep("snapshot", v, self._sign(body, signed_by))

    def make_timestamp(self, expires: Expiry = None, key: PrivateKey | None = None, snapshot: bytes | None = None,
                       *, version: int | None = None) -> bytes:
        """The next timestamp over ``snapshot`` (default: the current one)."""
        v = self._next("timestamp", version)
        snap = snapshot if snapshot is not None else self.docs["snapshot"]
        body = Timestamp(v, self._expires("timestamp", expires), meta={"snapshot": FileMeta.from_bytes(snap)})
        signed_by: list[Signer] = [(key, key.public_key())] if key is not None else self._role_signers("timestamp")
        return self._keep("timestamp", v, self._sign(body, signed_by))

    def initial(self, tags: dict[str, FileMeta] | None = None) -> RepositorySimulator:
        """root v1, targets v1 (delegating releases), releases v1 with ``tags``, snapshot, timestamp."""
        self.make_root()
        self.make_targets({}, releases=True)
        self.make_releases(tags if tags is not None else {"v1": target_meta(1)})
        self.make_snapshot()
        self.make_timestamp()
        return self

    def refresh(self) -> None:
        """New snapshot and timestamp over the current documents."""
        self.make_snapshot()
        self.make_timestamp()

    def serve(self, fake: FakeServer) -> None:
        """Copy every version into a fake server's repository (current = latest made)."""
        repo = fake.repo(self.gun)
        for role, versions in self.history.items():
            repo.versions.setdefault(role, {}).update(versions)
        repo.current.update(self.docs)


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if isinstance(key, PrivateKey) else key

"""Build notary repositories in memory (every key held by the test) to serve crafted metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.client.fakeserver import FakeNotary
from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import ECDSA, ED25519, PrivateKey, PublicKey
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


def target_meta(digest_byte: int, length: int = 401) -> FileMeta:
    """A docker-style target (sha256 only)."""
    return FileMeta(length, {"sha256": bytes([digest_byte]) * 32})


@dataclass
class RepoBuilder:
    """Keys and the documents of every version, published into a FakeNotary."""

    gun: str = GUN
    now: datetime = NOW
    root_keys: list[PrivateKey] = field(default_factory=lambda: [PrivateKey.generate(ECDSA)])
    targets_keys: list[PrivateKey] = field(default_factory=lambda: [PrivateKey.generate(ECDSA)])
    snapshot_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate(ED25519))
    timestamp_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate(ED25519))
    releases_key: PrivateKey = field(default_factory=lambda: PrivateKey.generate(ECDSA))
    targets_threshold: int = 1
    versions: dict[str, int] = field(default_factory=dict)
    docs: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, dict[int, bytes]] = field(default_factory=dict)
    certs: list[PublicKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.certs = [make_root_public_key(k, self.gun, self.now - timedelta(days=1)) for k in self.root_keys]

    def _next(self, role: str) -> int:
        self.versions[role] = self.versions.get(role, 0) + 1
        return self.versions[role]

    def _keep(self, role: str, md: Metadata[object]) -> bytes:  # type: ignore[type-var]
        data = md.to_bytes()
        self.docs[role] = data
        self.history.setdefault(role, {})[md.signed.version] = data  # type: ignore[attr-defined]
        return data

    # -- documents ---------------------------------------------------------------------------------

    def make_root(self, sign_with: list[tuple[str, PrivateKey]] | None = None, expires: timedelta = timedelta(days=3650)) -> bytes:
        keys = {c.keyid: c for c in self.certs}
        tkeys = [k.public_key() for k in self.targets_keys]
        keys.update({k.keyid: k for k in tkeys})
        keys[self.snapshot_key.keyid] = self.snapshot_key.public_key()
        keys[self.timestamp_key.keyid] = self.timestamp_key.public_key()
        roles = {
            "root": RoleKeys([c.keyid for c in self.certs]),
            "targets": RoleKeys([k.keyid for k in tkeys], self.targets_threshold),
            "snapshot": RoleKeys([self.snapshot_key.keyid]),
            "timestamp": RoleKeys([self.timestamp_key.keyid]),
        }
        md: Metadata[Root] = Metadata(Root(self._next("root"), self.now + expires, keys=keys, roles=roles))
        for kid, key in sign_with if sign_with is not None else list(zip([c.keyid for c in self.certs], self.root_keys, strict=True)):
            md.sign(key, kid)
        return self._keep("root", md)

    def make_targets(self, targets: dict[str, FileMeta], *, releases: bool = True, expires: timedelta = timedelta(days=1095),
                     signers: list[PrivateKey] | None = None) -> bytes:
        dele = Delegations()
        if releases:
            pub = self.releases_key.public_key()
            dele = Delegations({pub.keyid: pub}, [DelegatedRole("targets/releases", [pub.keyid], 1, [""])])
        md: Metadata[Targets] = Metadata(Targets(self._next("targets"), self.now + expires, targets=dict(targets), delegations=dele))
        for k in signers if signers is not None else self.targets_keys:
            md.sign(k)
        return self._keep("targets", md)

    def make_releases(self, targets: dict[str, FileMeta], expires: timedelta = timedelta(days=1095)) -> bytes:
        md: Metadata[Targets] = Metadata(Targets(self._next("targets/releases"), self.now + expires, targets=dict(targets)))
        md.sign(self.releases_key)
        return self._keep("targets/releases", md)

    def make_snapshot(self, expires: timedelta = timedelta(days=1095), key: PrivateKey | None = None) -> bytes:
        meta = {r: FileMeta.from_bytes(d) for r, d in self.docs.items() if r not in ("snapshot", "timestamp")}
        md: Metadata[Snapshot] = Metadata(Snapshot(self._next("snapshot"), self.now + expires, meta=meta))
        md.sign(key or self.snapshot_key)
        return self._keep("snapshot", md)

    def make_timestamp(self, expires: timedelta = timedelta(days=14), key: PrivateKey | None = None,
                       snapshot: bytes | None = None) -> bytes:
        snap = snapshot if snapshot is not None else self.docs["snapshot"]
        md: Metadata[Timestamp] = Metadata(
            Timestamp(self._next("timestamp"), self.now + expires, meta={"snapshot": FileMeta.from_bytes(snap)})
        )
        md.sign(key or self.timestamp_key)
        return self._keep("timestamp", md)

    def initial(self, tags: dict[str, FileMeta] | None = None) -> RepoBuilder:
        """root v1, targets v1 (delegating releases), releases v1 with ``tags``, snapshot, timestamp."""
        self.make_root()
        self.make_targets({})
        self.make_releases(tags if tags is not None else {"v1": target_meta(1)})
        self.make_snapshot()
        self.make_timestamp()
        return self

    def refresh(self) -> None:
        """New snapshot and timestamp over the current documents."""
        self.make_snapshot()
        self.make_timestamp()

    def serve(self, fake: FakeNotary) -> None:
        """Copy every version into the fake server (current = latest made)."""
        repo = fake.repo(self.gun)
        for role, versions in self.history.items():
            repo.versions.setdefault(role, {}).update(versions)
        repo.current.update(self.docs)

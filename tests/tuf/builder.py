"""A tiny in-memory repository builder for tests: real keys, real signatures."""

from __future__ import annotations

from datetime import datetime, timedelta

from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import (
    DelegatedRole,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)


class RepoBuilder:
    """Builds and signs root/targets/snapshot/timestamp (+ delegations) for one GUN."""

    def __init__(self, gun: str, now: datetime) -> None:
        self.gun, self.now = gun, now
        self.root_keys: list[tuple[PrivateKey, PublicKey]] = []
        self.keys = {r: PrivateKey.generate("ecdsa") for r in ("targets", "snapshot", "timestamp")}
        self.root_threshold = 1
        self.add_root_key()
        self.root_version = 1
        self.delegation_keys: dict[str, PrivateKey] = {}
        #: the public key listed for a delegation, when not the bare key (e.g. a certificate)
        self.delegation_pubs: dict[str, PublicKey] = {}
        self.targets: dict[str, dict[str, FileMeta]] = {"targets": {}}
        self.delegations: dict[str, list[DelegatedRole]] = {"targets": []}
        self.versions = {"targets": 1, "snapshot": 1, "timestamp": 1}
        self.expiry = {"root": timedelta(days=3650), "targets": timedelta(days=1095),
                       "snapshot": timedelta(days=1095), "timestamp": timedelta(days=14)}

    def add_root_key(self) -> tuple[PrivateKey, PublicKey]:
        k = PrivateKey.generate("ecdsa")
        pair = (k, make_root_public_key(k, self.gun, self.now))
        self.root_keys.append(pair)
        return pair

    def root(self, signers: list[tuple[PrivateKey, PublicKey]] | None = None) -> bytes:
        keys = {pub.keyid: pub for _k, pub in self.root_keys}
        for k in self.keys.values():
            keys[k.keyid] = k.public_key()
        body = Root(self.root_version, self.now + self.expiry["root"], keys=keys, roles={
            "root": RoleKeys([p.keyid for _k, p in self.root_keys], self.root_threshold),
            **{r: RoleKeys([k.keyid]) for r, k in self.keys.items()},
        })
        md: Metadata[Root] = Metadata(body)
        for k, pub in signers if signers is not None else self.root_keys:
            md.sign(k, pub.keyid)
        return md.to_bytes()

    def add_target(self, name: str, data: bytes, role: str = "targets") -> None:
        self.targets.setdefault(role, {})[name] = FileMeta.from_bytes(data)

    def delegate(self, role: str, paths: list[str] | None = None, parent: str = "targets",
                 key: PrivateKey | None = None, pub: PublicKey | None = None) -> PrivateKey:
        key = key or PrivateKey.generate("ecdsa")
        self.delegation_keys[role] = key
        if pub is not None:
            self.delegation_pubs[role] = pub
        kid = (pub or key.public_key()).keyid
        self.delegations.setdefault(parent, []).append(DelegatedRole(role, [kid], 1, paths if paths is not None else [""]))
        self.targets.setdefault(role, {})
        self.delegations.setdefault(role, [])
        self.versions.setdefault(role, 1)
        return key

    def targets_doc(self, role: str = "targets", expired: bool = False, key: PrivateKey | None = None) -> bytes:
        dkeys = {}
        for dr in self.delegations.get(role, []):
            pub = self.delegation_pubs.get(dr.name, self.delegation_keys[dr.name].public_key())
            dkeys[pub.keyid] = pub
        exp = self.now - timedelta(seconds=1) if expired else self.now + self.expiry["targets"]
        body = Targets(self.versions[role], exp, targets=dict(self.targets.get(role, {})))
        body.delegations.keys = dkeys
        body.delegations.roles = list(self.delegations.get(role, []))
        md: Metadata[Targets] = Metadata(body)
        if key is None and role in self.delegation_pubs:
            md.sign(self.delegation_keys[role], self.delegation_pubs[role].keyid)
        else:
            md.sign(key or (self.keys["targets"] if role == "targets" else self.delegation_keys[role]))
        return md.to_bytes()

    def snapshot_doc(self, files: dict[str, bytes], expired: bool = False, key: PrivateKey | None = None) -> bytes:
        exp = self.now - timedelta(seconds=1) if expired else self.now + self.expiry["snapshot"]
        body = Snapshot(self.versions["snapshot"], exp, meta={r: FileMeta.from_bytes(b) for r, b in files.items()})
        md: Metadata[Snapshot] = Metadata(body)
        md.sign(key or self.keys["snapshot"])
        return md.to_bytes()

    def timestamp_doc(self, snapshot: bytes, expired: bool = False, key: PrivateKey | None = None) -> bytes:
        exp = self.now - timedelta(seconds=1) if expired else self.now + self.expiry["timestamp"]
        body = Timestamp(self.versions["timestamp"], exp, meta={"snapshot": FileMeta.from_bytes(snapshot)})
        md: Metadata[Timestamp] = Metadata(body)
        md.sign(key or self.keys["timestamp"])
        return md.to_bytes()

    def publish(self) -> dict[str, bytes]:
        """A consistent set of documents for the current state."""
        docs = {"root": self.root()}
        for role in self.targets:
            docs[role] = self.targets_doc(role)
        docs["snapshot"] = self.snapshot_doc({r: b for r, b in docs.items()})
        docs["timestamp"] = self.timestamp_doc(docs["snapshot"])
        return docs

"""Builds notary-style repositories with the trustbox core, for trust server tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import (
    DelegatedRole,
    Delegations,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
)
from trustbox.tuf.timefmt import utcnow

YEAR = timedelta(days=365)


def target(data: bytes) -> FileMeta:
    """FileMeta of a payload, as ``notary add`` writes it."""
    return FileMeta.from_bytes(data)


class Repo:
    """Client-side keys and documents of one GUN."""

    def __init__(self, gun: str, timestamp_key: PublicKey, snapshot_key: PublicKey | None = None,
                 now: datetime | None = None, root_keytype: str = "ecdsa") -> None:
        self.gun = gun
        self.now = now or utcnow()
        self.root_key = PrivateKey.generate(root_keytype)
        self.root_pub = make_root_public_key(self.root_key, gun, self.now)
        self.targets_key = PrivateKey.generate("ecdsa")
        self.client_snapshot_key: PrivateKey | None = None
        if snapshot_key is None:
            self.client_snapshot_key = PrivateKey.generate("ecdsa")
            snapshot_key = self.client_snapshot_key.public_key()
        self.snapshot_pub = snapshot_key
        self.timestamp_pub = timestamp_key
        self.root_version = 0
        self.extra_root_signers: list[tuple[PrivateKey, str]] = []
        self.docs: dict[str, bytes] = {}

    # -- root ---------------------------------------------------------------------------

    def root(self, version: int | None = None, expires: datetime | None = None,
             extra_keys: dict[str, PublicKey] | None = None, sign_with: list[tuple[PrivateKey, str]] | None = None,
             threshold: int = 1) -> bytes:
        """root.json listing the current keys, signed by the root key (and extra signers)."""
        self.root_version = version if version is not None else self.root_version + 1
        keys = {
            self.root_pub.keyid: self.root_pub,
            self.targets_key.public_key().keyid: self.targets_key.public_key(),
            self.snapshot_pub.keyid: self.snapshot_pub,
            self.timestamp_pub.keyid: self.timestamp_pub,
        }
        keys.update(extra_keys or {})
        roles = {
            "root": RoleKeys([self.root_pub.keyid], threshold),
            "targets": RoleKeys([self.targets_key.public_key().keyid]),
            "snapshot": RoleKeys([self.snapshot_pub.keyid]),
            "timestamp": RoleKeys([self.timestamp_pub.keyid]),
        }
        md: Metadata[Root] = Metadata(Root(version=self.root_version, expires=expires or self.now + 10 * YEAR,
                                           keys=keys, roles=roles))
        signers = sign_with if sign_with is not None else [(self.root_key, self.root_pub.keyid)]
        for key, kid in signers + self.extra_root_signers:
            md.sign(key, kid)
        data = md.to_bytes()
        self.docs["root"] = data
        return data

    def rotate_root_key(self) -> tuple[PrivateKey, str]:
        """Replace the root key; the next root() is signed by old and new key. Returns the old one."""
        old = (self.root_key, self.root_pub.keyid)
        self.root_key = PrivateKey.generate("ecdsa")
        self.root_pub = make_root_public_key(self.root_key, self.gun, self.now)
        self.extra_root_signers = [old]
        return old

    # -- targets ------------------------------------------------------------------------

    def targets(self, version: int, targets: dict[str, FileMeta] | None = None,
                delegations: list[tuple[str, PublicKey, list[str]]] | None = None,
                key: PrivateKey | None = None, role: str = "targets", expires: datetime | None = None,
                threshold: int = 1) -> bytes:
        """A targets (or delegation) document signed by ``key`` (default: the targets key)."""
        dkeys: dict[str, PublicKey] = {}
        droles = []
        for name, pub, paths in delegations or []:
            dkeys[pub.keyid] = pub
            droles.append(DelegatedRole(name, [pub.keyid], threshold, paths))
        md: Metadata[Targets] = Metadata(Targets(version=version, expires=expires or self.now + 3 * YEAR,
                                                 targets=dict(targets or {}),
                                                 delegations=Delegations(dkeys, droles)))
        md.sign(key or self.targets_key)
        data = md.to_bytes()
        self.docs[role] = data
        return data

    def snapshot(self, version: int, roles: dict[str, bytes] | None = None, key: PrivateKey | None = None,
                 expires: datetime | None = None) -> bytes:
        """A client-signed snapshot over ``roles`` (default: every doc made so far but snapshot)."""
        roles = roles if roles is not None else {k: v for k, v in self.docs.items() if k != "snapshot"}
        meta = {name: FileMeta.from_bytes(data) for name, data in roles.items()}
        md: Metadata[Snapshot] = Metadata(Snapshot(version=version, expires=expires or self.now + 3 * YEAR,
                                                   meta=meta))
        signer = key or self.client_snapshot_key
        assert signer is not None, "snapshot key is server-held"
        md.sign(signer)
        data = md.to_bytes()
        self.docs["snapshot"] = data
        return data


def root_listing(repo: Repo, root_keys: list[tuple[PrivateKey, PublicKey]], signers: list[int], **roles: str) -> bytes:
    """``repo``'s next root with these root certificates (signed by those at ``signers``) and,
    per role in ``roles``, the role's key listed under the given key ID instead of its own."""
    md = Metadata.parse(repo.root(), expect=Root)
    for _key, pub in root_keys:
        md.signed.keys[pub.keyid] = pub
    md.signed.roles["root"] = RoleKeys([pub.keyid for _key, pub in root_keys])
    for role, kid in roles.items():
        own = md.signed.roles[role].keyids[0]
        md.signed.keys[kid] = md.signed.keys.pop(own)
        md.signed.roles[role] = RoleKeys([kid])
    body: Metadata[Root] = Metadata(md.signed)
    for i in signers:
        body.sign(root_keys[i][0], root_keys[i][1].keyid)
    repo.docs["root"] = body.to_bytes()
    return repo.docs["root"]


def multipart(parts: dict[str, bytes], boundary: str = "trustboxboundary1234") -> tuple[bytes, str]:
    """A multipart body as the notary client sends it (field ``files``, filename = role)."""
    out = b""
    for name, data in parts.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def parse_key(body: bytes) -> PublicKey:
    """The public key of a ``.key`` response."""
    import json

    d: Any = json.loads(body)
    return PublicKey.from_dict(d)

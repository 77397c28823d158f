"""Shared helpers for trust server tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.helpers.notary_upload import multipart
from tests.helpers.simulator import RepositorySimulator, target
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import Metadata, RoleKeys, Root
from trustbox.tuf.timefmt import utcnow

GUN = "example.com/team/app"


def tuf(gun: str, name: str) -> str:
    """URL path of a TUF document."""
    return f"/v2/{gun}/_trust/tuf/{name}"


def post(client: Any, gun: str, parts: dict[str, bytes]) -> httpx.Response:
    """POST a multipart update."""
    body, ct = multipart(parts)
    r: httpx.Response = client.post(tuf(gun, ""), content=body, headers={"content-type": ct})
    return r


def new_repo(client: Any, gun: str = GUN, server_snapshot: bool = False) -> RepositorySimulator:
    """Keys for a new repo, with the server's timestamp (and maybe snapshot) key."""
    ts = parse_key(client.get(tuf(gun, "timestamp.key")).content)
    snap = parse_key(client.get(tuf(gun, "snapshot.key")).content) if server_snapshot else None
    return RepositorySimulator(gun, utcnow(), timestamp_key=ts, snapshot_key=snap)


def publish_new(client: Any, gun: str = GUN, server_snapshot: bool = False) -> RepositorySimulator:
    """Create and publish a repo with one target (root v1, targets v2, snapshot v2 like notary)."""
    repo = new_repo(client, gun, server_snapshot)
    parts = {"root": repo.make_root(), "targets": repo.make_targets({"v1": target(b"payload-1")}, version=2)}
    if not server_snapshot:
        parts["snapshot"] = repo.make_snapshot(version=2)
    r = post(client, gun, parts)
    assert r.status_code == 200, r.text
    return repo


def error(r: httpx.Response) -> dict[str, Any]:
    """The single error entry of an error response (checks envelope and content type)."""
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.content.endswith(b"\n")
    body = json.loads(r.content)
    assert list(body) == ["errors"] and len(body["errors"]) == 1
    entry: dict[str, Any] = body["errors"][0]
    return entry


def parse_key(body: bytes) -> PublicKey:
    """The public key of a ``.key`` response."""
    return PublicKey.from_dict(json.loads(body))


def root_listing(repo: RepositorySimulator, root_keys: list[tuple[PrivateKey, PublicKey]], signers: list[int],
                 **roles: str) -> bytes:
    """``repo``'s next root with these root certificates (signed by those at ``signers``) and,
    per role in ``roles``, the role's key listed under the given key ID instead of its own."""
    md = Metadata.parse(repo.make_root(), expect=Root)
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

"""Shared helpers for trust server tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.trustserver.ts_repo import Repo, multipart, parse_key, target

GUN = "example.com/team/app"


def tuf(gun: str, name: str) -> str:
    """URL path of a TUF document."""
    return f"/v2/{gun}/_trust/tuf/{name}"


def post(client: Any, gun: str, parts: dict[str, bytes]) -> httpx.Response:
    """POST a multipart update."""
    body, ct = multipart(parts)
    r: httpx.Response = client.post(tuf(gun, ""), content=body, headers={"content-type": ct})
    return r


def new_repo(client: Any, gun: str = GUN, server_snapshot: bool = False) -> Repo:
    """Keys for a new repo, with the server's timestamp (and maybe snapshot) key."""
    ts = parse_key(client.get(tuf(gun, "timestamp.key")).content)
    snap = parse_key(client.get(tuf(gun, "snapshot.key")).content) if server_snapshot else None
    return Repo(gun, ts, snap)


def publish_new(client: Any, gun: str = GUN, server_snapshot: bool = False) -> Repo:
    """Create and publish a repo with one target (root v1, targets v2, snapshot v2 like notary)."""
    repo = new_repo(client, gun, server_snapshot)
    parts = {"root": repo.root(), "targets": repo.targets(2, {"v1": target(b"payload-1")})}
    if not server_snapshot:
        parts["snapshot"] = repo.snapshot(2)
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

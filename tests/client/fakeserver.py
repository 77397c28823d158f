"""An in-memory notary server behind httpx.MockTransport, for unit and attack tests.

It serves current (``<role>.json``), versioned (``<N>.<role>.json``) and checksummed
(``<role>.<sha256>.json``) documents, ``<role>.key``, and accepts the multipart update,
regenerating snapshot (when it holds the snapshot key) and timestamp like notary-server.
Tests tamper with ``repo.current`` / ``repo.versions`` or set ``overrides`` to serve crafted bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from trustbox.tuf.keys import ED25519, PrivateKey
from trustbox.tuf.metadata import FileMeta, Metadata, Root, Snapshot, Timestamp

_PATH_RE = re.compile(r"^/v2/(?P<gun>.+?)/_trust/tuf/(?P<name>.*)$")


@dataclass
class FakeRepo:
    """Stored documents of one GUN."""

    versions: dict[str, dict[int, bytes]] = field(default_factory=dict)
    current: dict[str, bytes] = field(default_factory=dict)
    server_keys: dict[str, PrivateKey] = field(default_factory=dict)

    def store(self, role: str, data: bytes) -> None:
        """Store a document as the current version of its role."""
        version = Metadata.parse(data, role).signed.version
        self.versions.setdefault(role, {})[version] = data
        self.current[role] = data

    def find_checksum(self, role: str, hexdigest: str) -> bytes | None:
        """A stored document of ``role`` with this sha256."""
        for data in list(self.versions.get(role, {}).values()) + [self.current.get(role, b"")]:
            if data and hashlib.sha256(data).hexdigest() == hexdigest:
                return data
        return None


class FakeNotary:
    """Request handler for httpx.MockTransport."""

    def __init__(self, now: datetime | None = None) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.posts: list[list[tuple[str, bytes]]] = []
        #: (gun, request name) -> bytes or callable returning a Response, served instead of storage
        self.overrides: dict[tuple[str, str], bytes | Callable[[httpx.Request], httpx.Response]] = {}
        self.now = now or datetime(2026, 11, 23, tzinfo=UTC)

    def repo(self, gun: str) -> FakeRepo:
        """The repository of ``gun`` (created empty)."""
        return self.repos.setdefault(gun, FakeRepo())

    def load_dir(self, gun: str, directory: Path) -> FakeRepo:
        """Load a fixture directory saved under URL paths (``root.json``, ``3.targets.json``...)."""
        repo = self.repo(gun)
        for path in sorted(directory.rglob("*.json")):
            rel = path.relative_to(directory).as_posix()[: -len(".json")]
            m = re.match(r"^(\d+)\.(.+)$", rel)
            if m:
                repo.versions.setdefault(m.group(2), {})[int(m.group(1))] = path.read_bytes()
            else:
                repo.current[rel] = path.read_bytes()
        return repo

    def transport(self) -> httpx.MockTransport:
        """A transport serving this fake."""
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        """An httpx client talking to this fake."""
        return httpx.Client(transport=self.transport())

    # -- handler ------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if path == "/v2/":
            return httpx.Response(200, json={})
        m = _PATH_RE.match(path)
        if not m:
            return self._not_found()
        gun, name = m.group("gun"), m.group("name")
        override = self.overrides.get((gun, name))
        if override is not None:
            return override(request) if callable(override) else httpx.Response(200, content=override)
        if request.method == "POST" and name == "":
            return self._update(gun, request)
        repo = self.repos.get(gun)
        if name.endswith(".key"):
            return self._key(gun, name[: -len(".key")])
        if repo is None or not name.endswith(".json"):
            return self._not_found()
        stem = name[: -len(".json")]
        data: bytes | None
        vm = re.match(r"^(\d+)\.(.+)$", stem)
        cm = re.match(r"^(.+)\.([0-9a-f]{64})$", stem)
        if vm:
            data = repo.versions.get(vm.group(2), {}).get(int(vm.group(1)))
        elif cm:
            data = repo.find_checksum(cm.group(1), cm.group(2))
        else:
            data = repo.current.get(stem)
        if data is None:
            return self._not_found()
        return httpx.Response(200, content=data)

    @staticmethod
    def _not_found() -> httpx.Response:
        return httpx.Response(
            404,
            json={"errors": [{"code": "METADATA_NOT_FOUND", "message": "You have requested metadata that does not exist.", "detail": {}}]},
        )

    def _key(self, gun: str, role: str) -> httpx.Response:
        if role not in ("timestamp", "snapshot"):
            return self._not_found()
        repo = self.repo(gun)
        key = repo.server_keys.get(role)
        if key is None:
            key = repo.server_keys[role] = PrivateKey.generate(ED25519)
        return httpx.Response(200, json=key.public_key().to_dict())

    def _update(self, gun: str, request: httpx.Request) -> httpx.Response:
        parts = _parse_multipart(request)
        self.posts.append(parts)
        repo = self.repo(gun)
        for role, data in parts:
            repo.store(role, data)
        if "snapshot" not in dict(parts):
            self._server_snapshot(repo)
        self._server_timestamp(repo)
        return httpx.Response(200)

    def _server_snapshot(self, repo: FakeRepo) -> None:
        key = repo.server_keys["snapshot"]
        old = repo.current.get("snapshot")
        meta: dict[str, FileMeta] = {}
        version = 1
        if old is not None:
            snap = Metadata.parse(old, "snapshot").signed
            assert isinstance(snap, Snapshot)
            meta, version = dict(snap.meta), snap.version + 1
        for role, data in repo.current.items():
            if role not in ("snapshot", "timestamp"):
                meta[role] = FileMeta.from_bytes(data)
        md: Metadata[Snapshot] = Metadata(Snapshot(version, self.now + timedelta(days=1095), meta=meta))
        md.sign(key)
        repo.store("snapshot", md.to_bytes())

    def _server_timestamp(self, repo: FakeRepo) -> None:
        key = repo.server_keys["timestamp"]
        old = repo.current.get("timestamp")
        version = Metadata.parse(old, "timestamp").signed.version + 1 if old else 1
        md: Metadata[Timestamp] = Metadata(
            Timestamp(version, self.now + timedelta(days=14), meta={"snapshot": FileMeta.from_bytes(repo.current["snapshot"])})
        )
        md.sign(key)
        repo.store("timestamp", md.to_bytes())


def _parse_multipart(request: httpx.Request) -> list[tuple[str, bytes]]:
    ctype = request.headers["content-type"]
    boundary = ctype.split("boundary=", 1)[1].encode()
    body = request.read()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        m = re.search(rb'filename="([^"]*)"', head)
        assert m is not None
        assert b'name="files"' in head
        parts.append((m.group(1).decode(), content[: -2] if content.endswith(b"\r\n") else content))
    return parts


def root_of(data: bytes) -> Root:
    """Parse a root document's body."""
    body = Metadata.parse(data, "root").signed
    assert isinstance(body, Root)
    return body

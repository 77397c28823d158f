"""An in-memory OCI distribution registry for httpx.MockTransport.

Small but strict where the client's correctness matters: digests of uploads are checked, chunked
uploads must send contiguous ``Content-Range``s, manifests are served according to ``Accept``,
and a Bearer (or Basic) challenge can be switched on. ``corrupt_blob`` simulates a tampered
storage backend (it serves other bytes under the same digest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import httpx

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _err(status: int, code: str, msg: str = "") -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": msg or code.lower(), "detail": {}}]})


@dataclass
class FakeRegistry:
    """State and request handler of the fake registry."""

    host: str = "registry.test"
    auth: str | None = None  # None, "bearer" or "basic"
    users: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    uploads: dict[str, tuple[str, bytearray]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes served instead (tampering)
    plain_http_only: bool = False
    tags_page_size: int = 0

    def corrupt_blob(self, digest: str, data: bytes = b"Malicious data\n") -> None:
        """Serve ``data`` for ``digest`` from now on (like editing the registry's storage)."""
        self.served[digest] = data

    def transport(self) -> httpx.MockTransport:
        """A MockTransport answering for this registry."""
        return httpx.MockTransport(self.handle)

    # -- auth ------------------------------------------------------------------------------

    def _authorized(self, request: httpx.Request) -> bool:
        if self.auth is None:
            return True
        h = request.headers.get("authorization", "")
        if self.auth == "bearer":
            return h.startswith("Bearer tok-")
        if self.auth == "basic" and h.startswith("Basic "):
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            return self.users.get(user) == pw
        return False

    def _challenge(self, request: httpx.Request, repo: str | None) -> httpx.Response:
        if self.auth == "basic":
            header = f'Basic realm="{self.host}"'
        else:
            header = f'Bearer realm="https://auth.test/token",service="{self.host}"'
            if repo:
                header += f',scope="repository:{repo}:pull"'
        return httpx.Response(401, headers={"WWW-Authenticate": header}, json={"errors": [{"code": "UNAUTHORIZED"}]})

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        h = request.headers.get("authorization", "")
        if self.users:
            if not h.startswith("Basic "):
                return httpx.Response(401)
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            if self.users.get(user) != pw:
                return httpx.Response(401)
        scope = parse_qs(urlparse(str(request.url)).query).get("scope", [""])[0]
        return httpx.Response(200, json={"token": f"tok-{scope}"})

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests.append(request)
        url = request.url
        if url.host == "auth.test":
            return self._token(request)
        if self.plain_http_only and url.scheme == "https":
            raise httpx.ConnectError("TLS handshake failed: wrong version number", request=request)
        path = url.path
        if path == "/v2/" or path == "/v2":
            return self._challenge(request, None) if not self._authorized(request) else httpx.Response(200, json={})
        m = re.match(r"^/v2/(.+)/(blobs/uploads)/?(.*)$", path) or re.match(r"^/v2/(.+)/(blobs|manifests|tags)/(.*)$", path)
        if not m:
            return _err(404, "NOT_FOUND")
        repo, kind, rest = m.group(1), m.group(2), m.group(3)
        if not self._authorized(request):
            return self._challenge(request, repo)
        q = parse_qs(url.query.decode() if isinstance(url.query, bytes) else str(url.query))
        if kind == "blobs/uploads":
            return self._uploads(request, repo, rest, q)
        if kind == "blobs":
            return self._blob(request, repo, rest)
        if kind == "manifests":
            return self._manifest(request, repo, rest)
        return self._tags(request, repo, q)

    def _blob(self, request: httpx.Request, repo: str, digest: str) -> httpx.Response:
        if digest not in self.repo_blobs.get(repo, set()):
            return _err(404, "BLOB_UNKNOWN")
        data = self.served.get(digest, self.blobs[digest])
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(data))}
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=data)

    def _uploads(self, request: httpx.Request, repo: str, uid: str, q: dict[str, list[str]]) -> httpx.Response:
        if request.method == "POST":
            if "mount" in q and "from" in q:
                d = q["mount"][0]
                if d in self.repo_blobs.get(q["from"][0], set()):
                    self.repo_blobs.setdefault(repo, set()).add(d)
                    return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{d}", "Docker-Content-Digest": d})
            uid = uuid.uuid4().hex
            self.uploads[uid] = (repo, bytearray())
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=s{uid}", "Range": "0-0"})
        if uid not in self.uploads:
            return _err(404, "BLOB_UPLOAD_UNKNOWN")
        urepo, buf = self.uploads[uid]
        body = request.read()
        if request.method == "PATCH":
            cr = request.headers.get("content-range")
            if cr:
                start, end = (int(x) for x in cr.split("-"))
                if start != len(buf) or end - start + 1 != len(body):
                    return httpx.Response(416)
            buf += body
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=p{len(buf)}", "Range": f"0-{len(buf) - 1}"})
        if request.method == "PUT":
            buf += body
            d = q.get("digest", [""])[0]
            if _digest(bytes(buf)) != d:
                del self.uploads[uid]
                return _err(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            self.blobs[d] = bytes(buf)
            self.repo_blobs.setdefault(urepo, set()).add(d)
            del self.uploads[uid]
            return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{d}", "Docker-Content-Digest": d})
        if request.method == "DELETE":
            del self.uploads[uid]
            return httpx.Response(204)
        return _err(405, "UNSUPPORTED")

    def _manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            body = request.read()
            mt = request.headers.get("content-type", "")
            if mt not in MANIFEST_TYPES:
                return _err(400, "MANIFEST_INVALID", f"unsupported media type {mt}")
            doc = json.loads(body)
            for child in doc.get("manifests", []):
                if (repo, child["digest"]) not in self.manifests:
                    return _err(400, "MANIFEST_BLOB_UNKNOWN")
            for b in [doc.get("config")] + doc.get("layers", []):
                if b and b["digest"] not in self.repo_blobs.get(repo, set()):
                    return _err(400, "MANIFEST_BLOB_UNKNOWN", b["digest"])
            d = _digest(body)
            if ref.startswith("sha256:") and ref != d:
                return _err(400, "DIGEST_INVALID")
            self.manifests[(repo, d)] = (body, mt)
            if not ref.startswith("sha256:"):
                self.tags.setdefault(repo, {})[ref] = d
            return httpx.Response(201, headers={"Docker-Content-Digest": d, "Location": f"/v2/{repo}/manifests/{d}"})
        d = ref if ref.startswith("sha256:") else self.tags.get(repo, {}).get(ref, "")
        if (repo, d) not in self.manifests:
            return _err(404, "MANIFEST_UNKNOWN")
        if request.method == "DELETE":  # by digest: the manifest and every tag naming it
            if not ref.startswith("sha256:"):
                return _err(400, "UNSUPPORTED")
            del self.manifests[(repo, d)]
            self.tags[repo] = {t: v for t, v in self.tags.get(repo, {}).items() if v != d}
            return httpx.Response(202)
        body, mt = self.manifests[(repo, d)]
        accept = {a.split(";")[0].strip() for a in request.headers.get("accept", "").split(",")}
        if mt not in accept and mt != "application/vnd.docker.distribution.manifest.v2+json":
            # like distribution: an index is only served to clients that accept it
            return _err(404, "MANIFEST_UNKNOWN", "not acceptable")
        body = self.served.get(d, body)
        headers = {"Content-Type": mt, "Docker-Content-Digest": d, "Content-Length": str(len(body))}
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=body)

    def _tags(self, request: httpx.Request, repo: str, q: dict[str, list[str]]) -> httpx.Response:
        if repo not in self.tags and repo not in self.repo_blobs:
            return _err(404, "NAME_UNKNOWN")
        names = sorted(self.tags.get(repo, {}))
        last = q.get("last", [""])[0]
        names = [n for n in names if n > last]
        n = int(q.get("n", ["0"])[0] or 0) or self.tags_page_size or len(names) or 1
        page = names[:n]
        headers = {}
        if len(names) > n and self.tags_page_size:
            headers["Link"] = f'</v2/{repo}/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return httpx.Response(200, headers=headers, json={"name": repo, "tags": page})

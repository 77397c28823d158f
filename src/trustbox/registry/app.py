"""The registry's HTTP API (OCI distribution v1.1) as a Starlette application."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from trustbox.auth.middleware import AuthInfo
from trustbox.auth.scopes import PULL, repository, satisfies
from trustbox.errcode import go_json_line
from trustbox.errors import FormatError
from trustbox.httpnum import INT64_MIN, parse_decimal
from trustbox.oci.digest import Digest
from trustbox.oci.mediatypes import OCI_INDEX
from trustbox.registry import events
from trustbox.registry.access_control import auth_middleware
from trustbox.registry.blobs import BlobInfo, BlobStore, VerifyPolicy
from trustbox.registry.config import RegistryConfig
from trustbox.registry.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    Denied,
    DigestInvalid,
    ManifestInvalid,
    ManifestTimeout,
    NameUnknown,
    NotFound,
    PaginationInvalid,
    RangeInvalid,
    RegistryError,
    StorageFailure,
    TooLarge,
    Unavailable,
    Unsupported,
    UploadTimeout,
)
from trustbox.registry.events import (
    RequestRecord,
    blob_event,
    delete_event,
    manifest_event,
    remote_addr,
    source_record,
)
from trustbox.registry.health import StorageHealth
from trustbox.registry.layout import choose_layout
from trustbox.registry.manifests import ManifestStore, StoredManifest
from trustbox.registry.metrics import MetricsMiddleware, RegistryMetrics, open_sessions
from trustbox.registry.names import check_name, parse_digest
from trustbox.registry.notify import Notifier
from trustbox.registry.ranges import parse_byte_range, parse_content_range
from trustbox.registry.request import RegistryRequest, registry_request
from trustbox.registry.storage import StorageDriver
from trustbox.registry.uploads import Upload, UploadStore

if TYPE_CHECKING:
    from trustbox.registry.trustpolicy import TrustPolicy

log = logging.getLogger("trustbox.registry")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONFIG_ENV = "TRUSTBOX_REGISTRY_CONFIG_JSON"

Handler = Callable[[Request, str, str | None], Awaitable[Response]]


def error_response(err: RegistryError, head: bool = False) -> Response:
    """The spec's JSON error body with the error's status and headers."""
    body = b"" if head else go_json_line(err.body())
    headers = {API_VERSION[0]: API_VERSION[1], **err.headers}
    if head:
        headers["Content-Length"] = "0"
    return Response(body, status_code=err.status, media_type="application/json", headers=headers)


def _query(request: Request) -> RegistryRequest:
    """The request as parsed once for the auth layer and the handlers (see
    :mod:`trustbox.registry.request`)."""
    return registry_request(request.scope)


def _failed_verification(d: Digest) -> BlobUnknown:
    """404 ``BLOB_UNKNOWN`` for a blob whose stored content failed verification and was
    quarantined (the message is what clients print)."""
    return BlobUnknown(
        "stored blob failed digest verification (corrupted or tampered in storage); "
        "the registry quarantined it, push it again",
        detail={"digest": str(d), "reason": "verification failed"},
    )


def _session_owner(request: Request, repo: str) -> str:
    """Whose quota of upload sessions a new session counts against: the authenticated user,
    or the repository when there is no user (no auth, anonymous tokens)."""
    info = request.scope.get("state", {}).get("auth")
    if isinstance(info, AuthInfo) and info.user:
        return f"user:{info.user}"
    return f"repository:{repo}"


def _headers(**extra: str) -> dict[str, str]:
    h = {API_VERSION[0]: API_VERSION[1]}
    for k, v in extra.items():
        h[k.replace("_", "-")] = v
    return h


class Registry:
    """Request handlers over the blob, upload and manifest stores."""

    def __init__(self, config: RegistryConfig, driver: StorageDriver | None = None) -> None:
        self.config = config
        if driver is None:
            driver = config.open_driver()
        self.driver = driver
        self.auth_enabled = config.auth_section() is not None
        self.paths = choose_layout(driver, config.layout)
        self.blobs = BlobStore(driver, VerifyPolicy(config.verify_blobs), self.paths)
        self.uploads = UploadStore(self.blobs, config.max_upload_sessions, idle_timeout=config.upload_idle_timeout)
        self.manifests = ManifestStore(self.blobs, config.max_json_depth, config.manifest_urls_allow,
                                       config.manifest_urls_deny, config.manifest_urls_checked)
        self.notifier = Notifier.from_config(config.notifications, config.notify_queue_size)
        self.source = source_record(config.listen)
        #: None when no policy is configured: manifest reads then skip it entirely
        self.trust_policy: TrustPolicy | None = None
        if config.trust_policy:
            # loaded by registries with a trust policy only (it brings the trust client's HTTP stack)
            from trustbox.registry.trustpolicy import TrustPolicy, load_trust_policy

            self.trust_policy = TrustPolicy(load_trust_policy(Path(config.trust_policy)), driver, self.manifests)
        self._routes: dict[tuple[str, str], Handler] = {
            ("blobs/uploads", "POST"): self.upload_start,
            ("blobs/uploads", "GET"): self.upload_status,
            ("blobs/uploads", "PATCH"): self.upload_patch,
            ("blobs/uploads", "PUT"): self.upload_put,
            ("blobs/uploads", "DELETE"): self.upload_cancel,
            ("blobs", "GET"): self.blob_get,
            ("blobs", "HEAD"): self.blob_get,
            ("blobs", "DELETE"): self.blob_delete,
            ("manifests", "GET"): self.manifest_get,
            ("manifests", "HEAD"): self.manifest_get,
            ("manifests", "PUT"): self.manifest_put,
            ("manifests", "DELETE"): self.manifest_delete,
            ("tags/list", "GET"): self.tags_list,
            ("referrers", "GET"): self.referrers,
        }
        self.metrics = RegistryMetrics(lambda: self.blobs.quarantine_count, lambda: open_sessions(self.uploads.spool))
        if self.trust_policy is not None:
            self.metrics.declare_rules(rule.name for rule in self.trust_policy.rules)

    # --- URLs and events ----------------------------------------------------------------

    def _base_url(self, request: Request) -> str:
        """What Location headers and event URLs start with, before ``/v2/...``: the configured
        ``http.host``, nothing (relative URLs), or the URL the client used (``Forwarded`` /
        ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` as registry:2 reads them); then the prefix."""
        prefix = self.config.http_prefix
        if self.config.http_host:
            return self.config.http_host + prefix
        if self.config.relative_urls:
            return prefix
        h = request.headers
        scheme = request.url.scheme
        host = h.get("host", "")
        forwarded = h.get("forwarded")
        if forwarded:
            for part in forwarded.split(",")[0].split(";"):
                k, _, v = part.strip().partition("=")
                v = v.strip().strip('"')
                if k.lower() == "proto" and v:
                    scheme = v
                elif k.lower() == "host" and v:
                    host = v
        else:
            scheme = h.get("x-forwarded-proto") or scheme
            if h.get("x-forwarded-host"):
                host = h["x-forwarded-host"].split(",")[0].strip()
        return f"{scheme}://{host}{prefix}"

    def _record(self, request: Request) -> RequestRecord:
        """The ``request`` / ``actor`` of the events this request causes."""
        info = request.scope.get("state", {}).get("auth")
        client = request.scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else ""
        if client and ":" in client[0]:
            peer = f"[{client[0]}]:{client[1]}"
        h = request.headers
        return RequestRecord(
            id=str(uuid.uuid4()), addr=remote_addr(h.get("x-forwarded-for"), h.get("x-real-ip"), peer),
            host=h.get("host", ""), method=request.method, useragent=h.get("user-agent", ""),
            actor=info.user if isinstance(info, AuthInfo) else None, base_url=self._base_url(request),
        )

    def _blob_event(self, request: Request, action: str, name: str, d: Digest, size: int,
                    from_repo: str | None = None) -> None:
        if self.notifier.enabled:
            self.notifier.write(blob_event(action, self._record(request), self.source, name, d, size, from_repo))

    def _manifest_event(self, request: Request, action: str, name: str, m: StoredManifest | None,
                        body: bytes, media_type: str, tag: str | None) -> None:
        if self.notifier.enabled:
            self.notifier.write(manifest_event(action, self._record(request), self.source, name, body, media_type,
                                               tag, self.config.notify_include_references))

    def _delete_events(self, request: Request, name: str, d: Digest | None, tags: list[str]) -> None:
        if self.notifier.enabled:
            record = self._record(request)
            if d is not None:
                self.notifier.write(delete_event(record, self.source, name, d=d))
            for tag in tags:
                self.notifier.write(delete_event(record, self.source, name, tag=tag))

    # --- dispatch -----------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        """Route a request, turning every error into the spec's JSON error response."""
        method = request.method
        head = method == "HEAD"
        try:
            if self.config.read_only and method in _WRITE_METHODS:
                raise Denied("the registry is read-only")
            return await self._route(request, method)
        except RegistryError as err:
            return error_response(err, head)
        except ClientDisconnect:
            return Response(b"", status_code=400, headers=_headers())
        except OSError as exc:
            log.error("storage error on %s %s: %s", method, request.url.path, exc)
            return error_response(StorageFailure(f"storage error: {exc.strerror or exc}"), head)
        except Exception:
            log.exception("unexpected error on %s %s", method, request.url.path)
            return error_response(StorageFailure("internal error"), head)

    async def _route(self, request: Request, method: str) -> Response:
        path: str = request.scope["path"]  # request.url.path drops a trailing newline
        if path in ("/v2", "/v2/"):
            if method not in ("GET", "HEAD"):
                raise Unsupported(headers={"Allow": "GET, HEAD"})
            return Response(b"{}", media_type="application/json", headers=_headers())
        if path == "/v2/_catalog":
            if method not in ("GET", "HEAD"):
                raise Unsupported(headers={"Allow": "GET, HEAD"})
            return await self.catalog(request)
        route = _query(request).route
        if route is None:
            raise NotFound(detail={"path": path[:300]})
        name, kind, ref = route.name, route.kind, route.ref
        check_name(name)
        if kind in ("tags/list",) and ref is not None:
            raise NotFound(detail={"path": path[:300]})
        handler = self._routes.get((kind, method))
        if handler is None:
            allowed = sorted(meth for (k, meth) in self._routes if k == kind)
            raise Unsupported(f"method {method} not allowed here", headers={"Allow": ", ".join(allowed)})
        if kind in ("blobs", "manifests", "referrers") and not ref:
            raise NotFound(detail={"path": path[:300]})
        return await handler(request, name, ref)

    async def _body(self, request: Request, timeout_error: type[RegistryError] = UploadTimeout,
                    ) -> AsyncIterator[bytes]:
        """The request body, failing with ``timeout_error`` (408) when no data arrives for
        ``body_timeout`` seconds (a stalled or deliberately slow client)."""
        stream = request.stream()
        limit = self.config.body_timeout
        while True:
            try:
                # a timer per chunk, not a task as asyncio.wait_for makes (a 1 GiB upload
                # arrives in a few thousand chunks)
                async with asyncio.timeout(limit):
                    chunk = await stream.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise timeout_error(detail={"timeout_seconds": limit}) from None
            yield chunk

    def _check_delete(self) -> None:
        if not self.config.delete_enabled:
            raise Unsupported("deletes are disabled on this registry")

    # --- ping / catalog / tags ----------------------------------------------------------

    @staticmethod
    def _page(items: list[str], request: Request, base: str, default_n: int | None = None,
              ) -> tuple[list[str], dict[str, str]]:
        q = _query(request)
        last = q.get("last")
        if last:
            items = [i for i in items if i > last]
        n_text = q.get("n") if default_n is None else str(default_n)
        headers = _headers()
        if n_text is None or n_text == "":
            return items, headers
        try:
            # Go's strconv.Atoi as registry:2 (a sign is allowed); bounded to int64
            n = parse_decimal(n_text, min_value=INT64_MIN, signed=True)
        except FormatError:
            raise PaginationInvalid(detail={"n": n_text[:50]}) from None
        if n < 0:
            raise PaginationInvalid(detail={"n": n})
        page = items[:n]
        if n > 0 and len(items) > n:
            headers["Link"] = f'<{base}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
        return page, headers

    async def catalog(self, request: Request) -> Response:
        """GET /v2/_catalog with ``n`` / ``last`` pagination (with ``catalog.maxentries`` of a
        registry:2 configuration: pages of at most that many, a larger ``n`` refused)."""
        repos = await anyio.to_thread.run_sync(self.manifests.repositories_sync)
        cap = self.config.catalog_max_entries
        if cap:
            n_text = _query(request).get("n")
            try:
                n = parse_decimal(n_text, min_value=INT64_MIN, signed=True) if n_text else None
            except FormatError:
                n = None
            if n is not None and n > cap:
                raise PaginationInvalid(detail={"n": n})
            if n is None or n < 0:
                page, headers = self._page(repos, request, "/v2/_catalog", cap)
                return Response(go_json_line({"repositories": page}), media_type="application/json",
                                headers=headers)
        page, headers = self._page(repos, request, "/v2/_catalog")
        return Response(go_json_line({"repositories": page}), media_type="application/json", headers=headers)

    async def tags_list(self, request: Request, name: str, _ref: str | None) -> Response:
        """GET /v2/<name>/tags/list with ``n`` / ``last`` pagination."""
        tags = await self.manifests.tags(name)
        if not tags and not await self.manifests.repo_exists(name):
            raise NameUnknown(detail={"name": name})
        page, headers = self._page(tags, request, f"/v2/{name}/tags/list")
        body = go_json_line({"name": name, "tags": page})
        return Response(body, media_type="application/json", headers=headers)

    # --- blobs --------------------------------------------------------------------------

    async def _visible_blob(self, name: str, ref: str) -> BlobInfo:
        """The blob ``ref`` as linked in ``name``. Raises BlobUnknown when it is not linked there,
        and says why when its content was quarantined after failing verification."""
        d = parse_digest(ref)
        blob = await self.blobs.stat(name, d)
        if blob is None:
            if await self.blobs.is_linked(name, d) and await self.blobs.quarantined(d):
                raise _failed_verification(d)
            raise BlobUnknown(detail={"digest": str(d)})
        return blob

    async def _checked(self, blob: BlobInfo, full_read: bool) -> None:
        if self.blobs.needs_check(blob, full_read) and not await self.blobs.verify(blob):
            raise _failed_verification(blob.digest)

    async def blob_get(self, request: Request, name: str, ref: str | None) -> Response:
        """GET/HEAD /v2/<name>/blobs/<digest>, with single ``Range`` support."""
        assert ref is not None
        blob = await self._visible_blob(name, ref)
        headers = _headers(
            Docker_Content_Digest=str(blob.digest),
            ETag=f'"{blob.digest}"',
            Accept_Ranges="bytes",
            Cache_Control="max-age=31536000",
        )
        rng = request.headers.get("range")
        span = parse_byte_range(rng, blob.size) if rng else None
        if request.method == "HEAD":
            await self._checked(blob, full_read=False)
            headers["Content-Length"] = str(blob.size)
            self._blob_event(request, events.PULL, name, blob.digest, blob.size)
            return Response(b"", media_type="application/octet-stream", headers=headers)
        key = self.blobs.paths.blob_key(blob.digest)
        if span is not None:
            await self._checked(blob, full_read=False)
            start, length = span
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{blob.size}"
            headers["Content-Length"] = str(length)
            self._blob_event(request, events.PULL, name, blob.digest, blob.size)
            return StreamingResponse(
                self._iterate(key, start, length), status_code=206,
                media_type="application/octet-stream", headers=headers,
            )
        path = self.driver.local_path(key)
        await self._checked(blob, full_read=True)
        self._blob_event(request, events.PULL, name, blob.digest, blob.size)
        if path is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise BlobUnknown(detail={"digest": str(blob.digest)}) from None
            return _BlobFileResponse(path, stat_result=st, media_type="application/octet-stream", headers=headers)
        headers["Content-Length"] = str(blob.size)
        return StreamingResponse(
            self._iterate(key, 0, blob.size), media_type="application/octet-stream", headers=headers
        )

    async def _iterate(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        it = self.driver.iter_range(key, start, length)
        sentinel = b""
        while True:
            chunk = await anyio.to_thread.run_sync(next, it, sentinel)
            if not chunk:
                break
            yield chunk

    async def blob_delete(self, request: Request, name: str, ref: str | None) -> Response:
        """DELETE /v2/<name>/blobs/<digest>: unlink from the repository (202)."""
        assert ref is not None
        self._check_delete()
        d = parse_digest(ref)
        if not await self.blobs.unlink(name, d):
            raise BlobUnknown(detail={"digest": str(d)})
        self._delete_events(request, name, d, [])
        return Response(b"", status_code=202, headers=_headers(Content_Length="0", Docker_Content_Digest=str(d)))

    # --- uploads ------------------------------------------------------------------------

    def _upload_headers(self, request: Request, up: Upload, status: int = 202) -> Response:
        end = up.size - 1 if up.size > 0 else 0
        return Response(
            b"",
            status_code=status,
            headers=_headers(
                Location=f"{self._base_url(request)}/v2/{up.repo}/blobs/uploads/{up.id}",
                Range=f"0-{end}",
                Docker_Upload_UUID=up.id,
                Content_Length="0",
            ),
        )

    def _created(self, request: Request, name: str, d: Digest) -> Response:
        return Response(
            b"",
            status_code=201,
            headers=_headers(Location=f"{self._base_url(request)}/v2/{name}/blobs/{d}", Docker_Content_Digest=str(d),
                             Content_Length="0"),
        )

    async def upload_start(self, request: Request, name: str, ref: str | None) -> Response:
        """POST /v2/<name>/blobs/uploads/: start, monolithic (``digest``) or cross-repository
        mount (``mount`` and ``from``: 201 only when the blob is in ``from`` and the caller may
        pull ``from``; otherwise, and without ``from``, an upload starts, as registry:2 does)."""
        if ref:
            raise NotFound(detail={"path": request.url.path[:300]})
        q = _query(request)
        mount, source, digest_param = q.get("mount"), q.get("from"), q.get("digest")
        if mount and source:
            d = parse_digest(mount)
            if await self._mountable(request, source, d):
                await self.blobs.link(name, d)
                blob = await self.blobs.stat(name, d)
                self._blob_event(request, events.MOUNT, name, d, blob.size if blob else 0, source)
                return self._created(request, name, d)
        want = parse_digest(digest_param) if digest_param else None
        up = await self.uploads.create(name, owner=_session_owner(request, name), transient=want is not None)
        if want is None:
            return self._upload_headers(request, up)
        async with self.uploads.lock(up.id):
            try:
                up = await self.uploads.append(
                    up, self._body(request), self._declared_length(request), publish=False
                )
            except BaseException:
                await self.uploads.cancel(up)
                raise
            size = await self.uploads.commit(up, want)
        self._blob_event(request, events.PUSH, name, want, size)
        return self._created(request, name, want)

    async def _mountable(self, request: Request, source: str, d: Digest) -> bool:
        """Whether ``d`` may be mounted from ``source``: the caller may pull ``source`` (the
        auth layer checked it already; this holds even if a layer above it changes) and the
        blob is linked there. Never raises: an unusable source just means no mount."""
        if not self._may_pull(request, source):
            return False
        try:
            check_name(source)
            return await self.blobs.stat(source, d) is not None
        except RegistryError:
            return False

    def _may_pull(self, request: Request, repo: str) -> bool:
        """True when the request's credentials grant ``pull`` on ``repo`` (always without auth)."""
        info = request.scope.get("state", {}).get("auth")
        if not isinstance(info, AuthInfo):
            return not self.auth_enabled
        return not satisfies(info.granted, [repository(repo, PULL)])

    @staticmethod
    def _declared_length(request: Request, error: type[RegistryError] = BlobUploadInvalid) -> int | None:
        """The ``Content-Length`` header as a number, None when absent.

        Raises:
            RegistryError: ``error`` (400) when the header is not plain decimal digits or is
                beyond int64 (Go's net/http refuses those with 400 before registry:2 sees them).
        """
        cl = request.headers.get("content-length")
        if cl is None:
            return None
        try:
            return parse_decimal(cl)
        except FormatError:
            raise error(f"invalid Content-Length {cl[:50]!r}", detail={"contentLength": cl[:50]}) from None

    def _chunk_length(self, request: Request, up: Upload) -> int | None:
        cr = request.headers.get("content-range")
        if cr is None:
            return None
        start, end = parse_content_range(cr)
        if start != up.size:
            raise RangeInvalid(
                f"chunk starts at {start} but the upload has {up.size} bytes",
                detail={"start": start, "size": up.size},
                headers={
                    "Location": f"{self.config.http_prefix}/v2/{up.repo}/blobs/uploads/{up.id}",
                    "Range": f"0-{max(up.size - 1, 0)}",
                    "Docker-Upload-UUID": up.id,
                },
            )
        return end - start + 1

    async def upload_status(self, request: Request, name: str, ref: str | None) -> Response:
        """GET /v2/<name>/blobs/uploads/<uuid>: progress (204 with ``Range``)."""
        up = await self.uploads.get(name, ref or "")
        return self._upload_headers(request, up, status=204)

    async def upload_patch(self, request: Request, name: str, ref: str | None) -> Response:
        """PATCH /v2/<name>/blobs/uploads/<uuid>: append a chunk (in-order ``Content-Range``)."""
        up = await self.uploads.get(name, ref or "")
        async with self.uploads.lock(up.id):
            up = await self.uploads.get(name, up.id)
            expected = self._chunk_length(request, up)
            up = await self.uploads.append(up, self._body(request), expected)
        return self._upload_headers(request, up)

    async def upload_put(self, request: Request, name: str, ref: str | None) -> Response:
        """PUT /v2/<name>/blobs/uploads/<uuid>?digest=: optional last chunk, then commit (201)."""
        up = await self.uploads.get(name, ref or "")
        digest_param = _query(request).get("digest")
        if not digest_param:
            raise DigestInvalid("digest parameter missing", detail={"digest": ""})
        want = parse_digest(digest_param)
        async with self.uploads.lock(up.id):
            up = await self.uploads.get(name, up.id)
            expected = self._chunk_length(request, up)
            if expected is None:
                expected = self._declared_length(request)
            up = await self.uploads.append(up, self._body(request), expected, publish=False)
            size = await self.uploads.commit(up, want)
        self._blob_event(request, events.PUSH, name, want, size)
        return self._created(request, name, want)

    async def upload_cancel(self, request: Request, name: str, ref: str | None) -> Response:
        """DELETE /v2/<name>/blobs/uploads/<uuid>: cancel (204)."""
        up = await self.uploads.get(name, ref or "")
        await self.uploads.cancel(up)
        return Response(b"", status_code=204, headers=_headers())

    # --- manifests ----------------------------------------------------------------------

    async def manifest_get(self, request: Request, name: str, ref: str | None) -> Response:
        """GET/HEAD /v2/<name>/manifests/<reference>: served in its own media type."""
        assert ref is not None
        m = await self.manifests.get(name, ref)
        if self.trust_policy is not None:
            try:
                await self.trust_policy.authorize(name, ref, m)
            except Denied as err:
                rule = err.detail.get("rule") if isinstance(err.detail, dict) else None
                if isinstance(rule, str):
                    self.metrics.policy_refused(rule)
                raise
        self._manifest_event(request, events.PULL, name, m, m.body, m.media_type, None if ":" in ref else ref)
        headers = _headers(Docker_Content_Digest=str(m.digest), ETag=f'"{m.digest}"')
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(m.body))
            return Response(b"", media_type=m.media_type, headers=headers)
        return Response(m.body, media_type=m.media_type, headers=headers)

    async def _read_manifest_body(self, request: Request) -> bytes:
        limit = self.config.max_manifest_size
        declared = self._declared_length(request, ManifestInvalid)
        if declared is not None and declared > limit:
            raise TooLarge(f"manifest is larger than {limit} bytes", detail={"limit": limit})
        buf = bytearray()
        async for chunk in self._body(request, ManifestTimeout):
            buf += chunk
            if len(buf) > limit:
                raise TooLarge(f"manifest is larger than {limit} bytes", detail={"limit": limit})
        return bytes(buf)

    async def manifest_put(self, request: Request, name: str, ref: str | None) -> Response:
        """PUT /v2/<name>/manifests/<reference>[?tag=..]: validate, check references, store (201)."""
        assert ref is not None
        body = await self._read_manifest_body(request)
        extra_tags = _query(request).getlist("tag") if ":" in ref else []
        d, parsed = await self.manifests.put(name, ref, body, request.headers.get("content-type"), extra_tags)
        tag = ref if ":" not in ref else (extra_tags[0] if extra_tags else None)
        self._manifest_event(request, events.PUSH, name, None, body, parsed.media_type, tag)
        headers = _headers(
            Location=f"{self._base_url(request)}/v2/{name}/manifests/{d}", Docker_Content_Digest=str(d),
            Content_Length="0",
        )
        if parsed.subject is not None:
            headers["OCI-Subject"] = str(parsed.subject.digest)
        if extra_tags:
            headers["OCI-Tag"] = ", ".join(extra_tags)
        return Response(b"", status_code=201, headers=headers)

    async def manifest_delete(self, request: Request, name: str, ref: str | None) -> Response:
        """DELETE /v2/<name>/manifests/<reference>: by digest, or untag by tag (202)."""
        assert ref is not None
        self._check_delete()
        untagged = await self.manifests.delete(name, ref)
        self._delete_events(request, name, parse_digest(ref) if ":" in ref else None, untagged)
        return Response(b"", status_code=202, headers=_headers(Content_Length="0"))

    # --- referrers ----------------------------------------------------------------------

    async def referrers(self, request: Request, name: str, ref: str | None) -> Response:
        """GET /v2/<name>/referrers/<digest>[?artifactType=]: an OCI image index."""
        assert ref is not None
        subject = parse_digest(ref)
        artifact_type = _query(request).get("artifactType") or None
        entries = await self.manifests.referrers(name, subject, artifact_type)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        headers = _headers()
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(go_json_line(index), media_type=OCI_INDEX, headers=headers)


class _BlobFileResponse(FileResponse):
    """FileResponse without Starlette's own Range handling (ranges are handled before)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(k, v) for (k, v) in scope.get("headers", []) if k != b"range"]
        await super().__call__({**scope, "headers": headers}, receive, send)


class _AnyMethodRoute(Route):
    """A route that matches every HTTP method: the handlers answer unknown methods themselves
    (405 UNSUPPORTED with the JSON error body), instead of Starlette's plain-text 405."""

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        super().__init__(path, endpoint)
        self.methods = None  # Starlette: no method check in matches() and handle()


class _FrontDoor:
    """What registry:2's router does before a handler runs: the ``http.prefix`` the API is
    served under (stripped; other paths 404), the ``http.headers`` added to every response,
    and the storage health check (503 ``UNAVAILABLE`` while it fails)."""

    def __init__(self, app: Any, prefix: str, headers: dict[str, list[str]], health: StorageHealth | None,
                 threads: int = 0) -> None:
        self.app = app
        self.threads = threads  # registry:2's storage.filesystem.maxthreads: worker threads for storage
        self.prefix = prefix
        self.extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, vs in headers.items() for v in vs]
        self.health = health

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.threads:
            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
            self.threads = 0
        if self.extra:
            inner_send = send

            async def send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *self.extra]}
                await inner_send(message)
        head = scope.get("method") == "HEAD"
        if self.health is not None and not self.health.healthy:
            await error_response(Unavailable(detail="health check failed: please see /debug/health"), head)(
                scope, receive, send)
            return
        if self.prefix:
            path: str = scope.get("path", "")
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                await error_response(NotFound(detail={"path": path[:300]}), head)(scope, receive, send)
                return
            scope = {**scope, "path": path[len(self.prefix):] or "/",
                     "root_path": scope.get("root_path", "") + self.prefix}
            if "raw_path" in scope and scope["raw_path"]:
                scope["raw_path"] = scope["raw_path"][len(self.prefix):] or b"/"
        await self.app(scope, receive, send)


def create_app(config: RegistryConfig, driver: StorageDriver | None = None) -> Starlette:
    """The registry ASGI application for ``config`` (optionally on an explicit driver)."""
    registry = Registry(config, driver)

    async def not_found(request: Request) -> Response:
        return error_response(NotFound(detail={"path": request.url.path[:300]}), request.method == "HEAD")

    app = Starlette(
        routes=[
            _AnyMethodRoute("/v2", registry.dispatch),
            _AnyMethodRoute("/v2/{rest:path}", registry.dispatch),
            _AnyMethodRoute("/{rest:path}", not_found),
        ],
        middleware=[
            Middleware(MetricsMiddleware, metrics=registry.metrics),
            Middleware(_FrontDoor, prefix=config.http_prefix, headers=config.http_headers,
                       health=StorageHealth(registry.driver, config.health_interval, config.health_threshold)
                       if config.health_interval > 0 else None, threads=config.storage_max_threads),
            *auth_middleware(config),
        ],
    )
    app.state.registry = registry

    async def unmatched(scope: Any, receive: Any, send: Any) -> None:
        # paths no route pattern matches (e.g. a percent-encoded newline): the JSON 404 too
        response = error_response(NotFound(detail={"path": str(scope.get("path", ""))[:300]}),
                                  scope.get("method") == "HEAD")
        await response(scope, receive, send)

    app.router.default = unmatched
    return app


def create_app_from_env() -> Starlette:
    """App factory for worker processes: the config comes as JSON in TRUSTBOX_REGISTRY_CONFIG_JSON."""
    text = os.environ.get(CONFIG_ENV)
    config = RegistryConfig.from_json(text) if text else RegistryConfig()
    return create_app(config)

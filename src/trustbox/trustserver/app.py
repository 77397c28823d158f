"""The Notary v1 HTTP API (notary-server 0.7 routes) as a plain ASGI application.

GETs of metadata are answered from an in-memory cache of complete responses when possible
(see :mod:`trustbox.trustserver.cache`); everything touching the database or doing crypto
runs in a thread pool, except document reads from a SQLite file (microseconds, never waiting
for a lock in WAL mode), which run on the event loop unless they would re-sign. Routes are tried in upstream's registration order; unmatched requests
get ``404 METADATA_NOT_FOUND``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from trustbox.errcode import INVALID_GUN, MALFORMED_UPLOAD, METADATA_NOT_FOUND, UNKNOWN, go_json
from trustbox.errors import FormatError
from trustbox.httpnum import NumberRangeError, parse_decimal
from trustbox.trustserver.cache import CachedResponse, PostgresListener, ResponseCache
from trustbox.trustserver.config import ServerConfig
from trustbox.trustserver.errors import BODY_TIMEOUT, EMPTY, TOO_LARGE, ServerError
from trustbox.trustserver.inventory import InventoryCache
from trustbox.trustserver.metrics import CountingSigner, Metrics
from trustbox.trustserver.service import Document, ResignNeeded, TrustService, key_json
from trustbox.trustserver.signer import LocalSigner
from trustbox.trustserver.storage import WriteResult
from trustbox.trustserver.upload import MalformedUpload, boundary_of, parse_multipart
from trustbox.trustserver.webpage import PREFIX as UI_PREFIX
from trustbox.trustserver.webpage import WebPage, ui_route
from trustbox.tuf.timefmt import format_http_date, utcnow

log = logging.getLogger("trustbox.trustserver")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

_ROLE = r"root|targets(?:/[^/\s]+)*|snapshot|timestamp"
_GUN = r"[^*]+"
_TUF = rf"^/v2/(?P<gun>{_GUN})/_trust/tuf/"
R_UPDATE = re.compile(_TUF + r"$")
R_BY_HASH = re.compile(
    _TUF + rf"(?P<role>{_ROLE})\.(?P<checksum>[a-fA-F0-9]{{64}}|[a-fA-F0-9]{{96}}|[a-fA-F0-9]{{128}})\.json$"
)
R_BY_VERSION = re.compile(_TUF + rf"(?P<version>[1-9]*[0-9]+)\.(?P<role>{_ROLE})\.json$")
R_CURRENT = re.compile(_TUF + rf"(?P<role>{_ROLE})\.json$")
R_KEY = re.compile(_TUF + r"(?P<role>snapshot|timestamp)\.key$")
R_GUN_FEED = re.compile(rf"^/v2/(?P<gun>{_GUN})/_trust/changefeed$")

#: GUN syntax accepted by trustbox (stricter than upstream's "anything but *")
R_VALID_GUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*(?:/[A-Za-z0-9._:@+-]+)*$")
MAX_GUN = 255

CT_TEXT = (b"content-type", b"text/plain; charset=utf-8")
CT_JSON = (b"content-type", b"application/json; charset=utf-8")


def parse_version(text: str) -> int:
    """The version of a ``<version>.<role>.json`` path, as upstream's ``strconv.Atoi`` (int64).

    Raises:
        ServerError: ``METADATA_NOT_FOUND`` (404) wrapping Go's ``*NumError`` as notary-server
            does, for a number beyond int64.
    """
    try:
        return parse_decimal(text)
    except FormatError:
        raise ServerError(METADATA_NOT_FOUND, {"Func": "Atoi", "Num": text, "Err": EMPTY}) from None


class MethodNotAllowed(Exception):
    """A method no route accepts (upstream: 405 with an empty body)."""


def gun_problem(gun: str) -> str | None:
    """Why ``gun`` is not acceptable, or None."""
    if len(gun) > MAX_GUN:
        return f"GUN longer than {MAX_GUN} characters"
    if not R_VALID_GUN.match(gun):
        return "GUN contains characters outside [A-Za-z0-9._:@+-/] or empty path segments"
    if any(seg in (".", "..") for seg in gun.split("/")):
        return "GUN contains '.' or '..' path segments"
    return None


def cache_control(max_age: int, must_revalidate: bool) -> list[tuple[bytes, bytes]]:
    """Upstream's cache headers for a 200 metadata response."""
    if max_age <= 0:
        return [(b"cache-control", b"max-age=0, no-cache, no-store"), (b"pragma", b"no-cache")]
    value = f"public, max-age={max_age}, s-maxage={max_age}"
    if must_revalidate:
        value += ", must-revalidate"
    return [(b"cache-control", value.encode())]


class TrustServerApp:
    """ASGI callable serving one :class:`TrustService`."""

    def __init__(self, service: TrustService, *, threads: int = 8) -> None:
        self.service = service
        self.config: ServerConfig = service.config
        self.metrics = Metrics()
        storage = service.storage
        if service.clock is utcnow:
            self.cache = ResponseCache()  # time.time: cheapest on the hot path
        else:
            self.cache = ResponseCache(now=lambda: service.clock().timestamp())
        self.listener: PostgresListener | None = None
        self._probe_close: Callable[[], None] | None = None
        if storage.dialect == "sqlite" and storage.sqlite_file is not None:
            from trustbox.trustserver.storage import SQLiteChangeProbe

            probe = SQLiteChangeProbe(storage.sqlite_file)
            self.cache.external_check = probe.changed
            self._probe_close = probe.close
        elif storage.dialect == "postgresql":
            self.listener = PostgresListener(
                storage.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                storage.channel,
                self.cache,
                storage.sender_id,
            )
            self.cache.external_check = self.listener.maybe_changed
        elif storage.dialect == "mysql":
            # MySQL has no change notification: another process (a worker, a replica on the same
            # database) may publish or delete at any time, so every GET reads the database, as
            # notary-server does
            self.cache.enabled = False
        #: Current documents (timestamp.json, ...) are cached in memory unless several processes
        #: share a PostgreSQL database: a NOTIFY reaches the other processes a moment after the
        #: writer's POST returns, so they could serve the old version for that moment. There the
        #: current documents are read from the database on every GET (immutable versioned and
        #: checksummed documents stay cached) unless --pg-cache-current trades that for speed.
        #: On MySQL nothing is cached (no change notification).
        self._cache_current = storage.dialect == "sqlite" or (
            storage.dialect == "postgresql" and self.config.pg_cache_current
        )
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="trustbox-trust")
        #: document reads run on the event loop (SQLite file: no lock waits for readers in WAL mode)
        self._inline_reads = storage.fast_reads
        #: small updates too, when signing is in-process (a remote signer means network waits)
        self._inline_updates = storage.fast_reads and isinstance(service.signer, LocalSigner)
        # metrics: count server signatures; expiry gauges and the web page share one inventory cache
        service.signer = CountingSigner(service.signer, self.metrics.signed)
        self.inventory = InventoryCache(storage)
        self.webpage = WebPage(
            storage, self.inventory, service.clock, warn_days=self.config.ui_warn_days,
            registry_url=self.config.ui_registry_url, registry_ca=self.config.ui_registry_ca,
            gun_problem=self._gun_refusal, server_key=service.signer.latest_key,
        )
        self._current_cc = cache_control(self.config.current_max_age, True)
        self._consistent_cc = cache_control(self.config.consistent_max_age, False)
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start background work (PostgreSQL change listener). Idempotent."""
        if self._started:
            return
        self._started = True
        if self.listener is not None:
            self.listener.start()

    def close(self) -> None:
        """Stop background work and release resources."""
        if self.listener is not None:
            self.listener.stop()
        if self._probe_close is not None:
            self._probe_close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.service.storage.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # -- ASGI entry ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            if scope["method"] == "GET":
                hit = self.cache.get(scope["path"])
                if hit is not None:
                    t0 = time.perf_counter()
                    await send({"type": "http.response.start", "status": 200, "headers": hit.headers})
                    await send({"type": "http.response.body", "body": hit.body})
                    self.metrics.observe("GetRoleCached", 200, time.perf_counter() - t0)
                    return
            await self._handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- RSGI entry (granian's native interface: less per-request overhead than ASGI) ---------

    def __rsgi_init__(self, loop: Any) -> None:
        """RSGI start-up hook."""
        self.start()

    def __rsgi_del__(self, loop: Any) -> None:
        """RSGI shutdown hook."""
        self.close()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """RSGI entry point: cached GETs directly, everything else through the ASGI handler."""
        if scope.proto != "http":
            return
        method = scope.method
        if method == "GET":
            hit = self.cache.get(scope.path)
            if hit is not None:
                t0 = time.perf_counter()
                protocol.response_bytes(200, hit.str_headers, hit.body)
                self.metrics.observe("GetRoleCached", 200, time.perf_counter() - t0)
                return
        asgi_scope: Scope = {
            "type": "http",
            "method": method,
            "path": scope.path,
            "query_string": scope.query_string.encode("latin-1"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()],
        }
        chunks = protocol.__aiter__()

        async def receive() -> dict[str, Any]:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": bytes(chunk), "more_body": True}

        start: dict[str, Any] = {}

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                start.update(msg)
            else:
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
                protocol.response_bytes(start.get("status", 500), headers, msg.get("body", b""))

        await self._handle(asgi_scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as exc:  # startup failure must be reported, not raised
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.start()
        t0 = time.perf_counter()
        handler = "NotFound"
        status = 500
        try:
            handler, status, headers, body = await self._dispatch(scope, receive)
        except ServerError as exc:
            status, headers, body = exc.status, [CT_JSON], exc.body()
            if scope["method"] == "POST" and R_UPDATE.match(scope["path"]):
                self.metrics.update_rejected(exc.code.code)
        except MethodNotAllowed:
            status, headers, body = 405, [], b""
        except Exception:
            log.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
            status, headers, body = 500, [CT_JSON], UNKNOWN.body()
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe(handler, status, time.perf_counter() - t0)

    # -- routing ------------------------------------------------------------------------

    def _gun_refusal(self, gun: str) -> str | None:
        """Why this server refuses ``gun`` (syntax, configured prefixes), or None."""
        problem = gun_problem(gun)
        prefixes = self.config.gun_prefixes
        if problem is None and prefixes and not any(gun.startswith(p) for p in prefixes):
            problem = f"Require GUNs with prefix: [{' '.join(prefixes)}]"
        return problem

    def _check_gun(self, gun: str, update_route: bool) -> None:
        problem = self._gun_refusal(gun)
        if problem is not None:
            if update_route:
                raise ServerError(INVALID_GUN, problem)
            raise ServerError(METADATA_NOT_FOUND)

    async def _dispatch(
        self, scope: Scope, receive: Receive
    ) -> tuple[str, int, list[tuple[bytes, bytes]], bytes]:
        method: str = scope["method"]
        path: str = scope["path"]
        if method == "GET":
            if path == "/v2/":
                return "Ping", 200, [CT_TEXT], b"{}"
            m = R_BY_HASH.match(path)
            if m:
                self._check_gun(m["gun"], False)
                return await self._get(path, m["gun"], m["role"], "GetRoleByHash", checksum=m["checksum"].lower())
            m = R_BY_VERSION.match(path)
            if m:
                self._check_gun(m["gun"], False)
                version = parse_version(m["version"])
                return await self._get(path, m["gun"], m["role"], "GetRoleByVersion", version=version)
            m = R_CURRENT.match(path)
            if m:
                self._check_gun(m["gun"], False)
                return await self._get(path, m["gun"], m["role"], "GetRole")
            m = R_KEY.match(path)
            if m:
                self._check_gun(m["gun"], False)
                key = await self._run(self.service.get_key, m["gun"], m["role"])
                return "GetKey", 200, [CT_TEXT], go_json(key_json(key))
            m = R_GUN_FEED.match(path)
            if m:
                self._check_gun(m["gun"], False)
                body = await self._run(self.service.changes, scope.get("query_string", b""), m["gun"])
                return "Changefeed", 200, [CT_TEXT], body
            if path == "/v2/_trust/changefeed":
                body = await self._run(self.service.changes, scope.get("query_string", b""), None)
                return "Changefeed", 200, [CT_TEXT], body
            if path == "/_notary_server/health":
                ok = await self._run(self.service.storage.healthy)
                if ok:
                    return "Health", 200, [CT_JSON], b"{}"
                return "Health", 503, [CT_JSON], b'{"storage":"database is unreachable"}'
            if path == "/metrics":
                body = await self._run(self._metrics_page)
                return "Metrics", 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], body
            if path.startswith(UI_PREFIX) or path == UI_PREFIX.rstrip("/"):
                status, headers, body = await self._run(ui_route, self.webpage, path, _authorization(scope))
                return "WebPage", status, headers, body
        elif method == "POST":
            m = R_UPDATE.match(path)
            if m:
                self._check_gun(m["gun"], True)
                await self._update(scope, receive, m["gun"])
                self.metrics.update_accepted()
                return "UpdateTUF", 200, [], b""
            m = R_KEY.match(path)
            if m:
                self._check_gun(m["gun"], False)
                key = await self._run(self.service.rotate_key, m["gun"], m["role"])
                return "RotateKey", 200, [CT_TEXT], go_json(key_json(key))
        elif method not in ("PUT", "HEAD", "DELETE"):
            # gorilla/mux: a path every route pattern matches but no method does -> bare 405
            raise MethodNotAllowed()
        if method == "DELETE":
            m = R_UPDATE.match(path)
            if m:
                self._check_gun(m["gun"], False)
                gun = m["gun"]
                result = await self._run(self.service.delete, gun)
                await self._after_write(gun, result)
                return "DeleteTUF", 200, [], b""
        raise ServerError(METADATA_NOT_FOUND)

    # -- handlers -----------------------------------------------------------------------

    async def _get(
        self,
        path: str,
        gun: str,
        role: str,
        handler: str,
        checksum: str | None = None,
        version: int | None = None,
    ) -> tuple[str, int, list[tuple[bytes, bytes]], bytes]:
        generation = self.cache.generation
        doc: Document | None
        if self._inline_reads:
            # microsecond reads: a thread-pool round trip (two thread wake-ups) costs far more
            try:
                doc = self.service.get_document(gun, role, checksum, version, False)
            except ResignNeeded:
                doc = await self._run(self.service.get_document, gun, role, checksum, version)
        else:
            doc = await self._run(self.service.get_document, gun, role, checksum, version)
        if doc is None:
            raise ServerError(METADATA_NOT_FOUND, EMPTY)
        current = checksum is None and version is None
        last_modified = format_http_date_ns(doc.created_ns)
        headers = [
            CT_TEXT,
            *(self._current_cc if current else self._consistent_cc),
            (b"last-modified", last_modified.encode()),
        ]
        if doc.stale_at > self.cache.now() and (self._cache_current or not current):
            full = [*headers, (b"content-length", str(len(doc.data)).encode())]
            self.cache.put(path, CachedResponse(gun, full, doc.data, doc.stale_at), generation)
        return handler, 200, headers, doc.data

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.config.max_upload_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = parse_decimal(value)
                except NumberRangeError:
                    declared = limit + 1  # beyond int64: certainly larger than the limit
                except FormatError as exc:
                    raise ServerError(MALFORMED_UPLOAD) from exc
                if declared > limit:
                    raise ServerError(TOO_LARGE, f"request body larger than {limit} bytes (raise --max-upload-bytes)")
        chunks: list[bytes] = []
        total = 0
        timeout = self.config.body_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):  # no extra task per chunk, unlike wait_for
                    msg = await receive()
            except TimeoutError:
                raise ServerError(BODY_TIMEOUT, f"request body stalled for more than {timeout:g} seconds") from None
            if msg["type"] == "http.disconnect":
                raise ServerError(MALFORMED_UPLOAD)
            chunk = msg.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise ServerError(TOO_LARGE, f"request body larger than {limit} bytes (raise --max-upload-bytes)")
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _update(self, scope: Scope, receive: Receive, gun: str) -> None:
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1")
        try:
            boundary = boundary_of(content_type)
        except MalformedUpload as exc:
            raise ServerError(MALFORMED_UPLOAD) from exc
        body = await self._read_body(scope, receive)
        try:
            uploads = parse_multipart(body, boundary)
        except MalformedUpload as exc:
            raise ServerError(MALFORMED_UPLOAD) from exc
        small = len(body) <= INLINE_UPDATE_BYTES
        del body
        result: WriteResult
        if small and self._inline_updates:
            # a small update on a local SQLite file takes well under a millisecond: cheaper on
            # the loop than two thread hand-overs; large ones (10,000 targets: ~80 ms) go to a thread
            result = self.service.update(gun, uploads)
        else:
            result = await self._run(self.service.update, gun, uploads)
        await self._after_write(gun, result)

    async def _after_write(self, gun: str, result: WriteResult) -> None:
        """Drop cached responses of ``gun``; on PostgreSQL wait until replicas were told."""
        self.cache.invalidate_gun(gun)
        self.inventory.invalidate()
        if result.changed and self.listener is not None and result.notify_seq:
            await self._run(self.listener.wait_seen, result.notify_seq)


    def _metrics_page(self) -> bytes:
        """The /metrics page (worker thread: the inventory may be re-read from the database).
        A failing database leaves the inventory gauges out instead of failing the scrape."""
        try:
            inv = self.inventory.get()
        except SQLAlchemyError as exc:
            log.error("metrics: cannot read the trust data inventory: %s", exc)
            return self.metrics.render()
        return self.metrics.render(inv, self.service.clock(), self.inventory.clock() - inv.taken)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


#: Update bodies up to this size are validated and stored on the event loop (SQLite files only).
INLINE_UPDATE_BYTES = 32 * 1024


def format_http_date_ns(ns: int) -> str:
    """Last-Modified value for a storage time in ns (Go RFC1123 with ``UTC``)."""
    from datetime import UTC, datetime

    return format_http_date(datetime.fromtimestamp(ns // 1_000_000_000, UTC))

"""Bounded HTTP for the client: every request is streamed and every response body is read here.

httpx reads a whole body before a non-streaming request returns (and before following a
redirect), so a server that streams without end would be read to the end: memory, bandwidth,
time. Every request of the trust client, the registry client, ``lookup_manifest`` and
``trustbox login`` is therefore sent through :func:`send` / :func:`open_response` (``stream=True``,
no redirects followed by httpx, an unencoded body asked for) and every body is read through
:func:`iter_capped`, :func:`read_capped` or :func:`read_head`, never beyond the limit of its kind:

* ping, error and other bodies only read for a message: :data:`SMALL_BODY_LIMIT`, truncated (the
  rest is never read, the connection is closed instead);
* token responses: :data:`TOKEN_BODY_LIMIT`, refused beyond;
* trust metadata: the per-role caps of ``tufclient`` (timestamp 1 MiB, root 100 MiB, others the
  length in the referencing metadata), ``<role>.key`` 64 KiB;
* manifests: 4 MiB (``oci.MAX_MANIFEST_BYTES``, the distribution registry's own limit) or the
  descriptor's size; tag lists :data:`LIST_BODY_LIMIT`;
* blobs: the descriptor's size, streamed to disk.

A ``Content-Length`` above the limit is refused before anything is read. A body with a
``Content-Encoding`` is refused (never inflated: a small compressed body can expand a thousandfold).

The one request sent with another client is the fast path of a blob's ``GET`` (:func:`plain_get`):
httpx reads a body through httpcore and h11 64 KiB at a time, copying it through their buffers,
which cost ~2.3 CPU seconds per GiB on the client, more than the rest of a registry-to-registry
copy's client side together (hashing included), so ``trustbox copy`` was CPU-bound at ~150 MiB/s on
a 2-core machine; the standard library's ``http.client`` reads the socket directly into each
chunk (a blob download went from ~390 to ~600 MiB/s). Only the plain case is read that way, a
``200`` with the credentials already held, bounded by the same :func:`capped_chunks` as
:func:`iter_capped`; every other answer (``401``, a redirect, an error) and any failure before the
answer's head is in are handed back, and the request goes through httpx where those rules live.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from trustbox.errors import FormatError, NetworkError, TrustboxError
from trustbox.tuf.canonical import loads

SMALL_BODY_LIMIT = 64 * 1024
TOKEN_BODY_LIMIT = 1024 * 1024
LIST_BODY_LIMIT = 8 * 1024 * 1024


class ResponseTooLargeError(NetworkError):
    """A server sent (or announced) a bigger body than the client reads for that kind of response."""


ErrorFactory = Callable[[str], TrustboxError]

#: what a body read raises when the body ended before its ``Content-Length`` (httpx or the fast path)
BODY_ENDED_EARLY: tuple[type[Exception], ...] = (httpx.RemoteProtocolError, http.client.IncompleteRead)
#: what a body read raises when the connection fails or times out (either client)
BODY_READ_FAILED: tuple[type[Exception], ...] = (httpx.HTTPError, http.client.HTTPException, OSError)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | Sequence[str]] | None = None,
    content: bytes | Iterable[bytes] | None = None,
    files: Any = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """Send one request and return once the response head is in; its body is left unread.

    Redirects are returned, not followed. The caller must :func:`release` the response (or use
    :func:`open_response`). Raises httpx.HTTPError (transport) or NetworkError (a URL httpx
    cannot use, e.g. from a server's challenge or ``Location``)."""
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    try:
        request = client.build_request(
            method, url, headers={"Accept-Encoding": "identity", **(headers or {})},
            params=params, content=content, files=files, **extra,
        )
    except httpx.InvalidURL as exc:
        raise NetworkError(f"invalid URL {url[:200]!r}: {exc}") from None
    return client.send(request, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT, stream=True,
                       follow_redirects=False)


def release(resp: httpx.Response) -> None:
    """Close a response. An unread body announced as small is read first so the connection can
    be reused; any other unread body is dropped with the connection, never read."""
    try:
        if not resp.is_stream_consumed and not resp.is_closed:
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) <= SMALL_BODY_LIMIT:
                read_head(resp)
    finally:
        resp.close()


@contextmanager
def open_response(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
    """:func:`send` as a context manager that releases the response on exit."""
    resp = send(client, method, url, **kwargs)
    try:
        yield resp
    finally:
        release(resp)


def _encoding(resp: httpx.Response) -> str:
    """The response's content coding, ``""`` for none."""
    return _coding(resp.headers.get("content-encoding", ""))


def _coding(value: str) -> str:
    value = value.strip().lower()
    return "" if value == "identity" else value


def iter_capped(
    resp: httpx.Response,
    limit: int,
    what: str,
    *,
    error: ErrorFactory = ResponseTooLargeError,
    chunk_size: int | None = None,
) -> Iterator[bytes]:
    """Yield the body as it arrives; raise ``error(message)`` as soon as more than ``limit`` bytes
    arrive, before reading when ``Content-Length`` announces more, or when the body is encoded.

    Transport errors while reading propagate as httpx.HTTPError."""
    return capped_chunks(resp.iter_bytes(chunk_size), resp.headers.get("content-length", ""),
                         resp.headers.get("content-encoding", ""), limit, what, error=error)


def capped_chunks(
    chunks: Iterable[bytes],
    content_length: str,
    content_encoding: str,
    limit: int,
    what: str,
    *,
    error: ErrorFactory = ResponseTooLargeError,
) -> Iterator[bytes]:
    """The bounds of :func:`iter_capped` over a body read by any HTTP client (the registry
    client's standard-library fast path for blobs too): the response's ``Content-Length`` and
    ``Content-Encoding`` header values, then its chunks. Raises ``error(message)`` as
    :func:`iter_capped` does; the chunks' own errors propagate."""
    encoding = _coding(content_encoding)
    if encoding:
        raise error(f"{what}: the server sent a {encoding[:40]}-encoded body, which is not accepted")
    announced = content_length.strip()
    if announced.isdigit() and int(announced) > limit:
        raise error(f"{what}: {announced[:40]} bytes announced, more than {limit}")
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise error(f"{what}: more than {limit} bytes")
        yield chunk


def read_capped(resp: httpx.Response, limit: int, what: str, *, error: ErrorFactory = ResponseTooLargeError) -> bytes:
    """The whole body, at most ``limit`` bytes (see :func:`iter_capped` for what raises)."""
    return b"".join(iter_capped(resp, limit, what, error=error))


def read_head(resp: httpx.Response, limit: int = SMALL_BODY_LIMIT) -> bytes:
    """At most the first ``limit`` bytes of the body, for a message: reading stops at the cap
    (the rest is never read) and a transport error or an encoded body gives what arrived (or
    nothing). Never raises for the body."""
    if _encoding(resp):
        return b""
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) >= limit:
                break
    except httpx.HTTPError:
        pass
    return bytes(buf[:limit])


def read_token(resp: httpx.Response, what: str) -> str | None:
    """The ``token`` (or OAuth2 ``access_token``) of a token-service answer, None if it has none
    or is not a JSON object. Raises ResponseTooLargeError beyond :data:`TOKEN_BODY_LIMIT`,
    httpx.HTTPError on a transport error."""
    data = read_capped(resp, TOKEN_BODY_LIMIT, what)
    try:
        doc = loads(data)
    except FormatError:
        return None
    token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


# --- the blob fast path --------------------------------------------------------------------


#: bytes read from the socket per chunk
PLAIN_CHUNK = 1024 * 1024


class PlainBody:
    """A ``200`` answer's head and its unread body (closed with the connection)."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._resp = resp
        self.content_length = resp.getheader("content-length") or ""
        self.content_encoding = resp.getheader("content-encoding") or ""

    def chunks(self, limit: int) -> Iterator[bytes]:
        """The body in chunks of up to :data:`PLAIN_CHUNK` bytes, never reading more than one
        byte beyond ``limit`` (the bound's check needs to see it).

        Raises:
            http.client.IncompleteRead: the connection ended before ``Content-Length`` bytes.
            OSError, http.client.HTTPException: the connection failed or timed out.
        """
        received = 0
        while received <= limit:
            b = self._resp.read(min(PLAIN_CHUNK, limit + 1 - received))
            if not b:
                # http.client ends a body cut short quietly; httpx raises, and so does this
                if self.content_length.isdigit() and received < int(self.content_length):
                    raise http.client.IncompleteRead(b"", int(self.content_length) - received)
                return
            received += len(b)
            yield b

    def close(self) -> None:
        """Close the response and its connection (an unread rest is dropped, never read)."""
        self._resp.close()
        self._conn.close()


def uses_proxy(url: str) -> bool:
    """Whether the environment sends requests to ``url`` through a proxy (``*_PROXY`` not
    bypassed by ``NO_PROXY``); the fast path then stands aside for httpx, which speaks to proxies."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.netloc)


@contextmanager
def plain_get(
    url: str, headers: Mapping[str, str], context: ssl.SSLContext | None, timeout: float
) -> Iterator[PlainBody | None]:
    """``GET url`` with ``headers``; yields the body of a ``200`` answer, else None (the answer,
    if any, is dropped unread). The connection is closed on exit. Never raises for the request
    itself: a failure to connect or to read the answer's head yields None too (the caller's own
    client then tries, and reports the failure in its words)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
        if parts.scheme == "https" else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    body: PlainBody | None = None
    try:
        try:
            conn.request("GET", path, headers=dict(headers))
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError):
            resp = None
        if resp is not None and resp.status == 200:
            body = PlainBody(conn, resp)
        yield body
    finally:
        if body is not None:
            body.close()
        conn.close()

"""The fast path of :meth:`RegistryClient.open_blob
<trustbox.client.images.distribution.RegistryClient.open_blob>`: a blob's body read with the
standard library's HTTP/1.1 client.

httpx reads a body through httpcore and h11 64 KiB at a time, copying it through their buffers
and re-chunking it: for blobs that cost about 2.3 CPU seconds per GiB on the client, more than the
rest of a copy's client side together (hashing included), and made ``trustbox copy`` CPU-bound on
a 2-core machine at ~150 MiB/s. ``http.client`` reads the socket directly into each chunk.

Only the plain case is read here: a ``200`` to a ``GET`` with the credentials already held. Every
other answer (``401``, a redirect, an error status) and any failure before the answer's head is
in are given back (``None``): :meth:`open_blob` then sends the request through httpx, where the
auth, redirect and error rules live. The body is bounded by
:func:`~trustbox.client.capped.capped_chunks`, as httpx's is by ``iter_capped``.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

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
        left = limit + 1
        while left > 0:
            b = self._resp.read(min(PLAIN_CHUNK, left))
            if not b:
                return
            left -= len(b)
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

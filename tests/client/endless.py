"""Endless response bodies that count what a client took, and a real TLS server serving them.

``Bodies.response()`` makes an ``httpx.Response`` whose body is 64 MiB of filler produced lazily
(far beyond any limit of the client), and remembers how much of it was produced: what a server
"managed to send". Served through ``httpx.MockTransport`` the count is what the client read; served
through :class:`TLSServer` (a threaded HTTPS server on 127.0.0.1 that answers every request with an
``httpx.Request -> httpx.Response`` function, so the fakes of these tests run behind real sockets)
it is what the kernel accepted before the client hung up: what the client read plus the socket
buffers, which the server keeps small.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from tests.helpers.certs import CertFiles

CHUNK = 64 * 1024
TOTAL = 64 * 1024 * 1024
#: What may sit in the kernel's buffers (the server's 64 KiB send buffer, the client's autotuned
#: receive buffer, TLS records) beyond what the client read when it hangs up.
SOCKET_SLACK = 6 * 1024 * 1024

App = Callable[[httpx.Request], httpx.Response]


class Endless:
    """``prefix`` then filler up to :data:`TOTAL` bytes, produced lazily; ``sent`` counts them."""

    def __init__(self, prefix: bytes = b"", fill: bytes = b" ") -> None:
        self.prefix = prefix
        self.piece = (fill * CHUNK)[:CHUNK]
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        self.sent += len(self.prefix)
        yield self.prefix
        while self.sent < TOTAL:
            self.sent += CHUNK
            yield self.piece


class Bodies:
    """Makes endless responses and adds up what each of them sent."""

    def __init__(self) -> None:
        self.made: list[Endless] = []

    def response(self, status: int = 200, headers: dict[str, str] | None = None, prefix: bytes = b"",
                 fill: bytes = b" ") -> httpx.Response:
        """A response with an endless body (``Transfer-Encoding: chunked``, no length)."""
        body = Endless(prefix, fill)
        self.made.append(body)
        return httpx.Response(status, headers=headers, content=iter(body))

    @property
    def sent(self) -> int:
        """Bytes produced by every endless body so far."""
        return sum(b.sent for b in self.made)

    def assert_bounded(self, limit: int, slack: int = 2 * CHUNK) -> None:
        """At least one endless body was served, and each gave at most ``limit + slack`` bytes."""
        assert self.made, "no endless body was requested"
        worst = max(b.sent for b in self.made)
        assert worst <= limit + slack, f"a server sent {worst} bytes, more than {limit} + {slack}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        host = self.headers.get("Host") or self.server.host
        request = httpx.Request(self.command, f"https://{host}{self.path}", headers=list(self.headers.items()),
                                content=self._body())
        response = self.server.app(request)
        self.send_response_only(response.status_code)
        chunked = "content-length" not in response.headers
        for key, value in response.headers.multi_items():
            if key.lower() not in ("transfer-encoding", "connection"):
                self.send_header(key, value)
        if chunked and self.command != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for chunk in response.iter_bytes():
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: App, context: ssl.SSLContext) -> None:
        self.app = app
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)
        self.host = f"127.0.0.1:{self.server_address[1]}"

    def server_bind(self) -> None:
        # accepted connections inherit the small send buffer: little can pile up unread
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-body is what these tests provoke


class TLSServer:
    """``app`` served over HTTPS (``certs``: a server certificate for 127.0.0.1) in a thread."""

    def __init__(self, app: App, certs: CertFiles) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
        self._server = _Server(app, context)
        self.host = self._server.host
        self.url = f"https://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

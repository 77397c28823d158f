"""One access-log line per HTTP request, shared by the trust server, the registry and the token server.

Format (stable; one line, fields separated by single spaces, written to stderr)::

    127.0.0.1 - alice [2026-12-03T10:11:12.345Z] "GET /v2/ HTTP/1.1" 200 2 0.001s

client address, ``-``, the authenticated user (``-`` when none), the time the request arrived (UTC),
the request line, the status, the response body bytes sent (0 for HEAD: the server sends no body)
and the time until the response was complete. Nothing a client sends as a credential is written: no header is logged, and query
parameters that carry secrets (``password``, ``refresh_token``, ``access_token``, ...) are dropped
from the logged query. Path and query are percent-encoded where they hold spaces, quotes, control
or non-ASCII characters, so a request cannot forge or split log lines.

The level is checked once, when the server builds its application (:func:`with_access_log`): when
it hides access lines the application is served unwrapped, at no cost per request.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGGER_NAME = "trustbox.access"

#: Query parameters never logged (compared case-insensitively): OAuth2 and token-server secrets.
SENSITIVE_PARAMETERS = frozenset({
    "password", "passwd", "refresh_token", "access_token", "id_token", "token", "client_secret", "secret",
})

# Characters kept as they are in a logged path / query; everything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "%?"


def access_log_enabled(level: str) -> bool:
    """Whether ``level`` (a logging level name such as ``info`` or ``warning``) shows access lines."""
    value = logging.getLevelName(level.strip().upper())
    return isinstance(value, int) and value <= logging.INFO


def access_logger() -> logging.Logger:
    """The ``trustbox.access`` logger: INFO lines, message only, to stderr (set up once per process)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the servers' root handlers would prefix and repeat each line
    return logger


def redact_query(query: str) -> str:
    """``query`` (still percent-encoded) without its sensitive parameters, in the original order."""
    kept = [part for part in query.split("&")
            if part and unquote_plus(part.partition("=")[0]).lower() not in SENSITIVE_PARAMETERS]
    return "&".join(kept)


def request_target(scope: Scope) -> str:
    """The logged request target: path, then ``?`` and the redacted query when one is left."""
    path = quote(scope.get("path", ""), safe=_PATH_SAFE, errors="backslashreplace")
    raw = scope.get("query_string", b"")
    if not raw:
        return path
    query = redact_query(raw.decode("latin-1"))
    if not query:
        return path
    return f"{path}?{quote(query, safe=_QUERY_SAFE, errors='backslashreplace')}"


def authenticated_user(scope: Scope) -> str | None:
    """The user the auth middleware (or the token server) left in ``scope["state"]["auth"]``."""
    state = scope.get("state")
    info = state.get("auth") if isinstance(state, MutableMapping) else None
    user = getattr(info, "user", None)
    return user if isinstance(user, str) and user else None


def format_line(scope: Scope, started: float, status: int, size: int, seconds: float) -> str:
    """One access line (see the module docstring for the format)."""
    client = scope.get("client")
    host = str(client[0]) if client else "-"
    user = authenticated_user(scope)
    who = quote(user, safe=_PATH_SAFE, errors="backslashreplace") if user else "-"
    when = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    method = quote(str(scope.get("method", "-")), safe="", errors="backslashreplace")
    version = quote(str(scope.get("http_version", "1.1")), safe=".", errors="backslashreplace")
    return (f'{host} - {who} [{when}] "{method} {request_target(scope)} HTTP/{version}" '
            f"{status} {size} {seconds:.3f}s")


class AccessLogMiddleware:
    """ASGI middleware writing one access line per HTTP request once its response is complete.

    Other scope types (lifespan) pass through untouched. A request whose application raised
    before starting a response is logged with status 500 (what the server then sends).
    """

    def __init__(self, app: ASGIApp, emit: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.emit = emit or access_logger().info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request through the application, then log it (also when the application raised)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        t0 = time.perf_counter()
        status = 0
        size = 0
        head = scope.get("method") == "HEAD"

        async def counting_send(message: Message) -> None:
            nonlocal status, size
            kind = message["type"]
            if kind == "http.response.body":
                if not head:
                    size += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.emit(format_line(scope, started, status or 500, size, time.perf_counter() - t0))


def with_access_log(app: ASGIApp, level: str) -> ASGIApp:
    """``app`` behind :class:`AccessLogMiddleware` when ``level`` shows access lines, else ``app`` itself."""
    return AccessLogMiddleware(app) if access_log_enabled(level) else app

"""The registry's Prometheus metrics and the ASGI middleware that records them and serves ``/metrics``.

Families (documented in docs/registry.md):

* ``trustbox_registry_http_requests_total{route,method,code}``: requests by API route (``base``,
  ``catalog``, ``manifests``, ``blobs``, ``blobs/uploads``, ``tags/list``, ``referrers``,
  ``other``: the repository name is never a label), method and status;
* ``trustbox_registry_http_request_duration_seconds{route}``: latency histogram (until the last
  body byte was handed to the server);
* ``trustbox_registry_http_request_bytes_total{route}`` / ``..._response_bytes_total{route}``:
  body bytes received and sent;
* ``trustbox_registry_blobs_quarantined_total``: blobs moved to quarantine after failing
  verification on read;
* ``trustbox_registry_upload_sessions``: upload sessions open in this process's spool;
* ``trustbox_registry_policy_refusals_total{rule}``: pulls refused by the trust policy, per rule
  (``policy_refused(rule)``; ``declare_rules`` shows configured rules at 0).

``/metrics`` is answered before authentication, like the trust server's (and notary-server's)
``/metrics``: it carries no repository names. Counting is dict updates on the event loop thread.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from trustbox.promtext import CONTENT_TYPE, Histogram, Labels, family, histogram_family, render
from trustbox.registry.request import ROUTE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_PATH = "/metrics"
_SESSION = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def route_of(path: str) -> str:
    """The route label of a request path (bounded set of values)."""
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    m = ROUTE.match(path)
    return m.group("kind") if m is not None else "other"


def open_sessions(spool: Path | None) -> int:
    """Upload session directories in ``spool`` (0 when there is none or it cannot be read)."""
    if spool is None:
        return 0
    try:
        with os.scandir(spool) as it:
            return sum(1 for e in it if _SESSION.match(e.name))
    except OSError:
        return 0


class RegistryMetrics:
    """Counters of one registry app; ``quarantined`` and ``sessions`` are read at scrape time."""

    def __init__(self, quarantined: Callable[[], int] = lambda: 0, sessions: Callable[[], int] = lambda: 0) -> None:
        self._quarantined = quarantined
        self._sessions = sessions
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, Histogram] = {}
        self._bytes_in: dict[str, int] = {}
        self._bytes_out: dict[str, int] = {}
        self._refusals: dict[str, int] = {}

    def observe(self, route: str, method: str, code: int, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """Record one finished request (event loop thread)."""
        key = (route, method, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        h = self._latency.get(route)
        if h is None:
            h = self._latency[route] = Histogram()
        h.observe(seconds)
        if bytes_in:
            self._bytes_in[route] = self._bytes_in.get(route, 0) + bytes_in
        if bytes_out:
            self._bytes_out[route] = self._bytes_out.get(route, 0) + bytes_out

    def declare_rules(self, rules: Iterable[str]) -> None:
        """Show each trust policy rule's refusal counter (at 0 until it refuses)."""
        for rule in rules:
            self._refusals.setdefault(rule, 0)

    def policy_refused(self, rule: str) -> None:
        """Count one pull the trust policy refused under ``rule``."""
        self._refusals[rule] = self._refusals.get(rule, 0) + 1

    def render(self) -> bytes:
        """The metrics page."""
        requests = sorted(self._requests.items())
        lines = family(
            "trustbox_registry_http_requests_total", "counter", "Requests by API route, method and status.",
            [((("route", r), ("method", m), ("code", str(c))), n) for (r, m, c), n in requests],
        )
        latency: dict[Labels, Histogram] = {(("route", k),): v for k, v in list(self._latency.items())}
        lines += histogram_family("trustbox_registry_http_request_duration_seconds", "Request latency.", latency)
        lines += family(
            "trustbox_registry_http_request_bytes_total", "counter", "Request body bytes received.",
            [((("route", r),), n) for r, n in sorted(self._bytes_in.items())],
        )
        lines += family(
            "trustbox_registry_http_response_bytes_total", "counter", "Response body bytes sent.",
            [((("route", r),), n) for r, n in sorted(self._bytes_out.items())],
        )
        lines += family(
            "trustbox_registry_blobs_quarantined_total", "counter",
            "Blobs moved to quarantine after failing verification on read.", [((), self._quarantined())],
        )
        lines += family(
            "trustbox_registry_upload_sessions", "gauge", "Upload sessions open in this process's spool.",
            [((), self._sessions())],
        )
        lines += family(
            "trustbox_registry_policy_refusals_total", "counter", "Pulls refused by the trust policy, by rule.",
            [((("rule", r),), n) for r, n in sorted(self._refusals.items())],
        )
        return render(lines)


class MetricsMiddleware:
    """Records every request in ``metrics`` and answers ``GET /metrics`` itself."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == METRICS_PATH and scope["method"] in ("GET", "HEAD"):
            body = self.metrics.render()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        t0 = time.perf_counter()
        state = [500, 0, 0, 0]  # status, bytes in, bytes out, declared content-length

        async def counting_receive() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                state[1] += len(msg.get("body", b""))
            return msg

        async def counting_send(msg: Message) -> None:
            kind = msg["type"]
            if kind == "http.response.start":
                state[0] = msg["status"]
                for name, value in msg.get("headers", ()):
                    if name.lower() == b"content-length" and value.isdigit():
                        state[3] = int(value)
            elif kind == "http.response.body":
                state[2] += len(msg.get("body", b""))
            elif kind in ("http.response.pathsend", "http.response.zerocopysend"):
                state[2] += state[3]
            await send(msg)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.observe(route_of(path), scope["method"], state[0], time.perf_counter() - t0,
                                 state[1], state[2])

"""A round-robin HTTP reverse proxy for tests: each request goes to the next backend.

Stands in for a load balancer in front of several registry replicas. Bodies stream both
ways; every forwarded request is recorded as (method, path, backend index).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from tests.helpers.net import free_port

_HOP = {b"host", b"connection", b"transfer-encoding", b"keep-alive", b"te", b"trailer", b"upgrade"}


class RoundRobin:
    """ASGI app forwarding each request to ``backends`` in turn."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = itertools.count()
        self.log: list[tuple[str, str, int]] = []
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=120)
        index = next(self.turn) % len(self.backends)
        self.log.append((scope["method"], scope["path"], index))
        url = self.backends[index] + scope["raw_path"].decode()
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]

        async def body() -> AsyncIterator[bytes]:
            while True:
                msg = await receive()
                if msg.get("body"):
                    yield msg["body"]
                if not msg.get("more_body"):
                    return

        has_body = any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        request = self.client.build_request(scope["method"], url, headers=headers,
                                            content=body() if has_body else None)
        response = await self.client.send(request, stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


@contextmanager
def round_robin_proxy(backends: list[str]) -> Iterator[tuple[str, RoundRobin]]:
    """Serve a :class:`RoundRobin` over ``backends`` on a free port; yield (host:port, app)."""
    app = RoundRobin(backends)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("round-robin proxy did not start")
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)

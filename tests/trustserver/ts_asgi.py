"""A synchronous httpx client over ``httpx.ASGITransport`` (event loop on a helper thread)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx


class SyncASGITransport(httpx.BaseTransport):
    """A sync httpx transport running an ASGI app on ``loop`` (another thread)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            body = request.read()
            req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            resp = await self._inner.handle_async_request(req)
            data = await resp.aread()
            return resp.status_code, resp.headers.raw, data

        status, headers, data = asyncio.run_coroutine_threadsafe(run(), self._loop).result()
        return httpx.Response(status, headers=headers, content=data, request=request)


class ASGIClient(httpx.Client):
    """``httpx.Client`` whose requests go to an ASGI app in-process."""

    def __init__(self, app: Any, base_url: str = "http://trust.test") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        super().__init__(transport=SyncASGITransport(app, self._loop), base_url=base_url)

    def close(self) -> None:
        super().close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def raw_call(app: Any, method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
             query: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    """One request with an exact (un-normalised) path straight into the ASGI app."""
    sent: list[dict[str, Any]] = []
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])

"""Fast, memory-bounded file responses for ASGI apps (the registry's blob downloads).

Starlette's ``FileResponse`` hands a file to the server with the ``http.response.pathsend``
extension when the server offers it. granian does, but streams the file in 128 KiB reads, each
a hand-over to a blocking thread (~1.3-1.5 GB/s on this machine); it has no ``sendfile``. Sending
the file ourselves as ``http.response.body`` messages of 1 MiB ``pread`` pieces (read in a worker
thread) measured ~2.2-2.3 GB/s under granian's ASGI interface, and granian's ASGI ``send`` waits
while the client is slow, so at most a few pieces per download are ever in memory. (granian's
RSGI stream transport does NOT wait: a slow client would make the server buffer the whole file,
which is why the registry stays on ASGI.)

:class:`FileSendMiddleware` advertises ``http.response.pathsend`` to the app whatever the server,
and turns each pathsend message into those body messages.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Piece size: 1 MiB measured fastest here (256 KiB ~1.7 GB/s, 1 MiB ~2.3, 4 MiB ~1.9).
FILE_CHUNK = 1 << 20


async def send_file(send: Send, path: str, chunk: int = FILE_CHUNK) -> None:
    """Send the file at ``path`` as the rest of the response body (after ``http.response.start``)."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while True:
            data = await loop.run_in_executor(None, os.pread, fd, chunk, offset)
            if not data:
                break
            offset += len(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})
    finally:
        os.close(fd)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class FileSendMiddleware:
    """ASGI middleware: ``http.response.pathsend`` from the app becomes 1 MiB body messages."""

    def __init__(self, app: ASGIApp, chunk: int = FILE_CHUNK) -> None:
        self.app = app
        self.chunk = chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass every request through; translate pathsend messages of HTTP responses."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extensions = dict(scope.get("extensions") or {})
        extensions["http.response.pathsend"] = {}
        scope = {**scope, "extensions": extensions}

        async def send_or_stream(message: Message) -> None:
            if message["type"] == "http.response.pathsend":
                await send_file(send, str(message["path"]), self.chunk)
            else:
                await send(message)

        await self.app(scope, receive, send_or_stream)

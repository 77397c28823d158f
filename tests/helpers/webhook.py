"""A webhook receiver for registry notification tests: records every POST (path, headers,
body) and answers 200, or a chosen status while ``failing``."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    """One POST the receiver took."""

    path: str
    headers: dict[str, str]
    body: bytes

    def events(self) -> list[dict[str, Any]]:
        """The envelope's events."""
        return list(json.loads(self.body)["events"])


@dataclass
class Receiver:
    """The recording server; ``url`` is where to POST."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    failing: int = 0  # answer this status instead of 200 while non-zero
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The events URL."""
        return f"http://127.0.0.1:{self.port}/events"

    def events(self) -> list[dict[str, Any]]:
        """Every event received so far, in arrival order."""
        with self.lock:
            return [e for d in self.deliveries for e in d.events()]

    def wait_quiet(self, quiet: float = 1.5, timeout: float = 30.0, at_least: int = 1) -> list[dict[str, Any]]:
        """Wait until at least ``at_least`` events came and none for ``quiet`` seconds; return them."""
        deadline = time.monotonic() + timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.events())
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif n >= at_least and time.monotonic() - last_change >= quiet:
                break
            time.sleep(0.1)
        return self.events()

    def clear(self) -> None:
        """Forget what was received."""
        with self.lock:
            self.deliveries.clear()


def start_receiver(port: int = 0) -> tuple[Receiver, ThreadingHTTPServer]:
    """Start a receiver on 127.0.0.1 (``port`` 0: a free one); stop it with ``server.shutdown()``."""
    receiver = Receiver(port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.failing or 200
            if status == 200:
                with receiver.lock:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server

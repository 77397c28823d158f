"""Delivery of notification events to webhook endpoints, as registry:2 delivers them.

Each endpoint (``notifications.endpoints`` of a registry:2 configuration) has its own queue
and sender thread: an event is POSTed alone in its envelope (:func:`trustbox.registry.events.envelope_bytes`)
with ``Content-Type: application/vnd.docker.distribution.events.v1+json`` and the endpoint's
``headers``; any status from 200 to 399 delivers it. A failed POST (an error, a timeout after
``timeout``, another status) is retried: at once while fewer than ``threshold`` attempts in a
row have failed, then once per ``backoff``, until it is delivered, in order, so events survive a
receiver that is down for a while. Unlike registry:2, whose queue grows without limit, a queue
holds at most ``queue_size`` events: past that the oldest is dropped and counted (logged).
Events whose target media type is in ``ignoredmediatypes`` / ``ignore.mediatypes``, or whose
action is in ``ignore.actions``, are never queued (registry:2 2.8 applies ``ignore.actions``
only when some media type is ignored too; trustbox applies it as written).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustbox.registry.events import EVENTS_MEDIA_TYPE, envelope_bytes

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("trustbox.registry.notify")


class _SendFailed(Exception):
    """The endpoint's HTTP client failed (the message is the reason logged)."""


@dataclass
class EndpointStats:
    """What an endpoint did so far (for tests and logs)."""

    delivered: int = 0
    failures: int = 0
    dropped: int = 0


@dataclass
class Endpoint:
    """One webhook receiver with its queue and sender thread."""

    name: str
    url: str
    headers: dict[str, list[str]]
    timeout: float
    threshold: int
    backoff: float
    ignored_media_types: frozenset[str]
    ignored_actions: frozenset[str]
    queue_size: int
    post: Callable[[str, bytes, list[tuple[str, str]], float], int] | None = None
    stats: EndpointStats = field(default_factory=EndpointStats)

    def __post_init__(self) -> None:
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._recent_failures = 0
        self._last_failure = 0.0
        self._client: httpx.Client | None = None

    # --- producer side ----------------------------------------------------------------------

    def wanted(self, event: dict[str, Any]) -> bool:
        """False for events the endpoint's ignore rules drop."""
        if event.get("target", {}).get("mediaType") in self.ignored_media_types:
            return False
        return event.get("action") not in self.ignored_actions

    def write(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks; drops the oldest one when the queue is full)."""
        if not self.wanted(event):
            return
        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.stats.dropped += 1
                if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                    log.warning("notification endpoint %s: queue full (%d events), %d oldest dropped so far",
                                self.name, self.queue_size, self.stats.dropped)
            self._queue.append(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        """Events queued and not delivered yet."""
        with self._cond:
            return len(self._queue)

    def close(self, wait: float = 0.0) -> None:
        """Stop the sender (after up to ``wait`` seconds spent delivering what is queued)."""
        deadline = time.monotonic() + wait
        while wait and self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- sender thread ----------------------------------------------------------------------

    def _proceed(self) -> bool:
        return (self._recent_failures < self.threshold
                or time.monotonic() >= self._last_failure + self.backoff)

    def _send(self, body: bytes) -> int:
        headers = [("Content-Type", EVENTS_MEDIA_TYPE)]
        for name, values in self.headers.items():
            headers.extend((name, v) for v in values)
        if self.post is not None:
            return self.post(self.url, body, headers, self.timeout)
        import httpx  # loaded by registries with a notification endpoint only

        if self._client is None:
            self._client = httpx.Client(follow_redirects=True)
        try:
            resp = self._client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise _SendFailed(str(exc) or type(exc).__name__) from exc
        return resp.status_code

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                event = self._queue[0]
            if not self._proceed():
                time.sleep(max(0.0, self._last_failure + self.backoff - time.monotonic()))
                continue
            try:
                status = self._send(envelope_bytes([event]))
                ok = 200 <= status < 400
                why = f"status {status}"
            except (_SendFailed, OSError) as exc:
                ok, why = False, str(exc) or type(exc).__name__
            with self._cond:
                if ok:
                    if self._queue and self._queue[0] is event:
                        self._queue.popleft()
                    self.stats.delivered += 1
                    self._recent_failures = 0
                    continue
                self.stats.failures += 1
            self._recent_failures += 1
            self._last_failure = time.monotonic()
            log.error("notification endpoint %s (%s): delivery failed (%s), retrying", self.name, self.url, why)


class Notifier:
    """Fans events out to every configured endpoint."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints

    @classmethod
    def from_config(cls, entries: list[dict[str, Any]], queue_size: int) -> Notifier:
        """Endpoints from RegistryConfig.notifications (as :mod:`trustbox.registry.distconfig` reads them)."""
        return cls([
            Endpoint(
                name=str(e.get("name", "")), url=str(e["url"]), headers=dict(e.get("headers") or {}),
                timeout=float(e.get("timeout", 1.0)), threshold=int(e.get("threshold", 10)),
                backoff=float(e.get("backoff", 1.0)),
                ignored_media_types=frozenset(e.get("ignored_media_types") or ()),
                ignored_actions=frozenset(e.get("ignored_actions") or ()),
                queue_size=queue_size,
            )
            for e in entries
        ])

    @property
    def enabled(self) -> bool:
        """True when any endpoint is configured."""
        return bool(self.endpoints)

    def write(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every endpoint that wants it."""
        for endpoint in self.endpoints:
            endpoint.write(event)

    def close(self, wait: float = 0.0) -> None:
        """Stop every sender."""
        for endpoint in self.endpoints:
            endpoint.close(wait)

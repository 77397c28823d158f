"""In-memory cache of ready-made GET responses, kept correct across server processes.

Every cached response belongs to one GUN. It is dropped when this process changes the GUN,
when another process sharing the database commits anything (SQLite: ``PRAGMA data_version``
checked on every hit; PostgreSQL: ``LISTEN``/``NOTIFY`` on a background thread, and the cache
is bypassed whenever that listener is not connected), and when its ``stale_at`` time passes
(timestamps about to expire must be re-signed). A generation counter prevents a response read
before an invalidation from being stored after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("trustbox.trustserver")

#: upper bound of cached body bytes (keeps the process well under its memory budget)
MAX_CACHE_BYTES = 48 * 1024 * 1024
#: never cache a single body larger than this
MAX_ENTRY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CachedResponse:
    """A complete 200 response: raw ASGI headers and body."""

    gun: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stale_at: float  # wall-clock seconds; +inf for immutable entries
    str_headers: list[tuple[str, str]] = field(default_factory=list)  # the same, for RSGI

    def __post_init__(self) -> None:
        if not self.str_headers:
            self.str_headers.extend((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers)


class ResponseCache:
    """Path -> response, invalidated per GUN or entirely."""

    def __init__(
        self, external_check: Callable[[], bool] | None = None, now: Callable[[], float] = time.time
    ) -> None:
        self.now = now
        self._entries: dict[str, CachedResponse] = {}
        self._by_gun: dict[str, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.generation = 0
        #: returns True when another process may have changed the database
        self.external_check = external_check
        #: False while cross-process invalidation cannot be trusted (cache bypassed)
        self.enabled = True

    def get(self, path: str) -> CachedResponse | None:
        """A cached response for ``path`` that is still valid."""
        entry = self._entries.get(path)
        if entry is None:
            return None
        if not self.enabled:
            return None
        if self.external_check is not None and self.external_check():
            self.clear()
            return None
        if entry.stale_at <= self.now():
            self._drop(path)
            return None
        return entry

    def put(self, path: str, entry: CachedResponse, generation: int) -> None:
        """Store ``entry`` unless an invalidation happened since ``generation`` was read."""
        if len(entry.body) > MAX_ENTRY_BYTES or not self.enabled:
            return
        with self._lock:
            if generation != self.generation:
                return
            old = self._entries.get(path)
            if old is not None:
                self._bytes -= len(old.body)
            if self._bytes + len(entry.body) > MAX_CACHE_BYTES:
                self._clear_locked(bump=False)
            self._entries[path] = entry
            self._by_gun.setdefault(entry.gun, set()).add(path)
            self._bytes += len(entry.body)

    def _drop(self, path: str) -> None:
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= len(old.body)
                paths = self._by_gun.get(old.gun)
                if paths is not None:
                    paths.discard(path)

    def invalidate_gun(self, gun: str) -> None:
        """Forget every response of ``gun``."""
        with self._lock:
            self.generation += 1
            for path in self._by_gun.pop(gun, ()):
                old = self._entries.pop(path, None)
                if old is not None:
                    self._bytes -= len(old.body)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._clear_locked(bump=True)

    def _clear_locked(self, bump: bool) -> None:
        if bump:
            self.generation += 1
        self._entries = {}
        self._by_gun = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


class PostgresListener:
    """Background ``LISTEN`` on the storage's channel; invalidates the cache on every NOTIFY.

    While disconnected, the cache is disabled (every GET goes to the database). The payload
    of a notification is ``<sender id>|<sequence>|<gun>``; :meth:`wait_seen` lets a writer
    wait until its own notification came back, i.e. until every listener has been sent it.
    """

    def __init__(self, dsn: str, channel: str, cache: ResponseCache, sender_id: str) -> None:
        self.dsn = dsn
        self.channel = channel
        self.cache = cache
        self.sender_id = sender_id
        self._seen = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trustbox-pg-listen", daemon=True)
        self._busy = False
        self._poller: Any = None
        self.connected = threading.Event()

    def start(self, wait: float = 5.0) -> None:
        """Start listening; wait up to ``wait`` s for the first connection."""
        self.cache.enabled = False
        self._thread.start()
        self.connected.wait(wait)

    def stop(self) -> None:
        """Stop the thread (it notices within a second)."""
        self._stop.set()

    def maybe_changed(self) -> bool:
        """True while a notification may be waiting unprocessed (checked on every cache hit).

        The socket is polled without blocking: data there means a NOTIFY arrived that the
        listener thread has not applied yet, so the caller must not trust the cache now.
        """
        if self._busy:
            return True
        poller = self._poller
        if poller is None:
            return True
        try:
            return bool(poller.poll(0))
        except (OSError, ValueError, RuntimeError):
            return True

    def _run(self) -> None:
        import select

        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    poller = select.poll()
                    poller.register(conn.fileno(), select.POLLIN)
                    probe = select.poll()  # a second poll object: poll() is not reentrant
                    probe.register(conn.fileno(), select.POLLIN)
                    self._poller = probe
                    self.cache.clear()
                    self.cache.enabled = True
                    self.connected.set()
                    while not self._stop.is_set():
                        if not poller.poll(1000):
                            continue
                        self._busy = True
                        try:
                            for n in conn.notifies(timeout=0.0):
                                self._handle(n.payload)
                        finally:
                            self._busy = False
            except Exception as exc:  # any failure: reconnect, cache off meanwhile
                log.warning("change listener lost its database connection: %s", exc)
            finally:
                self.cache.enabled = False
                self._poller = None
                self.connected.clear()
            if not self._stop.is_set():
                time.sleep(0.5)

    def _handle(self, payload: str) -> None:
        sender, _, rest = payload.partition("|")
        seq_text, _, gun = rest.partition("|")
        if gun:
            self.cache.invalidate_gun(gun)
        else:
            self.cache.clear()
        if sender == self.sender_id and seq_text.isdigit():
            with self._cond:
                self._seen = max(self._seen, int(seq_text))
                self._cond.notify_all()

    def wait_seen(self, seq: int, timeout: float = 0.5) -> bool:
        """Block until this process's notification ``seq`` arrived (or timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seen < seq:
                left = deadline - time.monotonic()
                if left <= 0 or not self.connected.is_set():
                    return False
                self._cond.wait(left)
        return True

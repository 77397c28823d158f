"""The trust server's Prometheus metrics (text format via :mod:`trustbox.promtext`).

Families (documented in docs/trustserver.md):

* ``trustbox_http_requests_total{handler,code}`` and
  ``trustbox_http_request_duration_seconds{handler}`` (histogram): every request;
* ``trustbox_trust_updates_total``: accepted metadata updates (POST ``/_trust/tuf/``);
* ``trustbox_trust_update_rejections_total{reason}``: refused updates by error code;
* ``trustbox_trust_signatures_total{role}``: signatures the server made (server-managed
  timestamp and snapshot);
* ``trustbox_trust_repositories``: repositories (GUNs) with stored metadata;
* ``trustbox_trust_earliest_expiry_seconds{role}``: seconds until the earliest expiry of a role
  kind (root, targets, delegation, snapshot, timestamp) across all repositories (negative once
  expired), from stored metadata (see :mod:`trustbox.trustserver.inventory`);
* ``trustbox_trust_inventory_age_seconds``: how old the data behind the two gauges above is.

Recording runs on the event loop thread (no lock); signatures are counted from worker threads
under a lock. The inventory gauges are computed at scrape time from a cached inventory.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from datetime import datetime

from trustbox.promtext import LATENCY_BUCKETS, Histogram, Labels, family, histogram_family, render
from trustbox.trustserver.inventory import ROLE_KINDS, Inventory
from trustbox.trustserver.signer import Signer
from trustbox.tuf.keys import PublicKey


class Metrics:
    """Counters and latency histograms of one trust server app."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, Histogram] = {}
        self.updates = 0
        self._rejections: dict[str, int] = {}
        self._signatures: dict[str, int] = {}
        self._sig_lock = threading.Lock()

    def observe(self, handler: str, code: int, seconds: float) -> None:
        """Record one finished request (called on the event loop thread only: no lock needed)."""
        key = (handler, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        h = self._latency.get(handler)
        if h is None:
            h = self._latency[handler] = Histogram()
        # inlined Histogram.observe: this runs on every cached GET
        h.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        h.total += seconds
        h.count += 1

    def update_accepted(self) -> None:
        """Count an accepted update."""
        self.updates += 1

    def update_rejected(self, reason: str) -> None:
        """Count a refused update; ``reason`` is the error code (e.g. ``BAD_ROOT``)."""
        self._rejections[reason] = self._rejections.get(reason, 0) + 1

    def signed(self, role: str) -> None:
        """Count one signature the server made for ``role`` (any thread)."""
        with self._sig_lock:
            self._signatures[role] = self._signatures.get(role, 0) + 1

    def render(self, inventory: Inventory | None = None, now: datetime | None = None, age: float = 0.0) -> bytes:
        """The metrics page; the inventory gauges only when ``inventory`` and ``now`` are given."""
        requests = sorted(self._requests.items())
        lines = family(
            "trustbox_http_requests_total", "counter", "Requests handled by the trust server.",
            [((("handler", h), ("code", str(c))), n) for (h, c), n in requests]
        )
        latency: dict[Labels, Histogram] = {(("handler", k),): v for k, v in list(self._latency.items())}
        lines += histogram_family("trustbox_http_request_duration_seconds", "Request latency.", latency)
        lines += family("trustbox_trust_updates_total", "counter", "Metadata updates accepted.", [((), self.updates)])
        lines += family(
            "trustbox_trust_update_rejections_total", "counter", "Metadata updates refused, by error code.",
            [((("reason", r),), n) for r, n in sorted(self._rejections.items())]
        )
        with self._sig_lock:
            sigs = sorted(self._signatures.items())
        lines += family(
            "trustbox_trust_signatures_total", "counter",
            "Signatures made by the server (server-managed timestamp and snapshot).",
            [((("role", r),), n) for r, n in sigs]
        )
        if inventory is not None and now is not None:
            lines += family(
                "trustbox_trust_repositories", "gauge", "Repositories (GUNs) with stored trust metadata.",
                [((), len(inventory.repos))],
            )
            earliest = inventory.earliest_expiry()
            lines += family(
                "trustbox_trust_earliest_expiry_seconds", "gauge",
                "Seconds until the earliest expiry of a role kind across all repositories (negative: expired).",
                [((("role", k),), round((earliest[k] - now).total_seconds(), 3)) for k in ROLE_KINDS if k in earliest]
            )
            lines += family(
                "trustbox_trust_inventory_age_seconds", "gauge",
                "Age of the stored-metadata scan behind the repository and expiry gauges.", [((), round(age, 3))],
            )
        return render(lines)


def _role_of(message: bytes) -> str:
    """The role a canonical ``signed`` body belongs to, from its ``_type`` (cheap substring test)."""
    for marker, role in ((b'"_type":"Timestamp"', "timestamp"), (b'"_type":"Snapshot"', "snapshot"),
                         (b'"_type":"Targets"', "targets"), (b'"_type":"Root"', "root")):
        if marker in message:
            return role
    return "unknown"


class CountingSigner:
    """A :class:`~trustbox.trustserver.signer.Signer` that counts each signature in ``metrics``."""

    def __init__(self, inner: Signer, count: Callable[[str], None]) -> None:
        self.inner = inner
        self._count = count

    def create_key(self, gun: str, role: str, algorithm: str) -> PublicKey:
        """As the wrapped signer."""
        return self.inner.create_key(gun, role, algorithm)

    def public_key(self, gun: str, keyid: str) -> PublicKey | None:
        """As the wrapped signer."""
        return self.inner.public_key(gun, keyid)

    def latest_key(self, gun: str, role: str) -> PublicKey | None:
        """As the wrapped signer."""
        return self.inner.latest_key(gun, role)

    def sign(self, gun: str, keyid: str, message: bytes) -> tuple[str, bytes]:
        """Sign with the wrapped signer, then count (raises what it raises)."""
        result = self.inner.sign(gun, keyid, message)
        self._count(_role_of(message))
        return result

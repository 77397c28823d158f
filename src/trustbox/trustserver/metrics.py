"""Prometheus metrics in the text exposition format, kept by hand (no client library).

``trustbox_http_requests_total{handler,code}`` counts requests, and
``trustbox_http_request_duration_seconds{handler}`` is a latency histogram.
"""

from __future__ import annotations

import bisect

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0


class Metrics:
    """Request counters and latency histograms per handler."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Histogram] = {}

    def observe(self, handler: str, code: int, seconds: float) -> None:
        """Record one finished request (called on the event loop thread only: no lock needed)."""
        key = (handler, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        h = self._latency.get(handler)
        if h is None:
            h = self._latency[handler] = _Histogram()
        h.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        h.total += seconds
        h.count += 1

    def render(self) -> bytes:
        """The metrics page (Prometheus text format 0.0.4)."""
        lines = [
            "# HELP trustbox_http_requests_total Requests handled by the trust server.",
            "# TYPE trustbox_http_requests_total counter",
        ]
        requests = sorted(self._requests.items())
        latency = sorted((k, list(v.counts), v.total, v.count) for k, v in self._latency.items())
        for (handler, code), n in requests:
            lines.append(f'trustbox_http_requests_total{{handler="{handler}",code="{code}"}} {n}')
        lines += [
            "# HELP trustbox_http_request_duration_seconds Request latency.",
            "# TYPE trustbox_http_request_duration_seconds histogram",
        ]
        for handler, counts, total, count in latency:
            cumulative = 0
            for bound, c in zip(BUCKETS, counts, strict=False):
                cumulative += c
                lines.append(
                    f'trustbox_http_request_duration_seconds_bucket{{handler="{handler}",le="{bound}"}} {cumulative}'
                )
            lines.append(f'trustbox_http_request_duration_seconds_bucket{{handler="{handler}",le="+Inf"}} {count}')
            lines.append(f'trustbox_http_request_duration_seconds_sum{{handler="{handler}"}} {total:.6f}')
            lines.append(f'trustbox_http_request_duration_seconds_count{{handler="{handler}"}} {count}')
        return ("\n".join(lines) + "\n").encode()

"""The Prometheus text exposition format (0.0.4), written by hand: no client library.

Both servers keep their own counters (plain dicts updated on the event loop thread) and turn
them into text with these helpers at scrape time, so recording a value costs a dict update.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: latency buckets in seconds (shared by both servers)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


def escape_label(value: str) -> str:
    """A label value escaped as the format requires (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a decimal point, ``+Inf``/``-Inf``/``NaN`` spelled out."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}"


def header(name: str, kind: str, help_text: str) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines of a metric family."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> list[str]:
    """A counter or gauge family: header and one line per labelled sample (in the given order)."""
    lines = header(name, kind, help_text)
    lines.extend(f"{name}{_labels(labels)} {format_value(value)}" for labels, value in samples)
    return lines


class Histogram:
    """One histogram series: bucket counts (non-cumulative), sum and count."""

    __slots__ = ("counts", "total", "count")

    def __init__(self, buckets: int = len(LATENCY_BUCKETS)) -> None:
        self.counts = [0] * (buckets + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value
        self.count += 1


def histogram_family(
    name: str, help_text: str, series: Mapping[Labels, Histogram], bounds: tuple[float, ...] = LATENCY_BUCKETS
) -> list[str]:
    """A histogram family: ``_bucket`` lines (cumulative, ``le`` last), ``_sum`` and ``_count``."""
    lines = header(name, "histogram", help_text)
    for labels, h in sorted(series.items()):
        counts, total, count = list(h.counts), h.total, h.count  # one consistent view
        cumulative = 0
        for bound, c in zip(bounds, counts, strict=False):
            cumulative += c
            lines.append(f"{name}_bucket{_labels((*labels, ('le', format_value(bound))))} {cumulative}")
        lines.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {count}")
        lines.append(f"{name}_sum{_labels(labels)} {total:.6f}")
        lines.append(f"{name}_count{_labels(labels)} {count}")
    return lines


def render(lines: list[str]) -> bytes:
    """The page: lines joined, newline-terminated."""
    return ("\n".join(lines) + "\n").encode()

"""HTTP ``Range`` (blob downloads) and ``Content-Range`` (chunked uploads) parsing."""

from __future__ import annotations

import re

from trustbox.registry.errors import RangeInvalid

_BYTES_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_CHUNK_RANGE = re.compile(r"^\s*(?:bytes[ =])?\s*(\d+)\s*-\s*(\d+)\s*(?:/\s*(?:\d+|\*))?\s*$", re.IGNORECASE)


def parse_byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range against ``size``; return (start, length).

    None means "ignore the header and send everything" (multiple ranges, other units,
    garbage: RFC 9110 lets a server ignore Range). An unsatisfiable range raises
    RangeInvalid (416) carrying ``Content-Range: bytes */size``.
    """
    m = _BYTES_RANGE.match(header)
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    unsat = RangeInvalid(
        f"range {header.strip()!r} not satisfiable for a blob of {size} bytes",
        detail={"range": header.strip(), "size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsat
        suffix = min(suffix, size)
        return size - suffix, suffix
    start = int(first)
    end = int(last) if last != "" else size - 1
    if start >= size or end < start:
        raise unsat
    end = min(end, size - 1)
    return start, end - start + 1


def parse_content_range(header: str) -> tuple[int, int]:
    """Parse an upload ``Content-Range: start-end``; return (start, end) inclusive."""
    m = _CHUNK_RANGE.match(header)
    if not m:
        raise RangeInvalid(f"malformed Content-Range {header[:100]!r}", detail={"contentRange": header[:100]})
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RangeInvalid(f"Content-Range end before start: {header[:100]!r}")
    return start, end

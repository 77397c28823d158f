"""HTTP ``Range`` (blob downloads) and ``Content-Range`` (chunked uploads) parsing.

Numbers are ASCII digits only and bounded to Go's int64 (registry:2 parses them with
``strconv.ParseInt(s, 10, 64)``) through :func:`trustbox.httpnum.parse_decimal`: a number
beyond that is an unsatisfiable range (416), never an exception.
"""

from __future__ import annotations

import re

from trustbox.httpnum import NumberRangeError, parse_decimal
from trustbox.registry.errors import RangeInvalid

# re.ASCII: [0-9] and \s only match ASCII, and "bytes" does not match case-folded look-alikes.
# No two \s* may ever be adjacent (a long run of spaces would backtrack quadratically).
_BYTES_RANGE = re.compile(r"\s*bytes\s*=\s*(?:([0-9]+)\s*)?-\s*(?:([0-9]+)\s*)?", re.IGNORECASE | re.ASCII)
_CHUNK_RANGE = re.compile(r"\s*(?:bytes[ =]\s*)?([0-9]+)\s*-\s*([0-9]+)\s*(?:/\s*(?:[0-9]+|\*)\s*)?",
                          re.IGNORECASE | re.ASCII)


def parse_byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range against ``size``; return (start, length).

    None means "ignore the header and send everything" (multiple ranges, other units,
    garbage: RFC 9110 lets a server ignore Range).

    Raises:
        RangeInvalid: the range is unsatisfiable (416 with ``Content-Range: bytes */size``),
            including a number beyond int64 (registry:2 answers those with 416 too).
    """
    m = _BYTES_RANGE.fullmatch(header)
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if first is None and last is None:
        return None
    shown = header.strip()[:100]
    unsat = RangeInvalid(
        f"range {shown!r} not satisfiable for a blob of {size} bytes",
        detail={"range": shown, "size": size},
        headers={"Content-Range": f"bytes */{size}"},
    )
    try:
        start = None if first is None else parse_decimal(first)
        end = None if last is None else parse_decimal(last)
    except NumberRangeError:
        raise unsat from None
    if start is None:
        assert end is not None
        if end == 0 or size == 0:
            raise unsat
        suffix = min(end, size)
        return size - suffix, suffix
    if end is None:
        end = size - 1
    if start >= size or end < start:
        raise unsat
    end = min(end, size - 1)
    return start, end - start + 1


def parse_content_range(header: str) -> tuple[int, int]:
    """Parse an upload ``Content-Range: start-end``; return (start, end) inclusive.

    Raises:
        RangeInvalid: the header is malformed, ends before it starts, or holds a number
            beyond int64 (416 ``RANGE_INVALID``).
    """
    shown = header[:100]
    m = _CHUNK_RANGE.fullmatch(header)
    if not m:
        raise RangeInvalid(f"malformed Content-Range {shown!r}", detail={"contentRange": shown})
    try:
        start, end = parse_decimal(m.group(1)), parse_decimal(m.group(2))
    except NumberRangeError:
        raise RangeInvalid(f"Content-Range number out of range: {shown!r}",
                           detail={"contentRange": shown}) from None
    if end < start:
        raise RangeInvalid(f"Content-Range end before start: {shown!r}", detail={"contentRange": shown})
    return start, end

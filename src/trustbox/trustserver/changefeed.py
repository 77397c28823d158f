"""The changefeed: query parameters as upstream parses them, and its JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from trustbox.errcode import INVALID_PARAMETERS, go_json
from trustbox.httpnum import INT32_MAX, INT32_MIN, NumberRangeError, NumberSyntaxError, parse_decimal
from trustbox.trustserver.errors import EMPTY, ServerError
from trustbox.trustserver.storage import Change

DEFAULT_PAGE_SIZE = 100


def _go_quote(s: str) -> str:
    # strconv.Quote for the strings that reach it here (query values); close enough for errors
    return go_json(s).decode()


def parse_int32(text: str) -> int:
    """Go ``strconv.ParseInt(text, 10, 32)``.

    Raises:
        ValueError: carrying Go's error text (``invalid syntax`` / ``value out of range``).
    """
    try:
        return parse_decimal(text, min_value=INT32_MIN, max_value=INT32_MAX, signed=True)
    except NumberRangeError:
        raise ValueError(f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range") from None
    except NumberSyntaxError:
        raise ValueError(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax") from None


def parse_params(query_string: bytes) -> tuple[int, int]:
    """``(change_id, records)`` from the query string, or INVALID_PARAMETERS as upstream."""
    qs = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    records_text = qs.get("records", [""])[0]
    try:
        records = parse_int32(records_text)
    except ValueError as exc:
        raise ServerError(INVALID_PARAMETERS, f"invalid records parameter: {exc}") from exc
    if records == 0:
        records = DEFAULT_PAGE_SIZE
    change_text = qs.get("change_id", [""])[0]
    if change_text == "":
        change_id = 0
    else:
        try:
            change_id = parse_int32(change_text)
        except ValueError as exc:
            # upstream wraps an error type without exported fields: detail {}
            raise ServerError(INVALID_PARAMETERS, EMPTY) from exc
    return change_id, records


def format_ns(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped (Go ``time.Time`` JSON, UTC)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def render(changes: list[Change], empty_as_null: bool = False) -> bytes:
    """``{"count":N,"records":[...]}`` with upstream's field names and order.

    An empty page is ``[]``, or ``null`` with ``empty_as_null`` (notary-server 0.7 writes a nil
    slice when nothing at all lies in the requested direction).
    """
    records = [
        {
            "ID": str(c.id),
            "CreatedAt": format_ns(c.created_ns),
            "GUN": c.gun,
            "Version": c.version,
            "SHA256": c.sha256,
            "Category": c.category,
        }
        for c in changes
    ]
    return go_json({"count": len(records), "records": None if (empty_as_null and not records) else records})

"""Go ``time.Time`` JSON timestamps (RFC 3339 with up to nine fractional digits)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from trustbox.errors import FormatError

# [0-9], not \d: Python's \d (and int()) take the digits of every script, Go's parser only ASCII
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_time(text: object, what: str = "expires") -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime (fraction cut to microseconds).

    Raises:
        FormatError: not a string, not RFC 3339 (ASCII digits only, nothing after it), or not a
            date a ``datetime`` can hold in UTC.
    """
    if not isinstance(text, str):
        raise FormatError(f"{what} must be an RFC 3339 timestamp string")
    m = _RFC3339.fullmatch(text)  # not match(): "$" would let a trailing newline through
    if not m:
        raise FormatError(f"{what} {text[:100]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        if m.group(8):
            tz = UTC
        else:
            sign = 1 if m.group(9) == "+" else -1
            tz = timezone(sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
        # astimezone: year 9999 at -01:00 or year 1 at +01:00 overflows datetime
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise FormatError(f"{what} {text!r} is not a valid date: {exc}") from exc


def format_time(dt: datetime) -> str:
    """Format like Go's RFC3339Nano in UTC: ``2036-11-19T06:32:05.880994Z``, no trailing zeros."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    dt = dt.astimezone(UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        base += "." + f"{dt.microsecond:06d}".rstrip("0")
    return base + "Z"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(dt: datetime) -> str:
    """Go's RFC1123 layout with a literal ``UTC`` zone, as notary-server's Last-Modified.

    Day and month names are English whatever the process locale is.
    """
    u = dt.astimezone(UTC)
    return f"{_DAYS[u.weekday()]}, {u.day:02d} {_MONTHS[u.month - 1]} {u.year:04d} {u:%H:%M:%S} UTC"


def utcnow() -> datetime:
    """The current time (for I/O layers only: the core takes time as a parameter)."""
    return datetime.now(UTC)

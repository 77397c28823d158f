"""Bounded parsing of the numbers clients send: headers, query parameters, path segments.

Python's ``int()`` accepts far more than HTTP or upstream's Go parsers do (``'+1'``, ``' 1'``,
``'1_000'``, digits of other scripts such as ``'١'``) and raises a bare ``ValueError`` for more
than 4300 digits (``sys.int_max_str_digits``). Every number the registry, the trust server and
the token server read from a request goes through :func:`parse_decimal` instead: ASCII digits
only (one leading sign only where upstream's Go ``strconv`` parser takes one), and the bounds are
checked on the text before ``int()`` ever sees it, so the only possible outcomes are a value
within the bounds, :class:`NumberSyntaxError` or :class:`NumberRangeError`.
"""

from __future__ import annotations

from trustbox.errors import FormatError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class NumberSyntaxError(FormatError):
    """Client text that is not a plain decimal number (empty, other characters, stray sign)."""


class NumberRangeError(FormatError):
    """A well-formed decimal number outside the bounds the caller allows."""


def parse_decimal(
    text: str | bytes,
    *,
    min_value: int = 0,
    max_value: int = INT64_MAX,
    signed: bool = False,
) -> int:
    """Parse client-supplied decimal ``text`` into an int within ``[min_value, max_value]``.

    Only ASCII ``0-9`` are accepted; with ``signed`` one leading ``+`` or ``-`` too (Go's
    ``strconv.ParseInt`` / ``Atoi``). Leading zeros are allowed, as in Go; the number of
    significant digits is bounded by the digits of the larger bound before any conversion, so
    the cost does not depend on what the client sent beyond one linear scan.

    Raises:
        NumberSyntaxError: ``text`` is not a decimal number (bytes are read as latin-1).
        NumberRangeError: the number lies outside ``[min_value, max_value]``.
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    digits = text
    negative = False
    if signed and digits[:1] in ("+", "-"):
        negative = digits[0] == "-"
        digits = digits[1:]
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise NumberSyntaxError(f"not a decimal number: {_shown(text)}")
    significant = digits.lstrip("0") or "0"
    widest = max(abs(min_value), abs(max_value))
    if len(significant) > len(str(widest)):
        raise NumberRangeError(f"number out of range: {_shown(text)}")
    value = -int(significant) if negative else int(significant)
    if not min_value <= value <= max_value:
        raise NumberRangeError(f"number out of range: {_shown(text)}")
    return value


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (a client may send megabytes)."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")

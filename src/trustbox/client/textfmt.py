"""Text helpers that reproduce Go output byte for byte: natural sort order, display width,
docker's tab writer (min width 10, padding 3) and ``json.MarshalIndent``-style JSON."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

_NONPRINT = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x070F, 0x070F), (0x180B, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x206A, 0x206F), (0xD800, 0xDFFF), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0xFFFE, 0xFFFF),
)


def rune_width(ch: str) -> int:
    """Terminal cell width of one character, like go-runewidth (0, 1 or 2)."""
    cp = ord(ch)
    if cp < 0x20 or 0x7F <= cp <= 0x9F or cp == 0xAD:
        return 0
    if cp < 0x300:
        return 1
    if any(lo <= cp <= hi for lo, hi in _NONPRINT):
        return 0
    if unicodedata.category(ch) in ("Mn", "Me"):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """Cell width of a string."""
    return sum(rune_width(c) for c in text)


def natural_less(a: str, b: str) -> bool:
    """``sortorder.NaturalLess``: digit runs compare by numeric value, the rest character-wise."""
    i = j = 0
    while i < len(a) and j < len(b):
        da, db = a[i].isascii() and a[i].isdigit(), b[j].isascii() and b[j].isdigit()
        if da and db:
            si, sj = i, j
            while i < len(a) and a[i] == "0":
                i += 1
            while j < len(b) and b[j] == "0":
                j += 1
            ei, ej = i, j
            while ei < len(a) and a[ei].isascii() and a[ei].isdigit():
                ei += 1
            while ej < len(b) and b[ej].isascii() and b[ej].isdigit():
                ej += 1
            if ei - i != ej - j:
                return ei - i < ej - j
            if a[i:ei] != b[j:ej]:
                return a[i:ei] < b[j:ej]
            if i - si != j - sj:
                return i - si < j - sj
            i, j = ei, ej
            continue
        if a[i] != b[j]:
            return a[i] < b[j]
        i += 1
        j += 1
    return len(a) - i < len(b) - j


class NaturalKey:
    """Sort key wrapper using :func:`natural_less`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: NaturalKey) -> bool:
        return natural_less(self.text, other.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NaturalKey) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def tab_table(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells like Go's tabwriter (the last cell of a row is not padded)."""
    ncols = max((len(r) for r in rows), default=0)
    widths = [0] * ncols
    for r in rows:
        for c, cell in enumerate(r[:-1]):
            widths[c] = max(widths[c], display_width(cell) + padding, minwidth)
    lines = []
    for r in rows:
        parts = [cell + " " * (widths[c] - display_width(cell)) for c, cell in enumerate(r[:-1])]
        parts.append(r[-1] if r else "")
        lines.append("".join(parts) + "\n")
    return "".join(lines)


_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_json_indent(value: Any, indent: int = 4) -> str:
    """JSON as Go's ``json.Marshal`` + ``json.Indent`` write it (HTML-escaped, raw UTF-8)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    for raw, esc in _GO_ESCAPES:
        text = text.replace(raw, esc)
    return text

"""Parsing of the multipart update body (already read, within the size limit).

Only what notary needs: ``multipart/form-data`` with a boundary, parts with a
``Content-Disposition`` whose ``filename`` names the role. Anything malformed raises
:class:`MalformedUpload`.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustbox.errors import FormatError

MAX_PARTS = 1000
MAX_HEADER_BYTES = 8192


class MalformedUpload(FormatError):
    """A body that is not a usable multipart/form-data document."""


@dataclass(frozen=True)
class UploadPart:
    """One part: its file name ("" when absent) and content."""

    filename: str
    data: bytes


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """``type; k=v; k2="quoted"`` -> (lower-cased type, params with lower-cased keys)."""
    items: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise MalformedUpload("unterminated quoted string in header")
    items.append("".join(cur))
    main = items[0].strip().lower()
    params: dict[str, str] = {}
    for item in items[1:]:
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep:
            raise MalformedUpload(f"bad header parameter {item!r}")
        key = key.strip().lower()
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            inner = val[1:-1]
            out: list[str] = []
            i = 0
            while i < len(inner):
                if inner[i] == "\\" and i + 1 < len(inner):
                    i += 1
                out.append(inner[i])
                i += 1
            val = "".join(out)
        if key in params:
            raise MalformedUpload(f"duplicate header parameter {key!r}")
        params[key] = val
    return main, params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type."""
    main, params = parse_header_params(content_type)
    if main != "multipart/form-data":
        raise MalformedUpload("request is not multipart/form-data")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise MalformedUpload("multipart boundary missing or too long")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError as exc:
        raise MalformedUpload("multipart boundary is not ASCII") from exc


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedUpload("part headers are not UTF-8") from exc
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise MalformedUpload(f"bad part header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def parse_multipart(body: bytes, boundary: bytes) -> list[UploadPart]:
    """Split ``body`` into parts (Go ``mime/multipart`` semantics for well-formed input)."""
    delim = b"--" + boundary
    pos = body.find(delim)
    if pos < 0 or (pos > 0 and body[pos - 1 : pos] != b"\n"):
        raise MalformedUpload("multipart body has no opening boundary")
    parts: list[UploadPart] = []
    while True:
        pos += len(delim)
        if body.startswith(b"--", pos):
            return parts
        eol = body.find(b"\n", pos)
        if eol < 0 or body[pos:eol].rstrip(b"\r").strip(b" \t"):
            raise MalformedUpload("malformed multipart boundary line")
        start = eol + 1
        nxt = body.find(b"\n" + delim, start)
        if nxt < 0:
            raise MalformedUpload("multipart body ends without closing boundary")
        end = nxt - 1 if nxt > start and body[nxt - 1 : nxt] == b"\r" else nxt
        chunk = body[start:end]
        sep = chunk.find(b"\r\n\r\n")
        sep_len = 4
        lf = chunk.find(b"\n\n")
        if lf >= 0 and (sep < 0 or lf < sep):
            sep, sep_len = lf, 2
        if chunk.startswith(b"\r\n"):
            sep, sep_len = 0, 2
        elif chunk.startswith(b"\n"):
            sep, sep_len = 0, 1
        if sep < 0 or sep > MAX_HEADER_BYTES:
            raise MalformedUpload("multipart part has no header/body separator")
        headers = _parse_headers(chunk[:sep])
        content = chunk[sep + sep_len :]
        filename = ""
        disposition = headers.get("content-disposition")
        if disposition:
            kind, params = parse_header_params(disposition)
            if kind != "form-data":
                raise MalformedUpload("part is not form-data")
            filename = params.get("filename", "")
        parts.append(UploadPart(filename, content))
        if len(parts) > MAX_PARTS:
            raise MalformedUpload("too many parts")
        pos = nxt + 1

"""PEM blocks with RFC 1421 headers, as notary writes key files (``role:``, ``gun:``, ``path:``)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from trustbox.errors import FormatError

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)


@dataclass
class PEMBlock:
    """One PEM block: its type, its headers (in file order) and its DER bytes."""

    type: str
    der: bytes
    headers: dict[str, str] = field(default_factory=dict)


def parse_pem_blocks(data: bytes) -> list[PEMBlock]:
    """Every PEM block in ``data`` (headers parsed, base64 decoded)."""
    blocks = []
    for m in _BLOCK.finditer(data):
        body = m.group(2).decode("ascii", "replace")
        headers: dict[str, str] = {}
        lines = body.splitlines()
        if any(":" in ln for ln in lines[:1]) or (lines and ":" in lines[0]):
            i = 0
            while i < len(lines) and lines[i].strip():
                if ":" not in lines[i]:
                    break
                k, _, v = lines[i].partition(":")
                headers[k.strip()] = v.strip()
                i += 1
            lines = lines[i:]
        b64 = "".join(ln.strip() for ln in lines)
        try:
            der = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FormatError(f"PEM block {m.group(1).decode()!r} holds invalid base64") from exc
        blocks.append(PEMBlock(m.group(1).decode("ascii"), der, headers))
    return blocks


def encode_pem_block(block: PEMBlock) -> bytes:
    """A PEM block with headers in sorted order (as Go's ``pem.Encode`` writes them)."""
    out = [f"-----BEGIN {block.type}-----\n"]
    if block.headers:
        for k in sorted(block.headers):
            out.append(f"{k}: {block.headers[k]}\n")
        out.append("\n")
    b64 = base64.b64encode(block.der).decode("ascii")
    for i in range(0, len(b64), 64):
        out.append(b64[i : i + 64] + "\n")
    out.append(f"-----END {block.type}-----\n")
    return "".join(out).encode("ascii")

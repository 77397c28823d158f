"""The multipart body of a notary update (``POST /v2/<gun>/_trust/tuf/``), as the notary client
sends it. Plain Python (no pytest), so ``bench/`` scripts can use it too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def multipart(
    parts: Mapping[str, bytes] | Iterable[tuple[str, bytes]], boundary: str = "trustboxboundary1234"
) -> tuple[bytes, str]:
    """``(body, content type)``: one part per ``(role, document)``, field ``files``, filename = role.

    A list of pairs may name a role twice (for tests of what the server refuses)."""
    items = parts.items() if isinstance(parts, Mapping) else parts
    out = b""
    for name, data in items:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"

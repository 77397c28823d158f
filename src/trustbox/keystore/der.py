"""A minimal DER reader and writer: just what PKCS#8, PBES2 and SEC1 need.

Every parse error becomes :class:`trustbox.errors.FormatError`; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustbox.errors import FormatError

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30


def context(n: int, constructed: bool = True) -> int:
    """The tag byte of a context-specific ``[n]`` element."""
    return 0x80 | (0x20 if constructed else 0) | n


@dataclass(frozen=True)
class Element:
    """One TLV element: its tag byte and its content bytes."""

    tag: int
    content: bytes

    def children(self) -> list[Element]:
        """The elements inside a constructed element (SEQUENCE, ``[n]``...)."""
        if not self.tag & 0x20:
            raise FormatError("DER: expected a constructed element")
        return parse_all(self.content)

    def as_int(self) -> int:
        """The value of an INTEGER."""
        self.expect(INTEGER, "INTEGER")
        if not self.content:
            raise FormatError("DER: empty INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def as_oid(self) -> str:
        """The dotted form of an OBJECT IDENTIFIER."""
        self.expect(OID, "OBJECT IDENTIFIER")
        return decode_oid(self.content)

    def as_octets(self) -> bytes:
        """The bytes of an OCTET STRING."""
        self.expect(OCTET_STRING, "OCTET STRING")
        return self.content

    def as_bits(self) -> bytes:
        """The bytes of a BIT STRING (whole bytes only)."""
        self.expect(BIT_STRING, "BIT STRING")
        if not self.content or self.content[0] != 0:
            raise FormatError("DER: unsupported BIT STRING")
        return self.content[1:]

    def expect(self, tag: int, what: str) -> None:
        """Raise FormatError unless this element has ``tag``."""
        if self.tag != tag:
            raise FormatError(f"DER: expected {what}, found tag 0x{self.tag:02x}")


def _read(data: bytes, pos: int) -> tuple[Element, int]:
    if pos + 2 > len(data):
        raise FormatError("DER: truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise FormatError("DER: multi-byte tags are not supported")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise FormatError("DER: bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise FormatError("DER: truncated element")
    return Element(tag, data[pos : pos + length]), pos + length


def parse_one(data: bytes, allow_trailing: bool = False) -> Element:
    """Parse a single element; trailing bytes are an error unless allowed."""
    elem, end = _read(data, 0)
    if end != len(data) and not allow_trailing:
        raise FormatError("DER: trailing data after element")
    return elem


def parse_all(data: bytes) -> list[Element]:
    """Parse consecutive elements filling ``data`` exactly."""
    out = []
    pos = 0
    while pos < len(data):
        elem, pos = _read(data, pos)
        out.append(elem)
    return out


def decode_oid(raw: bytes) -> str:
    """Dotted text of OID content bytes."""
    if not raw or raw[-1] & 0x80:
        raise FormatError("DER: bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for b in raw:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


# -- writer ---------------------------------------------------------------------------


def encode(tag: int, content: bytes) -> bytes:
    """A TLV element with a definite DER length."""
    n = len(content)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(size)]) + size
    return head + content


def seq(*items: bytes) -> bytes:
    """A SEQUENCE of already encoded elements."""
    return encode(SEQUENCE, b"".join(items))


def integer(value: int) -> bytes:
    """A (minimal two's complement) INTEGER."""
    size = value.bit_length() // 8 + 1
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def octets(value: bytes) -> bytes:
    """An OCTET STRING."""
    return encode(OCTET_STRING, value)


def bits(value: bytes) -> bytes:
    """A BIT STRING of whole bytes."""
    return encode(BIT_STRING, b"\x00" + value)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted text."""
    arcs = [int(a) for a in dotted.split(".")]
    values = [arcs[0] * 40 + arcs[1], *arcs[2:]]
    out = bytearray()
    for v in values:
        chunk = [v & 0x7F]
        v >>= 7
        while v:
            chunk.append(0x80 | (v & 0x7F))
            v >>= 7
        out.extend(reversed(chunk))
    return encode(OID, bytes(out))


def explicit(n: int, inner: bytes) -> bytes:
    """An EXPLICIT context tag ``[n]`` around an encoded element."""
    return encode(context(n), inner)

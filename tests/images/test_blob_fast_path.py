"""The blob fast path (``capped.plain_get``, the standard library's HTTP client) against its twin,
the httpx path of ``RegistryClient.open_blob``: for every answer a registry can give to a blob
``GET`` both give the same bytes or the same error, and both read no more than the descriptor's
size (+ one chunk). A raw socket server scripts each answer byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from trustbox.client.capped import PLAIN_CHUNK
from trustbox.client.images.distribution import (
    PLAIN_MIN_SIZE,
    RegistryAuthError,
    RegistryClient,
    RegistryOptions,
    RegistryResponseError,
)
from trustbox.errors import NotFoundError, TrustboxError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.errors import DigestMismatchError

DATA = bytes(range(256)) * 4096  # 1 MiB
DESC = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(DATA).hexdigest(), len(DATA))
PRIMER = b"primer blob"
PRIMER_DESC = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(PRIMER).hexdigest(), len(PRIMER))


def head(status: str, *headers: str) -> bytes:
    return ("HTTP/1.1 " + status + "\r\n" + "".join(h + "\r\n" for h in (*headers, "Connection: close")) + "\r\n").encode()


def ok(body: bytes, length: int | None = None) -> bytes:
    return head("200 OK", f"Content-Length: {len(body) if length is None else length}") + body


def chunked(body: bytes) -> bytes:
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]) for i in range(0, len(body), 65536))
    return head("200 OK", "Transfer-Encoding: chunked") + pieces + b"0\r\n\r\n"


@dataclass
class RawRegistry:
    """A plain-HTTP server on 127.0.0.1 answering each request with scripted bytes, then closing."""

    answers: dict[str, bytes] = field(default_factory=dict)
    #: (path, whether the request carried httpx's default Accept header) per request
    seen: list[tuple[str, bool]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.answers.setdefault("/v2/", ok(b"{}"))
        self.answers.setdefault(f"/v2/r/blobs/{PRIMER_DESC.digest}", ok(PRIMER))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more or (not data and more[:1] == b"\x16"):  # closed, or a TLS hello (https tried first)
                        return
                    data += more
            except OSError:
                return
            lines = data.split(b"\r\n")
            parts = lines[0].decode("latin-1").split()
            if len(parts) != 3:
                return
            path = parts[1]
            self.seen.append((path, any(line.lower().startswith(b"accept: */*") for line in lines)))
            answer = self.answers.get(path, head("404 Not Found", "Content-Length: 0"))
            sent = 0
            try:
                for i in range(0, len(answer), 65536):
                    conn.sendall(answer[i:i + 65536])
                    sent += len(answer[i:i + 65536])
            except OSError:
                pass
            self.sent[path] = self.sent.get(path, 0) + sent

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def registry() -> Iterator[RawRegistry]:
    r = RawRegistry()
    yield r
    r.close()


def _read(client: RegistryClient, desc: Descriptor) -> bytes | TrustboxError:
    try:
        with client.open_blob("r", desc) as chunks:
            return b"".join(chunks)
    except TrustboxError as exc:
        return exc


def both_paths(registry: RawRegistry, desc: Descriptor = DESC) -> tuple[bytes | TrustboxError, bytes | TrustboxError]:
    """What the httpx path and the fast path make of the scripted answer for ``desc``."""
    with RegistryClient(registry.host, RegistryOptions()) as c:
        slow = _read(c, desc)  # the first blob of a client goes through httpx
    with RegistryClient(registry.host, RegistryOptions()) as c:
        assert _read(c, PRIMER_DESC) == PRIMER  # a plain 200 from the registry: the fast path is on
        fast = _read(c, desc)
    blob_requests = [accept for path, accept in registry.seen if path == f"/v2/r/blobs/{desc.digest}"]
    assert blob_requests[:2] == [True, False], "the second read did not take the fast path"
    return slow, fast


def _same(slow: bytes | TrustboxError, fast: bytes | TrustboxError) -> None:
    if isinstance(slow, bytes):
        assert fast == slow
        return
    assert type(fast) is type(slow), (slow, fast)
    assert isinstance(fast, TrustboxError)
    # how many bytes had arrived, and the underlying client's own words, differ; the rest does not
    assert fast.message.split(": got ")[0].split(" (")[0] == slow.message.split(": got ")[0].split(" (")[0]


Case = Callable[[], bytes]
CASES: dict[str, tuple[bytes, type[TrustboxError] | None, str]] = {
    "exact": (ok(DATA), None, ""),
    "chunked": (chunked(DATA), None, ""),
    "longer-announced": (ok(DATA + b"x" * 10), DigestMismatchError, f"{len(DATA) + 10} bytes announced, more than"),
    "longer-chunked": (chunked(DATA * 3), DigestMismatchError, f"more than {len(DATA)} bytes"),
    "longer-until-close": (head("200 OK") + DATA * 3, DigestMismatchError, f"more than {len(DATA)} bytes"),
    "shorter": (ok(DATA[:-5], len(DATA)), DigestMismatchError, "incomplete content from 127.0.0.1:"),
    "wrong-bytes": (ok(DATA[::-1]), DigestMismatchError, "digest mismatch: content hashes to"),
    "gzip": (head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(gzip.compress(DATA))}")
             + gzip.compress(DATA), DigestMismatchError, "gzip-encoded body, which is not accepted"),
    "not-found": (head("404 Not Found", "Content-Length: 0"), NotFoundError, "not found in"),
    "server-error": (head("500 Internal Server Error", "Content-Length: 0"), RegistryResponseError, "HTTP 500"),
    "unauthorized": (head("401 Unauthorized", "Content-Length: 0"), RegistryAuthError, "requires authentication"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_and_httpx_agree(registry: RawRegistry, case: str) -> None:
    answer, error, words = CASES[case]
    registry.answers[f"/v2/r/blobs/{DESC.digest}"] = answer
    slow, fast = both_paths(registry)
    _same(slow, fast)
    if error is None:
        assert fast == DATA
    else:
        assert isinstance(fast, error), fast
        assert words in fast.message, fast.message


def test_fast_path_reads_no_more_than_the_descriptor(registry: RawRegistry) -> None:
    """A body far beyond the descriptor: the client stops one chunk after its size."""
    big = 64 * len(DATA)
    registry.answers[f"/v2/r/blobs/{DESC.digest}"] = head("200 OK") + b"x" * big
    with RegistryClient(registry.host, RegistryOptions()) as c:
        assert _read(c, PRIMER_DESC) == PRIMER
        out = _read(c, DESC)
    assert isinstance(out, DigestMismatchError)
    deadline = time.monotonic() + 10
    while f"/v2/r/blobs/{DESC.digest}" not in registry.sent and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the hang-up
    assert registry.sent[f"/v2/r/blobs/{DESC.digest}"] < len(DATA) + PLAIN_CHUNK + 8 * 1024 * 1024  # + socket buffers


def test_a_redirect_seen_by_the_fast_path_is_followed_by_httpx(registry: RawRegistry) -> None:
    registry.answers[f"/v2/r/blobs/{DESC.digest}"] = head("307 Temporary Redirect", "Location: /storage/blob",
                                                          "Content-Length: 0")
    registry.answers["/storage/blob"] = ok(DATA)
    slow, fast = both_paths(registry)
    assert slow == fast == DATA


def test_small_blobs_keep_httpxs_kept_alive_connection(registry: RawRegistry) -> None:
    small = b"s" * (PLAIN_MIN_SIZE - 1)
    desc = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(small).hexdigest(), len(small))
    registry.answers[f"/v2/r/blobs/{desc.digest}"] = ok(small)
    with RegistryClient(registry.host, RegistryOptions()) as c:
        assert _read(c, PRIMER_DESC) == PRIMER
        assert _read(c, desc) == small
    assert [accept for path, accept in registry.seen if path == f"/v2/r/blobs/{desc.digest}"] == [True]

"""Spool writes past the page cache (``trustbox.registry.direct_io``): the bytes on disk are
exactly the bytes sent, whatever the chunking and starting offset, with direct I/O, after a
file system refuses it, and through the registry's chunked upload API."""

from __future__ import annotations

import errno
import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trustbox.registry import direct_io
from trustbox.registry.direct_io import ALIGN, BUFFER, DirectWriter, open_direct
from trustbox.registry.uploads import UploadStore

from .conftest import Reg, build_reg


def direct_or_skip(path: Path) -> int:
    fd = open_direct(path)
    if fd is None:  # the file system of the temporary directory has no O_DIRECT
        pytest.skip(f"no direct I/O on the file system of {path}")
    return fd


PwriteFn = Callable[[int, Any, int], int]


def intercept_direct(monkeypatch: pytest.MonkeyPatch, path: Path, on_direct: Callable[[PwriteFn, Any, int], int]) -> int:
    """A direct descriptor on ``path`` whose writes go through ``on_direct(real_pwrite, data, offset)``;
    writes to any other descriptor are left alone."""
    real = os.pwrite
    dfd = direct_or_skip(path)

    def pwrite(fd: int, data: Any, offset: int) -> int:
        return on_direct(real, data, offset) if fd == dfd else real(fd, data, offset)

    monkeypatch.setattr(direct_io.os, "pwrite", pwrite)
    return dfd


def write_batches(path: Path, start: int, batches: list[list[bytes]], writer_fd: int | None = None) -> DirectWriter:
    """Run a DirectWriter over ``batches`` from ``start`` the way an upload's write lane does."""
    with open(path, "r+b", buffering=0) as f:
        fd = writer_fd if writer_fd is not None else direct_or_skip(path)
        w = DirectWriter(f.fileno(), fd, start)
        try:
            for b in batches:
                w(b)
            w.finish()
        finally:
            w.close()
    return w


def random_batches(rng: random.Random, total: int) -> list[list[bytes]]:
    """Chunks of random sizes (empty, tiny, block-straddling, bigger than the buffer) in batches."""
    batches: list[list[bytes]] = []
    left = total
    while left:
        batch = []
        for _ in range(rng.randint(1, 6)):
            size = min(left, rng.choice([0, 1, 7, ALIGN - 1, ALIGN, ALIGN + 1, 65536, 300_001, BUFFER + 3]))
            batch.append(rng.randbytes(size))
            left -= size
            if not left:
                break
        batches.append(batch)
    return batches


@pytest.mark.parametrize("start", [0, 1, ALIGN - 1, ALIGN, ALIGN + 5, 3 * ALIGN])
def test_bytes_on_disk_are_the_bytes_sent_from_any_offset(tmp_path: Path, start: int) -> None:
    rng = random.Random(start)
    path = tmp_path / "data"
    prefix = rng.randbytes(start)
    path.write_bytes(prefix)
    batches = random_batches(rng, 2 * BUFFER + 12345)
    w = write_batches(path, start, batches)
    expect = prefix + b"".join(b"".join(b) for b in batches)
    assert path.read_bytes() == expect
    assert w.direct  # this file system took the direct writes
    assert w.pos == len(expect)


def test_whole_blocks_go_direct_and_only_head_and_tail_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"h" * 100)
    seen: list[tuple[str, int, int]] = []
    real = os.pwrite

    def spy_buffered(fd: int, data: Any, offset: int) -> int:
        seen.append(("buffered", offset, len(data)))
        return real(fd, data, offset)

    def spy_direct(pwrite: PwriteFn, data: Any, offset: int) -> int:  # pwrite: spy_buffered
        seen.append(("direct", offset, len(data)))
        return real(dfd, data, offset)

    monkeypatch.setattr(direct_io.os, "pwrite", spy_buffered)
    dfd = intercept_direct(monkeypatch, path, spy_direct)
    body = os.urandom(3 * ALIGN * 100 + 17)
    write_batches(path, 100, [[body[:5000], body[5000:70000]], [body[70000:]]], writer_fd=dfd)
    assert path.read_bytes() == b"h" * 100 + body
    direct = [(off, n) for kind, off, n in seen if kind == "direct"]
    buffered = [(off, n) for kind, off, n in seen if kind == "buffered"]
    assert direct and all(off % ALIGN == 0 and n % ALIGN == 0 for off, n in direct)
    assert buffered[0] == (100, ALIGN - 100)  # up to the first block boundary
    assert sum(n for _, n in buffered) < 2 * ALIGN  # the head and the last partial block only
    assert sum(n for _, n in direct) + sum(n for _, n in buffered) == len(body)


def test_a_file_system_refusing_the_alignment_gets_buffered_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")

    def refuse(pwrite: PwriteFn, data: Any, offset: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    dfd = intercept_direct(monkeypatch, path, refuse)
    batches = random_batches(random.Random(7), BUFFER + 999)
    w = write_batches(path, 0, batches, writer_fd=dfd)
    assert not w.direct
    assert path.read_bytes() == b"".join(b"".join(b) for b in batches)


def test_a_short_direct_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")

    def short(pwrite: PwriteFn, data: Any, offset: int) -> int:
        return pwrite(dfd, memoryview(data)[:ALIGN] if len(data) > ALIGN else data, offset)

    dfd = intercept_direct(monkeypatch, path, short)
    body = os.urandom(10 * ALIGN + 3)
    write_batches(path, 0, [[body]], writer_fd=dfd)
    assert path.read_bytes() == body


def test_other_write_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_io.os, "pwrite", full)
    spare = [direct_io._take_buffer() for _ in range(direct_io._POOL_MAX + 1)]
    writer_buffer = spare.pop()
    for buf in spare:  # a full pool: the failed writer's buffer is to be unmapped, not kept
        direct_io._give_buffer(buf)
    monkeypatch.setattr(direct_io, "_take_buffer", lambda: writer_buffer)
    with pytest.raises(OSError, match="No space"):  # not a BufferError from closing the buffer
        write_batches(path, 0, [[b"x" * (2 * ALIGN)]])


def test_a_write_making_no_progress_is_an_error_not_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct_io.os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError, match="made no progress"):
        direct_io.pwrite_all(0, memoryview(b"abc"), 10)


def test_no_o_direct_means_no_direct_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")
    monkeypatch.setattr(direct_io, "O_DIRECT", 0)
    assert open_direct(path) is None
    assert open_direct(tmp_path / "missing" / "data") is None


def test_buffers_are_reused_and_the_pool_is_bounded() -> None:
    taken = [direct_io._take_buffer() for _ in range(direct_io._POOL_MAX + 3)]
    for buf in taken:
        direct_io._give_buffer(buf)
    assert len(direct_io._pool) <= direct_io._POOL_MAX
    again = direct_io._take_buffer()
    assert any(again is buf for buf in taken)  # no fresh pages when one is free
    direct_io._give_buffer(again)


# --- through the registry's upload API ------------------------------------------------------


def fs_reg(tmp_path: Path, direct: bool) -> Reg:
    reg = build_reg({"storage": str(tmp_path / ("direct" if direct else "buffered"))})
    store = reg.c.app.state.registry.uploads
    assert isinstance(store, UploadStore)
    assert store.direct_io  # local storage: on by default
    store.direct_io = direct
    return reg


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_chunked_upload_at_odd_offsets(tmp_path: Path, direct: bool) -> None:
    reg = fs_reg(tmp_path, direct)
    rng = random.Random(3)
    pieces = [rng.randbytes(n) for n in (1, ALIGN - 2, 5, BUFFER + ALIGN + 1, 0, 777, 3 * ALIGN)]
    blob = b"".join(pieces)
    r = reg.post("/v2/a/b/blobs/uploads/")
    loc = r.headers["location"]
    offset = 0
    for p in pieces:
        if not p:
            continue
        r = reg.patch(loc, content=p, headers={"Content-Range": f"{offset}-{offset + len(p) - 1}"})
        assert r.status_code == 202, r.text
        offset += len(p)
        assert r.headers["range"] == f"0-{offset - 1}"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    r = reg.put(loc, params={"digest": digest})
    assert r.status_code == 201, r.text
    got = reg.get(f"/v2/a/b/blobs/{digest}")
    assert got.status_code == 200 and got.content == blob


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_a_chunk_of_the_wrong_length_is_cut_off_again(tmp_path: Path, direct: bool) -> None:
    reg = fs_reg(tmp_path, direct)
    first = os.urandom(ALIGN + 10)
    loc = reg.post("/v2/a/b/blobs/uploads/").headers["location"]
    assert reg.patch(loc, content=first).status_code == 202
    bad = os.urandom(3 * ALIGN)
    r = reg.patch(
        loc, content=bad, headers={"Content-Range": f"{len(first)}-{len(first) + len(bad)}", "Content-Length": str(len(bad))}
    )
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "SIZE_INVALID", r.text
    r = reg.get(loc)
    assert r.headers["range"] == f"0-{len(first) - 1}"  # the session is back at its last good offset
    rest = os.urandom(5000)
    assert reg.patch(loc, content=rest).status_code == 202
    blob = first + rest
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert reg.put(loc, params={"digest": digest}).status_code == 201
    assert reg.get(f"/v2/a/b/blobs/{digest}").content == blob


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_monolithic_upload(tmp_path: Path, direct: bool) -> None:
    reg = fs_reg(tmp_path, direct)
    blob = os.urandom(2 * BUFFER + 1)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    r = reg.post("/v2/a/b/blobs/uploads/", params={"digest": digest}, content=blob)
    assert r.status_code == 201, r.text
    assert reg.get(f"/v2/a/b/blobs/{digest}").content == blob
